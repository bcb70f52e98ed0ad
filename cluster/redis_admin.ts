/**
 * `chat admin --redis URL op NAME | deop NAME | list`: the cluster's operators, changed in Redis
 * from the machine and announced on the channel in the same step, so that every running server
 * marks them at once. Only a registered name can be made an operator.
 */
import { nameKey } from "../protocol.ts";
import { parseStoredAccount } from "./events.ts";
import { operatorKey, parseValue } from "./moderation_values.ts";
import {
  ACCOUNT_PREFIX,
  connectAdmin,
  moderate,
  MODERATION_PREFIX,
  readModeration,
  type Redis,
  REDIS_TIMEOUT_MS,
  withDeadline,
} from "./redis_link.ts";

/** What became of an operator change: made, or already so (`name` is as registered, or as the
 * operator was made), or refused because the name is not registered. */
export interface OperatorChange {
  status: "done" | "already" | "unregistered";
  name: string;
}

/** The most values read to list the operators (as a server reads them). */
const MOST_VALUES = 25_000;

/**
 * Makes `name` an operator, or no longer one, in Redis, announced to the running servers (as the
 * server's doing). Only a registered name can be made one.
 */
export function setOperatorInRedis(
  url: string,
  name: string,
  isOperator: boolean,
): Promise<OperatorChange> {
  return withRedis(url, async (redis) => {
    const [account, operator] = await withDeadline(
      redis.mGet([ACCOUNT_PREFIX + nameKey(name), MODERATION_PREFIX + operatorKey(name)]),
    );
    const registered = parseStoredAccount(account)?.name;
    const shown = (isOperator ? registered : operator) ?? registered ?? name;
    if (isOperator && !registered) return { status: "unregistered", name };
    if (isOperator === (operator !== null)) return { status: "already", name: shown };
    const done = await setOperator(redis, shown, isOperator);
    return { status: done ? "done" : "unregistered", name: shown };
  });
}

/** The operators' names, sorted regardless of case. */
export function operatorsInRedis(url: string): Promise<string[]> {
  return withRedis(url, async (redis) => {
    const values = await withDeadline(readModeration(redis, MOST_VALUES));
    const names: string[] = [];
    for (const [key, value] of values) {
      const parsed = key.startsWith("op:") ? parseValue(key, value) : undefined;
      if (parsed?.kind === "operator") names.push(parsed.name);
    }
    return names.sort((a, b) => nameKey(a).localeCompare(nameKey(b)));
  });
}

/** Sets or clears an operator in Redis, announced (with no operator's name: the server did it). */
async function setOperator(redis: Redis, name: string, isOperator: boolean): Promise<boolean> {
  const [seconds, micros] = await withDeadline(redis.time());
  const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  const key = operatorKey(name);
  const value = isOperator ? name : "";
  // An id of its own, as a server's: the servers check every event's origin.
  const origin = crypto.randomUUID();
  const message = JSON.stringify({
    o: origin,
    d: now + REDIS_TIMEOUT_MS,
    k: "mod",
    n: "",
    t: key,
    ...isOperator ? { v: value } : {},
  });
  const done = await withDeadline(moderate(redis, {
    key,
    value,
    message,
    deadline: now + REDIS_TIMEOUT_MS,
    registered: isOperator ? name : undefined,
  }));
  if (done < 0) throw new Error("Redis took too long: nothing was changed; try again");
  return done > 0;
}

/** Runs `task` on a connection to the Redis at `url`, closed after. */
async function withRedis<T>(url: string, task: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = await connectAdmin(url);
  try {
    return await task(redis);
  } finally {
    await withDeadline(redis.close()).catch(() => redis.destroy());
  }
}

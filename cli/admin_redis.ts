/**
 * `chat admin --redis URL op NAME | deop NAME | list`: the operators of a cluster, kept in its
 * Redis; every running server of it sees a change at once. Said as `--store`'s are.
 */
import { describe } from "../protocol.ts";
import { redact } from "../cluster/redis_link.ts";
import { operatorsInRedis, setOperatorInRedis } from "../cluster/redis_admin.ts";
import { checkRedisPermission, StartupError } from "./environment.ts";
import { REDIS_ENV, redisAddress, shellQuote } from "./flags.ts";

/** Runs an operator action on the Redis at `url`: the exit code. `args`: the whole command line,
 * for the command to run again with the permission it lacks. */
export async function redisAdmin(
  url: string,
  action: "op" | "deop" | "list",
  name: string | undefined,
  args: string[],
): Promise<number> {
  const host = redisAddress(url);
  const rerun = `deno run --allow-net=${host} --allow-env=${REDIS_ENV.join(",")} main.ts admin ${
    args.map(shellQuote).join(" ")
  }`;
  await checkRedisPermission(url, rerun);
  const where = redact(url);
  try {
    if (action === "list") {
      const names = await operatorsInRedis(url);
      console.log(names.length === 0 ? `No operators in ${where}` : names.join("\n"));
      return 0;
    }
    const isOperator = action === "op";
    const change = await setOperatorInRedis(url, name!, isOperator);
    if (change.status === "unregistered") {
      console.error(
        `error: Cannot make ${name} an operator: the name is not registered in ${where} ` +
          "(its owner registers it in the room with /register)",
      );
      return 1;
    }
    const state = change.status === "already"
      ? (isOperator ? "an operator already" : "not an operator")
      : (isOperator ? "now an operator" : "no longer an operator");
    console.log(`${change.name} is ${state}`);
    return 0;
  } catch (error) {
    throw new StartupError(`Cannot change the operators in Redis at ${where}: ${describe(error)}`);
  }
}

/**
 * The link to Redis: one pair of connections (commands, and the channel's subscription) used until
 * its first fault, the Lua scripts the cluster runs there, and what the hub asks of Redis through
 * it: publishing events in batches, name claims, and reading the history and the claims back. A
 * link knows nothing of the room; the hub decides what to claim and publish, and when.
 */
import { setImmediate } from "node:timers";
import { type CommandParser, createClient, defineScript, ErrorReply } from "@redis/client";
import { backoffDelay, describe, nameKey } from "../protocol.ts";
import { type HistoryEntry, parseClaim, parseHistoryEntry, type RemoteMember } from "./events.ts";

/**
 * How long Redis may take to answer, and how late an event may be relayed. A command unanswered
 * this long breaks the link to Redis (a hang is a partition). An event that reaches Redis later
 * than this after it was said is dropped there, and one that reaches another server later than
 * twice this is dropped there: no event is relayed later than that.
 */
export const REDIS_TIMEOUT_MS = 2000;

/** The longest wait between two attempts to reach Redis. */
const MAX_BACKOFF_MS = 5000;

/** The most events published in one call to Redis (Lua takes a few thousand arguments at most). */
const MAX_BATCH_EVENTS = 1000;

/** The Redis keys and channel, all under one prefix so that a Redis can be shared. */
const PREFIX = "chat:";

const CHANNEL = `${PREFIX}room`;

const HISTORY_KEY = `${PREFIX}history`;

const NAME_PREFIX = `${PREFIX}name:`;

/** Registered names: `chat:account:KEY` holds the account as JSON (the scrypt hash, never a
 * password). */
export const ACCOUNT_PREFIX = `${PREFIX}account:`;

/**
 * Marks the data this cluster keeps in Redis: set once by the first server to find it missing. A
 * server that finds another mark on reconnecting knows Redis lost everything (restarted without
 * saving, flushed), including the registered names.
 */
export const EPOCH_KEY = `${PREFIX}epoch`;

/**
 * Takes or renews a claim: `SERVER MEMBER SINCE NAME` for a lifetime. Taken if free or this
 * server's already (under any spelling of the name: a leftover, or a member changing the case of
 * its name), and, when contesting, from another holder who took the name later: after a partition,
 * whoever has held a name longer keeps it. 1 if it is ours now, 0 if not.
 */
const CLAIM = defineScript({
  SCRIPT: "local held = redis.call('get', KEYS[1]) " +
    "if held and string.sub(held, 1, #ARGV[1] + 1) ~= ARGV[1] .. ' ' then " +
    "if ARGV[5] ~= '1' then return 0 end " +
    "local server, since = string.match(held, '^(%S+) %S+ (%d+) ') " +
    "if not since then return 0 end " +
    "since = tonumber(since) local mine = tonumber(ARGV[4]) " +
    "if since < mine or (since == mine and server < ARGV[1]) then return 0 end " +
    "end redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1",
  NUMBER_OF_KEYS: 1,
  parseCommand(parser: CommandParser, key: string, args: string[]) {
    parser.pushKey(key);
    parser.push(...args);
  },
  transformReply: (reply: unknown) => reply === 1,
});

/** Deletes a claim only if it is still exactly this one (it may have expired and been taken). */
const RELEASE = defineScript({
  SCRIPT:
    "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0",
  NUMBER_OF_KEYS: 1,
  parseCommand(parser: CommandParser, key: string, value: string) {
    parser.pushKey(key);
    parser.push(value);
  },
  transformReply: (reply: unknown) => reply === 1,
});

/**
 * Publishes events unless Redis's clock is past their deadline (they sat in a hung Redis, or in a
 * network that held them): -1 then, and nothing happens. The events a server publishes in one turn
 * of its event loop come in one call, which costs Redis little more than one event alone did. Their chat
 * lines also go into the history, in the same step, so that a server reading the history and the
 * channel sees each line once. The history is trimmed once it holds twice its size, not at every
 * call: it is always read from its end. ARGV: channel, deadline (ms), history size, the number of
 * history entries, the entries, the messages.
 */
const PUBLISH = defineScript({
  SCRIPT: "local now = redis.call('time') " +
    "if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[2]) " +
    "then return -1 end " +
    "local entries = tonumber(ARGV[4]) " +
    "if entries > 0 and redis.call('rpush', KEYS[1], unpack(ARGV, 5, 4 + entries)) > " +
    "2 * tonumber(ARGV[3]) then redis.call('ltrim', KEYS[1], -tonumber(ARGV[3]), -1) end " +
    "for i = 5 + entries, #ARGV do redis.call('publish', ARGV[1], ARGV[i]) end " +
    "return #ARGV - 4 - entries",
  NUMBER_OF_KEYS: 1,
  parseCommand(parser: CommandParser, args: string[]) {
    parser.pushKey(HISTORY_KEY);
    parser.push(...args);
  },
  transformReply: (reply: unknown) => Number(reply),
});

/**
 * Changes a registered name's account, in one step: registers it (no previous value: only if the
 * name is free), replaces it or deletes it (only if it is still exactly the previous value). Unless
 * Redis's clock is past the deadline: a change that sat in a frozen Redis, or in a network, after
 * the member was told it failed, must not happen after all. ARGV: deadline (ms), the previous
 * value or '', the new value or '' to delete. 1 if done, 0 if the value was not as expected, -1
 * if too late.
 */
const CHANGE_ACCOUNT = defineScript({
  SCRIPT: "local now = redis.call('time') " +
    "if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) " +
    "then return -1 end " +
    "local held = redis.call('get', KEYS[1]) " +
    "if ARGV[2] == '' then if held then return 0 end " +
    "elseif held ~= ARGV[2] then return 0 end " +
    "if ARGV[3] == '' then redis.call('del', KEYS[1]) else redis.call('set', KEYS[1], ARGV[3]) end " +
    "return 1",
  NUMBER_OF_KEYS: 1,
  parseCommand(parser: CommandParser, key: string, args: string[]) {
    parser.pushKey(key);
    parser.push(...args);
  },
  transformReply: (reply: unknown) => Number(reply),
});

/** Operators, bans, mutes and the topic: `chat:mod:op:KEY`, `chat:mod:ban:n:KEY` (by name) or
 * `chat:mod:ban:a:ADDRESS` (by address), `chat:mod:mute:KEY` and `chat:mod:topic`. */
export const MODERATION_PREFIX = `${PREFIX}mod:`;

/**
 * Makes a moderation change and announces it on the channel, in one step, so that the events come
 * in the order of the changes and no change goes unannounced. Unless Redis's clock is past the
 * deadline (see {@linkcode CHANGE_ACCOUNT}). ARGV: deadline (ms), the value ('' deletes), when it
 * expires (ms since the epoch, '' never), the channel, the event, and '1' if KEYS[2] must exist
 * (the account of a name made an operator). 1 if done, 0 if there was nothing to delete or no
 * such account, -1 if too late.
 */
const MODERATE = defineScript({
  SCRIPT: "local now = redis.call('time') " +
    "if tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) > tonumber(ARGV[1]) " +
    "then return -1 end " +
    "if ARGV[6] == '1' and not redis.call('get', KEYS[2]) then return 0 end " +
    "if ARGV[2] == '' then if redis.call('del', KEYS[1]) == 0 then return 0 end " +
    "elseif ARGV[3] == '' then redis.call('set', KEYS[1], ARGV[2]) " +
    "else redis.call('set', KEYS[1], ARGV[2], 'PXAT', ARGV[3]) end " +
    "redis.call('publish', ARGV[4], ARGV[5]) return 1",
  NUMBER_OF_KEYS: 2,
  parseCommand(parser: CommandParser, keys: [string, string], args: string[]) {
    parser.pushKeys(keys);
    parser.push(...args);
  },
  transformReply: (reply: unknown) => Number(reply),
});

const SCRIPTS = {
  claim: CLAIM,
  release: RELEASE,
  changeAccount: CHANGE_ACCOUNT,
  publishEvent: PUBLISH,
  moderate: MODERATE,
};

export type Redis = ReturnType<typeof connectRedis>;

/** What a link tells the hub: each event from the channel, and that it broke. */
export interface LinkHooks {
  onMessage(message: string): void;
  onBreak(reason: string): void;
}

/** Events to publish in one call: by when (the earliest deadline), and the chat lines among them
 * for the history. */
interface Batch {
  deadline: number;
  messages: string[];
  entries: string[];
}

/**
 * One pair of connections to Redis, commands and the channel's subscription, used until its first
 * fault and then dropped whole. The client's own reconnection is off: a new link starts clean, with
 * no command queued on the old one, and the hub heals on it before relaying anything.
 */
export class Link {
  readonly redis: Redis;
  readonly subscriber: Redis;
  /** Settles when the link breaks. */
  readonly broken: Promise<void>;
  /** Events that came before the hub healed on this link; undefined once it has. */
  pending: string[] | undefined = [];
  isBroken = false;
  /** The first error either connection reported: what a failed connect was refused for. */
  cause: unknown;
  #hooks: LinkHooks;
  #historySize: number;
  #isClosing = false;
  #resolveBroken: () => void;
  /** Events queued in this turn of the event loop, to go to Redis in one call at the next. */
  #batch: Batch | undefined;

  /** A link to the Redis at `url`, not open yet; `historySize` lines of chat are kept there. */
  constructor(url: string, options: LinkHooks & { historySize: number }) {
    this.#hooks = options;
    this.#historySize = options.historySize;
    this.redis = connectRedis(url);
    this.subscriber = this.redis.duplicate();
    const { promise, resolve } = Promise.withResolvers<void>();
    this.broken = promise;
    this.#resolveBroken = resolve;
    for (const client of [this.redis, this.subscriber]) {
      client.on("error", (error: unknown) => {
        this.cause ??= error;
        if (!this.#isClosing) this.break(describe(error));
      });
      // While closing, one connection ends before the other has sent its last commands.
      client.on("end", () => this.#isClosing || this.break("connection closed"));
    }
  }

  /** Connects both and subscribes, each step within the deadline. */
  async open(): Promise<void> {
    await this.within(Promise.all([this.redis.connect(), this.subscriber.connect()]));
    await this.within(this.subscriber.subscribe(CHANNEL, this.#hooks.onMessage));
    // Loaded now, so that no script waits for a second round trip when it is first used (or
    // fails it while the link closes), and a user without the permission to script fails here.
    await this.within(Promise.all(
      Object.values(SCRIPTS).map((script) => this.redis.scriptLoad(script.SCRIPT)),
    ));
  }

  /**
   * The command's answer, if Redis gives it in time; else the link breaks. The client's own
   * command timeout cannot do this job: it only covers a command until it is written to the
   * socket, and a hung Redis takes every write. Commands not awaited get the same deadline
   * through the health check: their answers come before the next ping's, or the link breaks.
   */
  within<T>(promise: Promise<T>): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        const error = new Error(`Redis did not answer within ${REDIS_TIMEOUT_MS / 1000} s`);
        this.break(error.message);
        reject(error);
      }, REDIS_TIMEOUT_MS);
      promise.then(resolve, reject).finally(() => clearTimeout(timer));
    });
  }

  /**
   * Queues an event (and its history entry, for a line of chat) to publish unless Redis's clock is
   * past `deadline`. Events wait for the next turn of the event loop and go out together, in
   * order, in one call to Redis.
   */
  publish(message: string, deadline: number, entry = ""): void {
    let batch = this.#batch;
    if (!batch || batch.messages.length >= MAX_BATCH_EVENTS) {
      this.flush();
      batch = this.#batch = { deadline: Infinity, messages: [], entries: [] };
      // The next turn, not this one's end: lines each read after an await (flood control) still
      // share a call. setImmediate is not clamped to 4 ms as nested timers are.
      setImmediate(() => this.flush());
    }
    batch.deadline = Math.min(batch.deadline, deadline);
    batch.messages.push(message);
    if (entry) batch.entries.push(entry);
  }

  /** Sends the events waiting to be published (a failed link is heard of by its own events). */
  flush(): void {
    const batch = this.#batch;
    this.#batch = undefined;
    if (batch && !this.isBroken) this.send(batch).catch(() => {});
  }

  /** Publishes a batch now; the link breaks if Redis takes it too late to relay. */
  async send({ deadline, messages, entries }: Batch): Promise<void> {
    const size = String(this.#historySize);
    const args = [CHANNEL, String(deadline), size, String(entries.length), ...entries, ...messages];
    if (await this.redis.publishEvent(args) < 0) {
      this.break("Redis took an event too late to relay it");
    }
  }

  /**
   * Takes or renews the claim `value` on `name` for `ttlMs` (see {@linkcode CLAIM}): true if it is
   * ours now. Contested, it is taken from a holder who took the name later than `since`.
   */
  claim(
    name: string,
    value: string,
    options: { server: string; since: number; ttlMs: number; isContested: boolean },
  ): Promise<boolean> {
    const { server, since, ttlMs, isContested } = options;
    return this.redis.claim(NAME_PREFIX + nameKey(name), [
      server,
      value,
      String(ttlMs),
      String(since),
      isContested ? "1" : "0",
    ]);
  }

  /** Gives up the claim on `name`, if it is still exactly `value`. */
  release(name: string, value: string): void {
    this.redis.release(NAME_PREFIX + nameKey(name), value).catch(() => {});
  }

  /** The last `size` entries of the history, skipping any that is not a line we would write. */
  async readHistory(size: number): Promise<(HistoryEntry & { origin: string; number: number })[]> {
    if (size === 0) return [];
    const entries = await this.redis.lRange(HISTORY_KEY, -size, -1);
    return entries.flatMap((entry) => parseHistoryEntry(entry) ?? []);
  }

  /** Every claim in the cluster. */
  async readClaims(): Promise<RemoteMember[]> {
    const keys: string[] = [];
    const scan = this.redis.scanIterator({ MATCH: `${NAME_PREFIX}*`, COUNT: 1000 });
    for await (const batch of scan) keys.push(...batch);
    if (keys.length === 0) return [];
    return (await this.redis.mGet(keys)).flatMap((value) => parseClaim(value) ?? []);
  }

  /** Breaks the link for good: both connections are dropped, and whatever waits on them fails. */
  break(reason: string): void {
    if (this.isBroken) return;
    this.isBroken = true;
    this.#hooks.onBreak(reason);
    for (const client of [this.redis, this.subscriber]) client.destroy();
    this.#resolveBroken();
  }

  /** Closes the link once Redis has taken what was sent, or after `ms` at most. */
  async close(ms: number): Promise<void> {
    this.#isClosing = true;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => timer = setTimeout(resolve, ms));
    const closed = Promise.all([this.redis, this.subscriber].map(async (client) => {
      if (client.isOpen) await client.close();
    })).catch(() => {});
    await Promise.race([closed, late]);
    clearTimeout(timer);
    this.break("closed");
  }
}

/** A moderation change as {@linkcode MODERATE} makes it: under `chat:mod:` + `key`. */
export interface ModerationWrite {
  key: string;
  /** The value to keep ('' deletes). */
  value: string;
  /** When the value expires by itself (ms since the epoch). */
  until?: number | undefined;
  /** The event that announces it. */
  message: string;
  /** Redis's clock past which it must not be made (ms). */
  deadline: number;
  /** The name whose account must exist (an operator must be registered). */
  registered?: string | undefined;
}

/** Makes a moderation change, announced on the channel: 1 if done, 0 if there was nothing to
 * delete or no such account, -1 if Redis's clock was past the deadline. */
export function moderate(redis: Redis, write: ModerationWrite): Promise<number> {
  const key = MODERATION_PREFIX + write.key;
  const account = write.registered === undefined ? key : ACCOUNT_PREFIX + nameKey(write.registered);
  return redis.moderate([key, account], [
    String(Math.floor(write.deadline)),
    write.value,
    write.until === undefined ? "" : String(Math.ceil(write.until)),
    CHANNEL,
    write.message,
    write.registered === undefined ? "0" : "1",
  ]);
}

/** Every moderation value in Redis, by its key under `chat:mod:`; `most` at most. */
export async function readModeration(redis: Redis, most: number): Promise<Map<string, string>> {
  const keys: string[] = [];
  for await (const batch of redis.scanIterator({ MATCH: `${MODERATION_PREFIX}*`, COUNT: 1000 })) {
    keys.push(...batch.slice(0, most - keys.length));
    if (keys.length >= most) break;
  }
  const values = new Map<string, string>();
  for (let start = 0; start < keys.length; start += 1000) {
    const batch = keys.slice(start, start + 1000);
    const read = await redis.mGet(batch);
    batch.forEach((key, index) => {
      const value = read[index];
      if (value) values.set(key.slice(MODERATION_PREFIX.length), value);
    });
  }
  return values;
}

/** Thrown by the hub's `start` when Redis refuses this server for good (a wrong password, a
 * missing permission, no such database): waiting will not help. */
export class RedisRefusedError extends Error {
  override name = "RedisRefusedError";
}

/** Redis's clock as this server estimates it: every server reads the same, and deadlines are set by it. */
export class RedisClock {
  /** Redis's clock minus `performance.now()`, measured at each tick. */
  #offset = Date.now() - performance.now();

  /** Redis's clock now, as this server estimates it (ms). */
  now(): number {
    return Math.round(performance.now() + this.#offset);
  }

  /**
   * Measures it through `link` (which is also the command connection's health check). A slow
   * answer says little about when it was read: only the first estimate may come from one.
   */
  async sample(link: Link, options: { isFirst: boolean }): Promise<void> {
    const before = performance.now();
    const [seconds, micros] = await link.within(link.redis.time());
    const after = performance.now();
    if (after - before > 100 && !options.isFirst) return;
    this.#offset = Number(seconds) * 1000 + Number(micros) / 1000 - (before + after) / 2;
  }
}

/** A Redis client with the hub's scripts; it fails at once rather than queue or reconnect. */
function connectRedis(url: string) {
  return createClient({
    url,
    scripts: SCRIPTS,
    disableOfflineQueue: true,
    socket: { reconnectStrategy: false, connectTimeout: REDIS_TIMEOUT_MS },
  });
}

/**
 * A Redis client with the chat's scripts loaded, for `chat admin`; each step within the deadline
 * (an error that says so, and the client dropped, if not).
 */
export async function connectAdmin(url: string): Promise<Redis> {
  const redis = connectRedis(url);
  redis.on("error", () => {}); // each command's own failure says it
  try {
    await withDeadline(redis.connect());
    await withDeadline(redis.scriptLoad(MODERATE.SCRIPT));
    return redis;
  } catch (error) {
    redis.destroy();
    throw error;
  }
}

/** The answer, or an error if Redis does not give it within {@linkcode REDIS_TIMEOUT_MS}. */
export function withDeadline<T>(promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Redis did not answer within ${REDIS_TIMEOUT_MS / 1000} s`)),
      REDIS_TIMEOUT_MS,
    );
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** The wait before the next attempt to reach Redis: doubling, with jitter so that servers spread. */
export function backoff(failures: number): number {
  return backoffDelay(failures, { firstMs: 100, mostMs: MAX_BACKOFF_MS, jitter: [0.5, 1] });
}

/**
 * Why Redis refused this server, if it did so for good: a wrong password or user, a missing
 * permission, no such database. Waiting does not help those, unlike a Redis that is down, busy or
 * still loading.
 */
export function refusalOf(error: unknown): string | undefined {
  if (!(error instanceof ErrorReply)) return;
  const message = error.message;
  if (/^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b/.test(message)) return;
  if (/^(WRONGPASS|NOAUTH)\b/.test(message)) return `wrong user or password (${message})`;
  if (/^NOPERM\b/.test(message)) return `the Redis user lacks a permission (${message})`;
  return message;
}

/** The URL without its password, for the log. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.href;
  } catch {
    return "the Redis URL";
  }
}

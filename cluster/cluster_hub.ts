/**
 * The room across several server processes: a {@linkcode Hub} on Redis. Each server delivers to its
 * own members at once and publishes the event on one Redis channel; every other server relays it to
 * its members. Names are claims in Redis (`SET` with a lifetime each server keeps renewing), so they
 * are unique across the cluster and come free within seconds of a server's death. The history is a
 * bounded Redis list that each server reads once; from then on it shows newcomers its own record of
 * what it relayed, so that a newcomer's history ends exactly where its live chat begins.
 *
 * Each server keeps its own view of who is on the others, from their events. When Redis cannot be
 * reached, or hangs, or this server itself was stopped, the room is partitioned: each server keeps
 * its members chatting as a room of their own and tells them so, and nothing said meanwhile is
 * queued for later, so nothing arrives twice or late. On healing, each server claims its members'
 * names again and sends its whole membership; the others tell their members what changed.
 */
import { setImmediate } from "node:timers";
import { type CommandParser, createClient, defineScript, ErrorReply } from "@redis/client";
import {
  type CloseReason,
  DEFAULT_LOG_BYTES,
  type Hub,
  type LeaveReason,
  type Member,
  sortNames,
} from "../server/hub.ts";
import { RoomLog } from "../server/room_log.ts";
import { type Account, parseAccount } from "../server/passwords.ts";
import { type Accounts, StoreError } from "../server/store.ts";
import { pause } from "../server/conn.ts";
import {
  backoffDelay,
  cleanText,
  DEFAULT_MAX_LINE_BYTES,
  describe,
  encodeLine,
  formatAction,
  formatError,
  formatHistory,
  formatJoin,
  formatLeave,
  formatPrivateFrom,
  formatPrivateTo,
  formatQuit,
  formatRename,
  formatRoomList,
  formatSystemLine,
  formatUserLine,
  formatWelcome,
  formatWho,
  isKeptLine,
  nameKey,
  nameTaken,
  noSuchUser,
  parseName,
  ProtocolError,
  quote,
  sameName,
} from "../protocol.ts";

/** How long a name claim lives without renewal: a dead server's names are free after this. */
export const DEFAULT_CLAIM_TTL_MS = 10_000;
/**
 * How long Redis may take to answer, and how late an event may be relayed. A command unanswered
 * this long breaks the link to Redis (a hang is a partition). An event that reaches Redis later
 * than this after it was said is dropped there, and one that reaches another server later than
 * twice this is dropped there: no event is relayed later than that.
 */
export const REDIS_TIMEOUT_MS = 2000;
/** The longest wait between two attempts to reach Redis. */
const MAX_BACKOFF_MS = 5000;
/** The longest wait between two health checks of the link (ping, clock, beat). */
const MAX_TICK_MS = 1000;
/** The most events published in one call to Redis (Lua takes a few thousand arguments at most). */
const MAX_BATCH_EVENTS = 1000;
/** Events that arrive while a link heals wait for it; so many mean the heal is stuck. */
const MAX_PENDING_EVENTS = 10_000;
/** The most members one server's roster may list (a server holds 10,000 connections by default). */
const MAX_ROSTER_MEMBERS = 100_000;
/** The Redis keys and channel, all under one prefix so that a Redis can be shared. */
const PREFIX = "chat:";
const CHANNEL = `${PREFIX}room`;
const HISTORY_KEY = `${PREFIX}history`;
const NAME_PREFIX = `${PREFIX}name:`;
/** Registered names: `chat:account:KEY` holds the account as JSON (the scrypt hash, never a
 * password). */
const ACCOUNT_PREFIX = `${PREFIX}account:`;
/**
 * Marks the data this cluster keeps in Redis: set once by the first server to find it missing. A
 * server that finds another mark on reconnecting knows Redis lost everything (restarted without
 * saving, flushed), including the registered names.
 */
const EPOCH_KEY = `${PREFIX}epoch`;
/** The longest claim lifetime a beat may announce (an hour), so a beat cannot silence the check. */
const MAX_CLAIM_TTL_MS = 3_600_000;
/** How long shutdown waits for Redis to take the goodbyes before it drops the connection. */
const CLOSE_TIMEOUT_MS = 2000;
/** Server ids are UUIDs, so that a forged one cannot be anything else. */
const SERVER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** A member's id on its server, which stays the same through renames. */
const MEMBER_ID = /^[0-9a-z]{1,12}$/;

/** What the members of a partitioned server are told, and told again when it heals. */
export const PARTITION_NOTICE = formatSystemLine(
  "The room is partitioned: only people on this server hear you until it is whole again",
);
export const HEAL_NOTICE = formatSystemLine("The room is whole again");
/** Why the room is told someone left whom a partition hid: their own reason was not heard here. */
const LEFT_IN_PARTITION: CloseReason = "during a partition";
const NAME_TAKEN: CloseReason = "name taken during a partition";
const SERVER_LOST: CloseReason = "server lost";
const SERVER_SHUT_DOWN: CloseReason = "server shut down";

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

const SCRIPTS = {
  claim: CLAIM,
  release: RELEASE,
  changeAccount: CHANGE_ACCOUNT,
  publishEvent: PUBLISH,
};

/** Options for {@linkcode ClusterHub}. */
export interface ClusterOptions {
  /** `redis://[[user]:password@]host[:port][/db]` */
  url: string;
  /** Lines of chat kept for newcomers, in Redis (0 keeps none). */
  historySize: number;
  /** Lifetime of a name claim; renewed at a third of it. */
  claimTtlMs?: number;
  /** Longest text accepted from another server. */
  maxLineBytes?: number;
  /** Bytes of the room log that carries every line to this server's members. */
  logSize?: number;
  /** One line per event worth a log: lost and regained Redis, bad messages. */
  log?: (message: string) => void;
}

/** Thrown by {@linkcode ClusterHub.start} when Redis refuses this server for good (a wrong password,
 * a missing permission, no such database): waiting will not help. */
export class RedisRefusedError extends Error {
  override name = "RedisRefusedError";
}

/** A member in a roster: its id, name, and since when it holds the name (Redis clock, ms). */
type RosterEntry = [id: string, name: string, since: number];

/** An event as published on the channel: short keys, since every line of chat is one. */
interface Event {
  /** The origin server's id. */
  o: string;
  /** What happened; `roster` lists every member of a server, `ack` confirms a private message. */
  k:
    | "say"
    | "act"
    | "join"
    | "leave"
    | "rename"
    | "msg"
    | "ack"
    | "beat"
    | "roster"
    | "account";
  /** The member's name (the old one for a rename); empty in a beat, a roster and an ack. */
  n: string;
  /** The deadline, on Redis's clock in ms, past which the event is dropped rather than relayed. */
  d: number;
  /** The member's id on its server: in a join, a leave and a rename. */
  m?: string;
  /** Since when the member has held its name (Redis clock, ms): in a join and a rename. */
  c?: number;
  /** Text: the line, the quit reason, the leave problem, the private message; in a beat, the
   * claims' lifetime in ms; in an ack, "gone" if the recipient was not there. */
  t?: string;
  /** The new name of a rename, or the recipient of a private message. */
  to?: string;
  /** The server of a private message's recipient, or of an acknowledged message's sender. */
  s?: string;
  /** The number of a line from its server (to tell it from the same line in the history), or of
   * a private message (for its ack). */
  i?: number;
  /** Whether a leave was a `/quit` (its text is then the member's own reason). */
  q?: boolean;
  /** A roster's members. */
  l?: RosterEntry[];
  /** A roster that asks every other server for theirs (it healed and may have missed changes). */
  r?: boolean;
}

type Redis = ReturnType<typeof connectRedis>;

/** A member of another server, as this server knows it. */
interface RemoteMember {
  server: string;
  id: string;
  name: string;
  since: number;
}

/** What this server knows of another: when it last spoke, its claims' lifetime, its members. */
interface OtherServer {
  heardAt: number;
  ttl: number;
  members: Map<string, RemoteMember>;
}

/** What the hub keeps of a member here: its id for the other servers, and since when it holds its
 * name (Redis clock, ms), which decides who keeps a name two people took in a partition. */
interface LocalMember {
  id: string;
  since: number;
}

/** Events to publish in one call: on which link, by when (the earliest deadline), and the chat
 * lines among them for the history. */
interface Batch {
  link: Link;
  deadline: number;
  messages: string[];
  entries: string[];
}

interface HistoryEntry {
  time: Date;
  line: string;
}

/** One server's share of the cluster's room. */
export class ClusterHub implements Hub {
  /** This server's id, random per process, carried by every event it publishes. */
  readonly id = crypto.randomUUID();
  /** How every event this server publishes begins. */
  #ownPrefix = `{"o":"${this.id}",`;
  #members = new Map<string, Member>();
  #local = new Map<Member, LocalMember>();
  /** Name keys of members whose join is under way, so two cannot take one name meanwhile. */
  #joining = new Set<string>();
  /** The other servers and their members, and those members by name key. */
  #others = new Map<string, OtherServer>();
  #log: RoomLog;
  #remote = new Map<string, RemoteMember>();
  /** The lines this server relayed lately: what a newcomer here is shown, exactly up to its join. */
  #history: HistoryEntry[] = [];
  #options: Required<ClusterOptions>;
  /** The current link to Redis, healthy or not; the room is whole while it is healed. */
  #link: Link | undefined;
  #isWhole = false;
  #hasBeenWhole = false;
  /** Whether the members were told the room is partitioned, and so must hear that it healed. */
  #isPartitionTold = false;
  /** Whether the room's history and members were read from Redis (once, at the first link). */
  #isSeeded = false;
  #memberCount = 0;
  #lineCount = 0;
  #messageCount = 0;
  /** Events published in this turn of the event loop, to go to Redis in one call at the next. */
  #batch: Batch | undefined;
  /** Private messages sent to other servers, waiting for their confirmation. */
  #awaiting = new Map<number, (isDelivered: boolean) => void>();
  /** Redis's clock minus `performance.now()`, measured at each tick. */
  #clockOffset = Date.now() - performance.now();
  #tickMs: number;
  /** How long between two ticks means this server was stopped, not merely busy. */
  #awayMs: number;
  #tickAt = performance.now();
  #renewedAt = 0;
  /** When the last ping that the subscription answered was sent. */
  #confirmedAt = 0;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #running: Promise<void> | undefined;
  #stopWaiting = new AbortController();
  #startup = Promise.withResolvers<void>();
  #isStarted = false;
  /** The last reason Redis gave for refusing this server, logged once. */
  #refusal: string | undefined;
  #closing: Promise<void> | undefined;
  /** The registered names as Redis holds them: read at every heal, kept current by events, and
   * what answers while the room is partitioned. */
  #accounts = new Map<string, Account>();
  #areAccountsRead = false;
  /** Redis's mark of its data (see {@linkcode EPOCH_KEY}) as this server first found it. */
  #epoch: string | undefined;

  /** The registered names, in Redis: changed only while the room is whole. */
  readonly accounts: Accounts = {
    get: (name) => this.#accounts.get(nameKey(name)),
    save: (account, previous) => this.#saveAccount(account, previous),
    remove: (account) => this.#removeAccount(account),
  };

  constructor(options: ClusterOptions) {
    this.#options = {
      claimTtlMs: DEFAULT_CLAIM_TTL_MS,
      maxLineBytes: DEFAULT_MAX_LINE_BYTES,
      logSize: DEFAULT_LOG_BYTES,
      log: () => {},
      ...options,
    };
    this.#log = new RoomLog(this.#options.logSize);
    this.#tickMs = Math.min(MAX_TICK_MS, this.#options.claimTtlMs / 3);
    // The others count a server gone after a claim's lifetime without a word from it, and its
    // claims may lapse a little sooner (which its members' place in the others' rooms covers until
    // it claims them again). Half the lifetime is well inside that, and two ticks is well above a
    // busy machine's hiccup.
    this.#awayMs = Math.max(this.#options.claimTtlMs / 2, 2 * this.#tickMs);
    this.#startup.promise.catch(() => {}); // read by start(), if it still waits
  }

  /**
   * Connects to Redis and heals into the room. Resolves once in the room, or after `timeoutMs`
   * while it goes on trying in the background ({@linkcode isWhole} says which). Rejects with a
   * {@linkcode RedisRefusedError} if Redis refuses this server for good meanwhile.
   */
  async start(timeoutMs = 3000): Promise<void> {
    this.#ticker = setInterval(() => this.#tick(), this.#tickMs);
    this.#running = this.#run();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs));
    try {
      await Promise.race([this.#startup.promise, timeout]);
    } finally {
      clearTimeout(timer);
      this.#isStarted = true;
    }
  }

  /** Whether Redis is reachable and healed into, so that this server's members are in the whole room. */
  get isWhole(): boolean {
    return this.#isWhole;
  }

  async join(member: Member, notices: readonly string[] = []): Promise<void> {
    const name = member.name;
    const key = nameKey(name);
    if (this.#closing) throw new ProtocolError("Server is shutting down");
    if (this.#isTaken(key)) throw nameTaken(name);
    this.#isAwake();
    this.#joining.add(key);
    try {
      const info = { id: (++this.#memberCount).toString(36), since: this.#redisNow() };
      // Redis decides while it can be reached; in a partition the name is claimed on healing.
      if (!await this.#tryClaim(name, info)) throw nameTaken(name);
      if (this.#closing || this.#remote.has(key)) {
        this.#release(name, info);
        throw this.#closing ? new ProtocolError("Server is shutting down") : nameTaken(name);
      }
      // The newcomer is a member from here on, all at once: it has seen every line this server
      // relayed until now in the history, and hears every later one live.
      this.#members.set(key, member);
      this.#local.set(member, info);
      const others = this.#names().filter((other) => nameKey(other) !== key);
      const lines = [
        ...formatRoomList(others),
        ...this.#history.map((entry) => formatHistory(entry.time, entry.line)),
        ...notices,
        formatWelcome(name, others.length + 1),
        ...(this.#isWhole ? [] : [PARTITION_NOTICE]),
      ];
      if (!this.#isWhole) this.#isPartitionTold = true;
      member.welcome([encodeLine(lines.join("\n"))]);
      this.#deliver(member, formatJoin(name), true);
      this.#log.add(member); // it reads the room from here on, after its welcome
      this.#publish({ k: "join", n: name, m: info.id, c: info.since });
    } finally {
      this.#joining.delete(key);
    }
  }

  leave(member: Member, reason: LeaveReason = {}): void {
    const key = nameKey(member.name);
    const info = this.#local.get(member);
    if (this.#members.get(key) !== member || !info) return;
    this.#isAwake();
    this.#members.delete(key);
    this.#log.remove(member);
    this.#local.delete(member);
    this.#release(member.name, info);
    const text = reason.quit ?? reason.problem;
    const line = reason.quit
      ? formatQuit(member.name, reason.quit)
      : formatLeave(member.name, reason.problem);
    this.#deliver(member, line, true);
    this.#publish({
      k: "leave",
      n: member.name,
      m: info.id,
      ...(text ? { t: text } : {}),
      ...(reason.quit ? { q: true } : {}),
    });
  }

  say(member: Member, text: string): void {
    this.#relay(member, formatUserLine(member.name, text), { k: "say", n: member.name, t: text });
  }

  act(member: Member, text: string): void {
    this.#relay(member, formatAction(member.name, text), { k: "act", n: member.name, t: text });
  }

  async rename(member: Member, newName: string): Promise<void> {
    const oldName = member.name;
    if (newName === oldName) throw sameName(newName);
    const oldKey = nameKey(oldName);
    const newKey = nameKey(newName);
    const isNewKey = newKey !== oldKey;
    const info = this.#local.get(member);
    if (!info) return;
    if (isNewKey && this.#isTaken(newKey)) throw nameTaken(newName);
    this.#isAwake();
    // A change of case keeps the name, and so the time it was taken.
    const renamed = { id: info.id, since: isNewKey ? this.#redisNow() : info.since };
    if (isNewKey) this.#joining.add(newKey);
    try {
      if (!await this.#tryClaim(newName, renamed)) throw nameTaken(newName);
    } finally {
      if (isNewKey) this.#joining.delete(newKey);
    }
    const isGone = this.#members.get(oldKey) !== member || member.name !== oldName;
    if (isGone || (isNewKey && this.#remote.has(newKey))) {
      if (isNewKey) this.#release(newName, renamed);
      if (isGone) return; // it left, or was renamed, while we waited
      throw nameTaken(newName);
    }
    if (isNewKey) this.#release(oldName, info);
    info.since = renamed.since;
    this.#members.delete(oldKey);
    this.#members.set(newKey, member);
    member.name = newName;
    this.#deliver(undefined, formatRename(oldName, newName));
    this.#publish({ k: "rename", n: oldName, to: newName, m: info.id, c: info.since });
  }

  async whisper(member: Member, to: string, text: string): Promise<void> {
    this.#isAwake();
    const local = this.#members.get(nameKey(to));
    if (local) {
      local.send(encodeLine(formatPrivateFrom(member.name, text)));
      return member.send(encodeLine(formatPrivateTo(local.name, text)));
    }
    const remote = this.#remote.get(nameKey(to));
    if (!remote) throw noSuchUser(to);
    if (!this.#isWhole) {
      throw new ProtocolError(
        `Cannot reach ${quote(remote.name)} on another server: the room is partitioned`,
      );
    }
    const answer = await this.#sendPrivate(member.name, remote, text);
    if (answer === undefined) {
      throw new ProtocolError(
        `The server of ${quote(remote.name)} did not confirm the message within ` +
          `${REDIS_TIMEOUT_MS / 1000} seconds; it may not have arrived`,
      );
    }
    if (!answer) throw noSuchUser(to);
    member.send(encodeLine(formatPrivateTo(remote.name, text)));
  }

  who(member: Member): void {
    this.#isAwake();
    const lines = formatWho(this.#names());
    if (!this.#isWhole) {
      lines.push(formatSystemLine("The room is partitioned: only people on this server hear you"));
    }
    member.send(encodeLine(lines.join("\n")));
  }

  /**
   * Tells the other servers that every member here leaves and gives up their claims (the members
   * themselves hear the server's own shutdown notice), then closes the link to Redis, dropping it
   * if Redis does not take the goodbyes in time. Safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#ticker);
      this.#stopWaiting.abort();
      for (const member of this.#members.values()) {
        const info = this.#local.get(member)!;
        this.#release(member.name, info);
        this.#publish({ k: "leave", n: member.name, m: info.id, t: SERVER_SHUT_DOWN });
      }
      this.#members.clear();
      this.#local.clear();
      const link = this.#link;
      this.#isWhole = false;
      this.#flush(); // the goodbyes go before the link starts closing
      await link?.close(CLOSE_TIMEOUT_MS);
      await this.#running;
    })();
    return this.#closing;
  }

  /**
   * Hands a line to every local member but `from`: one append to the room log. A notice (a join or
   * a leave) waits a little to go out with the others, as in the LocalHub.
   */
  #deliver(from: Member | undefined, line: string, isNotice = false): void {
    if (!this.#closing) this.#log.append(encodeLine(line), from, isNotice);
  }

  /** A line of chat from a member here: delivered here, kept, and published with its number. */
  #relay(from: Member, line: string, event: Pick<Event, "k" | "n" | "t">): void {
    this.#isAwake(); // a server that was stopped says so before anything it read meanwhile
    this.#remember(line);
    this.#deliver(from, line);
    const i = ++this.#lineCount;
    const entry = this.#options.historySize > 0
      ? JSON.stringify({ at: Date.now(), line, o: this.id, i })
      : "";
    this.#publish({ ...event, i }, entry);
  }

  #remember(line: string, time = new Date()): void {
    const size = this.#options.historySize;
    if (size === 0) return;
    this.#history.push({ time, line });
    if (this.#history.length > size) this.#history.shift();
  }

  /** Every name in the room as this server knows it, sorted: across servers there is no one join
   * order to keep. */
  #names(): string[] {
    const names = [...this.#members.values()].map((member) => member.name);
    for (const remote of this.#remote.values()) names.push(remote.name);
    return sortNames(names);
  }

  #isTaken(key: string): boolean {
    return this.#members.has(key) || this.#joining.has(key) || this.#remote.has(key);
  }

  /** Redis's clock now, as this server estimates it (ms). */
  #redisNow(): number {
    return Math.round(performance.now() + this.#clockOffset);
  }

  /**
   * Publishes an event to the other servers, to be relayed within `budget` ms or not at all; while
   * partitioned it goes nowhere, on purpose. Events wait for the next turn of the event loop and go
   * out together, in order, in one call to Redis.
   */
  #publish(event: Omit<Event, "o" | "d">, entry = "", budget = REDIS_TIMEOUT_MS): void {
    const link = this.#link;
    if (!link || !this.#isWhole || !this.#isAwake()) return;
    let batch = this.#batch;
    if (!batch || batch.link !== link || batch.messages.length >= MAX_BATCH_EVENTS) {
      this.#flush();
      batch = this.#batch = { link, deadline: Infinity, messages: [], entries: [] };
      // The next turn, not this one's end: lines each read after an await (flood control) still
      // share a call. setImmediate is not clamped to 4 ms as nested timers are.
      setImmediate(() => this.#flush());
    }
    this.#add(batch, event, entry, budget);
  }

  #add(batch: Batch, event: Omit<Event, "o" | "d">, entry = "", budget = REDIS_TIMEOUT_MS): void {
    const d = this.#redisNow() + budget;
    batch.deadline = Math.min(batch.deadline, d);
    // Our own events come back on the channel: their first bytes tell them apart (see #receive).
    batch.messages.push(JSON.stringify({ o: this.id, d, ...event }));
    if (entry) batch.entries.push(entry);
  }

  /** Sends the events waiting to be published (a failed link is heard of by its own events). */
  #flush(): void {
    const batch = this.#batch;
    this.#batch = undefined;
    if (batch && !batch.link.isBroken) this.#send(batch).catch(() => {});
  }

  /** Publishes a batch on its link, which breaks if Redis takes it too late to relay. */
  async #send({ link, deadline, messages, entries }: Batch): Promise<void> {
    const size = String(this.#options.historySize);
    const args = [CHANNEL, String(deadline), size, String(entries.length), ...entries, ...messages];
    if (await link.redis.publishEvent(args) < 0) {
      link.break("Redis took an event too late to relay it");
    }
  }

  /** Claims a name for a member joining or renaming here, when Redis can be reached: false if
   * someone holds it. In a partition, or if Redis fails to answer, the name is claimed on healing. */
  async #tryClaim(name: string, info: LocalMember): Promise<boolean> {
    const link = this.#link;
    if (!link || !this.#isWhole) return true;
    return await link.within(this.#claim(link, name, info, false)).catch(() => true);
  }

  #claim(link: Link, name: string, info: LocalMember, isContested: boolean): Promise<boolean> {
    return link.redis.claim(NAME_PREFIX + nameKey(name), [
      this.id,
      `${this.id} ${info.id} ${info.since} ${name}`,
      String(this.#options.claimTtlMs),
      String(info.since),
      isContested ? "1" : "0",
    ]);
  }

  /** Gives up a claim, if it is still this one; in a partition it expires by itself. */
  #release(name: string, info: LocalMember): void {
    const link = this.#link;
    if (!link || !this.#isWhole) return;
    link.redis.release(NAME_PREFIX + nameKey(name), `${this.id} ${info.id} ${info.since} ${name}`)
      .catch(() => {});
  }

  /** Sends a private message to another server's member: true once that server delivered it,
   * false if the member was gone, undefined if no answer came in time. */
  async #sendPrivate(from: string, to: RemoteMember, text: string): Promise<boolean | undefined> {
    const i = ++this.#messageCount;
    const { promise, resolve } = Promise.withResolvers<boolean | undefined>();
    this.#awaiting.set(i, resolve);
    const timer = setTimeout(() => resolve(undefined), REDIS_TIMEOUT_MS);
    // Half the time to get there, half for the answer: a message that arrives later is dropped
    // unread, so that "did not confirm" means it was not delivered, unless the answer was lost.
    this.#publish(
      { k: "msg", n: from, to: to.name, s: to.server, t: text, i },
      "",
      REDIS_TIMEOUT_MS / 2,
    );
    try {
      return await promise;
    } finally {
      clearTimeout(timer);
      this.#awaiting.delete(i);
    }
  }

  /**
   * Links to Redis, heals, and stays until the link breaks; then again, with backoff, until the hub
   * closes. Each link is used until its first fault and then dropped whole.
   */
  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#closing) {
      const link = new Link(this.#options.url, {
        onMessage: (message) => this.#onMessage(link, message),
        onBreak: (reason) => this.#onBreak(link, reason),
      });
      this.#link = link;
      try {
        await link.open();
        await this.#heal(link);
        failures = 0;
        await link.broken;
      } catch (error) {
        link.break(describe(error));
        if (this.#isRefused(link.cause ?? error)) failures = Infinity;
      }
      if (!this.#closing) await pause(backoff(failures++), this.#stopWaiting.signal);
    }
  }

  /** Whether Redis refused this server for good (reported once; fatal at startup). */
  #isRefused(error: unknown): boolean {
    const refusal = refusalOf(error);
    if (!refusal) return false;
    const message = `Redis at ${redact(this.#options.url)} refused this server: ${refusal}`;
    if (!this.#isStarted) this.#startup.reject(new RedisRefusedError(message));
    else if (refusal !== this.#refusal) {
      this.#options.log(`redis: ${message}; serving this server's members alone and retrying`);
    }
    this.#refusal = refusal;
    return true;
  }

  /**
   * A new link is up: reads the room from Redis the first time, makes sure every member here holds
   * its name (the one who held a name longer keeps it), then sends this server's roster, asking the
   * others for theirs, and only then relays: the events that came meanwhile first.
   */
  async #heal(link: Link): Promise<void> {
    await this.#sampleClock(link);
    if (!this.#isSeeded) await this.#seed(link);
    await this.#settle(link);
    const isDataLost = await this.#checkEpoch(link);
    if (isDataLost) await this.#restoreAccounts(link);
    await this.#readAccounts(link);
    // Publishing is tried once before it counts: a Redis user without the permission fails here.
    const beat: Batch = { link, deadline: Infinity, messages: [], entries: [] };
    this.#add(beat, { k: "beat", n: "", t: String(this.#options.claimTtlMs) });
    await link.within(this.#send(beat));
    if (link.isBroken || this.#closing) throw new Error("Lost Redis while healing");
    const now = performance.now();
    this.#tickAt = this.#renewedAt = this.#confirmedAt = now;
    for (const other of this.#others.values()) other.heardAt = now;
    this.#isWhole = true;
    this.#options.log(
      `redis: connected to ${redact(this.#options.url)}${this.#hasBeenWhole ? " again" : ""}`,
    );
    this.#hasBeenWhole = true;
    this.#refusal = undefined;
    this.#publish({ k: "roster", n: "", l: this.#roster(), r: true });
    if (this.#isPartitionTold) this.#deliver(undefined, HEAL_NOTICE);
    this.#isPartitionTold = false;
    const pending = link.pending ?? [];
    link.pending = undefined;
    for (const message of pending) this.#receive(message);
    this.#startup.resolve();
  }

  /**
   * The first time Redis is reached: the room's history (with what was said here before, in time
   * order) and who is on the other servers, from their claims. The channel was subscribed first,
   * and its events wait meanwhile; a line both in the history and among them is kept once.
   */
  async #seed(link: Link): Promise<void> {
    const [claims, entries] = await link.within(
      Promise.all([this.#allClaims(link), this.#readHistory(link)]),
    );
    const newest = new Map<string, number>();
    for (const { origin, number } of entries) {
      newest.set(origin, Math.max(number, newest.get(origin) ?? 0));
    }
    link.pending = link.pending?.filter((message) => !isInHistory(message, newest));
    const merged = [...entries, ...this.#history].sort((a, b) =>
      a.time.getTime() - b.time.getTime()
    );
    this.#history = merged.slice(-this.#options.historySize).map(({ time, line }) => ({
      time,
      line,
    }));
    for (const claim of claims) {
      if (claim.server !== this.id) this.#admit(this.#heardFrom(claim.server), claim);
    }
    this.#isSeeded = true;
  }

  /** The history in Redis, skipping any entry that is not a line we would write. */
  async #readHistory(link: Link): Promise<(HistoryEntry & { origin: string; number: number })[]> {
    const size = this.#options.historySize;
    if (size === 0) return [];
    const entries = await link.redis.lRange(HISTORY_KEY, -size, -1);
    return entries.flatMap((entry) => parseHistoryEntry(entry) ?? []);
  }

  /** Every claim in the cluster. */
  async #allClaims(link: Link): Promise<RemoteMember[]> {
    const keys: string[] = [];
    const scan = link.redis.scanIterator({ MATCH: `${NAME_PREFIX}*`, COUNT: 1000 });
    for await (const batch of scan) keys.push(...batch);
    if (keys.length === 0) return [];
    return (await link.redis.mGet(keys)).flatMap((value) => parseClaim(value) ?? []);
  }

  /**
   * Makes sure each member here holds the claim on its name, renewing it; a member whose name was
   * held longer by someone on another server (they took it on two sides of a partition) cannot
   * keep it: it is told, and disconnected.
   */
  async #settle(link: Link): Promise<void> {
    const members = [...this.#members.values()].map((member) => ({
      member,
      name: member.name,
      info: { ...this.#local.get(member)! },
    }));
    const held = await link.within(
      Promise.all(members.map(({ name, info }) => this.#claim(link, name, info, true))),
    );
    members.forEach(({ member, name, info }, index) => {
      const isCurrent = this.#members.get(nameKey(name)) === member && member.name === name;
      if (!isCurrent && held[index]) this.#release(name, info); // it left or was renamed meanwhile
      else if (isCurrent && !held[index]) this.#evict(member);
    });
  }

  /** This server's members, as its roster lists them. */
  #roster(): RosterEntry[] {
    return [...this.#members.values()].map((member) => {
      const { id, since } = this.#local.get(member)!;
      return [id, member.name, since];
    });
  }

  /**
   * Every tick: notices if this server was away, checks that both connections answer in time
   * (they break otherwise), measures Redis's clock, renews the claims at a third of their
   * lifetime, says it is alive, and tells the members here who left with a server gone silent.
   */
  #tick(): void {
    const now = performance.now();
    if (!this.#isAwake(now)) return;
    this.#tickAt = now;
    const link = this.#link;
    if (!link || !this.#isWhole) return;
    const sentAt = now;
    link.within(link.subscriber.ping()).then(() => {
      this.#confirmedAt = Math.max(this.#confirmedAt, sentAt);
    }, () => {});
    this.#sampleClock(link).catch(() => {});
    if (now - this.#renewedAt >= this.#options.claimTtlMs / 3) {
      this.#renewedAt = now;
      this.#settle(link).catch(() => {});
    }
    this.#publish({ k: "beat", n: "", t: String(this.#options.claimTtlMs) });
    // Silent by what the channel certainly delivered: everything published before a ping that our
    // subscription answered has reached us, so a hang of our own cannot pass for their silence.
    for (const [origin, other] of this.#others) {
      if (this.#confirmedAt - other.heardAt <= other.ttl) continue;
      this.#others.delete(origin);
      for (const member of other.members.values()) this.#forget(member, SERVER_LOST);
    }
  }

  /**
   * Whether this server ran on time. One that was stopped or starved (SIGSTOP, a paused machine)
   * for longer than `#awayMs` may have been counted gone by the others, and what waits in its
   * sockets is late: it drops the link, and heals, before relaying anything.
   */
  #isAwake(now = performance.now()): boolean {
    const away = now - this.#tickAt;
    if (!this.#isWhole || away <= this.#awayMs) return true;
    this.#link?.break(`this server was stopped for ${(away / 1000).toFixed(1)} s`);
    return false;
  }

  /** Measures Redis's clock, which every server here reads the same: deadlines are set by it.
   * This is also the command connection's health check. */
  async #sampleClock(link: Link): Promise<void> {
    const before = performance.now();
    const [seconds, micros] = await link.within(link.redis.time());
    const after = performance.now();
    // A slow answer says little about when it was read; keep the estimate of a quick one.
    if (after - before > 100 && this.#hasBeenWhole) return;
    this.#clockOffset = Number(seconds) * 1000 + Number(micros) / 1000 - (before + after) / 2;
  }

  /** The link broke: this server's members are alone until it heals, and are told so. */
  #onBreak(link: Link, reason: string): void {
    if (link !== this.#link || !this.#isWhole) return;
    this.#isWhole = false;
    if (this.#closing) return;
    this.#options.log(
      `redis: lost ${
        redact(this.#options.url)
      } (${reason}); serving this server's members alone and retrying`,
    );
    this.#deliver(undefined, PARTITION_NOTICE);
    this.#isPartitionTold = true;
  }

  /** An event from the channel: relayed now, or kept until the link has healed. */
  #onMessage(link: Link, message: string): void {
    if (link !== this.#link || link.isBroken) return;
    if (!link.pending) return this.#receive(message);
    if (link.pending.length >= MAX_PENDING_EVENTS) link.break("too many events while healing");
    else link.pending.push(message);
  }

  /**
   * Reads Redis's mark of its data, setting it if there is none: true if it is not the one this
   * server found before, so Redis lost what it held (said in one log line).
   */
  async #checkEpoch(link: Link): Promise<boolean> {
    const epoch = await link.within((async () => {
      await link.redis.set(EPOCH_KEY, crypto.randomUUID(), { NX: true });
      return await link.redis.get(EPOCH_KEY);
    })());
    const wasLost = this.#epoch !== undefined && epoch !== this.#epoch;
    this.#epoch = epoch ?? undefined;
    if (wasLost) {
      this.#options.log(
        `redis: error: ${redact(this.#options.url)} lost the chat's data (restarted without ` +
          "saving, or flushed): its history is gone, and the " +
          `${this.#accounts.size} registered name(s) this server knew are written back from its ` +
          "own copy; keep Redis' data with appendonly yes or save (see the README)",
      );
    }
    return wasLost;
  }

  /**
   * Writes back every registered name this server knew to a Redis that lost them, unless it holds
   * that name again already: without them, anyone could join as any of them without a password.
   */
  async #restoreAccounts(link: Link): Promise<void> {
    await link.within(Promise.all(
      [...this.#accounts.values()].map((account) =>
        link.redis.set(ACCOUNT_PREFIX + nameKey(account.name), accountJson(account), { NX: true })
      ),
    ));
  }

  /**
   * Reads every registered name from Redis. The first time, a member here under a registered name
   * joined before this server could know it was (it started while Redis was out of reach), so
   * without its password: it is sent away, to rejoin with it.
   */
  async #readAccounts(link: Link): Promise<void> {
    const keys: string[] = [];
    const scan = link.redis.scanIterator({ MATCH: `${ACCOUNT_PREFIX}*`, COUNT: 1000 });
    await link.within((async () => {
      for await (const batch of scan) keys.push(...batch);
    })());
    const values = keys.length > 0 ? await link.within(link.redis.mGet(keys)) : [];
    this.#accounts.clear();
    for (const value of values) {
      const account = parseStoredAccount(value);
      if (account) this.#accounts.set(nameKey(account.name), account);
    }
    if (this.#areAccountsRead) return;
    this.#areAccountsRead = true;
    for (const member of [...this.#members.values()]) {
      if (this.#accounts.has(nameKey(member.name))) {
        this.#evict(member, {
          error: `${member.name} is registered: rejoin, and send its password when asked`,
          problem: "registered name",
        });
      }
    }
  }

  /** Reads one registered name again, after another server changed it. */
  #refreshAccount(name: string): void {
    const link = this.#link;
    if (!link || !this.#isWhole) return;
    link.within(link.redis.get(ACCOUNT_PREFIX + nameKey(name))).then((value) => {
      const account = parseStoredAccount(value);
      if (account) this.#accounts.set(nameKey(name), account);
      else this.#accounts.delete(nameKey(name));
    }, () => {}); // the link broke: the next heal reads every name again
  }

  async #saveAccount(account: Account, previous?: Account): Promise<void> {
    const done = await this.#changeAccount(account.name, previous, accountJson(account));
    if (done === 0) {
      throw new StoreError(
        previous ? "The password changed meanwhile: try again" : "That name is registered already",
      );
    }
    this.#accounts.set(nameKey(account.name), account);
    this.#publish({ k: "account", n: account.name });
  }

  async #removeAccount(account: Account): Promise<void> {
    await this.#changeAccount(account.name, account, "");
    this.#accounts.delete(nameKey(account.name));
    this.#publish({ k: "account", n: account.name });
  }

  /**
   * Changes an account in Redis while the room is whole (see {@linkcode CHANGE_ACCOUNT}): 1 if
   * done, 0 if its value was not `previous`; a StoreError if it could not be done. Redis must run
   * it within half the time this server waits for the answer, by Redis's own clock, so that a
   * change reported as failed does not happen later: what the member is told is what happened.
   */
  async #changeAccount(name: string, previous: Account | undefined, value: string) {
    const link = this.#link;
    if (!link || !this.#isWhole || this.#closing) {
      throw new StoreError(
        "The room is partitioned: registered names cannot change until it is whole again",
      );
    }
    const deadline = String(Math.floor(this.#redisNow() + REDIS_TIMEOUT_MS / 2));
    const key = ACCOUNT_PREFIX + nameKey(name);
    const args = [deadline, previous ? accountJson(previous) : "", value];
    let done: number;
    try {
      done = await link.within(link.redis.changeAccount(key, args));
    } catch (error) {
      throw new StoreError(`Redis did not take it (${describe(error)}): try again later`);
    }
    if (done < 0) {
      throw new StoreError("Redis took too long: nothing was changed; try again later");
    }
    return done;
  }

  /** Disconnects a member whose name someone elsewhere has held longer (or that is registered). */
  #evict(
    member: Member,
    why: { error: string; problem: CloseReason } = {
      error: `Someone on another server had the name ${quote(member.name)} first, while the ` +
        "room was partitioned; rejoin with another name",
      problem: NAME_TAKEN,
    },
  ): void {
    const name = member.name;
    const info = this.#local.get(member)!;
    this.#members.delete(nameKey(name));
    this.#log.remove(member);
    this.#local.delete(member);
    member.send(encodeLine(formatError(why.error)));
    this.#deliver(member, formatLeave(name, why.problem), true);
    this.#publish({ k: "leave", n: name, m: info.id, t: why.problem });
    member.end();
  }

  /** Notes that another server spoke, and returns what is known of it. */
  #heardFrom(origin: string): OtherServer {
    let other = this.#others.get(origin);
    if (!other) {
      other = { heardAt: 0, ttl: this.#options.claimTtlMs, members: new Map() };
      this.#others.set(origin, other);
    }
    other.heardAt = performance.now();
    return other;
  }

  /**
   * Brings another server's member into the view and tells the members here: it entered, or was
   * renamed if known. Two people with one name (taken on two sides of a partition) cannot both
   * stay: the one who has held it longer does, and the other's server sends it away.
   */
  #admit(other: OtherServer, member: RemoteMember): void {
    const known = other.members.get(member.id);
    if (known?.name === member.name) return;
    const key = nameKey(member.name);
    const local = this.#members.get(key);
    if (local) {
      if (isOlder({ server: this.id, ...this.#local.get(local)! }, member)) return;
      this.#evict(local);
    }
    const rival = this.#remote.get(key);
    if (rival && rival !== known) {
      if (isOlder(rival, member)) return;
      this.#forget(rival, NAME_TAKEN);
    }
    if (known) this.#remote.delete(nameKey(known.name));
    other.members.set(member.id, member);
    this.#remote.set(key, member);
    this.#deliver(
      undefined,
      known ? formatRename(known.name, member.name) : formatJoin(member.name),
      !known,
    );
  }

  /** Takes another server's member out of the view, telling the members here why. */
  /** `problem` is ours, or the other server's words (its event's text, checked as a client's). */
  #forget(member: RemoteMember, problem?: string, quit?: string): void {
    this.#others.get(member.server)?.members.delete(member.id);
    if (this.#remote.get(nameKey(member.name)) === member) {
      this.#remote.delete(nameKey(member.name));
    }
    this.#deliver(
      undefined,
      quit ? formatQuit(member.name, quit) : formatLeave(member.name, problem),
      true,
    );
  }

  /** What a server's roster says: whoever it no longer lists left, the rest are admitted. */
  #applyRoster(server: string, other: OtherServer, entries: RosterEntry[]): void {
    const listed = new Set(entries.map(([id]) => id));
    for (const member of [...other.members.values()]) {
      if (!listed.has(member.id)) this.#forget(member, LEFT_IN_PARTITION);
    }
    for (const [id, name, since] of entries) this.#admit(other, { server, id, name, since });
  }

  /** Relays another server's event to the members here, once it proves well formed and on time. */
  #receive(message: string): void {
    if (!this.#isAwake()) return;
    // Our own events come back too; they start with our id (see #publish): not parsed.
    if (message.startsWith(this.#ownPrefix)) return;
    let event: Event;
    try {
      event = parseEvent(message, this.#options.maxLineBytes);
    } catch (error) {
      this.#options.log(`redis: ignored a message: ${describe(error)}`);
      return;
    }
    if (event.o === this.id) return; // our own after all (not written by us): ignored the same
    // A private message too late to deliver is dropped: its sender was told so, or will be.
    if (event.k === "msg" && this.#redisNow() > event.d) return;
    // Redis relayed the event before its deadline; the way from Redis to here gets as long again.
    // Later than that, this server's own connection is lagging: it heals rather than relay late.
    if (this.#redisNow() > event.d + REDIS_TIMEOUT_MS) {
      this.#link?.break("an event from another server came too late");
      return;
    }
    // A name held here speaks only from here: another server cannot speak for our members.
    if (["say", "act", "msg"].includes(event.k) && this.#members.has(nameKey(event.n))) {
      this.#options.log(`redis: ignored an event for ${event.n}, who is on this server`);
      return;
    }
    this.#apply(event, this.#heardFrom(event.o));
  }

  #apply(event: Event, other: OtherServer): void {
    const { o: server, n: name, t: text = "", m: id = "", c: since = 0 } = event;
    switch (event.k) {
      case "beat":
        other.ttl = Number(text) || other.ttl;
        return;
      case "roster":
        this.#applyRoster(server, other, event.l!);
        if (event.r) this.#publish({ k: "roster", n: "", l: this.#roster() });
        return;
      case "say":
      case "act": {
        const line = event.k === "say" ? formatUserLine(name, text) : formatAction(name, text);
        this.#remember(line);
        return this.#deliver(undefined, line);
      }
      case "join":
        return this.#admit(other, { server, id, name, since });
      case "rename":
        return this.#admit(other, { server, id, name: event.to!, since });
      case "leave": {
        const known = other.members.get(id);
        if (known) this.#forget(known, text || undefined, event.q ? text : undefined);
        return;
      }
      case "msg":
        return this.#deliverPrivate(event);
      case "ack":
        if (event.s === this.id) this.#awaiting.get(event.i!)?.(text !== "gone");
        return;
      case "account":
        // Another server changed a registered name: read it as Redis has it now.
        this.#refreshAccount(name);
        return;
    }
  }

  /** A private message for a member here: delivered, and confirmed to its sender's server. */
  #deliverPrivate(event: Event): void {
    if (event.s !== this.id) return;
    const recipient = this.#members.get(nameKey(event.to!));
    recipient?.send(encodeLine(formatPrivateFrom(event.n, event.t ?? "")));
    this.#publish({
      k: "ack",
      n: "",
      s: event.o,
      i: event.i!,
      ...(recipient ? {} : { t: "gone" }),
    });
  }
}

/** What a link tells the hub: each event from the channel, and that it broke. */
interface LinkHooks {
  onMessage(message: string): void;
  onBreak(reason: string): void;
}

/**
 * One pair of connections to Redis, commands and the channel's subscription, used until its first
 * fault and then dropped whole. The client's own reconnection is off: a new link starts clean, with
 * no command queued on the old one, and the hub heals on it before relaying anything.
 */
class Link {
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
  #isClosing = false;
  #resolveBroken: () => void;

  constructor(url: string, hooks: LinkHooks) {
    this.#hooks = hooks;
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

/** A Redis client with the hub's scripts; it fails at once rather than queue or reconnect. */
function connectRedis(url: string) {
  return createClient({
    url,
    scripts: SCRIPTS,
    disableOfflineQueue: true,
    socket: { reconnectStrategy: false, connectTimeout: REDIS_TIMEOUT_MS },
  });
}

/** The wait before the next attempt to reach Redis: doubling, with jitter so that servers spread. */
function backoff(failures: number): number {
  return backoffDelay(failures, { firstMs: 100, mostMs: MAX_BACKOFF_MS, jitter: [0.5, 1] });
}

/**
 * Why Redis refused this server, if it did so for good: a wrong password or user, a missing
 * permission, no such database. Waiting does not help those, unlike a Redis that is down, busy or
 * still loading.
 */
function refusalOf(error: unknown): string | undefined {
  if (!(error instanceof ErrorReply)) return;
  const message = error.message;
  if (/^(LOADING|BUSY|MASTERDOWN|TRYAGAIN|CLUSTERDOWN)\b/.test(message)) return;
  if (/^(WRONGPASS|NOAUTH)\b/.test(message)) return `wrong user or password (${message})`;
  if (/^NOPERM\b/.test(message)) return `the Redis user lacks a permission (${message})`;
  return message;
}

/** Whether `a` has held its name longer than `b` (a tie goes to the smaller server id). */
function isOlder(a: { server: string; since: number }, b: { server: string; since: number }) {
  return a.since < b.since || (a.since === b.since && a.server < b.server);
}

/** Whether an event is a line already in the history, by its origin's line numbers. */
function isInHistory(message: string, newest: Map<string, number>): boolean {
  try {
    const { o, k, i } = JSON.parse(message);
    return (k === "say" || k === "act") && typeof i === "number" && i <= (newest.get(o) ?? 0);
  } catch {
    return false; // not ours: its own check rejects it
  }
}

const encoder = new TextEncoder();
const KINDS = new Set([
  "say",
  "act",
  "join",
  "leave",
  "rename",
  "msg",
  "ack",
  "beat",
  "roster",
  "account",
]);
const NAMELESS = new Set(["beat", "roster", "ack"]);

/**
 * Checks an event from the channel as strictly as a client's line: a server id, a known kind,
 * names a client could have chosen, clean text within the line limit, well-formed numbers. So a
 * message in Redis cannot make a server send a line that a client could not have made it send.
 */
export function parseEvent(message: string, maxLineBytes: number): Event {
  const limit = maxLineBytes * 2 + 200 +
    (message.includes('"k":"roster"') ? 64 * MAX_ROSTER_MEMBERS : 0);
  if (message.length > limit) throw new ProtocolError("message too long");
  const event = JSON.parse(message);
  if (typeof event !== "object" || event === null) throw new ProtocolError("not an object");
  const { o, k, n, d, t, to, m, c, i, s, q, l, r } = event;
  if (typeof o !== "string" || !SERVER_ID.test(o)) throw new ProtocolError("no server id");
  if (!KINDS.has(k)) throw new ProtocolError("unknown kind");
  const parsed: Event = { o, k, n: NAMELESS.has(k) ? "" : strictName(n), d: count(d, "deadline") };
  if (k === "beat") {
    const ttl = Number(t);
    if (!(Number.isInteger(ttl) && ttl >= 1 && ttl <= MAX_CLAIM_TTL_MS)) {
      throw new ProtocolError("bad claim lifetime");
    }
    parsed.t = String(ttl);
  } else if (t !== undefined) {
    if (typeof t !== "string") throw new ProtocolError("text is not a string");
    const text = cleanText(t);
    if (encoder.encode(text).length > maxLineBytes) throw new ProtocolError("too long");
    parsed.t = text;
  }
  if (k === "join" || k === "leave" || k === "rename") parsed.m = memberId(m);
  if (k === "join" || k === "rename") parsed.c = count(c, "since");
  if (k === "rename" || k === "msg") parsed.to = strictName(to);
  if (k === "say" || k === "act" || k === "msg" || k === "ack") parsed.i = count(i, "number");
  if (k === "msg" || k === "ack") {
    if (typeof s !== "string" || !SERVER_ID.test(s)) throw new ProtocolError("no server for it");
    parsed.s = s;
  }
  if (k === "roster") parsed.l = rosterEntries(l);
  if (q === true) parsed.q = true;
  if (r === true) parsed.r = true;
  return parsed;
}

function rosterEntries(entries: unknown): RosterEntry[] {
  if (!Array.isArray(entries) || entries.length > MAX_ROSTER_MEMBERS) {
    throw new ProtocolError("bad roster");
  }
  return entries.map((entry) => {
    if (!Array.isArray(entry) || entry.length !== 3) throw new ProtocolError("bad roster entry");
    return [memberId(entry[0]), strictName(entry[1]), count(entry[2], "since")];
  });
}

/** A whole number from 0 to 2^53, or a {@linkcode ProtocolError} naming `what`. */
function count(value: unknown, what: string): number {
  if (!Number.isSafeInteger(value) || (value as number) < 0) {
    throw new ProtocolError(`bad ${what}`);
  }
  return value as number;
}

function memberId(value: unknown): string {
  if (typeof value !== "string" || !MEMBER_ID.test(value)) throw new ProtocolError("bad member id");
  return value;
}

/** A claim's value, `SERVER MEMBER SINCE NAME`, checked; undefined if it is not one we would write. */
function parseClaim(value: string | null | undefined): RemoteMember | undefined {
  const match = /^(\S+) (\S+) (\d+) (\S+)$/.exec(value ?? "");
  if (!match) return;
  const [, server, id, since, name] = match as unknown as string[];
  if (!SERVER_ID.test(server!) || !MEMBER_ID.test(id!) || !isValidName(name!)) return;
  return { server: server!, id: id!, name: name!, since: Number(since) };
}

/** A history entry, checked: a chat line or an action from a valid name, with its origin. */
function parseHistoryEntry(
  entry: string,
): (HistoryEntry & { origin: string; number: number }) | undefined {
  try {
    const { at, line, o, i } = JSON.parse(entry);
    if (typeof at !== "number" || typeof line !== "string" || !isKeptLine(line)) return;
    const isNumbered = typeof o === "string" && Number.isSafeInteger(i);
    return { time: new Date(at), line, origin: isNumbered ? o : "", number: isNumbered ? i : 0 };
  } catch {
    return; // not ours: skipped
  }
}

/** An account as kept in Redis: the same fields in the same order on every server, so that a
 * value can be compared as a whole. */
function accountJson(account: Account): string {
  const { name, salt, hash, cost, blockSize, parallelism } = account;
  return JSON.stringify({ name, salt, hash, cost, blockSize, parallelism });
}

/** An account read from Redis, checked; undefined if it is missing or not one we would write. */
function parseStoredAccount(value: string | null | undefined): Account | undefined {
  try {
    return value ? parseAccount(JSON.parse(value)) : undefined;
  } catch {
    return; // not ours: skipped
  }
}

/** A name exactly as a client could have chosen it, or a {@linkcode ProtocolError}. */
function strictName(name: unknown): string {
  if (typeof name !== "string" || parseName(name) !== name) {
    throw new ProtocolError(`invalid name ${quote(String(name))}`);
  }
  return name;
}

function isValidName(name: string): boolean {
  try {
    return parseName(name) === name;
  } catch {
    return false;
  }
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

/**
 * The cluster's own protocol: the events servers publish on the channel, the name claims and the
 * history entries they keep in Redis, and the accounts as Redis holds them. Pure functions, with
 * no I/O: each value read from Redis is checked as strictly as a client's line, so that a message
 * in Redis cannot make a server send a line that a client could not have made it send.
 */
import { type Account, parseAccount } from "../server/passwords.ts";
import {
  cleanText,
  formatHistory,
  formatRoomList,
  formatSystemLine,
  formatWelcome,
  isKeptLine,
  parseName,
  ProtocolError,
  quote,
} from "../protocol.ts";
import type { CloseReason } from "../server/hub.ts";
import {
  isModerationKey,
  isModerationNotice,
  isPutOutLine,
  MAX_VALUE_LENGTH,
} from "./moderation_values.ts";

/** What the members of a partitioned server are told, and told again when it heals. */
export const PARTITION_NOTICE = formatSystemLine(
  "The room is partitioned: only people on this server hear you until it is whole again",
);
export const HEAL_NOTICE = formatSystemLine("The room is whole again");
/** Why the room is told someone left whom a partition hid: their own reason was not heard here. */
export const LEFT_IN_PARTITION: CloseReason = "during a partition";
export const SERVER_SHUT_DOWN: CloseReason = "server shut down";

/** The most members one server's roster may list (a server holds 10,000 connections by default). */
const MAX_ROSTER_MEMBERS = 100_000;

/** The longest claim lifetime a beat may announce (an hour), so a beat cannot silence the check. */
const MAX_CLAIM_TTL_MS = 3_600_000;

/** Server ids are UUIDs, so that a forged one cannot be anything else. */
const SERVER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A member's id on its server, which stays the same through renames. */
const MEMBER_ID = /^[0-9a-z]{1,12}$/;

/** A member in a roster: its id, name, and since when it holds the name (Redis clock, ms). */
export type RosterEntry = [id: string, name: string, since: number];

/** An event as published on the channel: short keys, since every line of chat is one. */
export interface Event {
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
    | "account"
    | "mod"
    | "note"
    | "expel"
    | "place";
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
  /** A moderation change's new value (its key is the text); none when it was removed. */
  v?: string;
  /** The operator who made a moderation change ("" if not said); none from `chat admin`. */
  b?: string;
  /** What the room hears instead of a leave line (a kick's notice; "" for none): in a leave, and
   * in an expel, which asks the server of `n` to put it out (`t` is what it is told). "" in a
   * join: the member took back a place another server kept, and nobody hears of it. A `place`
   * asks the server `s` to give up `n`'s kept place for the token whose hash is `t`. */
  x?: string;
}

/** A member of another server, as this server knows it. */
export interface RemoteMember {
  server: string;
  id: string;
  name: string;
  since: number;
}

export interface HistoryEntry {
  time: Date;
  line: string;
}

/**
 * What a member here is told as it comes in (or back): the others (`@` for operators), the
 * history, the server's `notices`, its welcome, and that the room is partitioned, if so.
 */
export function welcomeLines(
  name: string,
  others: readonly string[],
  history: readonly HistoryEntry[],
  notices: readonly string[],
  isWhole: boolean,
): string {
  return [
    ...formatRoomList(others),
    ...history.map((entry) => formatHistory(entry.time, entry.line)),
    ...notices,
    formatWelcome(name, others.length + 1),
    ...(isWhole ? [] : [PARTITION_NOTICE]),
  ].join("\n");
}

/** A private message cannot reach another server's member while the room is partitioned. */
export function unreachable(name: string): ProtocolError {
  return new ProtocolError(
    `Cannot reach ${quote(name)} on another server: the room is partitioned`,
  );
}

/** The server of a private message's recipient (or of a member kicked) did not confirm it
 * within `ms`. */
export function unconfirmed(name: string, ms: number, what = "the message"): ProtocolError {
  return new ProtocolError(
    `The server of ${quote(name)} did not confirm ${what} within ${ms / 1000} seconds; ` +
      "it may not have arrived",
  );
}

/** A member's claim on its name, as Redis holds it: `SERVER MEMBER SINCE NAME`. */
export function formatClaim(
  server: string,
  member: { id: string; since: number },
  name: string,
): string {
  return `${server} ${member.id} ${member.since} ${name}`;
}

/** A claim's value, `SERVER MEMBER SINCE NAME`, checked; undefined if it is not one we would write. */
export function parseClaim(value: string | null | undefined): RemoteMember | undefined {
  const match = /^(\S+) (\S+) (\d+) (\S+)$/.exec(value ?? "");
  if (!match) return;
  const [, server, id, since, name] = match as unknown as string[];
  if (!SERVER_ID.test(server!) || !MEMBER_ID.test(id!) || !isValidName(name!)) return;
  return { server: server!, id: id!, name: name!, since: Number(since) };
}

/** Whether `a` has held its name longer than `b` (a tie goes to the smaller server id). */
export function isOlder(
  a: { server: string; since: number },
  b: { server: string; since: number },
): boolean {
  return a.since < b.since || (a.since === b.since && a.server < b.server);
}

/** A history entry, checked: a chat line or an action from a valid name, with its origin. */
export function parseHistoryEntry(
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

/**
 * The history seam, when Redis is first reached: the history newcomers here are shown (Redis's
 * entries and what was said here meanwhile, in time order, the latest `size`), and the events the
 * channel brought meanwhile that are not lines already in it, so that each line is shown once.
 */
export function joinHistory(
  fromRedis: (HistoryEntry & { origin: string; number: number })[],
  ours: HistoryEntry[],
  options: { size: number; pending: string[] | undefined },
): { history: HistoryEntry[]; pending: string[] | undefined } {
  const newest = new Map<string, number>();
  for (const { origin, number } of fromRedis) {
    newest.set(origin, Math.max(number, newest.get(origin) ?? 0));
  }
  const pending = options.pending?.filter((message) => !isInHistory(message, newest));
  const merged = [...fromRedis, ...ours].sort((a, b) => a.time.getTime() - b.time.getTime());
  const history = merged.slice(-options.size).map(({ time, line }) => ({ time, line }));
  return { history, pending };
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
  "mod",
  "note",
  "expel",
  "place",
]);

/** A resume token's hash (SHA-256, base64url), as a `place` request carries it. */
const TOKEN_HASH = /^[A-Za-z0-9_-]{43}$/;

const NAMELESS = new Set(["beat", "roster", "ack", "mod", "note"]);

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
  const { o, k, n, d, t, to, m, c, i, s, q, l, r, v, b, x } = event;
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
  if (["say", "act", "msg", "ack", "expel", "place"].includes(k)) parsed.i = count(i, "number");
  if (k === "msg" || k === "ack" || k === "expel" || k === "place") {
    if (typeof s !== "string" || !SERVER_ID.test(s)) throw new ProtocolError("no server for it");
    parsed.s = s;
  }
  if (k === "roster") parsed.l = rosterEntries(l);
  if (k === "note" && !isModerationNotice(parsed.t ?? "")) throw new ProtocolError("bad notice");
  if (k === "expel" && !isPutOutLine(parsed.t ?? "")) throw new ProtocolError("bad expel line");
  if (k === "place" && !TOKEN_HASH.test(parsed.t ?? "")) throw new ProtocolError("bad token hash");
  if (k === "join" && x !== undefined && x !== "") throw new ProtocolError("bad join");
  if (k === "join" && x === "") parsed.x = x;
  if ((k === "leave" || k === "expel") && x !== undefined) {
    if (x !== "" && !(typeof x === "string" && isModerationNotice(x))) {
      throw new ProtocolError("bad notice");
    }
    parsed.x = x;
  }
  if (k === "mod") {
    if (!isModerationKey(parsed.t ?? "")) throw new ProtocolError("bad moderation key");
    if (v !== undefined && (typeof v !== "string" || v.length > MAX_VALUE_LENGTH)) {
      throw new ProtocolError("bad moderation value");
    }
    if (v !== undefined) parsed.v = v;
    if (b !== undefined) parsed.b = b === "" ? b : strictName(b);
  }
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

/** An account as kept in Redis: the same fields in the same order on every server, so that a
 * value can be compared as a whole. */
export function accountJson(account: Account): string {
  const { name, salt, hash, cost, blockSize, parallelism } = account;
  return JSON.stringify({ name, salt, hash, cost, blockSize, parallelism });
}

/** An account read from Redis, checked; undefined if it is missing or not one we would write. */
export function parseStoredAccount(value: string | null | undefined): Account | undefined {
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

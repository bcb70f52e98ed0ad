/**
 * Operators, bans, mutes and the topic as Redis keeps them, and as the events that announce their
 * changes carry them: one key each under `chat:mod:` and a JSON value. Pure: each value read from
 * Redis or the channel is checked as strictly as a member's command, and anything else is skipped.
 */
import { cleanText, nameKey, parseName } from "../protocol.ts";
import type { Ban, Mute, Topic } from "../server/moderation_store.ts";

/** The longest reason kept, and the longest topic (the contract's bounds). */
const MAX_REASON = 200;
const MAX_TOPIC = 300;
/** The longest value an event may carry: a ban with the longest reason, escaped, fits well. */
export const MAX_VALUE_LENGTH = 4096;

/** What a key holds. */
export type Value =
  | { kind: "operator"; name: string }
  | { kind: "ban"; ban: Ban }
  | { kind: "mute"; mute: Mute }
  | { kind: "topic"; topic: Topic };

/** The key of the topic. */
export const TOPIC_KEY = "topic";

/** An operator's key: `op:NAMEKEY`. */
export function operatorKey(name: string): string {
  return `op:${nameKey(name)}`;
}

/** A ban's key: `ban:n:NAMEKEY` for a name (every case of it), `ban:a:TARGET` for an address. */
export function banKey(ban: Pick<Ban, "kind" | "target">): string {
  return ban.kind === "name" ? `ban:n:${nameKey(ban.target)}` : `ban:a:${ban.target.toLowerCase()}`;
}

/** The key of a ban on `target`, a name or an address (which cannot be confused). */
export function banKeyOf(target: string): string {
  return banKey({ kind: isName(target) ? "name" : "address", target });
}

/** A mute's key: `mute:NAMEKEY`. */
export function muteKey(name: string): string {
  return `mute:${nameKey(name)}`;
}

/** Whether `key` is one of the forms above (what an event may name). */
export function isModerationKey(key: string): boolean {
  return key === TOPIC_KEY || /^(op:|mute:|ban:n:)[a-z0-9_-]{1,64}$/.test(key) ||
    /^ban:a:[0-9a-f.:/]{2,64}$/.test(key);
}

/** The JSON kept for a value, the same fields in the same order on every server. */
export function banJson(ban: Ban): string {
  const { target, kind, by, at, until, reason } = ban;
  return JSON.stringify({ target, kind, by, at, until, reason });
}

export function muteJson(mute: Mute): string {
  const { name, by, at, until, reason } = mute;
  return JSON.stringify({ name, by, at, until, reason });
}

export function topicJson(topic: Topic): string {
  const { text, by, at } = topic;
  return JSON.stringify({ text, by, at });
}

/** The value kept under `key`, checked; undefined if it is not one we would write there. */
export function parseValue(key: string, value: string): Value | undefined {
  try {
    if (key.startsWith("op:")) {
      return nameKey(value) === key.slice(3) && isName(value)
        ? { kind: "operator", name: value }
        : undefined;
    }
    const json = JSON.parse(value);
    if (typeof json !== "object" || json === null) return;
    if (key === TOPIC_KEY) {
      const { text, by, at } = json;
      if (!isText(text, MAX_TOPIC) || !isBy(by) || !isTime(at)) return;
      return { kind: "topic", topic: { text, by, at } };
    }
    const { by, at, until, reason } = json;
    if (!isBy(by) || !isTime(at) || !isOptional(until, isTime)) return;
    if (!isOptional(reason, (text) => isText(text, MAX_REASON))) return;
    const common = { by, at, ...until !== undefined && { until }, ...reason && { reason } };
    if (key.startsWith("mute:")) {
      const { name } = json;
      if (!isName(name) || muteKey(name) !== key) return;
      return { kind: "mute", mute: { name, ...common } };
    }
    const { target, kind } = json;
    if (kind !== "name" && kind !== "address") return;
    if (typeof target !== "string" || banKey({ kind, target }) !== key) return;
    if (kind === "name" ? !isName(target) : !/^[0-9A-Fa-f.:/]{2,64}$/.test(target)) return;
    return { kind: "ban", ban: { target, kind, ...common } };
  } catch {
    return; // not ours: skipped
  }
}

function isName(name: unknown): name is string {
  try {
    return typeof name === "string" && parseName(name) === name;
  } catch {
    return false;
  }
}

/** The one who acted: an operator's name, or "the server" for `chat admin`. */
function isBy(by: unknown): by is string {
  return by === "the server" || isName(by);
}

function isTime(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

function isText(text: unknown, most: number): text is string {
  return typeof text === "string" && text.length <= most && cleanText(text) === text;
}

function isOptional(value: unknown, check: (value: unknown) => boolean): boolean {
  return value === undefined || check(value);
}

const NAME = "[A-Za-z0-9_-]{1,32}";
const NAMES = `${NAME}(?:, ${NAME})*(?: and ${NAME})?`;
const UNTIL = "(?: until \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC)?";
const REASON = "(?:: [^\\n]{1,200})?";
/** The room's notices of moderation acts (see protocol/moderation.ts), and nothing else. */
const NOTICES = [
  `${NAME} was kicked by ${NAME}${REASON}`,
  `${NAMES} (?:was|were) banned by ${NAME}${UNTIL}${REASON}`,
  `${NAME} was (?:unbanned|unmuted) by ${NAME}`,
  `${NAME} was muted by ${NAME}${UNTIL}${REASON}`,
  `${NAME} set the topic: [^\\n]{1,300}`,
  `${NAME} cleared the topic`,
  `${NAME} is (?:now|no longer) an operator \\(by (?:${NAME}|the server)\\)`,
].map((pattern) => new RegExp(`^\\* ${pattern}$`));
/** What a member put out by another server is told: kicked, or banned. */
const PUT_OUT = [
  `error: You were kicked by ${NAME}${REASON}`,
  `error: You are banned${UNTIL}${REASON}`,
].map((pattern) => new RegExp(`^\\* ${pattern}$`));

/** Whether another server may have this server's room hear `line`: a moderation notice, clean. */
export function isModerationNotice(line: string): boolean {
  return cleanText(line) === line && NOTICES.some((notice) => notice.test(line));
}

/** Whether another server may have a member here told `line` as it is put out. */
export function isPutOutLine(line: string): boolean {
  return cleanText(line) === line && PUT_OUT.some((notice) => notice.test(line));
}

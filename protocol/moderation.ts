/** Moderation's wire lines and commands: kicks, bans, mutes, the topic and operators, with no I/O. */
import { formatError, formatSystemLine, parseName, quote } from "./text.ts";
import { ProtocolError } from "./lines.ts";

/** Longest time a ban or a mute may be given for: a year, after which it is reconsidered. */
export const MAX_DURATION_MS = 365 * 24 * 3600 * 1000;
/** Longest reason for a kick, ban or mute, in characters: a sentence, not an essay. */
export const MAX_REASON_LENGTH = 200;
/** Longest topic, in characters. */
export const MAX_TOPIC_LENGTH = 300;
/** Most bans kept at once, so that a rogue operator cannot fill the store or the memory. */
export const MAX_BANS = 10_000;
/** Most mutes kept at once, for the same reason. */
export const MAX_MUTES = 10_000;

const UNIT_MS: Record<string, number> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};
const DURATION = /^(\d{1,12})([smhdw])$/;

/**
 * A duration such as `30s`, `10m`, `2h`, `7d` or `1w`, in ms; `undefined` if `word` is not one (it
 * is then the start of a reason). Throws a {@linkcode ProtocolError} past {@linkcode MAX_DURATION_MS}
 * or for zero.
 */
export function parseDuration(word: string): number | undefined {
  const match = DURATION.exec(word);
  if (!match) return undefined;
  const ms = Number(match[1]) * UNIT_MS[match[2]!]!;
  if (ms === 0) throw new ProtocolError(`Cannot use duration ${quote(word)}: it must be over 0`);
  if (ms > MAX_DURATION_MS) {
    throw new ProtocolError(`Cannot use duration ${quote(word)}: the longest is 365d`);
  }
  return ms;
}

/** A time as the moderation lines give it, in UTC: `2026-12-07 10:00:00 UTC`. */
export function formatUntil(ms: number): string {
  const iso = new Date(ms).toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)} UTC`;
}

/** ` until TIME` for an act with an end, nothing for one until lifted. */
function untilPart(until: number | undefined): string {
  return until === undefined ? "" : ` until ${formatUntil(until)}`;
}

/** `: REASON`, or nothing. */
function reasonPart(reason: string | undefined): string {
  return reason ? `: ${reason}` : "";
}

/** Names as a sentence lists them: `a`, `a and b`, `a, b and c`. */
function listNames(names: readonly string[]): string {
  return names.length < 2 ? names.join("") : `${names.slice(0, -1).join(", ")} and ${names.at(-1)}`;
}

/** A name as the room list and `/who` show it: `@alice` for an operator. */
export function markOperator(name: string, isOperator: boolean): string {
  return isOperator ? `@${name}` : name;
}

/** Listed names without their marks, and which of them are operators. */
export function unmarkNames(marked: readonly string[]): { names: string[]; operators: string[] } {
  const names = marked.map((name) => name.startsWith("@") ? name.slice(1) : name);
  return { names, operators: names.filter((_, i) => marked[i]!.startsWith("@")) };
}

/** The topic, after the welcome and as `/topic`'s answer: `* Topic: TEXT`. */
export function formatTopic(text: string): string {
  return formatSystemLine(`Topic: ${text}`);
}

/** `/topic`'s answer when there is none. */
export const NO_TOPIC = "* No topic is set";

/**
 * What an operator is told after the welcome (and the topic): the room list leaves the newcomer
 * out, so this is how its client knows to offer the operator commands.
 */
export const OPERATOR_WELCOME = "* You are an operator: /help lists your commands";

/** The room's notice of a new topic, or of its clearing (`text` undefined). */
export function formatTopicChange(by: string, text: string | undefined): string {
  return formatSystemLine(
    text === undefined ? `${by} cleared the topic` : `${by} set the topic: ${text}`,
  );
}

/** The room's notice of a kick. */
export function formatKick(name: string, by: string, reason?: string): string {
  return formatSystemLine(`${name} was kicked by ${by}${reasonPart(reason)}`);
}

/** What the kicked member is told, before it is closed. */
export function formatYouWereKicked(by: string, reason?: string): string {
  return formatError(`You were kicked by ${by}${reasonPart(reason)}`);
}

/** The room's notice of a ban, naming who it put out (one name for a ban by name). */
export function formatBan(
  names: readonly string[],
  by: string,
  options: { until?: number | undefined; reason?: string | undefined } = {},
): string {
  const verb = names.length === 1 ? "was" : "were";
  return formatSystemLine(
    `${listNames(names)} ${verb} banned by ${by}${untilPart(options.until)}${
      reasonPart(options.reason)
    }`,
  );
}

/** What a banned member is told, at its next join or when the ban puts it out, before closing. */
export function formatYouAreBanned(until?: number, reason?: string): string {
  return formatError(`You are banned${untilPart(until)}${reasonPart(reason)}`);
}

/** The operator's confirmation of a ban. */
export function formatBanned(target: string, until?: number): string {
  return formatSystemLine(`Banned ${target}${untilPart(until)}`);
}

/** The room's notice of a ban by name lifted. */
export function formatUnban(name: string, by: string): string {
  return formatSystemLine(`${name} was unbanned by ${by}`);
}

/** The operator's confirmation of a ban lifted (the room is not told of address bans). */
export function formatUnbanned(target: string): string {
  return formatSystemLine(`Unbanned ${target}`);
}

/** A ban as `/bans` lists it. */
export interface BanLine {
  target: string;
  by: string;
  until?: number | undefined;
  reason?: string | undefined;
}

/** `/bans`' answer: `* N bans:` and a line each, or `* No bans`. */
export function formatBans(bans: readonly BanLine[]): string[] {
  if (bans.length === 0) return ["* No bans"];
  return [
    formatSystemLine(`${bans.length} ${bans.length === 1 ? "ban" : "bans"}:`),
    ...bans.map((ban) =>
      formatSystemLine(`${ban.target} by ${ban.by}${untilPart(ban.until)}${reasonPart(ban.reason)}`)
    ),
  ];
}

/** The room's notice of a mute. */
export function formatMute(
  name: string,
  by: string,
  options: { until?: number | undefined; reason?: string | undefined } = {},
): string {
  return formatSystemLine(
    `${name} was muted by ${by}${untilPart(options.until)}${reasonPart(options.reason)}`,
  );
}

/** The room's notice of a mute lifted. */
export function formatUnmute(name: string, by: string): string {
  return formatSystemLine(`${name} was unmuted by ${by}`);
}

/** What a muted member is told for each line it sends that would reach others. */
export function formatYouAreMuted(until?: number): string {
  return formatError(`You are muted${untilPart(until)}: your line was not sent`);
}

/** The room's notice of an operator made or unmade; no `by` when `chat admin` did it. */
export function formatOperatorChange(name: string, isOperator: boolean, by?: string): string {
  const what = isOperator ? "is now an operator" : "is no longer an operator";
  return formatSystemLine(`${name} ${what} (by ${by ?? "the server"})`);
}

/** `/ops`' answer: the operators online. */
export function formatOps(names: readonly string[]): string {
  if (names.length === 0) return "* No operator is online";
  const count = names.length === 1 ? "1 operator" : `${names.length} operators`;
  return formatSystemLine(`${count} online: ${names.join(", ")}`);
}

/** What `/whois` tells an operator about a member. */
export interface Whois {
  name: string;
  address: string;
  door: "TLS" | "TCP" | "web";
  isRegistered: boolean;
  isOperator: boolean;
}

/** `/whois`' answer: `* alice: from 203.0.113.7, TLS, registered, operator`. */
export function formatWhois(whois: Whois): string {
  return formatSystemLine(
    `${whois.name}: from ${whois.address}, ${whois.door}, ${
      whois.isRegistered ? "registered" : "not registered"
    }, ${whois.isOperator ? "operator" : "not an operator"}`,
  );
}

/** What anyone but an operator is told for an operator's command. */
export function operatorsOnly(command: string): ProtocolError {
  return new ProtocolError(`/${command} is for operators only`);
}

/** `/help`'s lines for the operator commands, shown to operators only, after the others. */
export const OPERATOR_HELP_LINES: readonly string[] = [
  "Operator commands:",
  "/kick NAME [REASON]              put NAME out of the room",
  "/ban TARGET [DURATION] [REASON]  keep out a NAME, ADDRESS or CIDR (10m, 2h, 7d; none: until lifted)",
  "/unban TARGET                    lift a ban",
  "/bans                            list the bans",
  "/mute NAME [DURATION] [REASON]   refuse NAME's lines; they still read",
  "/unmute NAME                     lift a mute",
  "/topic TEXT                      set the topic (/topic - clears it)",
  "/op NAME, /deop NAME             make or unmake a registered name an operator",
  "/whois NAME                      where NAME connects from",
].map(formatSystemLine);

/** A moderation command as a member typed it. */
export type ModerationCommand =
  | { name: "kick"; target: string; reason?: string }
  | {
    name: "ban";
    target: string;
    kind: "name" | "address";
    durationMs?: number;
    reason?: string;
  }
  | { name: "unban"; target: string }
  | { name: "bans" }
  | { name: "mute"; target: string; durationMs?: number; reason?: string }
  | { name: "unmute"; target: string }
  /** No `text`: show the topic; `""`: clear it (`/topic -`); else set it. */
  | { name: "topic"; text?: string }
  | { name: "op" | "deop" | "whois"; target: string }
  | { name: "ops" };

/** How each moderation command is typed, for its usage error. */
export const MODERATION_USAGE: Readonly<Record<ModerationCommand["name"], string>> = {
  kick: "/kick NAME [REASON]",
  ban: "/ban NAME|ADDRESS|CIDR [DURATION] [REASON]",
  unban: "/unban NAME|ADDRESS|CIDR",
  bans: "/bans",
  mute: "/mute NAME [DURATION] [REASON]",
  unmute: "/unmute NAME",
  topic: "/topic [TEXT | -]",
  op: "/op NAME",
  deop: "/deop NAME",
  whois: "/whois NAME",
  ops: "/ops",
};

/** Commands only an operator may give (`/topic` with text too; bare `/topic` is anyone's). */
const OPERATOR_COMMANDS = new Set(
  ["kick", "ban", "unban", "bans", "mute", "unmute", "op", "deop", "whois"],
);

/**
 * The command word of a line if it is one only operators may give (`kick`, `topic` with text...),
 * so that the server refuses it before reading its arguments.
 */
export function operatorCommandOf(line: string): string | undefined {
  if (!line.startsWith("/")) return undefined; // a chat line: the common case, checked first
  const match = /^\/([A-Za-z]+)(\s.*)?$/s.exec(line);
  if (!match) return undefined;
  const word = match[1]!.toLowerCase();
  const hasArgs = (match[2] ?? "").trim() !== "";
  if (OPERATOR_COMMANDS.has(word) || (word === "topic" && hasArgs)) return word;
}

const ADDRESS_TARGET = /^[0-9A-Fa-f:.]+(?:%[\w.-]+)?(?:\/\d{1,3})?$/;

/**
 * A ban's target: a name (letters, digits, `_`, `-`) or an address or block (it has a `.` or a
 * `:`); they cannot be confused. The server checks the address itself.
 */
export function parseBanTarget(word: string): { target: string; kind: "name" | "address" } {
  if (/[.:]/.test(word)) {
    if (!ADDRESS_TARGET.test(word)) {
      throw new ProtocolError(
        `Cannot ban ${quote(word)}: give a name, an address (203.0.113.7, 2001:db8::1) or a CIDR`,
      );
    }
    return { target: word, kind: "address" };
  }
  return { target: parseName(word), kind: "name" };
}

/** Checks a reason's length and returns it, or nothing for an empty one. */
function parseReason(text: string): string | undefined {
  if (text.length > MAX_REASON_LENGTH) {
    throw new ProtocolError(`Reason too long: at most ${MAX_REASON_LENGTH} characters`);
  }
  return text === "" ? undefined : text;
}

/** The first word of `args` and the rest, trimmed. */
function firstWord(args: string): [string, string] {
  const gap = args.search(/\s/);
  return gap === -1 ? [args, ""] : [args.slice(0, gap), args.slice(gap + 1).trim()];
}

/** `[DURATION] [REASON]` after a target: a second word that is no duration starts the reason. */
function parseTerm(rest: string): { durationMs?: number; reason?: string } {
  const [word, after] = firstWord(rest);
  const durationMs = parseDuration(word);
  const reason = parseReason(durationMs === undefined ? rest : after);
  return {
    ...(durationMs === undefined ? {} : { durationMs }),
    ...(reason === undefined ? {} : { reason }),
  };
}

/**
 * Reads the arguments of moderation command `word` (lower case); `undefined` if `word` is none.
 * Throws a {@linkcode ProtocolError} with the usage or the rule broken.
 */
export function parseModerationCommand(
  word: string,
  args: string,
): ModerationCommand | undefined {
  if (!Object.hasOwn(MODERATION_USAGE, word)) return undefined;
  const name = word as ModerationCommand["name"];
  const usage = () => new ProtocolError(`Usage: ${MODERATION_USAGE[name]}`);
  const [first, rest] = firstWord(args);
  switch (name) {
    case "bans":
    case "ops":
      if (args !== "") throw usage();
      return { name };
    case "topic":
      return parseTopicArgs(args);
    case "unban":
      if (args === "" || rest !== "") throw usage();
      return { name, target: parseBanTarget(first).target };
    case "unmute":
    case "op":
    case "deop":
    case "whois":
      if (args === "" || rest !== "") throw usage();
      return { name, target: parseName(first) };
    case "kick": {
      if (args === "") throw usage();
      const reason = parseReason(rest);
      return { name, target: parseName(first), ...(reason === undefined ? {} : { reason }) };
    }
    case "ban":
      if (args === "") throw usage();
      return { name, ...parseBanTarget(first), ...parseTerm(rest) };
    case "mute":
      if (args === "") throw usage();
      return { name, target: parseName(first), ...parseTerm(rest) };
  }
}

function parseTopicArgs(args: string): ModerationCommand {
  if (args === "") return { name: "topic" };
  if (args === "-") return { name: "topic", text: "" };
  if (args.length > MAX_TOPIC_LENGTH) {
    throw new ProtocolError(`Topic too long: at most ${MAX_TOPIC_LENGTH} characters`);
  }
  return { name: "topic", text: args };
}

/** A moderation line to the member it concerns, or the topic, as a client reads it. */
export type ModerationLine =
  /** The topic (`* Topic: TEXT`), or its change by an operator (`text` empty: cleared). */
  | { kind: "topic"; text: string; by?: string }
  | { kind: "kicked"; by: string; reason?: string }
  | { kind: "banned"; until?: Date; reason?: string };

const NAME = "([A-Za-z0-9_-]{1,32})";
const TOPIC_LINE = /^Topic: (.*)$/s;
const TOPIC_SET_LINE = new RegExp(`^${NAME} set the topic: (.*)$`, "s");
const TOPIC_CLEARED_LINE = new RegExp(`^${NAME} cleared the topic$`);
const KICKED_LINE = new RegExp(`^error: You were kicked by ${NAME}(?:: (.*))?$`, "s");
const BANNED_LINE =
  /^error: You are banned(?: until (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) UTC)?(?:: (.*))?$/s;

/** Reads the text of a server line (after `* `) as one of {@linkcode ModerationLine}, if it is. */
export function parseModerationLine(text: string): ModerationLine | undefined {
  const topic = TOPIC_LINE.exec(text);
  if (topic) return { kind: "topic", text: topic[1]! };
  const set = TOPIC_SET_LINE.exec(text);
  if (set) return { kind: "topic", text: set[2]!, by: set[1]! };
  const cleared = TOPIC_CLEARED_LINE.exec(text);
  if (cleared) return { kind: "topic", text: "", by: cleared[1]! };
  const kicked = KICKED_LINE.exec(text);
  if (kicked) {
    return { kind: "kicked", by: kicked[1]!, ...(kicked[2] ? { reason: kicked[2] } : {}) };
  }
  const banned = BANNED_LINE.exec(text);
  if (banned) {
    const [, day, time, reason] = banned;
    return {
      kind: "banned",
      ...(day ? { until: new Date(`${day}T${time}Z`) } : {}),
      ...(reason ? { reason } : {}),
    };
  }
}

const OPERATOR_CHANGE_LINE = new RegExp(
  `^\\* ${NAME} is (now|no longer) an operator \\(by (?:${NAME}|the server)\\)$`,
);

/**
 * The name a notice of {@linkcode formatOperatorChange} is about and whether it is an operator now,
 * if the line is one: the clients mark operators, and learn that they became one, from it.
 */
export function parseOperatorChange(
  line: string,
): { name: string; isOperator: boolean } | undefined {
  const match = OPERATOR_CHANGE_LINE.exec(line);
  if (match) return { name: match[1]!, isOperator: match[2] === "now" };
}

const BARE_NAME = "[A-Za-z0-9_-]{1,32}";
const PUT_OUT_LINE = new RegExp(
  `^\\* (${BARE_NAME}(?:(?:, | and )${BARE_NAME})*) (?:was|were) (?:kicked|banned) by ` +
    `${BARE_NAME}(?: until \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC)?(?:: .*)?$`,
  "s",
);

/**
 * The names the room's notice of a kick or a ban ({@linkcode formatKick}, {@linkcode formatBan})
 * put out, if the line is one: it stands for their leave notices, so clients drop them from who
 * is online.
 */
export function parsePutOut(line: string): string[] | undefined {
  const match = PUT_OUT_LINE.exec(line);
  return match ? match[1]!.split(/, | and /) : undefined;
}

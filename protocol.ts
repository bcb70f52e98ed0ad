/** The chat wire protocol: limits, the line splitter, name rules and line formats, with no I/O. */
import { ProtocolError, utf8Length } from "./protocol/lines.ts";
import {
  formatError,
  formatSystemLine,
  hasUnsafeCharacters,
  parseName,
  quote,
} from "./protocol/text.ts";
import {
  type ModerationCommand,
  type ModerationLine,
  parseModerationCommand,
  parseModerationLine,
  unmarkNames,
} from "./protocol/moderation.ts";

export * from "./protocol/lines.ts";
export * from "./protocol/moderation.ts";
export * from "./protocol/resume.ts";
export * from "./protocol/text.ts";

/** Port of the seed's server, kept so old habits and firewall rules still work. */
export const DEFAULT_PORT = 1234;
/** Listen on every interface by default, as the seed did; `--host` narrows it. */
export const DEFAULT_HOST = "0.0.0.0";
/** Budget Chat asks for lines of at least 1000 characters, which in UTF-8 take up to 4000 bytes. */
export const MIN_MAX_LINE_BYTES = 4000;
/** Largest line limit a server may be given (`--max-line`). */
export const MAX_MAX_LINE_BYTES = 2 ** 24;
/**
 * What the server adds around a client's text at most (`* history TIME [NAME] `, `* private from
 * NAME: `, ...): no line it sends is longer than its line limit plus this.
 */
export const MAX_LINE_OVERHEAD_BYTES = 256;

/** An error in one line, for a log: its name and message. */
export function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** An error's message alone, for a person: the name of an expected error says nothing to them. */
export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

const LF = 0x0a;
const encoder = new TextEncoder();

/** Whether the first line of a connection is an HTTP request: a browser came to the chat's port. */
export function isHttpRequestLine(line: string): boolean {
  return /^[A-Z]{3,7} \S+ HTTP\/\d(?:\.\d)?\r?$/.test(line);
}

/** What a browser that came to the chat's port is told: where the page is, if there is one. */
export function formatWrongDoor(webPort: number | undefined): string {
  return webPort === undefined
    ? "This port speaks chat lines, not HTTP, and this server has no web page (see --web): use nc or the client"
    : `This port speaks chat lines, not HTTP: the web page is on port ${webPort}`;
}

/**
 * A chat line or an action as the room relays it: `[NAME] ` or `* [NAME] ` and clean text (names
 * of at most {@linkcode MAX_NAME_LENGTH} characters; a literal, so that the page's bundle can leave
 * it out).
 */
const KEPT_LINE = /^(?:\* )?\[[A-Za-z0-9_-]{1,32}\] /;

/**
 * Whether a line read back from a store (SQLite, Redis) is one the room could have said: a chat
 * line or an action from a valid name, with no control character or escape, within the longest
 * line. Anything else (a forged notice, a line feed, a raw escape) is not replayed.
 */
export function isKeptLine(line: string): boolean {
  return line.length <= MAX_MAX_LINE_BYTES + MAX_LINE_OVERHEAD_BYTES && KEPT_LINE.test(line) &&
    !hasUnsafeCharacters(line);
}

/** How many colors names are shown in, by every client of ours (the terminal and the page). */
export const NAME_COLOR_SLOTS = 12;

/**
 * Which of the {@linkcode NAME_COLOR_SLOTS} colors a name is shown in: a hash of it regardless of
 * case (FNV-1a, 32 bits), so that every client shows a name in the same hue.
 */
export function nameColorSlot(name: string): number {
  let hash = 0x811c9dc5;
  for (const char of nameKey(name)) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193);
  return (hash >>> 0) % NAME_COLOR_SLOTS;
}

/** The key under which a name is unique: names differ only if they differ regardless of case. */
export function nameKey(name: string): string {
  return name.toLowerCase();
}

/** Another member holds the name (any hub: one server's, or the cluster's). */
export function nameTaken(name: string): ProtocolError {
  return new ProtocolError(`Cannot accept name ${quote(name)}: name is taken`);
}

/** Nobody online has the name a private message is for. */
export function noSuchUser(name: string): ProtocolError {
  return new ProtocolError(`No user named ${quote(name)} is online: /who lists who is`);
}

/** A rename to the name the member has already. */
export function sameName(name: string): ProtocolError {
  return new ProtocolError(`Your name is already ${quote(name)}`);
}

/** `HOST:PORT`, with an IPv6 host in brackets as URLs, logs and `--allow-net` want it. */
export function hostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/** The path of the web page's WebSocket, where it carries one line of the protocol per message. */
export const SOCKET_PATH = "/chat";

/** The first line the server sends: Budget Chat asks for a name before anything else. */
export const GREETING = "* Welcome to chat! What shall I call you?";
/**
 * The greeting of a server that has registered names: one clause more, in the middle of the same
 * line, so that a client that waits for one line before its name (nc, the terminal client) sees
 * no difference, and the page knows to show its password field (see {@linkcode hasRegisteredNames}).
 */
export const REGISTERED_GREETING =
  "* Welcome to chat! Some names here are registered and need their password. " +
  "What shall I call you?";
/** The first line of a private server (`--password-file`): its password comes before the name. */
export const PRIVATE_GREETING = "* Welcome to chat! This server is private: send its password";
/** What a private server asks once its password is right. */
export const NAME_PROMPT = "* What shall I call you?";

/** Shortest password for a registered name, in characters. */
export const MIN_PASSWORD_LENGTH = 8;
/** Longest password, in UTF-8 bytes: more adds nothing, and each is hashed. */
export const MAX_PASSWORD_BYTES = 1024;

/** What a secret the server asks for on the next line is for. */
export type PromptKind = "server" | "login" | "new" | "current";

/** A request for a secret on the next line: the client answers it without showing or keeping it. */
export interface Prompt {
  kind: PromptKind;
  /** The name it is for (none for the server's password). */
  name?: string;
}

/** `* NAME is registered: send its password`, after a registered name (or `/nick` to one). */
export function formatLoginPrompt(name: string): string {
  return formatSystemLine(`${name} is registered: send its password`);
}

/** The prompt for a new password, after `/register` or `/password`. */
export function formatNewPasswordPrompt(name: string): string {
  return formatSystemLine(
    `Send the new password for ${name} on the next line: at least ${MIN_PASSWORD_LENGTH} ` +
      "characters; it is never shown, relayed or kept (an empty line cancels)",
  );
}

/** The prompt for the current password, before `/password` or `/unregister` acts. */
export function formatCurrentPasswordPrompt(name: string): string {
  return formatSystemLine(
    `Send the current password for ${name} on the next line (an empty line cancels)`,
  );
}

const LOGIN_PROMPT = /^\* ([A-Za-z0-9_-]{1,32}) is registered: send its password$/;
const NEW_PROMPT = /^\* Send the new password for ([A-Za-z0-9_-]{1,32}) on the next line: /;
const CURRENT_PROMPT = /^\* Send the current password for ([A-Za-z0-9_-]{1,32}) on the next line /;

/** The secret a server line asks for, if it is such a prompt. */
export function parsePrompt(line: string): Prompt | undefined {
  if (line === PRIVATE_GREETING) return { kind: "server" };
  for (
    const [pattern, kind] of [[LOGIN_PROMPT, "login"], [NEW_PROMPT, "new"], [
      CURRENT_PROMPT,
      "current",
    ]] as const
  ) {
    const match = pattern.exec(line);
    if (match) return { kind, name: match[1]! };
  }
}

/**
 * What a greeting says of registered names: true when some names need a password, false when none
 * do, undefined for any other line (a private server's greeting says nothing of them before its
 * password is given).
 */
export function hasRegisteredNames(greeting: string): boolean | undefined {
  if (greeting === REGISTERED_GREETING) return true;
  if (greeting === GREETING) return false;
}

/** Which secret an error from the server says was wrong, if it says one was: ask again for it. */
export function parseWrongSecret(error: string): "server" | "login" | undefined {
  if (error === "Wrong server password") return "server";
  if (/^Wrong password for "[A-Za-z0-9_-]{1,32}"$/.test(error)) return "login";
}

/**
 * A password as compared and hashed: the line as sent, in Unicode's composed form (NFC), so that
 * the same characters typed on two systems are the same password.
 */
export function normalizePassword(line: string): string {
  return line.normalize("NFC");
}

/** Checks a new password and returns it normalized; a {@linkcode ProtocolError} says the rule. */
export function parseNewPassword(line: string): string {
  const password = normalizePassword(line);
  if ([...password].length < MIN_PASSWORD_LENGTH) {
    throw new ProtocolError(
      `Cannot use that password: it needs at least ${MIN_PASSWORD_LENGTH} characters`,
    );
  }
  if (utf8Length(password) > MAX_PASSWORD_BYTES) {
    throw new ProtocolError(
      `Cannot use that password: it has more than ${MAX_PASSWORD_BYTES} bytes`,
    );
  }
  return password;
}

/** A line a user said: `[NAME] text`. */
export function formatUserLine(name: string, text: string): string {
  return `[${name}] ${text}`;
}

const ROOM_LIST = "The room contains:";
const ROOM_LIST_MORE = "The room also contains:";
const WHO_MORE = "also online:";

/**
 * Longest line of a list of names (the room list, `/who`), in bytes without the LF. A room of
 * thousands gets several lines, so no line grows with the room and every client can take each.
 */
export const MAX_LIST_LINE_BYTES = 4096;

/**
 * The newcomer's list of who else is in the room: `* The room contains: A, B`, as Budget Chat has
 * it, then `* The room also contains: C, D` for as many more lines as a big room needs. The list is
 * complete at the first line that is not a continuation (the history or the welcome always follows).
 */
export function formatRoomList(names: readonly string[]): string[] {
  const list = roomList();
  for (const name of names) list.add(name);
  return list.lines;
}

/** An empty room list, for a room that adds its members one at a time. */
export function roomList(): NameList {
  return new NameList(`* ${ROOM_LIST}`, `* ${ROOM_LIST_MORE}`);
}

/**
 * What `/who` answers: `* N online: A, B`, then `* also online: C, D` for as many more lines as a
 * big room needs; the answer is complete once it has listed N names.
 */
export function formatWho(names: readonly string[]): string[] {
  const list = new NameList(`* ${names.length} online:`, `* ${WHO_MORE}`);
  for (const name of names) list.add(name);
  return list.lines;
}

/**
 * Names listed in lines of at most {@linkcode MAX_LIST_LINE_BYTES}: the first line starts with
 * `first`, the others with `more`. Built one name at a time, so that a room can keep its list and
 * change only the line a newcomer lands on.
 */
export class NameList {
  /** The lines, never empty: a list of no names is `first` alone. */
  readonly lines: string[];
  #more: string;
  /** Names on the last line. */
  #count = 0;

  /** An empty list. */
  constructor(first: string, more: string) {
    this.lines = [first];
    this.#more = more;
  }

  /** Adds a name at the end; returns the index of the line it went on. */
  add(name: string): number {
    let last = this.lines.length - 1;
    // Names are ASCII, so their length is their size in bytes.
    if (this.#count > 0 && this.lines[last]!.length + 2 + name.length > MAX_LIST_LINE_BYTES) {
      this.lines.push(this.#more);
      this.#count = 0;
      last++;
    }
    this.lines[last] += this.#count === 0 ? ` ${name}` : `, ${name}`;
    this.#count++;
    return last;
  }
}

/** The notice the others get when a peer joins. */
export function formatJoin(name: string): string {
  return formatSystemLine(`${name} has entered the room`);
}

/** The notice the others get when a peer leaves, with the reason when it did not leave by itself. */
export function formatLeave(name: string, reason?: string): string {
  return formatSystemLine(`${name} has left the room${reason ? ` (${reason})` : ""}`);
}

/** What every client is told when the server shuts down. */
export const SHUTDOWN_NOTICE = "* Server is shutting down, goodbye";

/**
 * What a member is told when the owner of its registered name logs in from elsewhere, before the
 * server closes it. A client must not log in again by itself after it, or two logins would take
 * the name from each other forever: so it is a line of its own, told apart by
 * {@linkcode parseTakeOver}.
 */
export function formatTakeOver(name: string): string {
  return formatError(`${name} logged in from elsewhere with its password`);
}

const TAKE_OVER = /^\* error: ([A-Za-z0-9_-]{1,32}) logged in from elsewhere with its password$/;

/** The name a take-over notice ({@linkcode formatTakeOver}) is for, if the line is one. */
export function parseTakeOver(line: string): string | undefined {
  return TAKE_OVER.exec(line)?.[1];
}

/** What a member is told after `/quit`, before the server closes its connection. */
export const GOODBYE = "* Goodbye!";

/** The newcomer's welcome, after the room list and the history. */
export function formatWelcome(name: string, online: number): string {
  const people = online === 1 ? "1 user" : `${online} users`;
  return formatSystemLine(`Welcome, ${name}! ${people} online; /help lists the commands`);
}

/** The limits a client must keep to for its lines to be relayed, as the server states them. */
export interface ClientLimits {
  /** Longest line in bytes, without its line end. */
  maxLineBytes: number;
  /** Lines that may be sent at once, and then per second on average; no `floodRate` means none. */
  floodBurst?: number;
  floodRate?: number;
}

const LIMITS_LINE =
  /^Limits: lines of up to (\d+) bytes(?:, (\d+) at once, then (\d+(?:\.\d+)?) a second)?$/;

/**
 * The line that tells a newcomer the limits it must keep to, sent just before the welcome, so that
 * a client can pace a long paste instead of being cut off for flooding:
 * `* Limits: lines of up to 4096 bytes, 10 at once, then 5 a second`.
 */
export function formatLimits(limits: ClientLimits): string {
  const flood = limits.floodRate
    ? `, ${limits.floodBurst ?? 1} at once, then ${limits.floodRate} a second`
    : "";
  return formatSystemLine(`Limits: lines of up to ${limits.maxLineBytes} bytes${flood}`);
}

/** The notice everyone gets when a member changes its name. */
export function formatRename(oldName: string, newName: string): string {
  return formatSystemLine(`${oldName} is now known as ${newName}`);
}

/**
 * An action (`/me waves` from Emil): `* [Emil] waves`. The brackets keep it apart from every server
 * notice, none of which starts with `* [`, so `/me has left the room` cannot pass for one.
 */
export function formatAction(name: string, text: string): string {
  return formatSystemLine(`[${name}] ${text}`);
}

/** A private message as its recipient sees it. */
export function formatPrivateFrom(name: string, text: string): string {
  return formatSystemLine(`private from ${name}: ${text}`);
}

/** A private message as its sender sees it, confirmed. */
export function formatPrivateTo(name: string, text: string): string {
  return formatSystemLine(`private to ${name}: ${text}`);
}

/** A line replayed from the room's history, with the UTC time it was said. */
export function formatHistory(time: Date, line: string): string {
  return formatSystemLine(`history ${time.toISOString().slice(0, 19)}Z ${line}`);
}

/** The notice the others get when a member leaves with `/quit REASON`. */
export function formatQuit(name: string, reason: string): string {
  return formatSystemLine(`${name} has left the room: ${reason}`);
}

/** `/help`'s answer, one line per command. */
export const HELP_LINES: readonly string[] = [
  "/who              who is online",
  "/nick NEW         change your name",
  "/me TEXT          an action, shown as * [NAME] TEXT",
  "/msg NAME TEXT    a private message to NAME only",
  "/quit [REASON]    leave, telling the others why",
  "/register         protect your name with a password (asked on the next line)",
  "/password         change your name's password",
  "/unregister       give up your name's password",
  "/topic            the room's topic",
  "/ops              the operators online",
  "//TEXT            send TEXT that starts with /",
  "/help             this list",
].map(formatSystemLine);

/** A line a member sent, read as a command; a line without a leading `/` is `say`. */
export type Command =
  | { name: "say"; text: string }
  | { name: "help" }
  | { name: "who" }
  | { name: "nick"; newName: string }
  | { name: "me"; text: string }
  | { name: "msg"; to: string; text: string }
  | { name: "quit"; reason: string }
  | { name: "register"; password?: string }
  | { name: "password" }
  | { name: "unregister" }
  | ModerationCommand;

const COMMAND_USAGE: Record<string, string> = {
  help: "/help",
  who: "/who",
  nick: "/nick NEW",
  me: "/me TEXT",
  msg: "/msg NAME TEXT",
  quit: "/quit [REASON]",
  register: "/register [PASSWORD]",
  password: "/password",
  unregister: "/unregister",
};

/**
 * Reads a (cleaned) line as a command: `/name args`, or text to say; `//text` says `/text`.
 * Throws a {@linkcode ProtocolError} with a hint for an unknown command or bad arguments.
 */
export function parseCommand(line: string): Command {
  if (!line.startsWith("/")) return { name: "say", text: line };
  if (line.startsWith("//")) return { name: "say", text: line.slice(1) };
  const space = line.indexOf(" ");
  const word = (space === -1 ? line.slice(1) : line.slice(1, space)).toLowerCase();
  const args = space === -1 ? "" : line.slice(space + 1).trim();
  const usage = () => new ProtocolError(`Usage: ${COMMAND_USAGE[word]}`);
  switch (word) {
    case "help":
    case "who":
      if (args !== "") throw usage();
      return { name: word };
    case "nick":
      if (args === "") throw usage();
      return { name: "nick", newName: parseName(args) }; // a space in it: the name rule says why

    case "me":
      if (args === "") throw usage();
      return { name: "me", text: args };
    case "msg": {
      const gap = args.indexOf(" ");
      const text = gap === -1 ? "" : args.slice(gap + 1).trim();
      if (text === "") throw usage();
      return { name: "msg", to: args.slice(0, gap), text };
    }
    case "quit":
      return { name: "quit", reason: args };
    case "register":
      return args === "" ? { name: "register" } : { name: "register", password: args };
    case "password":
    case "unregister":
      if (args !== "") throw usage();
      return { name: word };
    default: {
      const command = parseModerationCommand(word, args);
      if (command) return command;
      throw new ProtocolError(`Unknown command ${quote(`/${word}`)}: /help lists the commands`);
    }
  }
}

/** The command a typed line is, or `undefined` when it is malformed (the server will say why). */
export function parseCommandQuietly(line: string): Command | undefined {
  try {
    return parseCommand(line);
  } catch {
    return undefined;
  }
}

/**
 * On rejoining, the server replays its history, most of which a client has shown already. Given
 * the chat lines seen before (`seen`, oldest first, as the history has them) and the replayed ones,
 * returns the index of the first replayed line that is new: the replay after the longest run that
 * ends where `seen` ends. History is the room's latest lines, so what follows is new.
 */
export function firstNewLine(seen: readonly string[], replayed: readonly string[]): number {
  for (let end = replayed.length; end > 0; end--) {
    const length = Math.min(end, seen.length);
    if (length === 0) break;
    let isMatch = true;
    for (let k = 1; k <= length && isMatch; k++) isMatch = replayed[end - k] === seen.at(-k);
    if (isMatch) return end;
  }
  return 0;
}

/**
 * The wait before retry `attempt` (0, 1, ...): doubling from `firstMs` up to `mostMs`, times a
 * random factor from `jitter`'s low to its high, so that many who retry together spread out.
 */
export function backoffDelay(
  attempt: number,
  options: { firstMs: number; mostMs: number; jitter: readonly [number, number] },
  random: number = Math.random(),
): number {
  const [low, high] = options.jitter;
  return Math.min(options.mostMs, options.firstMs * 2 ** attempt) * (low + random * (high - low));
}

/** A line as the client sees it: said by a user, or from the server in one of its forms. */
export type ServerLine =
  | { kind: "user"; name: string; text: string }
  | { kind: "action"; name: string; text: string }
  | { kind: "private"; direction: "from" | "to"; name: string; text: string }
  | { kind: "rename"; oldName: string; newName: string }
  /** The room list; `names` bare, `operators` those of them marked `@`. */
  | { kind: "room"; names: string[]; operators: string[]; isContinued: boolean }
  | { kind: "join"; name: string; text: string }
  | { kind: "leave"; name: string; text: string }
  | { kind: "who"; names: string[]; operators: string[]; isContinued: boolean; text: string }
  | { kind: "limits"; limits: ClientLimits }
  | { kind: "history"; time: Date; line: ServerLine }
  | { kind: "error"; text: string }
  | { kind: "system"; text: string }
  | ModerationLine;

const NAME = "([A-Za-z0-9_-]{1,32})";
const USER_LINE = new RegExp(`^\\[${NAME}\\] (.*)$`, "s");
const PRIVATE_LINE = new RegExp(`^private (from|to) ${NAME}: (.*)$`, "s");
const RENAME_LINE = new RegExp(`^${NAME} is now known as ${NAME}$`);
const HISTORY_LINE = /^history (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (.*)$/s;
const JOIN_LINE = new RegExp(`^${NAME} has entered the room$`);
const LEAVE_LINE = new RegExp(`^${NAME} has left the room(?:$|: | \\()`);
const WHO_LINE = new RegExp(`^(?:\\d+ online:|${WHO_MORE})(?: (.*))?$`);

/** Parses a line the server sent; `undefined` when it follows none of the forms. */
export function parseServerLine(line: string): ServerLine | undefined {
  const user = USER_LINE.exec(line);
  if (user) return { kind: "user", name: user[1]!, text: user[2]! };
  if (!line.startsWith("* ")) return undefined;
  const text = line.slice(2);
  const action = USER_LINE.exec(text);
  if (action) return { kind: "action", name: action[1]!, text: action[2]! };
  const message = PRIVATE_LINE.exec(text);
  if (message) {
    return {
      kind: "private",
      direction: message[1] as "from" | "to",
      name: message[2]!,
      text: message[3]!,
    };
  }
  const rename = RENAME_LINE.exec(text);
  if (rename) return { kind: "rename", oldName: rename[1]!, newName: rename[2]! };
  const history = HISTORY_LINE.exec(text);
  const inner = history && parseServerLine(history[2]!);
  if (inner) return { kind: "history", time: new Date(history[1]!), line: inner };
  const moderation = parseModerationLine(text);
  if (moderation) return moderation;
  if (text.startsWith("error: ")) return { kind: "error", text: text.slice("error: ".length) };
  for (const [prefix, isContinued] of [[ROOM_LIST, false], [ROOM_LIST_MORE, true]] as const) {
    if (!text.startsWith(prefix)) continue;
    const names = text.slice(prefix.length).trim();
    return { kind: "room", ...unmarkNames(names === "" ? [] : names.split(", ")), isContinued };
  }
  const limits = LIMITS_LINE.exec(text);
  if (limits) {
    const [, maxLineBytes, floodBurst, floodRate] = limits;
    return {
      kind: "limits",
      limits: {
        maxLineBytes: Number(maxLineBytes),
        ...(floodRate ? { floodBurst: Number(floodBurst), floodRate: Number(floodRate) } : {}),
      },
    };
  }
  const join = JOIN_LINE.exec(text);
  if (join) return { kind: "join", name: join[1]!, text };
  const leave = LEAVE_LINE.exec(text);
  if (leave) return { kind: "leave", name: leave[1]!, text };
  const who = WHO_LINE.exec(text);
  if (who) {
    const marked = who[1] ? who[1].split(", ") : [];
    return { kind: "who", ...unmarkNames(marked), isContinued: text.startsWith(WHO_MORE), text };
  }
  return { kind: "system", text };
}

/**
 * Encodes one line for the wire, with its LF, into a buffer of its own: for bytes that are kept
 * (history, the room list), since a line cut from a shared slab keeps the whole slab alive.
 */
export function encodeKeptLine(line: string): Uint8Array {
  return encoder.encode(`${line}\n`);
}

/** Size of the slabs that encoded lines are cut from. */
const SLAB_BYTES = 64 * 1024;
let slab = new Uint8Array(SLAB_BYTES);
let slabUsed = 0;

/**
 * Encodes one line for the wire, with its LF. Lines are cut from a shared slab rather than each
 * getting a buffer of its own, and ASCII is copied without a call into the runtime: a busy server
 * encodes hundreds of thousands of lines a second, and `TextEncoder.encode` was a fifth of its time.
 * A line's bytes are never written again once returned.
 */
export function encodeLine(line: string): Uint8Array {
  const most = line.length * 3 + 1; // UTF-8 takes at most 3 bytes per UTF-16 unit
  if (most > SLAB_BYTES / 16) return encoder.encode(`${line}\n`);
  if (slabUsed + most > SLAB_BYTES) {
    slab = new Uint8Array(SLAB_BYTES);
    slabUsed = 0;
  }
  const start = slabUsed;
  let at = start;
  let i = 0;
  for (; i < line.length; i++) {
    const code = line.charCodeAt(i);
    if (code >= 0x80) break;
    slab[at++] = code;
  }
  if (i < line.length) at += encoder.encodeInto(line.slice(i), slab.subarray(at)).written;
  slab[at++] = LF;
  slabUsed = at;
  return slab.subarray(start, at);
}

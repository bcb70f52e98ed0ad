/**
 * The IRC door's language, with no I/O: IRC messages parsed and formatted (RFC 1459 framing as
 * modern clients speak it, https://modern.ircdocs.horse), and the room's lines told as IRC messages.
 * The one place that maps the room to IRC: what a room line becomes, and the welcome numerics.
 */
import { hasRegisteredNames, MAX_NAME_LENGTH, nameKey, utf8Length } from "../protocol.ts";

/** The server's name in numerics and notices, and the host of every member's mask. */
export const SERVER_NAME = "chat";
/** The channel by default: the room. */
export const DEFAULT_CHANNEL = "#chat";
/** Longest IRC line, its CRLF included (RFC 1459); what clients are told as LINELEN. */
export const MAX_IRC_LINE_BYTES = 512;
/** Longest tags part a client may send before the message (IRCv3 message-tags). */
export const MAX_TAG_BYTES = 8191;
/** Longest channel name `--irc-channel` takes, told as CHANNELLEN. */
export const MAX_CHANNEL_LENGTH = 50;
/** Parameters a message may have (RFC 1459: 15). */
const MAX_PARAMS = 15;

/** One IRC message: tags (unparsed), the source, the command (upper case) and its parameters. */
export interface IrcMessage {
  tags?: string;
  source?: string;
  command: string;
  params: string[];
}

/** Why a line from a client is not a message it may send. */
export type IrcLineProblem = "empty" | "malformed" | "too long";

const COMMAND = /^(?:[A-Za-z]+|\d{3})$/;

/**
 * Parses one line from a client, its line end removed: a message, or what is wrong with it. The
 * line is at most {@linkcode MAX_IRC_LINE_BYTES} with its CRLF, tags apart (IRCv3: 8191 more).
 */
export function parseIrcLine(line: string): IrcMessage | IrcLineProblem {
  let rest = line;
  let tags: string | undefined;
  if (rest.startsWith("@")) {
    const space = rest.indexOf(" ");
    if (space === -1) return "malformed";
    tags = rest.slice(1, space);
    if (utf8Length(tags) + 2 > MAX_TAG_BYTES) return "too long";
    rest = rest.slice(space + 1).replace(/^ +/, "");
  }
  if (utf8Length(rest) + 2 > MAX_IRC_LINE_BYTES) return "too long";
  if (rest.trim() === "") return tags === undefined ? "empty" : "malformed";
  let source: string | undefined;
  if (rest.startsWith(":")) {
    const space = rest.indexOf(" ");
    if (space === -1) return "malformed";
    source = rest.slice(1, space);
    rest = rest.slice(space + 1).replace(/^ +/, "");
  }
  const params: string[] = [];
  let command = "";
  while (rest !== "") {
    if (command !== "" && rest.startsWith(":")) {
      params.push(rest.slice(1));
      break;
    }
    const space = rest.indexOf(" ");
    const word = space === -1 ? rest : rest.slice(0, space);
    rest = space === -1 ? "" : rest.slice(space + 1).replace(/^ +/, "");
    if (command === "") command = word;
    else params.push(word);
  }
  if (!COMMAND.test(command) || params.length > MAX_PARAMS) return "malformed";
  return {
    ...(tags === undefined ? {} : { tags }),
    ...(source === undefined ? {} : { source }),
    command: command.toUpperCase(),
    params,
  };
}

/**
 * One IRC line without its CRLF: `:source COMMAND p1 p2 :last`. The last parameter gets its colon
 * when it needs one (empty, a space in it, or a leading colon), or always with `isTrailing` (text).
 */
export function formatIrc(
  source: string,
  command: string,
  params: readonly string[],
  isTrailing = false,
): string {
  let line = `:${source} ${command}`;
  for (let i = 0; i < params.length; i++) {
    const param = params[i]!;
    const isLast = i === params.length - 1;
    const needsColon = isTrailing || param === "" || param.includes(" ") || param.startsWith(":");
    line += isLast && needsColon ? ` :${param}` : ` ${param}`;
  }
  return line;
}

/** A member's mask, `nick!nick@chat`: every door's members look alike to an IRC client. */
export function mask(name: string): string {
  return `${name}!${name}@${SERVER_NAME}`;
}

/** A numeric reply to `target` (`*` before the client has a nick). */
export function numeric(code: string, target: string, params: readonly string[]): string {
  return formatIrc(SERVER_NAME, code, [target, ...params], params.length > 0);
}

/**
 * `head` followed by `text` cut into as many lines as IRC's limit needs: each line is `head` and a
 * piece of the text after ` :`, at most {@linkcode MAX_IRC_LINE_BYTES} with its CRLF. Pieces end at
 * a character's boundary, at the last space when there is one in the second half.
 */
export function splitTrailing(head: string, text: string): string[] {
  const room = MAX_IRC_LINE_BYTES - 2 - utf8Length(head) - 2;
  if (text.length <= room / 3 || utf8Length(text) <= room) return [`${head} :${text}`];
  const lines: string[] = [];
  let rest = text;
  while (rest !== "") {
    let end = 0;
    let bytes = 0;
    while (end < rest.length) {
      const code = rest.codePointAt(end)!;
      const size = code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
      if (bytes + size > room) break;
      bytes += size;
      end += code >= 0x10000 ? 2 : 1;
    }
    if (end < rest.length) {
      const space = rest.lastIndexOf(" ", end);
      if (space > end / 2) end = space + 1;
    }
    lines.push(`${head} :${rest.slice(0, end)}`);
    rest = rest.slice(end);
  }
  return lines;
}

/**
 * Names (separated by single spaces, `@` kept before an operator's) into 353 lines, as many names
 * a line as IRC's limit allows. A string, not an array: a newcomer's room list is turned into its
 * lines with a few strings, not one for each name (a storm of IRC joins made that garbage).
 */
export function namesReplies(me: string, channel: string, names: string): string[] {
  const head = formatIrc(SERVER_NAME, "353", [me, "=", channel]);
  // What a line's names may take: the rest of IRC's limit after the head, " :" and the CRLF.
  const room = MAX_IRC_LINE_BYTES - utf8Length(head) - 4;
  const lines: string[] = [];
  for (let start = 0; start < names.length;) {
    let end = names.length;
    // A character is a byte at least: past `room` characters, cut at the last space that fits.
    while (end - start > room || utf8Length(names.slice(start, end)) > room) {
      const space = names.lastIndexOf(" ", Math.min(end - 1, start + room));
      if (space <= start) break; // one name longer than a line: never, as names go
      end = space;
    }
    lines.push(`${head} :${names.slice(start, end)}`);
    start = end + 1;
  }
  return lines;
}

/** `WHO`'s answer: 352 for each name found (`@` marks an operator), then 315. */
export function whoReplies(
  me: string,
  channel: string,
  whoMask: string,
  found: readonly string[],
): string[] {
  const lines = found.map((name) => {
    const nick = bareName(name);
    const flags = name.startsWith("@") ? "H@" : "H";
    return numeric("352", me, [channel, nick, SERVER_NAME, SERVER_NAME, nick, flags, `0 ${nick}`]);
  });
  return [...lines, numeric("315", me, [whoMask, "End of WHO list"])];
}

/** `WHOIS`'s answer for `nick`: who it is if it was found online (401 if not), then 318. */
export function whoisReplies(
  me: string,
  channel: string,
  nick: string,
  found: readonly string[],
): string[] {
  const name = found[0];
  const end = numeric("318", me, [nick, "End of /WHOIS list"]);
  if (name === undefined) return [numeric("401", me, [nick, "No such nick/channel"]), end];
  const bare = bareName(name);
  const isOperator = name.startsWith("@");
  return [
    numeric("311", me, [bare, bare, SERVER_NAME, "*", bare]),
    numeric("319", me, [bare, `${isOperator ? "@" : ""}${channel}`]),
    numeric("312", me, [bare, SERVER_NAME, "The room"]),
    ...isOperator ? [numeric("313", me, [bare, "is an operator of the room"])] : [],
    end,
  ];
}

/** Longest `AUTHENTICATE` payload taken: one chunk (IRCv3 SASL splits longer ones at 400). */
const MAX_SASL_CHUNK = 400;

/**
 * A SASL PLAIN response (`AUTHENTICATE` with base64 of `authzid NUL authcid NUL password`): the
 * account and its password, or why it cannot be read. An authzid, if any, must be the account.
 */
export function parseSaslPlain(payload: string): { account: string; password: string } | string {
  if (payload.length >= MAX_SASL_CHUNK) return "SASL message too long";
  let text: string;
  try {
    const bytes = Uint8Array.from(atob(payload === "+" ? "" : payload), (c) => c.charCodeAt(0));
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return "SASL message is not base64 of UTF-8";
  }
  const parts = text.split("\0");
  if (parts.length !== 3 || parts[1] === "" || parts[2] === "") {
    return "SASL PLAIN needs a name and a password";
  }
  const [authzid, account, password] = parts as [string, string, string];
  if (authzid !== "" && authzid !== account) return "SASL PLAIN cannot log in as another name";
  return { account, password };
}

/**
 * `MODE`'s answer: the channel's modes (`+nt`), its ban list (empty: bans are the room's, with
 * /ban), 482 to a change; the client's own modes (`+i`); 502 for another's.
 */
export function modeReply(me: string, channel: string, target: string, modes?: string): string {
  if (nameKey(target) === nameKey(channel)) {
    if (modes === undefined) return numeric("324", me, [channel, "+nt"]);
    if (/^[+-]?b$/.test(modes)) return numeric("368", me, [channel, "End of channel ban list"]);
    return numeric("482", me, [channel, "You're not a channel operator"]);
  }
  if (nameKey(target) !== nameKey(me)) {
    return numeric("502", me, ["Can't change mode for other users"]);
  }
  return numeric("221", me, ["+i"]);
}

/** What a client is told it may rely on (RPL_ISUPPORT, 005). */
export function isupport(channel: string): string[] {
  return [
    `CHANTYPES=${channel[0]}`,
    `NICKLEN=${MAX_NAME_LENGTH}`,
    `CHANNELLEN=${MAX_CHANNEL_LENGTH}`,
    `LINELEN=${MAX_IRC_LINE_BYTES}`,
    "PREFIX=(o)@",
    "CASEMAPPING=ascii",
    "CHANMODES=b,,,nt",
    "NETWORK=chat",
  ];
}

/** The numerics of a client's registration (001 to 005, then the MOTD), before its JOIN. */
export function welcomeReplies(
  me: string,
  options: { channel: string; version: string; motd: readonly string[] },
): string[] {
  const reply = (code: string, ...params: string[]) => numeric(code, me, params);
  return [
    reply("001", `Welcome to the chat, ${me}: ${options.channel} is the room`),
    reply("002", `Your host is ${SERVER_NAME}, running chat ${options.version}`),
    reply("003", "This server speaks IRC to one room, shared with nc, the client and the page"),
    reply("004", SERVER_NAME, options.version, "i", "bnt"),
    reply("005", ...isupport(options.channel), "are supported by this server"),
    ...options.motd.length === 0 ? [reply("422", "MOTD File is missing")] : [
      reply("375", `- ${SERVER_NAME} Message of the day -`),
      ...options.motd.map((line) => reply("372", `- ${line}`)),
      reply("376", "End of /MOTD command"),
    ],
  ];
}

/** A room line, read for IRC: what it says, and who said it. */
export type RoomLine =
  | { kind: "user"; name: string; text: string }
  | { kind: "action"; name: string; text: string }
  | { kind: "private"; direction: "from" | "to"; name: string; text: string }
  | { kind: "join"; name: string }
  | { kind: "leave"; name: string; reason: string }
  | { kind: "rename"; oldName: string; newName: string }
  | { kind: "room"; names: string; isContinued: boolean }
  | { kind: "who"; count: number | undefined; names: string[] }
  | { kind: "history"; time: string; line: string }
  | { kind: "topic"; text: string | undefined; by?: string }
  | { kind: "prompt"; what: "server" | "name" | "login"; name?: string }
  | { kind: "welcome" }
  | { kind: "kick"; name: string; by: string; reason: string }
  | { kind: "ban"; names: string[]; by: string; comment: string; text: string }
  | { kind: "operator"; name: string; isOperator: boolean; by: string | undefined; text: string }
  | { kind: "error"; text: string }
  | { kind: "system"; text: string };

const NAME = "@?([A-Za-z0-9_-]{1,32})";
const PRIVATE = new RegExp(`^\\* private (from|to) ${NAME}: (.*)$`, "s");
const RENAME = new RegExp(`^\\* ${NAME} is now known as ${NAME}$`);
const JOIN = new RegExp(`^\\* ${NAME} has entered the room$`);
const LEAVE = new RegExp(`^\\* ${NAME} has left the room(?:: (.*)| \\((.*)\\))?$`, "s");
const HISTORY = /^\* history (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (.*)$/s;
const ROOM = /^\* The room (also )?contains:(?: (.*))?$/s;
const WHO = /^\* (?:(\d+) online|also online):(?: (.*))?$/s;
const LOGIN = new RegExp(`^\\* ${NAME} is registered: send its password$`);
const WELCOME = new RegExp(`^\\* Welcome, ${NAME}! `);
/* Moderation's lines (issue 27, notes/moderation.md): the topic and kicks. */
const TOPIC = /^\* Topic: (.*)$/s;
const TOPIC_SET = new RegExp(`^\\* ${NAME} set the topic: (.*)$`, "s");
const TOPIC_CLEARED = new RegExp(`^\\* ${NAME} cleared the topic$`);
const KICK = new RegExp(`^\\* ${NAME} was kicked by ${NAME}(?:: (.*))?$`, "s");
const BAN = new RegExp(
  `^\\* ([\\w-]+(?:(?:, | and )[\\w-]+)*) (?:was|were) banned by ${NAME}` +
    "((?: until \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC)?(?:: .*)?)$",
  "s",
);
const OPERATOR = new RegExp(
  `^\\* ${NAME} is (now|no longer) an operator \\(by (?:the server|${NAME})\\)$`,
);

/** Reads a line the room sent (without its LF) for the IRC door. */
export function readRoomLine(line: string): RoomLine {
  if (line.startsWith("[")) {
    const end = line.indexOf("] ");
    if (end > 1) return { kind: "user", name: line.slice(1, end), text: line.slice(end + 2) };
  }
  if (line.startsWith("* [")) {
    const end = line.indexOf("] ");
    if (end > 3) return { kind: "action", name: line.slice(3, end), text: line.slice(end + 2) };
  }
  if (line.startsWith("* error: ")) return { kind: "error", text: line.slice(9) };
  let match: RegExpExecArray | null;
  if ((match = JOIN.exec(line))) return { kind: "join", name: match[1]! };
  if ((match = LEAVE.exec(line))) {
    return { kind: "leave", name: match[1]!, reason: match[2] ?? match[3] ?? "" };
  }
  if ((match = RENAME.exec(line))) {
    return { kind: "rename", oldName: match[1]!, newName: match[2]! };
  }
  if ((match = PRIVATE.exec(line))) {
    const direction = match[1] as "from" | "to";
    return { kind: "private", direction, name: match[2]!, text: match[3]! };
  }
  if ((match = HISTORY.exec(line))) return { kind: "history", time: match[1]!, line: match[2]! };
  if ((match = ROOM.exec(line))) {
    // The names as one string, separated by spaces: as the 353 lines have them.
    const names = (match[2] ?? "").trim().replaceAll(", ", " ");
    return { kind: "room", names, isContinued: match[1] !== undefined };
  }
  if ((match = WHO.exec(line))) {
    const count = match[1] === undefined ? undefined : Number(match[1]);
    return { kind: "who", count, names: splitNames(match[2]) };
  }
  return readOtherLine(line);
}

/** The rarer lines: prompts, the welcome, the topic, kicks, and any other notice. */
function readOtherLine(line: string): RoomLine {
  let match: RegExpExecArray | null;
  if (line.startsWith("* Welcome to chat! This server is private")) {
    return { kind: "prompt", what: "server" };
  }
  // Either greeting (with registered names or without), or a private server's after its password.
  if (hasRegisteredNames(line) !== undefined || line === "* What shall I call you?") {
    return { kind: "prompt", what: "name" };
  }
  if ((match = LOGIN.exec(line))) return { kind: "prompt", what: "login", name: match[1]! };
  if (WELCOME.test(line)) return { kind: "welcome" };
  if ((match = TOPIC.exec(line))) return { kind: "topic", text: match[1]! };
  if (line === "* No topic is set") return { kind: "topic", text: undefined };
  if ((match = TOPIC_SET.exec(line))) return { kind: "topic", text: match[2]!, by: match[1]! };
  if ((match = TOPIC_CLEARED.exec(line))) return { kind: "topic", text: "", by: match[1]! };
  if ((match = KICK.exec(line))) {
    return { kind: "kick", name: match[1]!, by: match[2]!, reason: match[3] ?? "" };
  }
  const text = line.slice(2);
  if ((match = BAN.exec(line))) {
    // The KICK's comment: what the banned member was told (`Banned until ...: spam`).
    const [, names, by, term] = match as unknown as [string, string, string, string];
    return { kind: "ban", names: names.split(/, | and /), by, comment: `Banned${term}`, text };
  }
  if ((match = OPERATOR.exec(line))) {
    const isOperator = match[2] === "now";
    return { kind: "operator", name: match[1]!, isOperator, by: match[3], text };
  }
  return { kind: "system", text: line.startsWith("* ") ? line.slice(2) : line };
}

function splitNames(list: string | undefined): string[] {
  return list === undefined || list.trim() === "" ? [] : list.trim().split(", ");
}

/** A name without the `@` that marks an operator. */
export function bareName(name: string): string {
  return name.startsWith("@") ? name.slice(1) : name;
}

/**
 * The IRC lines for a room line that means the same to every IRC member (what others say, joins,
 * leaves, renames, the topic, kicks, notices), or `undefined` for one that depends on the
 * member's own state (lists, errors, prompts, private messages: the connection handles those).
 */
export function roomLineToIrc(
  line: RoomLine,
  channel: string,
  isOperator?: (name: string) => boolean,
): string[] | undefined {
  switch (line.kind) {
    case "user":
      return splitTrailing(`:${mask(line.name)} PRIVMSG ${channel}`, line.text);
    case "action":
      return splitTrailing(`:${mask(line.name)} PRIVMSG ${channel}`, line.text)
        .map((piece) => piece.replace(" :", " :\x01ACTION ") + "\x01");
    case "join": {
      const join = formatIrc(mask(line.name), "JOIN", [channel]);
      // An operator's JOIN comes with its +o, as a server gives a channel's operator its mode.
      if (!isOperator?.(line.name)) return [join];
      return [join, formatIrc(SERVER_NAME, "MODE", [channel, "+o", line.name])];
    }
    case "leave":
      return [formatIrc(mask(line.name), "QUIT", [line.reason || "Left the room"], true)];
    case "rename":
      return [formatIrc(mask(line.oldName), "NICK", [line.newName])];
    case "kick":
      return [formatIrc(mask(line.by), "KICK", [channel, line.name, line.reason || line.by], true)];
    case "ban":
      // A ban puts its members out: a KICK each, as an IRC server's ban and kick, after its notice.
      return [
        ...splitTrailing(`:${SERVER_NAME} NOTICE ${channel}`, line.text),
        ...line.names.map((name) =>
          formatIrc(mask(line.by), "KICK", [channel, name, line.comment], true)
        ),
      ];
    case "operator":
      return [
        ...splitTrailing(`:${SERVER_NAME} NOTICE ${channel}`, line.text),
        formatIrc(line.by ? mask(line.by) : SERVER_NAME, "MODE", [
          channel,
          line.isOperator ? "+o" : "-o",
          line.name,
        ]),
      ];
    case "topic":
      return line.by === undefined
        ? undefined
        : [formatIrc(mask(line.by), "TOPIC", [channel, line.text ?? ""], true)];
    case "system":
      return splitTrailing(`:${SERVER_NAME} NOTICE ${channel}`, line.text);
    default:
      return undefined;
  }
}

/**
 * `PRIVMSG`/`NOTICE` from `me` to the channel (a line of the room) or to nicks (private
 * messages): the room's lines, and the numerics of what cannot be sent.
 */
export function messageInput(
  me: string,
  channel: string,
  message: { command: string; targets: string | undefined; text: string | undefined },
): { input: string; replies: string[] } {
  const { command, targets, text } = message;
  const isNotice = command === "NOTICE"; // never answered with an error (RFC 1459)
  const refused = (code: string, ...params: string[]) => ({
    input: "",
    replies: isNotice ? [] : [numeric(code, me, params)],
  });
  if (targets === undefined) return refused("411", "No recipient given");
  if (text === undefined || text === "") return refused("412", "No text to send");
  const act = { input: "", replies: [] as string[] };
  for (const target of targets.split(",")) {
    const isCtcp = text.startsWith("\x01");
    const isAction = text.startsWith("\x01ACTION");
    if (isCtcp && !isAction) continue; // VERSION, PING...: the room's other doors have no CTCP
    if (nameKey(target) === nameKey(channel)) {
      const line = sayLine(text);
      if (line !== "") act.input += `${line}\n`;
    } else if (/^[#&+!]/.test(target)) {
      const why = `No such channel: this server has ${channel}`;
      if (!isNotice) act.replies.push(numeric("403", me, [target, why]));
    } else {
      const said = isAction ? `* ${actionText(text)}` : text;
      act.input += `/msg ${target} ${said}\n`;
    }
  }
  return act;
}

/** A history line replayed at join, as a notice to the channel: `[12:00] <bob> hi`. */
export function historyToIrc(line: { time: string; line: string }, channel: string): string[] {
  const inner = readRoomLine(line.line);
  const time = line.time.slice(11, 16);
  const text = inner.kind === "user"
    ? `<${inner.name}> ${inner.text}`
    : inner.kind === "action"
    ? `* ${inner.name} ${inner.text}`
    : line.line;
  return splitTrailing(`:${SERVER_NAME} NOTICE ${channel}`, `[${time} UTC] ${text}`);
}

/**
 * A line an IRC member says in the channel, as the room's protocol has it: a CTCP ACTION is `/me`,
 * and text that starts with `/` is escaped (`//`) so that it is said, not run.
 */
export function sayLine(text: string): string {
  if (text.startsWith("\x01ACTION")) {
    const action = actionText(text);
    return action === "" ? "" : `/me ${action}`;
  }
  return text.startsWith("/") ? `/${text}` : text;
}

/** The text of a CTCP ACTION (`\x01ACTION waves\x01`): `waves`. */
export function actionText(text: string): string {
  const end = text.endsWith("\x01") ? text.length - 1 : text.length;
  return text.slice(8, end).trim();
}

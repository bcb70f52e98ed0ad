/// <reference lib="dom" />
/**
 * One line of the conversation as an element, text only: nothing here writes HTML from a string.
 */
import {
  HELP_LINES,
  nameColorSlot,
  nameKey,
  OPERATOR_HELP_LINES,
  type ServerLine,
} from "../protocol.ts";
import { mentions } from "./mentions.ts";

const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
/** A time on another day than today shows its date too; every time's tooltip has the full date. */
const dayClock = new Intl.DateTimeFormat(undefined, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});
const fullDate = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "short" });

export interface ShowOptions {
  raw: string;
  /** Our name: a line that says it is a mention, a name tag of it is marked as ours. */
  own: string;
  isOwn?: boolean;
  isLocal?: boolean;
  /** A row of a table the line before began (`/help`'s): no time stamp of its own. */
  isContinued?: boolean;
}

/** `/help`'s rows, as the server words them: shown as a table, not as lines said. */
const HELP_ROWS = new Set([...HELP_LINES, ...OPERATOR_HELP_LINES]);

/** Whether a line from the server is a row of `/help`'s table. */
export function isHelpRow(raw: string): boolean {
  return HELP_ROWS.has(raw);
}

/** The text of an error line (`* error: TEXT`, a kick and a ban included), or `""`. */
export function refusalOf(raw: string, line: ServerLine): string {
  if (line.kind === "error") return line.text;
  return line.kind === "kicked" || line.kind === "banned" ? raw.slice("* error: ".length) : "";
}

/** Someone else's line that says `options.own`, our name, or a private message to us. */
export function isMention(
  line: ServerLine,
  options: ShowOptions,
): line is ServerLine & { kind: "user" | "action" | "private"; name: string; text: string } {
  if (line.kind === "private") return line.direction === "from";
  return (line.kind === "user" || line.kind === "action") && !options.isOwn &&
    nameKey(line.name) !== nameKey(options.own) && mentions(line.text, options.own);
}

export function render(line: ServerLine, options: ShowOptions, time = new Date()): HTMLLIElement {
  const item = document.createElement("li");
  // Joins, leaves and /who answers are server notices like any other to look at.
  const isNotice = line.kind === "join" || line.kind === "leave" || line.kind === "who";
  item.className = `line ${isNotice ? "system" : line.kind}`;
  if (options.isOwn) item.classList.add("own");
  if (isMention(line, options)) item.classList.add("mention");
  if (line.kind === "history") {
    const inner = render(line.line, { raw: "", own: options.own }, line.time);
    inner.classList.add("history");
    inner.prepend(span("tag", "earlier"));
    return inner;
  }
  if (line.kind === "system" && isHelpRow(options.raw)) {
    return helpRow(item, line.text, options.isContinued ? undefined : timeStamp(time));
  }
  item.append(timeStamp(time));
  switch (line.kind) {
    case "user":
      item.append(nameTag(line.name, options.own), span("text", line.text));
      break;
    case "action":
      item.append(span("mark", "*"), nameTag(line.name, options.own), span("text", line.text));
      break;
    case "private": {
      const [from, to] = line.direction === "from" ? [line.name, "you"] : ["you", line.name];
      item.append(span("tag", "private"));
      item.append(
        from === "you" ? span("you", "you") : nameTag(from, options.own),
        span("arrow", "→"),
      );
      item.append(
        to === "you" ? span("you", "you") : nameTag(to, options.own),
        span("text", line.text),
      );
      break;
    }
    case "rename":
      item.append(span("text", `${line.oldName} is now known as ${line.newName}`));
      break;
    case "room": {
      // An operator is marked as the server marks it in /who: `@alice`.
      const names = line.names.map((name) => line.operators.includes(name) ? `@${name}` : name)
        .join(", ");
      const text = line.isContinued
        ? `Also in the room: ${names}`
        : names === ""
        ? "Nobody else is here yet"
        : `In the room: ${names}`;
      item.append(span("text", text));
      break;
    }
    case "error":
      item.append(span("mark", "!"), span("text", line.text));
      break;
    case "kicked":
    case "banned":
      item.append(span("mark", "!"), span("text", refusalOf(options.raw, line)));
      break;
    case "topic":
      item.append(span("text", options.raw.slice(2))); // as the server words it
      break;
    case "join":
    case "leave":
    case "who":
    case "system":
      item.append(span("text", line.text));
      break;
  }
  return item;
}

/** A time stamp: the time, its date too when not today, and the full date in its tooltip. */
function timeStamp(time: Date): HTMLTimeElement {
  const stamp = document.createElement("time");
  stamp.dateTime = time.toISOString();
  stamp.textContent = (time.toDateString() === new Date().toDateString() ? clock : dayClock)
    .format(time);
  stamp.title = fullDate.format(time);
  return stamp;
}

/**
 * A row of `/help`'s table: the command and what it does in two columns; only the first row has
 * a time stamp, the others an empty cell in its place, so that the columns line up.
 */
function helpRow(item: HTMLLIElement, text: string, stamp?: HTMLTimeElement): HTMLLIElement {
  item.classList.add("help");
  item.append(stamp ?? span("gap", ""));
  const cells = /^(\S.*?) {2,}(.*)$/.exec(text);
  if (cells) item.append(span("command", cells[1]!), span("text", cells[2]!));
  else item.append(span("heading", text)); // "Operator commands:"
  return item;
}

export function span(className: string, text: string): HTMLSpanElement {
  const element = document.createElement("span");
  element.className = className;
  element.textContent = text;
  return element;
}

/** A name in its color (the terminal client's hue), marked when it is yours. */
export function nameTag(name: string, own: string): HTMLSpanElement {
  const tag = span(`name c${nameColorSlot(name)}`, name);
  if (nameKey(name) === nameKey(own)) tag.classList.add("self");
  return tag;
}

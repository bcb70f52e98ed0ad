/**
 * The terminal client's screens for people: lines with a time stamp, a mark and a color per name,
 * wrapped under their text column; at an interactive terminal, the line being typed and the lines
 * waiting to be sent stay at the bottom, intact, while the room's lines arrive above them.
 */
import wrapAnsi from "wrap-ansi";
import { type Key, KeyDecoder, layoutInput, LineEditor, textWidth } from "./line_editor.ts";
import {
  formatUntil,
  HELP_LINES,
  nameKey,
  OPERATOR_HELP_LINES,
  parseCommandQuietly,
  type ServerLine,
} from "../protocol.ts";
import { RoomNames } from "./room_names.ts";
import { BELL, Mentions } from "./mentions.ts";
import { NoticeFold } from "./fold.ts";
import { InputQueue } from "./input_queue.ts";
import { dayKey, dayLine } from "./day_line.ts";
import { nameColor } from "./name_colors.ts";

export { NAME_COLORS, nameColor } from "./name_colors.ts";

/** Where the session's lines appear and where the user's lines come from. */
export interface Screen {
  /** Shows a line from the server (parsed when it follows a known form). */
  show(line: string, parsed: ServerLine | undefined): void;
  /** Shows a note from the client itself: an error, news about the connection, or a separator. */
  note(text: string, kind: NoteKind): void;
  /**
   * The user's lines not sent yet, oldest first, and what they wait for; `isOffline` while the
   * client is not in the room (the reason is worth showing even with no line waiting).
   */
  setWaiting(lines: readonly string[], reason: string, isOffline: boolean): void;
  /** Shows a line of the user's that has just been sent, as the room sees it. */
  said(line: string): void;
  /** Tells the screen the user's current name. */
  setName(name: string): void;
  /** The user's lines, until the user leaves (end of input, `/quit` is the session's). */
  input(): AsyncIterable<string>;
  /** Restores the terminal; the session's last words come after this, on a line of their own. */
  close(): void;
  /**
   * Asks for a secret (a password) on a line of its own, without showing it; `undefined` if the
   * user gave up. Only a screen that can hide what is typed has it.
   */
  askSecret?(label: string): Promise<string | undefined>;
}

/** What a note is: a problem, news (reconnecting, reconnected), or a separator line. */
export type NoteKind = "error" | "info" | "separator";

/** Escape sequences, written by hand: `node:util` styleText has the 16 named colors only. */
const ESC = "\x1b[";
const segmenter = new Intl.Segmenter();
const BRACKETED_PASTE_ON = `${ESC}?2004h`;
const BRACKETED_PASTE_OFF = `${ESC}?2004l`;
const HIDE_CURSOR = `${ESC}?25l`;
const SHOW_CURSOR = `${ESC}?25h`;
const ERASE_ROW = `${ESC}2K`;
const DOWN = `${ESC}B`;
/**
 * Terminals disagree on the width of some emoji sequences (tmux counts a skin-tone modifier as two
 * more columns; grapheme-aware terminals do not). With the terminal's own wrapping off while the
 * live area is drawn, a row we measured too short is clipped at the edge instead of becoming two
 * rows, so the live area always takes the rows we counted.
 */
const WRAP_OFF = `${ESC}?7l`;
const WRAP_ON = `${ESC}?7h`;

/** SGR codes for the styles used: [on, off]. */
const STYLES = {
  bold: ["1", "22"],
  dim: ["2", "22"],
  gray: ["90", "39"],
  red: ["31", "39"],
  magenta: ["35", "39"],
  inverse: ["7", "27"],
} as const;

type Style = keyof typeof STYLES | number;

/** Columns before a line's text: `HH:MM M `. Wrapped lines continue under the text. */
const TEXT_COLUMN = 8;

/**
 * How lines look: time stamps, marks, colors (or none), and the user's own name in bold. A stamp
 * shows the time only; a row with the date comes before the first line of each day but today's,
 * and before a live line past midnight.
 */
export class LineStyle {
  readonly color: boolean;
  /** The time now: the system's, or one a test gives. */
  readonly clock: () => Date;
  name = "";
  /** The day of the last line stamped, once there is one. */
  #day: string | undefined;
  /** Whether the last line stamped was live (its time is the clock's), not from the history. */
  #isLive = false;

  constructor(options: { color: boolean; clock?: () => Date }) {
    this.color = options.color;
    this.clock = options.clock ?? (() => new Date());
  }

  /** When a line was said: the time the server gives for history, else now, as it arrives. */
  stamp(line: ServerLine | undefined): Date {
    this.#isLive = line?.kind !== "history";
    return line?.kind === "history" ? line.time : this.clock();
  }

  /** Wraps `text` in a style, or leaves it alone without color. */
  style(style: Style, text: string): string {
    if (!this.color || text === "") return text;
    const [on, off] = typeof style === "number" ? [`38;5;${style}`, "39"] : STYLES[style];
    return `${ESC}${on}m${text}${ESC}${off}m`;
  }

  /** A name in its color, in bold when it is the user's own. */
  nameText(name: string, isOwn = nameKey(name) === nameKey(this.name)): string {
    const colored = this.style(nameColor(name), name);
    return isOwn ? this.style("bold", colored) : colored;
  }

  /** The mark and text of a server line: the mark tells the kinds apart without color. */
  render(line: ServerLine, isHistory = false): [mark: string, body: string] {
    const mark = (kind: string) => isHistory ? "|" : kind;
    switch (line.kind) {
      case "user":
        return [mark(" "), `[${this.nameText(line.name)}] ${line.text}`];
      case "action":
        return [mark("*"), `${this.nameText(line.name)} ${line.text}`];
      case "private": {
        const [from, to] = line.direction === "from" ? [line.name, "you"] : ["you", line.name];
        return ["~", this.style("magenta", `[${from} -> ${to}] ${line.text}`)];
      }
      case "history": {
        const [, body] = this.render(line.line, true);
        return ["|", this.style("dim", body)];
      }
      case "error":
        return ["!", this.style("red", line.text)];
      case "rename":
        return ["-", this.style("gray", `${line.oldName} is now known as ${line.newName}`)];
      case "room": {
        // An operator is marked as the server marks it in /who: `@alice`.
        const operators = new Set(line.operators);
        const names = line.names
          .map((name) => `${operators.has(name) ? "@" : ""}${this.nameText(name)}`)
          .join(", ");
        const text = line.isContinued
          ? `Also in the room: ${names}`
          : names
          ? `In the room: ${names}`
          : "Nobody else is here yet";
        return ["-", this.style("gray", text)];
      }
      case "limits":
        return ["-", ""];
      case "topic":
        return [mark("#"), this.style("bold", topicText(line))];
      case "kicked":
        return ["!", this.style("red", `You were kicked by ${line.by}${reasonText(line)}`)];
      case "banned": {
        const until = line.until ? ` until ${formatUntil(line.until.getTime())}` : "";
        return ["!", this.style("red", `You are banned${until}${reasonText(line)}`)];
      }
      case "join":
      case "leave":
      case "who":
      case "system":
        return ["-", this.style("gray", line.text)];
    }
  }

  /**
   * `HH:MM M body`, wrapped at word boundaries to `width` with continuation rows indented; after a
   * row with the date when `time` is on another day than the line before (or, for the first, than
   * `now`).
   */
  rows(
    time: Date | undefined,
    mark: string,
    body: string,
    width: number,
    now = this.clock(),
  ): string[] {
    const clock = time
      ? `${String(time.getHours()).padStart(2, "0")}:${String(time.getMinutes()).padStart(2, "0")}`
      : "     ";
    const dated = time ? this.#dateRows(time, now, width) : [];
    const prefix = `${this.style("gray", clock)} ${mark} `;
    if (width < TEXT_COLUMN + 12) {
      return [...dated, ...wrapAnsi(prefix + body, width, WRAP).split("\n")];
    }
    const rows = wrapAnsi(body, width - TEXT_COLUMN, WRAP).split("\n");
    return [...dated, ...rows.map((row, i) => (i === 0 ? prefix : " ".repeat(TEXT_COLUMN)) + row)];
  }

  /** The row saying the date of `time`, when its day is not the day of the line before. */
  #dateRows(time: Date, now: Date, width: number): string[] {
    const day = dayKey(time);
    const previous = this.#day ?? dayKey(now);
    this.#day = day;
    if (day === previous) return [];
    const line = dayLine(time, now, { isLive: this.#isLive });
    return this.rows(undefined, " ", this.style("gray", line), width);
  }

  /** The user's own line as the room sees it, or nothing for a command (the server answers). */
  said(line: string): [mark: string, body: string] | undefined {
    const command = parseCommandQuietly(line);
    if (command?.name === "say") {
      return [">", `[${this.nameText(this.name, true)}] ${command.text}`];
    }
    if (command?.name === "me") return ["*", `${this.nameText(this.name, true)} ${command.text}`];
  }
}

const WRAP = { hard: true, trim: true } as const;

/** A topic line as the server words it: the topic, or who set or cleared it. */
function topicText(line: ServerLine & { kind: "topic" }): string {
  if (line.by === undefined) return `Topic: ${line.text}`;
  return line.text === ""
    ? `${line.by} cleared the topic`
    : `${line.by} set the topic: ${line.text}`;
}

/** `: REASON` after a kick or a ban, or nothing. */
function reasonText(line: { reason?: string }): string {
  return line.reason ? `: ${line.reason}` : "";
}

/** What `/help` shows: the server's commands as this client shows them, and its keys. */
export const CLIENT_HELP: readonly string[] = [
  ...HELP_LINES.map((line) =>
    line.slice(2).replace("shown as * [NAME] TEXT", "shown as * NAME TEXT")
  ),
  "/r TEXT           answer the last private message (as /msg NAME TEXT)",
  "/ignore NAME      hide NAME's lines for this session (on this client only)",
  "/unignore NAME    show NAME's lines again",
  "/ignored          the names you ignore",
  "Tab               complete a command after /, or a name (at the start of a line, after /msg)",
  "Up, Down          the lines you sent; Ctrl+R searches them",
  "Ctrl+C            clear the line; on an empty line, leave (like Ctrl+D)",
];

/** `/help` for an operator: the operator commands too, after the others and before the keys. */
export const OPERATOR_CLIENT_HELP: readonly string[] = [
  ...CLIENT_HELP.slice(0, HELP_LINES.length),
  ...OPERATOR_HELP_LINES.map((line) => line.slice(2)),
  ...CLIENT_HELP.slice(HELP_LINES.length),
];

/** The commands a help list names, as Tab completes them: `/who`, `/nick`, ... */
export function commandsOf(help: readonly string[]): string[] {
  // Each line's usage comes before two spaces; one may name two commands (`/op NAME, /deop NAME`).
  return help.flatMap((line) =>
    [...line.split("  ")[0]!.matchAll(/(?:^|, )(\/[a-z]+)/g)].map((match) => match[1]!)
  );
}

const COMMANDS = commandsOf(CLIENT_HELP);
const OPERATOR_COMMANDS = commandsOf(OPERATOR_CLIENT_HELP);

/** Reads stdin as lines (a pipe, a file, or a terminal in its own line mode). */
export async function* stdinLines(): AsyncIterable<string> {
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(64 * 1024);
  let text = "";
  while (true) {
    const count = await Deno.stdin.read(buffer);
    if (count === null) break;
    text += decoder.decode(buffer.subarray(0, count), { stream: true });
    const lines = text.split("\n");
    text = lines.pop()!;
    for (const line of lines) yield line.endsWith("\r") ? line.slice(0, -1) : line;
  }
  text += decoder.decode();
  if (text !== "") yield text;
}

/**
 * For a terminal that takes no escapes (TERM=dumb) or input that is not a terminal: each line
 * printed once, formatted, with colors only when `color` is set; input read line by line.
 */
export class LineScreen implements Screen {
  #style: LineStyle;
  #width: () => number;

  #isBellOn: boolean;
  #mentions = new Mentions();
  #fold = new NoticeFold((line, parsed) => this.#display(line, parsed));

  constructor(options: { color: boolean; width: () => number; bell: boolean }) {
    this.#style = new LineStyle(options);
    this.#width = options.width;
    this.#isBellOn = options.bell;
  }

  show(line: string, parsed: ServerLine | undefined): void {
    if (!this.#fold.take(line, parsed)) this.#display(line, parsed);
  }

  #display(line: string, parsed: ServerLine | undefined): void {
    if (parsed?.kind === "limits") return; // for pacing, not for people
    const [mark, body] = this.#style.render(parsed ?? { kind: "system", text: line });
    const isMention = this.#mentions.hear(parsed, this.#style.name);
    this.#print(
      this.#style.stamp(parsed),
      mark,
      isMention ? this.#style.style("inverse", body) : body,
    );
    if (isMention && this.#isBellOn) write(BELL);
  }

  note(text: string, kind: NoteKind): void {
    if (kind === "separator") return this.#print(undefined, "-", this.#style.style("gray", text));
    this.#print(
      this.#style.stamp(undefined),
      kind === "error" ? "!" : "-",
      this.#style.style(kind === "error" ? "red" : "gray", text),
    );
  }

  setWaiting(): void {}

  said(line: string): void {
    const said = this.#style.said(line);
    if (said) this.#print(this.#style.stamp(undefined), ...said);
  }

  setName(name: string): void {
    this.#style.name = name;
  }

  input(): AsyncIterable<string> {
    return stdinLines();
  }

  close(): void {
    this.#fold.flush();
  }

  #print(time: Date | undefined, mark: string, body: string): void {
    console.log(this.#style.rows(time, mark, body, this.#width()).join("\n"));
  }
}

const encoder = new TextEncoder();

/** The terminal's size; a terminal that says 0 (some serial consoles) is taken as 80 x 24. */
export function terminalSize(): { columns: number; rows: number } {
  const { columns, rows } = Deno.consoleSize();
  return { columns: columns || 80, rows: rows || 24 };
}

/** Writes all of `text` to the terminal before returning, so that every redraw is whole. */
function write(text: string): void {
  const bytes = encoder.encode(text);
  try {
    for (let offset = 0; offset < bytes.length;) {
      offset += Deno.stdout.writeSync(bytes.subarray(offset));
    }
  } catch {
    // The terminal is gone (hung up): nobody is there to see it, and SIGHUP ends the session.
  }
}

function up(rows: number): string {
  return rows > 0 ? `${ESC}${rows}A` : "";
}

function right(columns: number): string {
  return columns > 0 ? `${ESC}${columns}C` : "";
}

/** How long a lone ESC waits for the rest of an escape sequence before it counts as Escape. */
const ESCAPE_WAIT_MS = 50;

/** The signals that end the session as Ctrl+D does: the terminal is restored on the way out. */
const LEAVE_SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP"];

/**
 * An interactive terminal. Below the room's lines sits the live area: the lines waiting to be
 * sent (dimmed, with a count) and the line being typed, laid out in rows by us. Printing moves to
 * the top of the live area, clears to the end of the screen, writes the new lines and draws the
 * live area again, all in one write: no line is overwritten, and the live area never reaches the
 * scrollback. Input is raw (each key as it is typed), with bracketed paste.
 */
export class TerminalScreen implements Screen {
  #style: LineStyle;
  #editor: LineEditor;
  #decoder = new KeyDecoder();
  #input = new InputQueue();
  /** The others' names for Tab, and who is an operator (are we?). */
  #room = new RoomNames(() => this.#style.name);
  #waiting: readonly string[] = [];
  #waitingReason = "";
  #isOffline = false;
  /** Rows of new lines to print at the next flush. */
  #pending: string[] = [];
  #isFlushQueued = false;
  #width: number;
  #height: number;
  /** The live area as last drawn: its rows on the screen, the width of each, the cursor's row. */
  #drawnRows = 0;
  #drawnWidths: number[] = [];
  #cursorRow = 0;
  #cursorColumn = 0;
  #isClosed = false;
  /** A secret being asked for: its label, its answer, and the line typed before, set aside. */
  #secret:
    | { label: string; resolve: (secret: string | undefined) => void; text: string; cursor: number }
    | undefined;
  #mentions = new Mentions();
  #fold = new NoticeFold((line, parsed) => this.#display(line, parsed));
  /** Whether a mention rings the bell (`--no-bell`), and whether one waits to ring at the next draw. */
  #isBellOn: boolean;
  #isBellDue = false;
  #onSignal = () => this.#leave();
  #onResize = () => this.#resize();
  #onContinue = () => this.#resume();
  #canSuspend: boolean;

  /**
   * `canSuspend` is false under a task runner (`deno task`, `npm run`): it ignores the stop
   * signal and keeps the terminal, so stopping ourselves would leave the shell waiting for ever.
   */
  constructor(options: { color: boolean; canSuspend: boolean; bell: boolean }) {
    this.#style = new LineStyle(options);
    this.#isBellOn = options.bell;
    this.#canSuspend = options.canSuspend;
    this.#editor = new LineEditor({
      names: () => this.#room.names(),
      commands: () => this.#room.isOperator ? OPERATOR_COMMANDS : COMMANDS,
    });
    ({ columns: this.#width, rows: this.#height } = terminalSize());
    Deno.stdin.setRaw(true);
    write(BRACKETED_PASTE_ON);
    for (const signal of LEAVE_SIGNALS) Deno.addSignalListener(signal, this.#onSignal);
    Deno.addSignalListener("SIGWINCH", this.#onResize);
    Deno.addSignalListener("SIGCONT", this.#onContinue);
    this.#draw();
    this.#readKeys();
  }

  show(line: string, parsed: ServerLine | undefined): void {
    this.#room.apply(line, parsed);
    if (!this.#fold.take(line, parsed)) this.#display(line, parsed);
  }

  #display(line: string, parsed: ServerLine | undefined): void {
    if (parsed?.kind === "limits") return; // for pacing, not for people
    const [mark, body] = this.#style.render(parsed ?? { kind: "system", text: line });
    const isMention = this.#mentions.hear(parsed, this.#style.name);
    // Rung at the next draw: mentions that arrive together ring once.
    if (isMention) this.#isBellDue = this.#isBellOn;
    this.#add(
      this.#style.stamp(parsed),
      mark,
      isMention ? this.#style.style("inverse", body) : body,
    );
  }

  note(text: string, kind: NoteKind): void {
    if (kind === "separator") {
      const label = ` ${text} `;
      const side = Math.max(0, Math.floor((this.#width - TEXT_COLUMN - textWidth(label)) / 2));
      const rule = "─".repeat(side);
      return this.#add(undefined, " ", this.#style.style("gray", `${rule}${label}${rule}`));
    }
    const style = kind === "error" ? "red" : "gray";
    this.#add(
      this.#style.stamp(undefined),
      kind === "error" ? "!" : "-",
      this.#style.style(style, text),
    );
  }

  setWaiting(lines: readonly string[], reason: string, isOffline: boolean): void {
    this.#waiting = lines;
    this.#waitingReason = reason;
    this.#isOffline = isOffline;
    this.#queueFlush();
  }

  said(line: string): void {
    const said = this.#style.said(line);
    if (said) this.#add(this.#style.stamp(undefined), ...said);
  }

  setName(name: string): void {
    this.#style.name = name;
  }

  input(): AsyncIterable<string> {
    return this.#input;
  }

  close(): void {
    if (this.#isClosed) return;
    this.#endSecret(undefined);
    this.#fold.flush();
    this.#isClosed = true;
    for (const signal of LEAVE_SIGNALS) Deno.removeSignalListener(signal, this.#onSignal);
    Deno.removeSignalListener("SIGWINCH", this.#onResize);
    Deno.removeSignalListener("SIGCONT", this.#onContinue);
    // Whatever was typed or not sent stays in sight; the cursor goes below it, to a row of its own.
    this.#isOffline = false;
    const isEmpty = this.#editor.text === "" && this.#waiting.length === 0;
    const live = isEmpty ? [] : this.#live().rows;
    write(
      `${HIDE_CURSOR}${this.#erase()}${this.#pending.map((row) => `${row}\r\n`).join("")}` +
        live.map((row) => `${row}\r\n`).join("") + `${BRACKETED_PASTE_OFF}${SHOW_CURSOR}`,
    );
    this.#pending = [];
    Deno.stdin.setRaw(false);
  }

  askSecret(label: string): Promise<string | undefined> {
    this.#endSecret(undefined);
    const { promise, resolve } = Promise.withResolvers<string | undefined>();
    const editor = this.#editor;
    this.#secret = { label, resolve, text: editor.text, cursor: editor.cursor };
    editor.text = "";
    editor.cursor = 0;
    editor.isMasked = true;
    this.#queueFlush();
    return promise;
  }

  /** Answers the secret asked for (or gives up on it), and brings back what was being typed. */
  #endSecret(answer: string | undefined): void {
    const secret = this.#secret;
    if (!secret) return;
    this.#secret = undefined;
    this.#editor.isMasked = false;
    this.#editor.text = secret.text;
    this.#editor.cursor = secret.cursor;
    secret.resolve(answer);
  }

  #add(time: Date | undefined, mark: string, body: string): void {
    this.#pending.push(...this.#style.rows(time, mark, body, this.#width));
    this.#queueFlush();
  }

  /** Lines that arrive together are drawn together, in one write. */
  #queueFlush(): void {
    if (this.#isFlushQueued || this.#isClosed) return;
    this.#isFlushQueued = true;
    queueMicrotask(() => {
      this.#isFlushQueued = false;
      if (!this.#isClosed) this.#draw();
    });
  }

  /** Prints the pending rows above the live area and draws the live area again below them. */
  #draw(): void {
    const live = this.#live();
    const back = live.rows.length - 1 - live.cursorRow;
    const pending = this.#pending.map((row) => `${row}\r\n`).join("");
    this.#pending = [];
    const bell = this.#isBellDue ? BELL : "";
    this.#isBellDue = false;
    write(
      `${bell}${HIDE_CURSOR}${this.#erase()}${pending}${WRAP_OFF}` +
        `${live.rows.join("\r\n")}${WRAP_ON}${up(back)}\r${right(live.cursorColumn)}${SHOW_CURSOR}`,
    );
    this.#drawnRows = live.rows.length;
    this.#drawnWidths = live.widths;
    this.#cursorRow = live.cursorRow;
    this.#cursorColumn = live.cursorColumn;
  }

  /**
   * Moves to the top of the live area and erases its rows one by one. Not with `ESC[J`: at the
   * screen's first row and column (after Ctrl+L, or a client started on a cleared screen), tmux
   * takes that for clearing the screen and pushes what it shows to the scrollback, once for every
   * key. The live area is the last thing on the screen: nothing below it needs erasing.
   */
  #erase(): string {
    const rows = Math.max(1, this.#drawnRows);
    return `${up(this.#cursorRow)}\r${ERASE_ROW}${`${DOWN}${ERASE_ROW}`.repeat(rows - 1)}${
      up(rows - 1)
    }`;
  }

  /**
   * The live area: waiting lines (as many as a third of the screen holds, then a count), then the
   * input, shown whole when it fits and otherwise as the rows around the cursor.
   */
  #live(): { rows: string[]; widths: number[]; cursorRow: number; cursorColumn: number } {
    const width = this.#width;
    const rows: string[] = [];
    const widths: number[] = [];
    const count = this.#waiting.length;
    if (count === 0 && this.#isOffline) {
      const row = this.#style.rows(undefined, " ", this.#waitingReason, width)[0]!;
      rows.push(this.#style.style("dim", row));
      widths.push(textWidth(row));
    } else if (count > 0) {
      const room = Math.max(0, Math.floor((this.#height - 2) / 3) - 1);
      const shown = count > room ? Math.max(0, room - 1) : count;
      for (const line of this.#waiting.slice(0, shown)) {
        const [mark, body] = this.#style.said(line) ?? [">", line];
        const row = this.#style.rows(undefined, mark, body, width)[0]!;
        rows.push(this.#style.style("dim", row));
        widths.push(textWidth(row));
      }
      const hidden = count > shown && shown > 0 ? `, ${count - shown} not shown` : "";
      const text = `${count} waiting to be sent${hidden}: ${this.#waitingReason}`;
      const row = this.#style.rows(undefined, " ", text, width)[0]!;
      rows.push(this.#style.style("dim", row));
      widths.push(textWidth(row));
    }
    const search = this.#editor.search;
    const prompt = this.#secret
      ? `${this.#secret.label}: `
      : search
      ? `(search${search.isFound ? "" : ", no match"}: ${search.query}) `
      : `${this.#mentions.status()}> `;
    let { text, cursor } = this.#editor.shown;
    if (this.#secret) {
      // Shown as one star per character typed, never the characters.
      const count = (part: string) => [...segmenter.segment(part)].length;
      [text, cursor] = ["*".repeat(count(text)), count(text.slice(0, cursor))];
    }
    const input = layoutInput(prompt, text, cursor, width);
    // The input keeps at least one row for the room's lines above it; the rest scrolls with the cursor.
    const most = Math.max(1, this.#height - 1 - rows.length);
    const first = Math.min(Math.max(0, input.cursorRow - most + 1), input.rows.length - most);
    const start = Math.max(0, first);
    const inputRows = input.rows.slice(start, start + most);
    return {
      rows: [...rows, ...inputRows],
      widths: [...widths, ...input.widths.slice(start, start + most)],
      cursorRow: rows.length + input.cursorRow - start,
      cursorColumn: input.cursorColumn,
    };
  }

  /**
   * After a resize the terminal has already rewrapped what it shows (tmux, VTE, kitty, iTerm2 and
   * most others reflow): each row of the live area now takes as many rows as the new width needs,
   * and the cursor moved with its character. Find the top of the live area from there, then draw it
   * again at the new width. (A terminal that does not reflow, such as xterm, keeps rows as they
   * were; narrowing it under a multi-row input may leave a stray row above.)
   */
  #resize(): void {
    const { columns, rows } = terminalSize();
    if (columns === this.#width && rows === this.#height) return;
    if (columns < this.#width) {
      const reflowed = this.#drawnWidths.map((width) => Math.max(1, Math.ceil(width / columns)));
      const offset = reflowed.slice(0, this.#cursorRow).reduce((sum, rows) => sum + rows, 0);
      this.#cursorRow = offset + Math.floor(this.#cursorColumn / columns);
      this.#drawnRows = reflowed.reduce((sum, rows) => sum + rows, 0);
    }
    this.#width = columns;
    this.#height = rows;
    this.#draw();
  }

  /** Acts on the keys of each read, then draws once: a paste of any size is one redraw. */
  async #readKeys(): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    let escape: ReturnType<typeof setTimeout> | undefined;
    try {
      while (!this.#isClosed) {
        const count = await Deno.stdin.read(buffer);
        clearTimeout(escape);
        if (count === null) break;
        this.#keys(this.#decoder.decode(buffer.subarray(0, count)));
        // A lone ESC is the Escape key unless the rest of a sequence follows at once.
        if (this.#decoder.isPending) {
          escape = setTimeout(() => this.#keys(this.#decoder.flush()), ESCAPE_WAIT_MS);
        }
      }
    } catch {
      // The terminal went away (hung up): leave as at the end of input.
    }
    this.#leave();
  }

  #keys(keys: Key[]): void {
    if (keys.length > 0) this.#mentions.seen();
    for (const key of keys) {
      for (const event of this.#editor.handle(key)) this.#act(event);
    }
    if (!this.#isClosed) this.#draw();
  }

  #act(event: ReturnType<LineEditor["handle"]>[number]): void {
    if (this.#secret && (event.kind === "submit" || event.kind === "leave")) {
      return this.#endSecret(event.kind === "submit" ? event.line : undefined);
    }
    switch (event.kind) {
      case "submit":
        if (/^\s*\/help\s*$/i.test(event.line)) {
          for (const line of this.#room.isOperator ? OPERATOR_CLIENT_HELP : CLIENT_HELP) {
            this.#add(undefined, "-", this.#style.style("gray", line));
          }
        } else if (event.line.trim() !== "") {
          this.#input.push(event.line);
        }
        break;
      case "leave":
        this.#leave();
        break;
      case "suspend":
        this.#suspend();
        break;
      case "redraw":
        // Ctrl+L: the screen scrolls up a whole height, so what it showed goes to the scrollback
        // (erasing it would lose what was not there yet), and the live area starts at the top.
        write(
          `${this.#erase()}${ESC}${this.#height};1H${"\n".repeat(this.#height - 1)}${ESC}H`,
        );
        this.#cursorRow = this.#drawnRows = 0;
        break;
    }
  }

  #leave(): void {
    this.#input.end();
  }

  /** Ctrl+Z: the terminal as the shell wants it, stop; on `fg`, raw again and draw everything. */
  #suspend(): void {
    if (!this.#canSuspend) {
      return this.note(
        "Ctrl+Z does not work under deno task, which keeps the terminal: use deno run -N client.ts NAME",
        "error",
      );
    }
    write(`${this.#erase()}${BRACKETED_PASTE_OFF}`);
    this.#cursorRow = this.#drawnRows = 0;
    Deno.stdin.setRaw(false);
    Deno.kill(Deno.pid, "SIGTSTP"); // returns once continued (at once if there is no job control)
    this.#resume();
  }

  #resume(): void {
    if (this.#isClosed) return;
    Deno.stdin.setRaw(true);
    write(BRACKETED_PASTE_ON);
    ({ columns: this.#width, rows: this.#height } = terminalSize());
    this.#draw();
  }
}

/**
 * The server's reply to our name, read one line at a time: the greeting (and the prompts for a
 * private server's password or a registered name's), then the room list, the history, the limits
 * and the welcome. The history is held back until it is complete, so that after a reconnection only
 * what we did not see is shown: the lines we saw are kept, as the server's history has them.
 * Nothing here writes or shows anything: each line read answers what the session is to do.
 */
import { firstNewLine, PRIVATE_GREETING, type ServerLine } from "../protocol.ts";

/** Lines said in the room that we keep, to tell what was said while we were away from repeats. */
const SEEN_LINES = 500;

/** A line of the history, held back until the reply is complete. */
export interface HeldLine {
  line: string;
  parsed: ServerLine;
  /** The line as the server's history has it (see {@linkcode historyKey}). */
  key: string;
}

/** What the session does with a line of the join reply. */
export type JoinStep =
  /** Held back: a refusal (the reply's end says why), or a line of the history. */
  | { kind: "hold" }
  /** Held back, and to be answered: the greeting or a prompt before the room list. */
  | { kind: "answer" }
  /** Shown as any line: the room list. */
  | { kind: "show" }
  /** The reply is complete: the history held back goes first (what is news), then this line. */
  | { kind: "done"; history: HeldLine[] };

const HOLD: JoinStep = { kind: "hold" };
const ANSWER: JoinStep = { kind: "answer" };
const SHOW: JoinStep = { kind: "show" };

/** One join reply, on one connection. */
export class JoinReply {
  /** Whether this joins again after a loss (the history then shows only what is news). */
  readonly isRejoin: boolean;
  /** Our name went out (after the greeting, or the private server's password). */
  isNameSent = false;
  /** The server said it is private. */
  isPrivate = false;
  /** The room list came: we are in. */
  hasRoom = false;
  /** The history came too. */
  isDone = false;
  /** The server's reason for refusing us, if it did. */
  rejection: string | undefined;
  #history: HeldLine[] = [];

  constructor(isRejoin: boolean) {
    this.isRejoin = isRejoin;
  }

  /** Reads the next line of the reply: what to do with it. */
  read(line: string, parsed: ServerLine | undefined): JoinStep {
    if (!this.hasRoom) {
      if (line === PRIVATE_GREETING) this.isPrivate = true;
      const refusal = refusalOf(line, parsed);
      if (refusal !== undefined) {
        this.rejection = refusal;
        return HOLD;
      }
      if (parsed?.kind !== "room") return ANSWER;
      this.hasRoom = true;
      return SHOW;
    }
    if (parsed?.kind === "room") return SHOW;
    const key = parsed?.kind === "history" ? historyKey(parsed.line) : undefined;
    if (parsed?.kind === "history" && key) {
      this.#history.push({ line, parsed, key });
      return HOLD;
    }
    this.isDone = true;
    return { kind: "done", history: this.#history };
  }
}

/**
 * The text of an error line from the server (`* error: TEXT`): a refusal, or why it puts us out. A
 * kick and a ban are errors too, told apart by their kinds.
 */
export function refusalOf(line: string, parsed: ServerLine | undefined): string | undefined {
  if (parsed?.kind === "error") return parsed.text;
  if (parsed?.kind === "kicked" || parsed?.kind === "banned") return line.slice(ERROR.length);
}

const ERROR = "* error: ";

/**
 * Why the server put us out for good, if `line` says so: kicked, or banned (a ban refuses a
 * `/nick` with the same line without closing, so only a connection's last line counts).
 */
export function removalOf(line: string, parsed: ServerLine | undefined): string | undefined {
  if (parsed?.kind === "kicked" || parsed?.kind === "banned") return refusalOf(line, parsed);
}

/** The room's lines we saw, as the server's history has them, across reconnections. */
export class SeenLines {
  #keys: string[] = [];
  /** Our name, as the lines we say carry it. */
  name: string;

  constructor(name: string) {
    this.name = name;
  }

  /** A line from the server: kept if it is one the history keeps. */
  saw(parsed: ServerLine | undefined): void {
    const key = parsed && historyKey(parsed);
    if (key) this.#remember(key);
  }

  /** A line we said (or, `isAction`, did with /me). */
  said(text: string, isAction = false): void {
    this.#remember(isAction ? `* [${this.name}] ${text}` : `[${this.name}] ${text}`);
  }

  /**
   * Of the history's lines, those to show, seen from now on: on rejoining, those we did not see
   * (what follows the last lines we saw); at the first join, all of them.
   */
  news(history: HeldLine[], options: { isRejoin: boolean }): HeldLine[] {
    const keys = history.map((held) => held.key);
    const news = options.isRejoin ? history.slice(firstNewLine(this.#keys, keys)) : history;
    for (const { key } of news) this.#remember(key);
    return news;
  }

  #remember(key: string): void {
    this.#keys.push(key);
    if (this.#keys.length > SEEN_LINES * 2) this.#keys.splice(0, SEEN_LINES);
  }
}

/**
 * What the server stores in its history for a line, to match history against what we saw: a
 * user's line or action, or `undefined` for anything else.
 */
export function historyKey(line: ServerLine): string | undefined {
  if (line.kind === "user") return `[${line.name}] ${line.text}`;
  if (line.kind === "action") return `* [${line.name}] ${line.text}`;
}

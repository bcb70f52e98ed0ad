/**
 * The terminal client's line editor, with no I/O: keys decoded from raw terminal input, the line
 * being typed with its cursor, history, reverse search and name completion, and its layout in rows.
 *
 * Why our own editor rather than `node:readline`: measured in tmux on Deno 2.9.6, readline redraws
 * the whole line on every key, so a 5,000-character paste took 17.6 s of CPU; it knows nothing of
 * bracketed paste (a pasted line ends up echoed as typed), of text printed above a prompt that
 * wraps (its own redraw starts from a row the printing path did not clear, and a wide character
 * at the wrap point puts its cursor a row off), or of reverse search. What is left to write is
 * small and pure: this file. Character widths come from `string-width`, graphemes from
 * `Intl.Segmenter`.
 */
import stringWidth from "string-width";

/** A key or a paste, decoded from the terminal's input. */
export type Key =
  | { kind: "text"; text: string }
  | { kind: "paste"; text: string }
  | { kind: KeyName };

/** The keys the editor acts on; everything else a terminal sends is ignored. */
export type KeyName =
  | "enter"
  | "tab"
  | "backspace"
  | "delete"
  | "left"
  | "right"
  | "up"
  | "down"
  | "home"
  | "end"
  | "wordLeft"
  | "wordRight"
  | "killWordBack"
  | "killToStart"
  | "killToEnd"
  | "interrupt"
  | "endOfInput"
  | "search"
  | "cancel"
  | "redraw"
  | "suspend"
  | "escape";

const CONTROL_KEYS: Record<string, KeyName> = {
  "\r": "enter",
  "\n": "enter",
  "\t": "tab",
  "\x7f": "backspace",
  "\x08": "backspace",
  "\x01": "home",
  "\x05": "end",
  "\x02": "left",
  "\x06": "right",
  "\x10": "up",
  "\x0e": "down",
  "\x03": "interrupt",
  "\x04": "endOfInput",
  "\x12": "search",
  "\x07": "cancel",
  "\x0b": "killToEnd",
  "\x15": "killToStart",
  "\x17": "killWordBack",
  "\x0c": "redraw",
  "\x1a": "suspend",
};

/** CSI sequences by their final byte and parameters ("1;5C" is Ctrl+Right). */
const CSI_KEYS: Record<string, KeyName> = {
  A: "up",
  B: "down",
  C: "right",
  D: "left",
  H: "home",
  F: "end",
  "1;5C": "wordRight",
  "1;3C": "wordRight",
  "1;5D": "wordLeft",
  "1;3D": "wordLeft",
  "1~": "home",
  "7~": "home",
  "4~": "end",
  "8~": "end",
  "3~": "delete",
};

/** Alt+key, sent as ESC then the key. */
const ALT_KEYS: Record<string, KeyName> = {
  b: "wordLeft",
  f: "wordRight",
  "\x7f": "killWordBack",
  "\x08": "killWordBack",
};

const PASTE_START = "\x1b[200~";
const PASTE_END = "\x1b[201~";
/** A CSI sequence after its ESC: parameters, then one final byte. */
const CSI = /^\[([0-9;?]*)([@-~])/;
/** What may still become a CSI sequence when more input comes. */
const CSI_START = /^\[[0-9;?]*$/;
/** Control characters (C0, DEL, C1): keys, never text. */
const CONTROL = /\p{Cc}/u;
const CONTROLS = /\p{Cc}/gu;

/**
 * Turns the terminal's raw bytes into keys. Stateful: UTF-8 and escape sequences may be split
 * across reads, and a bracketed paste (the terminal wraps pasted text in ESC[200~ ... ESC[201~ once
 * we ask) arrives as one `paste` however many reads it takes.
 */
export class KeyDecoder {
  #decoder = new TextDecoder();
  #pending = "";
  #paste: string[] | undefined;

  /** The keys that `bytes` completes. */
  decode(bytes: Uint8Array): Key[] {
    const input = this.#pending + this.#decoder.decode(bytes, { stream: true });
    this.#pending = "";
    const keys: Key[] = [];
    let at = 0;
    while (at < input.length) {
      if (this.#paste) {
        at = this.#readPaste(input, at, keys);
        continue;
      }
      const char = input[at]!;
      if (char === "\x1b") {
        const used = this.#escape(input.slice(at), keys);
        if (used === 0) {
          this.#pending = input.slice(at); // the rest of the sequence is in the next read
          break;
        }
        at += used;
      } else if (CONTROL.test(char)) {
        const name = CONTROL_KEYS[char];
        if (name) keys.push({ kind: name });
        // A terminal that sends CR LF for Enter sends one Enter.
        at += char === "\r" && input[at + 1] === "\n" ? 2 : 1;
      } else {
        let end = at + 1;
        while (end < input.length && !CONTROL.test(input[end]!)) end++;
        keys.push({ kind: "text", text: input.slice(at, end) });
        at = end;
      }
    }
    return keys;
  }

  /** Reads pasted text up to the end marker, which may not have arrived yet. */
  #readPaste(input: string, at: number, keys: Key[]): number {
    const end = input.indexOf(PASTE_END, at);
    if (end !== -1) {
      this.#paste!.push(input.slice(at, end));
      keys.push({ kind: "paste", text: this.#paste!.join("") });
      this.#paste = undefined;
      return end + PASTE_END.length;
    }
    // Keep back what may be the start of the end marker.
    let keep = 0;
    for (let n = Math.min(PASTE_END.length - 1, input.length - at); n > 0; n--) {
      if (PASTE_END.startsWith(input.slice(input.length - n))) {
        keep = n;
        break;
      }
    }
    this.#paste!.push(input.slice(at, input.length - keep));
    this.#pending = input.slice(input.length - keep);
    return input.length;
  }

  /** Whether input is held back that may be the start of a sequence (see {@linkcode flush}). */
  get isPending(): boolean {
    return this.#pending !== "" && !this.#paste;
  }

  /**
   * The keys held back when no more input came: a lone ESC was the Escape key after all. (A read
   * may end between ESC and the rest of its sequence, so ESC alone waits a moment for it.)
   */
  flush(): Key[] {
    const pending = this.#pending;
    this.#pending = "";
    return pending === "\x1b" ? [{ kind: "escape" }] : [];
  }

  /** Decodes the escape sequence at the start of `input`; 0 when it is not complete yet. */
  #escape(input: string, keys: Key[]): number {
    if (input.length === 1) return 0; // ESC alone so far: the Escape key, or a sequence's start
    if (input[1] === "[") {
      if (input.startsWith(PASTE_START)) {
        this.#paste = [];
        return PASTE_START.length;
      }
      const csi = CSI.exec(input.slice(1));
      if (!csi) return input.length < 16 && CSI_START.test(input.slice(1)) ? 0 : 2;
      const name = CSI_KEYS[csi[1] + csi[2]!] ?? CSI_KEYS[csi[2]!];
      if (name && (csi[1] === "" || csi[1]!.includes(";") || csi[2] === "~")) {
        keys.push({ kind: name });
      }
      return 1 + csi[0].length;
    }
    if (input[1] === "O") {
      if (input.length < 3) return 0;
      const name = CSI_KEYS[input[2]!];
      if (name) keys.push({ kind: name });
      return 3;
    }
    const alt = ALT_KEYS[input[1]!];
    keys.push({ kind: alt ?? "escape" });
    return alt ? 2 : 1;
  }
}

const segmenter = new Intl.Segmenter();

/** The grapheme boundaries of `text`: 0, each boundary, `text.length`. */
function boundaries(text: string): number[] {
  const at = [...segmenter.segment(text)].map((segment) => segment.index);
  at.push(text.length);
  return at;
}

/** `/register PASSWORD`: a line with a password in it, which the history must not keep. */
const INLINE_SECRET = /^\s*\/register\s+\S/i;

/** What the editor asks of its owner after a key. */
export type EditorEvent =
  | { kind: "submit"; line: string }
  | { kind: "leave" }
  | { kind: "suspend" }
  | { kind: "redraw" };

/** Options for {@linkcode LineEditor}. */
export interface LineEditorOptions {
  /** Lines kept for the up arrow and reverse search. */
  historySize?: number;
  /** The names that Tab completes (the others in the room). */
  names?: () => Iterable<string>;
  /** The commands that Tab completes after a `/` that starts the line (`/who`, ...). */
  commands?: () => Iterable<string>;
}

/** An active Ctrl+R search: what is typed, and the history line it found. */
interface Search {
  query: string;
  /** Index in the history of the match, or -1 for none. */
  match: number;
}

/** Tab pressed again cycles through the names (or commands) that matched the first time. */
interface Completion {
  /** Text before the completed word and after it, and the words to cycle through. */
  before: string;
  after: string;
  candidates: string[];
  suffix: string;
  index: number;
}

/**
 * The line being typed: text and cursor (a UTF-16 index, always on a grapheme boundary), the
 * history of sent lines, reverse search (Ctrl+R) and name completion (Tab).
 */
export class LineEditor {
  text = "";
  cursor = 0;
  #history: string[] = [];
  #historySize: number;
  /** Position while browsing the history with the arrows; `history.length` is the draft. */
  #browse = 0;
  #draft = "";
  #search: Search | undefined;
  #completion: Completion | undefined;
  #names: () => Iterable<string>;
  #commands: () => Iterable<string>;

  constructor(options: LineEditorOptions = {}) {
    this.#historySize = options.historySize ?? 500;
    this.#names = options.names ?? (() => []);
    this.#commands = options.commands ?? (() => []);
  }

  /** The search being typed, for display: its query and whether it found a line. */
  get search(): { query: string; isFound: boolean } | undefined {
    return this.#search && { query: this.#search.query, isFound: this.#search.match !== -1 };
  }

  /**
   * Whether the line is a secret (a password): shown masked by the owner, never remembered, and
   * without the keys that would show other lines (history, search, completion).
   */
  isMasked = false;

  /** Acts on one key, returning what the owner must do. */
  handle(key: Key): EditorEvent[] {
    if (this.isMasked && ["search", "tab", "up", "down"].includes(key.kind)) return [];
    if (key.kind !== "tab") this.#completion = undefined;
    if (this.#search) return this.#handleSearch(key);
    switch (key.kind) {
      case "text":
        this.#insert(key.text);
        return [];
      case "paste":
        return this.#paste(key.text);
      case "enter":
        return [this.#submit()];
      case "tab":
        this.#complete();
        return [];
      case "interrupt":
        if (this.text === "") return [{ kind: "leave" }];
        this.#set("");
        return [];
      case "endOfInput":
        if (this.text === "") return [{ kind: "leave" }];
        this.#deleteRange(this.cursor, this.#next());
        return [];
      case "search":
        this.#search = { query: "", match: -1 };
        return [];
      case "suspend":
        return [{ kind: "suspend" }];
      case "redraw":
        return [{ kind: "redraw" }];
      default:
        this.#edit(key.kind);
        return [];
    }
  }

  /** Remembers a line for the up arrow and reverse search (sent ones, and refused ones too). */
  remember(line: string): void {
    if (line.trim() === "" || this.#history.at(-1) === line) return;
    if (this.isMasked || INLINE_SECRET.test(line)) return; // a password is never kept
    this.#history.push(line);
    if (this.#history.length > this.#historySize) this.#history.shift();
  }

  /** Cursor movement and deletion. */
  #edit(name: KeyName): void {
    switch (name) {
      case "left":
        this.cursor = this.#previous();
        break;
      case "right":
        this.cursor = this.#next();
        break;
      case "home":
        this.cursor = 0;
        break;
      case "end":
        this.cursor = this.text.length;
        break;
      case "wordLeft":
        this.cursor = this.#wordStart();
        break;
      case "wordRight": {
        const rest = /^\s*\S*/.exec(this.text.slice(this.cursor))![0];
        this.cursor += rest.length;
        break;
      }
      case "backspace":
        this.#deleteRange(this.#previous(), this.cursor);
        break;
      case "delete":
        this.#deleteRange(this.cursor, this.#next());
        break;
      case "killWordBack":
        this.#deleteRange(this.#wordStart(), this.cursor);
        break;
      case "killToStart":
        this.#deleteRange(0, this.cursor);
        break;
      case "killToEnd":
        this.#deleteRange(this.cursor, this.text.length);
        break;
      case "up":
        this.#browseTo(this.#browse - 1);
        break;
      case "down":
        this.#browseTo(this.#browse + 1);
        break;
    }
  }

  /** A paste: each line in it is sent as if typed and Enter pressed; the last one stays typed. */
  #paste(text: string): EditorEvent[] {
    const lines = text.replaceAll("\t", " ").split(/\r\n|\r|\n/);
    const events: EditorEvent[] = [];
    lines.forEach((line, i) => {
      this.#insert(line.replace(CONTROLS, ""));
      if (i < lines.length - 1) events.push(this.#submit());
    });
    return events;
  }

  #submit(): EditorEvent {
    const line = this.text;
    this.remember(line);
    this.#set("");
    this.#browse = this.#history.length;
    return { kind: "submit", line };
  }

  #insert(text: string): void {
    this.text = this.text.slice(0, this.cursor) + text + this.text.slice(this.cursor);
    this.cursor += text.length;
  }

  #set(text: string): void {
    this.text = text;
    this.cursor = text.length;
  }

  #deleteRange(start: number, end: number): void {
    this.text = this.text.slice(0, start) + this.text.slice(end);
    this.cursor = start;
  }

  #previous(): number {
    return boundaries(this.text).findLast((at) => at < this.cursor) ?? 0;
  }

  #next(): number {
    return boundaries(this.text).find((at) => at > this.cursor) ?? this.text.length;
  }

  #wordStart(): number {
    const before = this.text.slice(0, this.cursor);
    return before.length - /\S*\s*$/.exec(before)![0].length;
  }

  #browseTo(index: number): void {
    if (index < 0 || index > this.#history.length) return;
    if (this.#browse === this.#history.length) this.#draft = this.text;
    this.#browse = index;
    this.#set(index === this.#history.length ? this.#draft : this.#history[index]!);
  }

  /** Keys while searching: typing narrows, Ctrl+R goes further back, Enter sends the match. */
  #handleSearch(key: Key): EditorEvent[] {
    const search = this.#search!;
    switch (key.kind) {
      case "text":
      case "paste":
        search.query += key.text.replace(CONTROLS, "");
        search.match = this.#find(search.query, this.#history.length - 1);
        break;
      case "backspace":
        search.query = search.query.slice(0, -1);
        search.match = search.query === ""
          ? -1
          : this.#find(search.query, this.#history.length - 1);
        break;
      case "search":
        if (search.query !== "") {
          const older = this.#find(search.query, search.match - 1);
          if (older !== -1) search.match = older;
        }
        break;
      case "cancel":
      case "interrupt":
        this.#search = undefined;
        break;
      case "enter":
        this.#accept();
        return [this.#submit()];
      default:
        // Any other key takes the match into the line for editing, then acts there.
        this.#accept();
        return key.kind === "escape" ? [] : this.handle(key);
    }
    return [];
  }

  #accept(): void {
    const { match } = this.#search!;
    this.#search = undefined;
    if (match !== -1) {
      this.#set(this.#history[match]!);
      this.#browse = match;
    }
  }

  /** The newest history line at or before `from` that contains `query` regardless of case. */
  #find(query: string, from: number): number {
    if (query === "") return -1;
    const wanted = query.toLowerCase();
    for (let i = from; i >= 0; i--) {
      if (this.#history[i]!.toLowerCase().includes(wanted)) return i;
    }
    return -1;
  }

  /** The line and cursor to show while searching: the match, or what was typed before. */
  get shown(): { text: string; cursor: number } {
    const search = this.#search;
    if (!search || search.match === -1) return { text: this.text, cursor: this.cursor };
    const text = this.#history[search.match]!;
    return { text, cursor: text.toLowerCase().indexOf(search.query.toLowerCase()) };
  }

  /**
   * Completes the word before the cursor: a command (`/who `) when it is the line's first word and
   * starts with `/`; else a name: `Anna: ` at the start of the line, `/msg Anna ` after `/msg`,
   * `Anna ` elsewhere. Pressed again, it offers the next one that matched.
   */
  #complete(): void {
    let completion = this.#completion;
    if (completion) {
      completion.index = (completion.index + 1) % completion.candidates.length;
    } else {
      completion = this.#completion = this.#completions();
      if (!completion) return;
    }
    const word = completion.candidates[completion.index]!;
    this.text = completion.before + word + completion.suffix + completion.after;
    this.cursor = completion.before.length + word.length + completion.suffix.length;
  }

  /** What Tab may put before the cursor, first pressed; `undefined` when nothing matches. */
  #completions(): Completion | undefined {
    const before = this.text.slice(0, this.cursor);
    const isCommand = /^\/[A-Za-z]*$/.test(before);
    const word = isCommand ? before : /[A-Za-z0-9_-]*$/.exec(before)![0];
    const start = before.length - word.length;
    const prefix = word.toLowerCase();
    const candidates = [...new Set(isCommand ? this.#commands() : this.#names())]
      .filter((name) => name.toLowerCase().startsWith(prefix))
      .sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
    if (candidates.length === 0) return undefined;
    const head = before.slice(0, start);
    const suffix = head === "" && !isCommand ? ": " : " ";
    let after = this.text.slice(this.cursor);
    if (after.startsWith(suffix.trimEnd())) after = after.slice(suffix.trimEnd().length);
    if (after.startsWith(" ")) after = after.slice(1);
    return { before: head, after, candidates, suffix, index: 0 };
  }
}

/** Columns a grapheme takes: 2 for wide (CJK, most emoji), 0 for a lone combining mark. */
export function graphemeWidth(grapheme: string): number {
  return grapheme.length === 1 && grapheme < "\x7f" ? 1 : stringWidth(grapheme);
}

/** Columns a string takes, escape sequences not counted. */
export function textWidth(text: string): number {
  return stringWidth(text);
}

/** The line being typed laid out in rows of at most `width` columns, and where its cursor is. */
export interface Layout {
  /** The rows' text, the prompt included in the first. */
  rows: string[];
  /** Columns each row takes. */
  widths: number[];
  cursorRow: number;
  cursorColumn: number;
}

/**
 * Lays out `prompt` and `text` in rows of at most `width` columns, as our own breaks rather than the
 * terminal's wrapping, so that we always know how many rows the input takes and where the cursor
 * is: a wide character that does not fit at the end of a row starts the next one. A cursor after
 * the last column of a full row is shown at the start of the next row.
 */
export function layoutInput(
  prompt: string,
  text: string,
  cursor: number,
  width: number,
): Layout {
  const rows = [prompt];
  const widths = [textWidth(prompt)];
  let cursorRow = -1;
  let cursorColumn = 0;
  const place = () => {
    if (widths.at(-1)! >= width) {
      rows.push("");
      widths.push(0);
    }
    cursorRow = rows.length - 1;
    cursorColumn = widths.at(-1)!;
  };
  for (const { segment, index } of segmenter.segment(text)) {
    if (index === cursor) place();
    const columns = Math.min(graphemeWidth(segment), width);
    if (widths.at(-1)! + columns > width) {
      rows.push("");
      widths.push(0);
    }
    rows[rows.length - 1] += segment;
    widths[widths.length - 1]! += columns;
  }
  if (cursorRow === -1) place();
  return { rows, widths, cursorRow, cursorColumn };
}

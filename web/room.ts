/** What the page knows of the room, with no DOM: who is online, history to skip, reconnecting. */
import {
  backoffDelay,
  nameKey,
  OPERATOR_WELCOME,
  parseOperatorChange,
  parsePutOut,
  type ServerLine,
} from "../protocol.ts";

/**
 * Who is online besides you, kept from the room list at join, `/who`, and the join, leave, rename,
 * kick and ban lines after it; and who is an operator (you too, once the server says so after the
 * welcome, `/who` marks you or a notice names you: the room list leaves you out). Only the server writes system lines, so a user cannot fake
 * one of these.
 */
export class Roster {
  #names = new Map<string, string>();
  /** The keys of the names known to be operators. */
  #operators = new Set<string>();
  #own: () => string;

  /** `own` answers your current name, which the list leaves out. */
  constructor(own: () => string = () => "") {
    this.#own = own;
  }

  /** The names in the order they came, yours not included. */
  get names(): string[] {
    return [...this.#names.values()];
  }

  /** Whether `name` is an operator, as far as the room said. */
  isOperator(name: string): boolean {
    return this.#operators.has(nameKey(name));
  }

  /** Updates the list from one parsed server line (and its text); returns whether it changed. */
  apply(line: ServerLine, raw = ""): boolean {
    switch (line.kind) {
      case "room":
      case "who":
        if (!line.isContinued) {
          this.#names.clear();
          this.#operators.clear(); // ours too: at a rejoin, the server says it again if we still are
        }
        for (const name of line.names) {
          if (nameKey(name) !== nameKey(this.#own())) this.#names.set(nameKey(name), name);
        }
        for (const name of line.operators) this.#operators.add(nameKey(name));
        return true;
      case "rename":
        // An operator is a registered name, not a person: the next /who says if the new one is.
        this.#operators.delete(nameKey(line.oldName));
        if (!this.#names.delete(nameKey(line.oldName))) return false;
        this.#names.set(nameKey(line.newName), line.newName);
        return true;
      case "join":
        this.#names.set(nameKey(line.name), line.name);
        return true;
      case "leave":
        return this.#names.delete(nameKey(line.name));
      case "system": {
        // A kick's or a ban's notice stands for the leave notices of those it put out.
        if (raw === OPERATOR_WELCOME) {
          this.#operators.add(nameKey(this.#own()));
          return true;
        }
        const out = parsePutOut(raw);
        if (out) return out.filter((name) => this.#names.delete(nameKey(name))).length > 0;
        const change = parseOperatorChange(raw);
        if (!change) return false;
        if (change.isOperator) this.#operators.add(nameKey(change.name));
        else this.#operators.delete(nameKey(change.name));
        return true;
      }
      default:
        return false;
    }
  }
}

/** Milliseconds before reconnection attempt `attempt` (0, 1, ...): doubling from 1 s to 30 s, with jitter. */
export function reconnectDelay(attempt: number, random = Math.random()): number {
  return Math.round(
    backoffDelay(attempt, { firstMs: 1000, mostMs: 30_000, jitter: [0.75, 1.25] }, random),
  );
}

/** The commands a help list names, as Tab completes them: `/who`, `/nick`, ... */
export function commandsOf(help: readonly string[]): string[] {
  // Each line's usage comes before two spaces; one may name two commands (`/op NAME, /deop NAME`).
  return help.flatMap((line) =>
    [...line.replace(/^\* /, "").split("  ")[0]!.matchAll(/(?:^|, )(\/[a-z]+)/g)]
      .map((match) => match[1]!)
  );
}

/**
 * What Tab may complete at the end of `before` (the text before the cursor): a command when the
 * line so far is `/` and letters, a name in a command's arguments (`/msg An`) or after an `@`
 * anywhere (`hi @An`). Answers where the word starts and the matches, sorted regardless of case;
 * none when nothing matches, and for other plain text, where Tab keeps moving the focus on.
 */
export function completions(
  before: string,
  options: { commands: Iterable<string>; names: Iterable<string> },
): { start: number; candidates: string[] } {
  // `@an` anywhere completes a name after its `@`, to address someone in a line.
  const addressed = /(?:^|\s)@([A-Za-z0-9_-]*)$/.exec(before);
  if (addressed) {
    return {
      start: before.length - addressed[1]!.length,
      candidates: named(addressed[1]!, options.names),
    };
  }
  const isCommand = /^\/[A-Za-z]*$/.test(before);
  if (!isCommand && !/^\/[A-Za-z]+ /.test(before)) return { start: before.length, candidates: [] };
  const word = isCommand ? before : /[A-Za-z0-9_-]*$/.exec(before)![0];
  return {
    start: before.length - word.length,
    candidates: named(word, isCommand ? options.commands : options.names),
  };
}

/** Tab pressed again cycles through what matched: the field's value it left, and the matches. */
export class Completer {
  #last:
    | { value: string; before: string; after: string; candidates: string[]; index: number }
    | undefined;

  /** The field's value and caret after a Tab at `caret` in `value`; undefined when nothing matches. */
  next(
    value: string,
    caret: number,
    sources: { commands: Iterable<string>; names: Iterable<string> },
  ): { value: string; caret: number } | undefined {
    let last = this.#last;
    if (last?.value === value) {
      last.index = (last.index + 1) % last.candidates.length;
    } else {
      const before = value.slice(0, caret);
      const { start, candidates } = completions(before, sources);
      if (candidates.length === 0) return undefined;
      const after = value.slice(caret).replace(/^ /, "");
      last = this.#last = {
        value: "",
        before: before.slice(0, start),
        after,
        candidates,
        index: 0,
      };
    }
    const head = `${last.before}${last.candidates[last.index]} `;
    last.value = head + last.after;
    return { value: last.value, caret: head.length };
  }
}

/** The words that start with `prefix`, in any case, once each, in alphabetical order. */
function named(prefix: string, words: Iterable<string>): string[] {
  const lower = prefix.toLowerCase();
  return [...new Set(words)]
    .filter((candidate) => candidate.toLowerCase().startsWith(lower))
    .sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
}

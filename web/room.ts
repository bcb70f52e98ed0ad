/** What the page knows of the room, with no DOM: who is online, history to skip, reconnecting. */
import { backoffDelay, nameKey, type ServerLine } from "../protocol.ts";

/**
 * Who is online besides you, kept from the room list at join and the join, leave and rename lines
 * after it. Only the server writes system lines, so a user cannot fake one of these.
 */
export class Roster {
  #names = new Map<string, string>();

  /** The names in the order they came, yours not included. */
  get names(): string[] {
    return [...this.#names.values()];
  }

  /** Updates the list from one parsed server line; returns whether it changed. */
  apply(line: ServerLine): boolean {
    switch (line.kind) {
      case "room":
        if (!line.isContinued) this.#names.clear();
        for (const name of line.names) this.#names.set(nameKey(name), name);
        return true;
      case "rename":
        if (!this.#names.delete(nameKey(line.oldName))) return false;
        this.#names.set(nameKey(line.newName), line.newName);
        return true;
      case "join":
        this.#names.set(nameKey(line.name), line.name);
        return true;
      case "leave":
        return this.#names.delete(nameKey(line.name));
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
  return help.flatMap((line) => /^(?:\* )?(\/[a-z]+)/.exec(line)?.[1] ?? []);
}

/**
 * What Tab may complete at the end of `before` (the text before the cursor): a command when the
 * line so far is `/` and letters, a name in a command's arguments (`/msg An`). Answers where the
 * word starts and the matches, sorted regardless of case; none when nothing matches, and for plain
 * text, where Tab keeps moving the focus on.
 */
export function completions(
  before: string,
  options: { commands: Iterable<string>; names: Iterable<string> },
): { start: number; candidates: string[] } {
  const isCommand = /^\/[A-Za-z]*$/.test(before);
  if (!isCommand && !/^\/[A-Za-z]+ /.test(before)) return { start: before.length, candidates: [] };
  const word = isCommand ? before : /[A-Za-z0-9_-]*$/.exec(before)![0];
  const prefix = word.toLowerCase();
  const candidates = [...new Set(isCommand ? options.commands : options.names)]
    .filter((candidate) => candidate.toLowerCase().startsWith(prefix))
    .sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
  return { start: before.length - word.length, candidates };
}

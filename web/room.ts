/** What the page knows of the room, with no DOM: name colors, who is online, history to skip. */
import { nameKey, type ServerLine } from "../protocol.ts";

/**
 * The terminal client's name colors, in its order (`NAME_COLORS` in client.ts): a name's slot
 * here is the color it has there, and the page's style sheet gives each slot that color's hue, in a
 * shade that is readable on the light and on the dark background. tests/web_test.ts checks that
 * every name gets the same color in both.
 */
export const TERMINAL_COLORS = [
  "red",
  "green",
  "yellow",
  "blue",
  "magenta",
  "cyan",
  "redBright",
  "greenBright",
  "yellowBright",
  "blueBright",
  "magentaBright",
  "cyanBright",
] as const;

/** A name's color slot: FNV-1a of the name regardless of case, as the terminal client hashes it. */
export function nameSlot(name: string): number {
  let hash = 0x811c9dc5;
  for (const char of nameKey(name)) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193);
  return (hash >>> 0) % TERMINAL_COLORS.length;
}

const NAME = "([A-Za-z0-9_-]{1,32})";
const JOIN = new RegExp(`^${NAME} has entered the room$`);
const LEAVE = new RegExp(`^${NAME} has left the room(?:$|: | \\()`);

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
      case "system": {
        const joined = JOIN.exec(line.text);
        if (joined) return this.#names.set(nameKey(joined[1]!), joined[1]!), true;
        const left = LEAVE.exec(line.text);
        return left ? this.#names.delete(nameKey(left[1]!)) : false;
      }
      default:
        return false;
    }
  }
}

/**
 * On rejoining, the server replays its history, most of which the page shows already. Given the
 * chat lines shown before (`seen`, oldest first) and the replayed ones, returns the index of the
 * first replayed line that is new: the replay after the longest run that ends where `seen` ends.
 */
export function firstNewLine(seen: readonly string[], replayed: readonly string[]): number {
  for (let end = replayed.length; end > 0; end--) {
    const length = Math.min(end, seen.length);
    if (length === 0) break;
    let isMatch = true;
    for (let k = 1; k <= length && isMatch; k++) {
      isMatch = replayed[end - k] === seen[seen.length - k];
    }
    if (isMatch) return end;
  }
  return 0;
}

/** Milliseconds before reconnection attempt `attempt` (0, 1, ...): doubling from 1 s to 30 s, with jitter. */
export function reconnectDelay(attempt: number, random = Math.random()): number {
  const base = Math.min(30_000, 1000 * 2 ** attempt);
  return Math.round(base * (0.75 + random / 2));
}

/** What the page knows of the room, with no DOM: who is online, history to skip, reconnecting. */
import { nameKey, type ServerLine } from "../protocol.ts";

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

/**
 * Mentions: a line of someone else's that says the user's name as a word (any case), or a
 * private message to the user. The screen highlights it, rings the bell once, and counts the
 * mentions not seen since the user's last keystroke.
 */
import { nameKey, type ServerLine } from "../protocol.ts";

/** The terminal bell. */
export const BELL = "\x07";

/** Whether `text` says `name` as a word: not inside a longer name (`emily` is not `emil`). */
export function saysName(text: string, name: string): boolean {
  if (name === "") return false;
  const key = nameKey(name);
  // Names are letters, digits, `_` and `-`: a word of those, compared as names are.
  return (text.match(/[A-Za-z0-9_-]+/g) ?? []).some((word) => nameKey(word) === key);
}

/** Whether a live line calls for the user: another's line saying the name, or a private one. */
export function isMention(line: ServerLine | undefined, name: string): boolean {
  if (line?.kind === "private") return line.direction === "from";
  if (line?.kind !== "user" && line?.kind !== "action") return false;
  return nameKey(line.name) !== nameKey(name) && saysName(line.text, name);
}

/** The mentions not seen yet: counted as they come, cleared by a keystroke. */
export class Mentions {
  #unseen = 0;

  /** Counts `line` if it is a mention; says whether it was. */
  hear(line: ServerLine | undefined, name: string): boolean {
    if (!isMention(line, name)) return false;
    this.#unseen++;
    return true;
  }

  /** The user pressed a key: everything shown so far has been seen. */
  seen(): void {
    this.#unseen = 0;
  }

  /** For the status line: `(2 mentions) ` or nothing. */
  status(): string {
    const count = this.#unseen;
    return count === 0 ? "" : `(${count} mention${count === 1 ? "" : "s"}) `;
  }
}

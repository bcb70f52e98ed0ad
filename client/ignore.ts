/**
 * `/ignore NAME`: hides a member's lines (said, acted, private, and in the history) for this
 * session, on the client's side only; `/unignore NAME` shows them again, `/ignored` lists them.
 * An ignored name follows its owner's renames.
 */
import { nameKey, parseName, type ServerLine } from "../protocol.ts";

/** At most this many names are ignored at once: memory stays bounded whatever is typed. */
export const MOST_IGNORED = 1000;

/** What an `/ignore` command says back: news, or the one-line reason it did nothing. */
export type IgnoreAnswer = { info: string } | { error: string };

/** The names whose lines are hidden. */
export class Ignored {
  /** By name key, the name as typed or as renamed to. */
  #names = new Map<string, string>();

  /** Whether `line` is one of an ignored member's own lines. */
  hides(line: ServerLine | undefined): boolean {
    const said = line?.kind === "history" ? line.line : line;
    if (said?.kind !== "user" && said?.kind !== "action" && said?.kind !== "private") return false;
    if (said.kind === "private" && said.direction === "to") return false; // what we sent
    return this.#names.has(nameKey(said.name));
  }

  /** Follows a rename of an ignored member. */
  hear(line: ServerLine | undefined): void {
    if (line?.kind !== "rename" || !this.#names.has(nameKey(line.oldName))) return;
    this.#names.delete(nameKey(line.oldName));
    this.#names.set(nameKey(line.newName), line.newName);
  }

  /** The answer to `/ignore`, `/unignore` or `/ignored`, or `undefined` for any other line. */
  command(line: string, ownName: string): IgnoreAnswer | undefined {
    const match = /^\s*\/(ignore|unignore|ignored)(?:\s+(.*?))?\s*$/i.exec(line);
    if (!match) return undefined;
    const verb = match[1]!.toLowerCase();
    const argument = match[2] ?? "";
    if (verb === "ignored") {
      if (argument !== "") return { error: "Usage: /ignored" };
      const names = [...this.#names.values()];
      return { info: names.length > 0 ? `Ignored: ${names.join(", ")}` : "Nobody is ignored" };
    }
    if (argument === "") return { error: `Usage: /${verb} NAME` };
    let name: string;
    try {
      name = parseName(argument);
    } catch (error) {
      return { error: (error as Error).message };
    }
    const key = nameKey(name);
    if (verb === "unignore") {
      if (!this.#names.delete(key)) return { error: `${name} is not ignored` };
      return { info: `No longer ignoring ${name}` };
    }
    if (key === nameKey(ownName)) return { error: "You cannot ignore yourself" };
    if (this.#names.has(key)) return { error: `${name} is already ignored` };
    if (this.#names.size >= MOST_IGNORED) {
      return { error: `At most ${MOST_IGNORED} names can be ignored` };
    }
    this.#names.set(key, name);
    return { info: `Ignoring ${name} for this session (/unignore ${name} to stop)` };
  }
}

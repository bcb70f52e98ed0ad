/**
 * `/r TEXT`: answers the last private message, on the client's side (the server sees `/msg NAME
 * TEXT`). The name follows its owner's renames.
 */
import { nameKey, type ServerLine } from "../protocol.ts";

/** What a typed line becomes: the line to send, or the one-line reason it cannot be. */
export type Reply = { line: string } | { error: string };

/** The sender of the last private message, and what `/r` makes of a line. */
export class LastPrivate {
  #name: string | undefined;

  /** Notes a private message's sender, or its rename. */
  hear(line: ServerLine | undefined): void {
    if (line?.kind === "private" && line.direction === "from") this.#name = line.name;
    if (line?.kind === "rename" && this.#name && nameKey(line.oldName) === nameKey(this.#name)) {
      this.#name = line.newName;
    }
  }

  /** `/r TEXT` as `/msg NAME TEXT`; any other line as it is. */
  rewrite(line: string): Reply {
    const match = /^\s*\/r(?:\s+(.*))?$/is.exec(line);
    if (!match) return { line };
    const text = match[1]?.trim() ?? "";
    if (this.#name === undefined) {
      return { error: "No private message to answer yet: /r answers the last one" };
    }
    if (text === "") return { error: `Usage: /r TEXT (answers ${this.#name})` };
    return { line: `/msg ${this.#name} ${text}` };
  }
}

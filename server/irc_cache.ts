/**
 * The IRC translations of the room log's lines, kept by their position in the log: every IRC
 * member gets the same bytes for the same line, so each is translated once for all of them, and an
 * IRC member costs about what a TCP member does (a lookup and a copy a line, not a parse).
 */
import { readRoomLine, roomLineToIrc } from "./irc.ts";

/**
 * Bytes of translations kept: the room's latest lines, a quarter of the room log by default, enough
 * for the members of a burst of a hundred (a member further behind translates its lines itself,
 * which is slower but the same). Bounded, whatever the room says.
 */
const MAX_BYTES = 4 * 1024 * 1024;
/** What a kept line costs beyond its bytes (the map's entry, the array's header), roughly. */
const ENTRY_BYTES = 100;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The room log's lines as IRC, by position; one per IRC door (one room, one log). */
export class IrcLineCache {
  #channel: string;
  #isOperator: ((name: string) => boolean) | undefined;
  /** IRC bytes by log position; `null` for a line each member's session must see (a rename). */
  #lines = new Map<number, Uint8Array | null>();
  #bytes = 0;

  /** `isOperator`: whether a name is an operator, so that its JOIN comes with its +o. */
  constructor(channel: string, isOperator?: (name: string) => boolean) {
    this.#channel = channel;
    this.#isOperator = isOperator;
  }

  /** Translations kept now. */
  get size(): number {
    return this.#lines.size;
  }

  /**
   * The IRC bytes (with CRLFs) of the room log's line at `position`, whose bytes are `chunk`'s
   * from `start` to `end` (its LF); `null` when the line means something to each member's session
   * (a rename: of its own nick, maybe).
   */
  lookup(position: number, chunk: Uint8Array, start: number, end: number): Uint8Array | null {
    const kept = this.#lines.get(position);
    if (kept !== undefined) return kept;
    const room = readRoomLine(decoder.decode(chunk.subarray(start, end)));
    const irc = room.kind === "rename"
      ? undefined
      : roomLineToIrc(room, this.#channel, this.#isOperator);
    const bytes = irc ? encoder.encode(`${irc.join("\r\n")}\r\n`) : null;
    this.#bytes += (bytes?.length ?? 0) + ENTRY_BYTES;
    while (this.#bytes > MAX_BYTES && this.#lines.size > 0) {
      // The oldest first: a Map keeps its insertion order.
      const [oldest, kept] = this.#lines.entries().next().value!;
      this.#lines.delete(oldest);
      this.#bytes -= (kept?.length ?? 0) + ENTRY_BYTES;
    }
    this.#lines.set(position, bytes);
    return bytes;
  }
}

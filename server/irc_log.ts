/**
 * The room log's lines as IRC, in a log of their own that follows the room log: each line is
 * translated once, by the first IRC member to reach it, into segments that are only ever appended
 * to, so that every IRC member's writer sends views of the same bytes, as a TCP member's writer
 * sends views of the room log itself.
 *
 * Why beside the room log rather than in it: the room log stays the same for every door (it never
 * knows IRC), and a room with no IRC member never pays for a translation. It is read, as every
 * writer reads it, through its public positions, and only ever in the direction of the data flow.
 */
import type { RoomLog } from "./room_log.ts";
import { readRoomLine, roomLineToIrc } from "./irc.ts";

/** Translations kept, as a multiple of the room log's size: IRC lines are longer than the room's. */
const KEPT_PER_LOG_BYTE = 2;
/**
 * Bytes of one segment: big enough that a write rarely spans two, small enough that a quiet room
 * holds little. A segment is never written again once full, so a write in flight can hold a view
 * of it; one dropped from the log lives on only until such a write is done.
 */
const SEGMENT_BYTES = 1024 * 1024;
const MIN_SEGMENT_BYTES = 64 * 1024;
/** Lines whose places are kept at first; the places double as needed. */
const FIRST_ENTRIES = 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A run of translations: IRC bytes from `start` (a position in IRC bytes) on. */
interface Segment {
  start: number;
  bytes: Uint8Array;
}

/**
 * What a range of the room log is for an IRC member: shared IRC bytes, and the text of each line
 * that means something to the member's own session (a rename, maybe its own), in order.
 */
export type IrcSpan = (Uint8Array | string)[];

/** The door's translations of one room log (the first one it is given: a server has one room). */
export class IrcLog {
  #channel: string;
  #isOperator: ((name: string) => boolean) | undefined;
  #log: RoomLog | undefined;
  #keptBytes = 0;
  #segmentBytes = SEGMENT_BYTES;
  #segments: Segment[] = [];
  /** The IRC position the next translation is appended at. */
  #head = 0;
  /** Where in the room log the next line to translate starts. */
  #logNext = 0;
  /** Each line translated: where it starts in the room log and in IRC bytes, in a ring of places. */
  #logAt = new Float64Array(FIRST_ENTRIES);
  #ircAt = new Float64Array(FIRST_ENTRIES);
  /** The oldest place kept and the next one, as counts of lines translated (the ring wraps). */
  #first = 0;
  #end = 0;
  /**
   * The lines each member's session must read itself (rare): their room log positions, in order,
   * and their texts, from `#sessionFirst` on (the ones before it are dropped, and cut in bulk).
   */
  #sessionAt: number[] = [];
  #sessionText: string[] = [];
  #sessionFirst = 0;

  /** `isOperator`: whether a name is an operator, so that its JOIN comes with its +o. */
  constructor(channel: string, isOperator?: (name: string) => boolean) {
    this.#channel = channel;
    this.#isOperator = isOperator;
  }

  /** Lines whose translations are kept now. */
  get size(): number {
    return this.#end - this.#first;
  }

  /** Lines kept for each member's session to read itself (renames). */
  get sessionLineCount(): number {
    return this.#sessionAt.length - this.#sessionFirst;
  }

  /**
   * The room log's lines from `start` to `end` (whole lines) as IRC, or `undefined` when they are
   * no longer all kept (a member far behind, or another log): the member's session reads them.
   */
  span(log: RoomLog, start: number, end: number): IrcSpan | undefined {
    if (log !== this.#log) {
      if (this.#log !== undefined) return undefined;
      this.#adopt(log);
    }
    if (end > this.#logNext) this.#follow(log, start, end);
    const first = this.#find(start);
    if (first === undefined) return undefined;
    // A range that ends a lap ends where the next lap's first line starts.
    const last = end === this.#logNext ? this.#end : this.#find(log.position(end));
    if (last === undefined) return undefined;
    const ircEnd = last === this.#end ? this.#head : this.#ircAt[last & this.#mask]!;
    let ircStart = this.#ircAt[first & this.#mask]!;
    const span: IrcSpan = [];
    for (let i = this.#firstSessionLine(start); i < this.#sessionAt.length; i++) {
      const at = this.#sessionAt[i]!;
      if (at >= end) break;
      const ircAt = this.#ircAt[this.#find(at)! & this.#mask]!;
      this.#views(ircStart, ircAt, span);
      span.push(this.#sessionText[i]!);
      ircStart = ircAt;
    }
    this.#views(ircStart, ircEnd, span);
    return span;
  }

  get #mask(): number {
    return this.#logAt.length - 1;
  }

  #adopt(log: RoomLog): void {
    this.#log = log;
    this.#keptBytes = KEPT_PER_LOG_BYTE * log.size;
    this.#segmentBytes = Math.max(
      MIN_SEGMENT_BYTES,
      Math.min(SEGMENT_BYTES, Math.floor(this.#keptBytes / 8)),
    );
  }

  /**
   * Translates the lines from where it left off up to `end`, reading them from the room log. If
   * no IRC member read the lines before `start` (the last one left, say), it starts again at
   * `start`, so that a member is never made to translate what nobody reads.
   */
  #follow(log: RoomLog, start: number, end: number): void {
    if (this.#end === this.#first || log.position(start) > log.position(this.#logNext)) {
      this.#first = this.#end;
      this.#sessionAt = [];
      this.#sessionText = [];
      this.#sessionFirst = 0;
      this.#logNext = start;
    }
    let position = log.position(this.#logNext);
    while (position < end) {
      const stop = Math.min(log.end(position), end);
      const bytes = log.bytes(position, stop);
      for (let from = 0; from < bytes.length;) {
        const lf = bytes.indexOf(0x0a, from);
        if (lf === -1) break; // whole lines only: the log holds nothing else
        this.#translate(position + from, decoder.decode(bytes.subarray(from, lf)));
        from = lf + 1;
      }
      this.#logNext = stop;
      position = log.position(stop);
    }
    this.#forget(log.head - log.size);
  }

  /** Appends the translation of the room line at `at`, or marks it for each session. */
  #translate(at: number, text: string): void {
    const room = readRoomLine(text);
    const irc = room.kind === "rename"
      ? undefined
      : roomLineToIrc(room, this.#channel, this.#isOperator);
    this.#place(at);
    if (!irc) {
      this.#sessionAt.push(at);
      this.#sessionText.push(text);
      return;
    }
    const lines = `${irc.join("\r\n")}\r\n`;
    let segment = this.#segments.at(-1);
    let offset = segment ? this.#head - segment.start : 0;
    // At most 3 bytes a UTF-16 unit: if that fits, the line does (it never straddles segments).
    if (!segment || offset + lines.length * 3 > segment.bytes.length) {
      const bytes = new Uint8Array(Math.max(this.#segmentBytes, lines.length * 3));
      segment = { start: this.#head, bytes };
      offset = 0;
      this.#segments.push(segment);
      this.#drop();
    }
    this.#head += encoder.encodeInto(lines, segment.bytes.subarray(offset)).written;
  }

  /** Notes where the line at `at` starts, in the room log and in IRC bytes. */
  #place(at: number): void {
    if (this.#end - this.#first === this.#logAt.length) this.#grow();
    const index = this.#end++ & this.#mask;
    this.#logAt[index] = at;
    this.#ircAt[index] = this.#head;
  }

  #grow(): void {
    const count = this.#end - this.#first;
    const logAt = new Float64Array(2 * this.#logAt.length);
    const ircAt = new Float64Array(2 * this.#ircAt.length);
    for (let i = 0; i < count; i++) {
      logAt[i] = this.#logAt[(this.#first + i) & this.#mask]!;
      ircAt[i] = this.#ircAt[(this.#first + i) & this.#mask]!;
    }
    this.#logAt = logAt;
    this.#ircAt = ircAt;
    this.#first = 0;
    this.#end = count;
  }

  /** Drops the oldest segments past what is kept, and the lines translated into them. */
  #drop(): void {
    const segments = this.#segments;
    while (segments.length > 1 && this.#head - segments[1]!.start >= this.#keptBytes) {
      segments.shift();
    }
    const oldest = segments[0]!.start;
    while (this.#first < this.#end && this.#ircAt[this.#first & this.#mask]! < oldest) {
      this.#first++;
    }
    this.#forget(this.#first < this.#end ? this.#logAt[this.#first & this.#mask]! : Infinity);
  }

  /**
   * Forgets the lines before `oldest` in the room log: lines the log no longer holds (so no member
   * reads them), or whose translations are dropped. Renames add no bytes, so a room of renames
   * drops no segment: the room log alone bounds what is kept of them.
   */
  #forget(oldest: number): void {
    while (this.#first < this.#end && this.#logAt[this.#first & this.#mask]! < oldest) {
      this.#first++;
    }
    this.#sessionFirst = this.#firstSessionLine(oldest);
    // Cut the dropped ones once they are half the array, so each is moved at most once or so.
    if (this.#sessionFirst > 64 && 2 * this.#sessionFirst > this.#sessionAt.length) {
      this.#sessionAt.splice(0, this.#sessionFirst);
      this.#sessionText.splice(0, this.#sessionFirst);
      this.#sessionFirst = 0;
    }
  }

  /** The index of the first session line at or after `at` in the room log (a binary search). */
  #firstSessionLine(at: number): number {
    let low = this.#sessionFirst;
    let high = this.#sessionAt.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (this.#sessionAt[middle]! < at) low = middle + 1;
      else high = middle;
    }
    return low;
  }

  /** The count of the line that starts at `at` in the room log, if it is kept. */
  #find(at: number): number | undefined {
    let low = this.#first;
    let high = this.#end - 1;
    while (low <= high) {
      const middle = Math.floor((low + high) / 2);
      const logAt = this.#logAt[middle & this.#mask]!;
      if (logAt === at) return middle;
      if (logAt < at) low = middle + 1;
      else high = middle - 1;
    }
    return undefined;
  }

  /** Views of the IRC bytes from `start` to `end`, one for each segment they are in. */
  #views(start: number, end: number, span: IrcSpan): void {
    if (end <= start) return;
    const segments = this.#segments;
    let i = segments.length - 1;
    while (i > 0 && segments[i]!.start > start) i--;
    for (; start < end; i++) {
      const segment = segments[i]!;
      const next = segments[i + 1]?.start ?? this.#head;
      const stop = Math.min(end, next);
      span.push(segment.bytes.subarray(start - segment.start, stop - segment.start));
      start = stop;
    }
  }
}

/**
 * The room log: every line meant for the room, encoded once and appended to one bounded ring that
 * all members read from. Each member holds only a cursor into it, so the memory for queued room
 * output is the log's size, whatever the number of members, and any member may lag by the whole
 * log. A member the log overtakes (it would overwrite bytes the member has not sent) has stopped
 * reading, and is cut.
 */

/**
 * How long a notice (a join, a leave) waits before it wakes the readers, in a room of `readers`:
 * 10 µs a member, at most 100 ms. The joins of a storm arrive each in a turn of their own; woken
 * at once, each member would get every join in a write of its own, and the writes to a large room
 * would take the CPU the joins need. A turn in a room of a hundred, 10 ms in a room of a thousand,
 * 100 ms from ten thousand on: a tenth of a second on a join or a leave goes unnoticed.
 */
export function noticeDelayMs(readers: number): number {
  return Math.min(100, Math.floor(readers / 100));
}

/** One reader of the log: a member's writer. The log moves its cursor only where said below. */
export interface LogReader {
  /** Absolute position in the log of the next byte the reader sends. */
  cursor: number;
  /** The log the reader reads, set by {@linkcode RoomLog.add}, cleared when it is done or cut. */
  log: RoomLog | undefined;
  /** Where its part of the log ends: set when it is removed, so that it still gets what was said
   * before it left, and then {@linkcode RoomLog.release}s itself. */
  stopAt: number;
  /** Whether a write from the log's bytes is in flight, so they must not be overwritten yet. */
  readonly isSendingLog: boolean;
  /** The log has bytes past the cursor of this reader, which was waiting for them. */
  wake(): void;
  /**
   * The log must overwrite bytes this reader has not sent: it has stopped reading. Close its
   * connection now, before the overwrite, so that a write in flight sends nothing more; and append
   * nothing meanwhile (its leave notice comes later, from whoever ends the connection).
   */
  overtake(): void;
  /** The reader appended the line at [start, end) itself: it must skip it. */
  skip(start: number, end: number): void;
}

/**
 * A ring of bytes addressed by absolute positions, which only grow. A line never straddles the end
 * of the ring: the rest of a lap it does not fit in is left as a gap, and readers jump it.
 * Positions in the current lap run from `lapStart` to `head`; the data of the lap before it ends
 * at `lapEnd`, and a reader at `lapEnd` is at `lapStart`.
 */
export class RoomLog {
  readonly size: number;
  #ring: Uint8Array;
  #head = 0;
  #lapStart = 0;
  #lapEnd = 0;
  #readers = new Set<LogReader>();
  /** Readers with nothing left to send from the log: each is woken by the next append. */
  #waiting = new Set<LogReader>();
  #wakeTimer: ReturnType<typeof setTimeout> | undefined;
  /** Where the last line that is not a notice starts: a reader past it has only notices to send. */
  #lastUrgentAt = -1;
  /** Bytes appended since the readers were last woken. */
  #sinceWake = 0;
  /** No reader's cursor is below this, so appends below it need not look at the readers. */
  #lowestCursor = 0;

  /** An empty log of `size` bytes. */
  constructor(size: number) {
    if (!(Number.isInteger(size) && size > 0)) throw new RangeError(`Cannot use log size ${size}`);
    this.size = size;
    this.#ring = new Uint8Array(size);
  }

  /** The position the next line will be appended at, or past (after a gap). */
  get head(): number {
    return this.#head;
  }

  /** Readers of the log. */
  get readerCount(): number {
    return this.#readers.size;
  }

  /** Adds a reader at the head: it gets every line appended from now on, but its own. */
  add(reader: LogReader): void {
    reader.cursor = this.#head;
    reader.stopAt = Infinity;
    reader.log = this;
    this.#readers.add(reader);
    this.#waiting.add(reader);
  }

  /**
   * Removes a reader: it gets no line appended from now on. It still reads what is in the log for
   * it, protected like any reader's, and then {@linkcode release}s itself.
   */
  remove(reader: LogReader): void {
    if (reader.log !== this || reader.stopAt !== Infinity) return;
    reader.stopAt = this.#head;
    // One waiting with notices to send stays so: the wake that is due sends them.
    if (this.position(reader.cursor) >= this.#head && !reader.isSendingLog) this.release(reader);
  }

  /** The reader is done with the log (it read its part, or its connection closed). */
  release(reader: LogReader): void {
    this.#readers.delete(reader);
    this.#waiting.delete(reader);
    if (reader.log === this) reader.log = undefined;
  }

  /** The reader has sent everything up to the head and waits for the next append. */
  wait(reader: LogReader): void {
    if (reader.log === this && reader.stopAt === Infinity) this.#waiting.add(reader);
  }

  /** Where a reader at `cursor` really is: the end of the last lap's data is the lap's start. */
  position(cursor: number): number {
    return cursor === this.#lapEnd && cursor < this.#lapStart ? this.#lapStart : cursor;
  }

  /** The end of the bytes that can be sent in one piece from `position` (a result of position()). */
  end(position: number): number {
    return position < this.#lapStart ? this.#lapEnd : this.#head;
  }

  /** The bytes from `start` to `end`, in one lap: a view of the ring, not a copy. */
  bytes(start: number, end: number): Uint8Array {
    const offset = start % this.size;
    return this.#ring.subarray(offset, offset + end - start);
  }

  /**
   * Appends an encoded line (or several, each with its LF) for every reader but `from`, and
   * returns its position. Readers whose unsent bytes it overwrites are cut first. A line wakes the
   * readers at once, with whatever notices wait; a notice wakes them after {@linkcode noticeDelayMs}.
   */
  append(line: Uint8Array, from?: LogReader, isNotice = false): number {
    const size = line.length;
    if (size > this.size) {
      throw new RangeError(`Cannot append ${size} bytes to a log of ${this.size}`);
    }
    let start = this.#head;
    if (start + size > this.#lapStart + this.size) {
      // It does not fit in this lap: the rest is a gap, and the line starts the next lap.
      this.#lapEnd = start;
      this.#lapStart += this.size;
      start = this.#lapStart;
    }
    const end = start + size;
    const oldest = end - this.size;
    if (oldest > this.#lowestCursor) this.#overtake(oldest);
    this.#ring.set(line, start % this.size);
    this.#head = end;
    if (from?.log === this && from.stopAt === Infinity) {
      if (this.position(from.cursor) === start) from.cursor = end;
      else from.skip(start, end);
    }
    this.#sinceWake += size;
    // Notices wait for the wake, but never long enough to overtake a reader that keeps up.
    if (!isNotice || this.#sinceWake > this.size / 4) {
      if (!isNotice) this.#lastUrgentAt = start;
      this.#wakeAll();
    } else this.#scheduleWake();
    return start;
  }

  /**
   * Whether all a reader at `position` has left to send are notices (joins, leaves), which can
   * wait for the next wake; a chat line among them is sent at once.
   */
  hasOnlyNotices(position: number): boolean {
    return position > this.#lastUrgentAt;
  }

  /**
   * The reader has only notices to send, and sends them with the others at the next wake: in a
   * storm of joins, each write then takes many joins instead of the few of one turn.
   */
  defer(reader: LogReader): void {
    if (reader.log !== this || reader.stopAt !== Infinity) return;
    this.#waiting.add(reader);
    this.#scheduleWake();
  }

  /** Whether readers wait for a wake that is due (notices wait for it; see noticeDelayMs). */
  get isWakeDue(): boolean {
    return this.#wakeTimer !== undefined;
  }

  /** Stops waking readers: the room is closing. */
  close(): void {
    clearTimeout(this.#wakeTimer);
    this.#wakeTimer = undefined;
  }

  /** Wakes the readers once the notices appended have waited their delay (see noticeDelayMs). */
  #scheduleWake(): void {
    this.#wakeTimer ??= setTimeout(this.#wakeAll, noticeDelayMs(this.#readers.size));
  }

  /** Wakes every waiting reader that has something to send. */
  readonly #wakeAll = (): void => {
    clearTimeout(this.#wakeTimer);
    this.#wakeTimer = undefined;
    this.#sinceWake = 0;
    for (const reader of this.#waiting) {
      if (this.position(reader.cursor) === this.#head) continue; // only its own lines since
      this.#waiting.delete(reader);
      reader.wake();
    }
  };

  /**
   * Cuts the readers below `oldest` and notes the lowest cursor left. A scan of every reader, but
   * only when the oldest byte passes the lowest cursor noted, which readers that keep up make rare.
   */
  #overtake(oldest: number): void {
    let lowest = this.#head;
    const overtaken: LogReader[] = [];
    for (const reader of this.#readers) {
      const position = this.position(reader.cursor);
      if (position >= oldest) {
        lowest = Math.min(lowest, position);
        continue;
      }
      this.#readers.delete(reader);
      this.#waiting.delete(reader);
      reader.log = undefined;
      overtaken.push(reader);
    }
    this.#lowestCursor = lowest;
    // Closed before the overwrite: a closed connection's pending write sends nothing more.
    for (const reader of overtaken) reader.overtake();
  }
}

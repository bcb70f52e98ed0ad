/** One client connection: its single writer from the room log and its own lines, its budgets, and its closing. */
import type { Tally } from "./metrics.ts";
import type { CloseReason, Member } from "./hub.ts";
import type { AddressState } from "./limits.ts";
import type { RoomLog } from "./room_log.ts";
import { describe, encodeLine, formatError, hostPort, ProtocolError } from "../protocol.ts";
import { type ChatConn, closeQuietly, isPeerGone } from "./conn.ts";

/** How long a closing peer may take to receive its last lines before its socket is closed anyway. */
const END_TIMEOUT_MS = 2000;
/**
 * Smallest and largest socket read. Every idle peer has a read pending, so a read that may wait
 * uses a small buffer (a chat line fits); while reads fill their buffer, a larger one that doubles
 * up to the largest is used, and given back once the peer has been quiet for a trim interval.
 */
const MIN_READ_BYTES = 512;
const LARGE_READ_BYTES = 4096;
const MAX_READ_BYTES = 64 * 1024;

/** Lines for one peer alone, due once its cursor has reached the log position they were sent at. */
interface PrivateLines {
  at: number;
  bytes: Uint8Array;
  /** Whether they count against the limit (the join reply does not). */
  isCounted: boolean;
}

/**
 * Private lines shorter than this are gathered into one write, up to `MAX_GATHERED_BYTES`; longer
 * ones (the pieces of a big room's list, kept by the hub) are written as they are, since copying
 * them for every newcomer of a join storm cost more memory than their extra writes cost time.
 */
const GATHERED_LINE_BYTES = 1024;
const MAX_GATHERED_BYTES = 16 * 1024;

/**
 * One connection, and its single writer. What it sends comes from two places, in order: the room
 * log, from the peer's cursor up to the head (written straight from the log, skipping the peer's
 * own lines), and its private lines (replies, errors, private messages, the join reply), each due
 * once the cursor has reached the log position it was sent at. The writer writes at once when
 * idle; while a write is in flight, the next write takes everything up to the head. A peer the log
 * overtakes, or whose private lines pass their limit, has stopped reading and is closed.
 */
/** How a member came: plain TCP, TLS, the page's WebSocket or the IRC door. */
export type ConnKind = "tcp" | "tls" | "websocket" | "irc";

export class Peer implements Member {
  name = "";
  isJoined = false;
  isEnding = false;
  /** Why the server closed it, for the leave notice and the log. */
  closeReason: CloseReason | undefined;
  /** What the log adds to the reason ("no byte taken for 30 s"): which limit it met. */
  closeDetail: string | undefined;
  /** Whether a TLS handshake is under way, which has a deadline of its own. */
  isHandshaking = false;
  /** When the last line arrived (`Date.now()`, cheaper than `performance.now()`), or connected. */
  lastLineAt = Date.now();
  readonly connectedAt = Date.now();
  /** What the server knows of the peer's address, shared by every connection from it. */
  readonly address: AddressState;
  readonly closed: Promise<void>;
  /** Its place in the room log (see {@linkcode LogReader}). */
  cursor = 0;
  log: RoomLog | undefined;
  stopAt = Infinity;
  /** The remote address (`host:port`, or the host alone when a proxy gave no port), for logs. */
  readonly where: string;
  /** The client's address alone (the one a trusted proxy reports), which address bans match. */
  readonly hostname: string;
  readonly #conn: ChatConn;
  readonly #maxBacklogBytes: number;
  readonly #stop = new AbortController();
  #privates: PrivateLines[] = [];
  /** Bytes of private lines waiting that count against the limit, and of the first one written. */
  #privateBytes = 0;
  #privateOffset = 0;
  /** Where the peer's own lines are in the log, as start and end pairs from `#ownHead` on. */
  #own: number[] = [];
  #ownHead = 0;
  #isWriteClosed = false;
  /** The log a write in flight comes from, and where its range ends. */
  #sendingFrom: RoomLog | undefined;
  #sendingEnd = 0;
  /** The log ranges a gathered write in flight holds a copy of, as start and end pairs. */
  #gathered: number[] | undefined;
  /** Whether the kernel took the whole of the last write: only then is gathering worth a copy. */
  #wasWriteWhole = true;
  #smallReadBuffer = new Uint8Array(MIN_READ_BYTES);
  #largeReadBuffer: Uint8Array | undefined;
  /** Whether the last read filled its buffer, so that more is probably waiting. */
  #wasReadFull = false;
  #readSinceTrim = false;
  #isWriting = false;
  #writingBytes = 0;
  #writeStartedAt = 0;
  #isClosed = false;
  #isReadEnded = false;
  #endTimer: ReturnType<typeof setTimeout> | undefined;
  #resolveClosed: () => void;

  /** How the member came: plain TCP, TLS or the page's WebSocket (for the metrics). */
  readonly kind: ConnKind;
  readonly #tally: Tally | undefined;

  constructor(
    conn: ChatConn,
    options: {
      maxBacklogBytes: number;
      address: AddressState;
      kind?: ConnKind;
      tally?: Tally;
    },
  ) {
    this.#conn = conn;
    this.#maxBacklogBytes = options.maxBacklogBytes;
    this.address = options.address;
    this.kind = options.kind ?? "tcp";
    this.#tally = options.tally;
    const remote = conn.remoteAddr as Deno.NetAddr;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.closed = promise;
    this.#resolveClosed = resolve;
    // A client a proxy forwarded without its port (X-Forwarded-For) has port 0: none to show.
    this.where = remote.port ? hostPort(remote.hostname, remote.port) : remote.hostname;
    this.hostname = remote.hostname;
  }

  /** For logs: the remote address, with the current name once it has one. */
  get label(): string {
    return this.name ? `${this.name} (${this.where})` : this.where;
  }

  /** Aborted when the socket is closed, to cut short whatever waits for this peer. */
  get signal(): AbortSignal {
    return this.#stop.signal;
  }

  get isSendingLog(): boolean {
    return this.#sendingFrom !== undefined;
  }

  /**
   * The next bytes from the socket, or `null` at its end. The buffer is reused by the next read:
   * use the bytes before reading again. Unlike `conn.readable`, reaching the end does not close
   * the socket, so the replies to a client's last lines still go out.
   */
  async read(): Promise<Uint8Array | null> {
    const buffer = this.#wasReadFull
      ? this.#largeReadBuffer ??= new Uint8Array(LARGE_READ_BYTES)
      : this.#smallReadBuffer;
    const count = await this.#conn.read(buffer);
    if (count === null) return null;
    this.#readSinceTrim = true;
    this.#wasReadFull = count === buffer.length;
    if (this.#wasReadFull && buffer === this.#largeReadBuffer && count < MAX_READ_BYTES) {
      this.#largeReadBuffer = new Uint8Array(count * 2);
    }
    return buffer.subarray(0, count);
  }

  /** How long the write in flight has waited for the kernel to take anything, in ms (0 if none). */
  writeStalledFor(now: number): number {
    return this.#isWriting ? now - this.#writeStartedAt : 0;
  }

  /** Queues a line for this peer alone, after the room lines already in the log. */
  send(bytes: Uint8Array): void {
    if (this.#privateBytes + bytes.length > this.#maxBacklogBytes) {
      return this.close("stopped reading", `over ${this.#maxBacklogBytes} bytes of its own lines`);
    }
    this.#queue(bytes, true);
  }

  /**
   * Queues the join reply. It does not count against the limit on private lines: every newcomer
   * must get it, however long the history and the room list make it.
   */
  welcome(lines: readonly Uint8Array[]): void {
    for (const bytes of lines) this.#queue(bytes, false);
  }

  /** Sends a one-line error to this peer only. */
  sendError(message: string): void {
    this.send(encodeLine(formatError(message)));
  }

  wake(): void {
    if (!this.#isWriting) this.#pump();
  }

  overtake(): void {
    this.close("stopped reading", "the room log overtook it");
  }

  skip(start: number, end: number): void {
    this.#own.push(start, end);
  }

  /** Bytes of the read buffers this peer holds now. */
  get readBufferBytes(): number {
    return this.#smallReadBuffer.length + (this.#largeReadBuffer?.length ?? 0);
  }

  /** Lets go of the large read buffer if the peer has sent nothing since the last call. */
  trimBuffers(): void {
    if (!this.#readSinceTrim && !this.#wasReadFull) this.#largeReadBuffer = undefined;
    this.#readSinceTrim = false;
  }

  /**
   * Accepts nothing more and closes once the queued lines are out, or after a short while at most.
   * It half-closes first while the client may still be sending: closing a socket with unread input
   * sends a reset, which can destroy our last lines before the client reads them.
   */
  end(): void {
    if (this.isEnding || this.#isClosed) return;
    this.isEnding = true;
    this.#endTimer = setTimeout(() => this.close(), END_TIMEOUT_MS);
    if (!this.#isWriting) this.#pump(); // notices that wait for the wake go first
  }

  /** The read loop has seen the socket end: close as soon as the last lines are out. */
  readEnded(): void {
    this.#isReadEnded = true;
    if (!this.isEnding) return this.end();
    if (!this.#isWriting) this.close();
  }

  /**
   * Closes the socket now, dropping what is queued; the read loop then ends. `reason` is for the
   * room and the log, `detail` for the log alone.
   */
  close(reason?: CloseReason, detail?: string): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.closeReason ??= reason;
    this.closeDetail = detail;
    clearTimeout(this.#endTimer);
    this.#privates = [];
    this.#privateBytes = 0;
    closeQuietly(this.#conn);
    this.log?.release(this);
    this.#stop.abort();
    this.#resolveClosed();
  }

  #queue(bytes: Uint8Array, isCounted: boolean): void {
    if (this.#isClosed || this.isEnding) return;
    this.#privates.push({ at: this.log?.head ?? 0, bytes, isCounted });
    if (isCounted) this.#privateBytes += bytes.length;
    if (!this.#isWriting) this.#pump();
  }

  /**
   * Starts the next write: the first private line if it is due, else the room's bytes from the
   * cursor up to the first of the head, the end of the lap, one of the peer's own lines, or the
   * position of the next private line. With nothing to write, it waits for the log.
   */
  #pump(isAfterWrite = false): void {
    const log = this.log;
    let cursor = log ? log.position(this.cursor) : 0;
    const next = this.#privates[0];
    if (next && (!log || next.at <= cursor)) return this.#writePrivate(log ? cursor : Infinity);
    if (log) {
      const own = this.#own;
      while (this.#ownHead < own.length && own[this.#ownHead]! <= cursor) {
        if (own[this.#ownHead] === cursor) cursor = log.position(own[this.#ownHead + 1]!);
        this.#ownHead += 2;
      }
      if (this.#ownHead === own.length && own.length > 0) {
        this.#own = [];
        this.#ownHead = 0;
      }
      this.cursor = cursor;
      if (cursor >= this.stopAt) {
        log.release(this); // removed, and it has sent what was said before that
        return this.#pump();
      }
      let limit = Math.min(log.end(cursor), this.stopAt);
      if (next) limit = Math.min(limit, next.at);
      let end = limit;
      if (this.#ownHead < this.#own.length) end = Math.min(end, this.#own[this.#ownHead]!);
      if (end < limit && this.#writeGathered(log, cursor, end, limit)) return;
      if (end > cursor) {
        // Only notices since the last write: they go at the next wake, with more of them.
        const isStaying = this.stopAt === Infinity && !this.isEnding;
        if (isAfterWrite && !next && isStaying && log.hasOnlyNotices(cursor)) {
          return log.defer(this);
        }
        return this.#writeLog(log, cursor, end);
      }
      if (next) return this.#writePrivate(cursor); // due now that its own lines are skipped
      log.wait(this);
    }
    if (this.isEnding && !this.#isClosed) this.#afterLastWrite();
  }

  /** Writes the private lines due at `cursor`, several gathered into one write when they are. */
  #writePrivate(cursor: number): void {
    const first = this.#privates[0]!;
    let count = 1;
    let size = first.bytes.length - this.#privateOffset;
    const isSmall = size < GATHERED_LINE_BYTES;
    while (isSmall && count < this.#privates.length) {
      const lines = this.#privates[count]!;
      if (lines.at > cursor || lines.bytes.length >= GATHERED_LINE_BYTES) break;
      if (size + lines.bytes.length > MAX_GATHERED_BYTES) break;
      size += lines.bytes.length;
      count++;
    }
    if (count === 1) return this.#write(first.bytes.subarray(this.#privateOffset));
    const gathered = new Uint8Array(size);
    gathered.set(first.bytes.subarray(this.#privateOffset));
    for (let i = 1, offset = first.bytes.length - this.#privateOffset; i < count; i++) {
      gathered.set(this.#privates[i]!.bytes, offset);
      offset += this.#privates[i]!.bytes.length;
    }
    this.#write(gathered);
  }

  /** The kernel took `written` bytes of private lines: drops those that are out. */
  #wrotePrivate(written: number): void {
    while (written > 0) {
      const first = this.#privates[0]!;
      const rest = first.bytes.length - this.#privateOffset;
      if (written < rest) {
        this.#privateOffset += written;
        return;
      }
      written -= rest;
      this.#privates.shift();
      if (first.isCounted) this.#privateBytes -= first.bytes.length;
      this.#privateOffset = 0;
    }
  }

  /**
   * Writes the room's lines from `cursor` to `limit` less the peer's own lines among them, copied
   * into one write, when they are short: in a small room where everyone talks, the own lines would
   * otherwise cut every write to a few lines (Deno has no vectored write). A large range is written
   * from the log itself, and so is everything for a peer whose socket is not keeping up, so that
   * copies stay small and few. `end` is the start of the first own line. False if not worth it.
   */
  #writeGathered(log: RoomLog, cursor: number, end: number, limit: number): boolean {
    if (!this.#wasWriteWhole || end - cursor > MAX_GATHERED_BYTES / 2) return false;
    const own = this.#own;
    const ranges: number[] = [];
    let size = 0;
    for (let start = cursor, stop = end, i = this.#ownHead;;) {
      if (size + stop - start > MAX_GATHERED_BYTES) break;
      if (stop > start) ranges.push(start, stop);
      size += stop - start;
      if (stop >= limit) break;
      start = own[i + 1]!; // past the own line that starts at `stop`
      if (start >= limit) break;
      i += 2;
      stop = i < own.length ? Math.min(own[i]!, limit) : limit;
    }
    if (ranges.length < 4) return false;
    const gathered = new Uint8Array(size);
    for (let r = 0, offset = 0; r < ranges.length; r += 2) {
      gathered.set(log.bytes(ranges[r]!, ranges[r + 1]!), offset);
      offset += ranges[r + 1]! - ranges[r]!;
    }
    this.#sendingFrom = log;
    this.#sendingEnd = ranges[ranges.length - 1]!;
    this.#gathered = ranges;
    this.#write(gathered, ranges);
    return true;
  }

  /** The kernel took `written` bytes of a gathered write: the cursor moves past them. */
  #wroteGathered(ranges: number[], written: number): void {
    for (let r = 0; r < ranges.length; r += 2) {
      const length = ranges[r + 1]! - ranges[r]!;
      this.cursor = ranges[r]! + Math.min(written, length);
      written -= length;
      if (written <= 0) return;
    }
  }

  #writeLog(log: RoomLog, start: number, end: number): void {
    this.#sendingFrom = log;
    this.#sendingEnd = end;
    this.#write(log.bytes(start, end), start);
  }

  /** Writes `chunk`; `at` says where it is in the room log, if it comes from it. */
  #write(chunk: Uint8Array, at?: number | readonly number[]): void {
    this.#isWriting = true;
    this.#writeStartedAt = Date.now();
    this.#writingBytes = chunk.length;
    this.#conn.write(chunk, at, this.#sendingFrom).then(this.#wrote, this.#writeFailed);
  }

  /** A write has finished: account for what the kernel took, and write what comes next. */
  readonly #wrote = (written: number): void => {
    this.#isWriting = false;
    if (this.#tally) {
      this.#tally.deliveries++;
      this.#tally.bytesWritten += written;
    }
    this.#wasWriteWhole = written === this.#writingBytes;
    const from = this.#sendingFrom;
    this.#sendingFrom = undefined;
    const gathered = this.#gathered;
    this.#gathered = undefined;
    if (gathered) {
      this.#wroteGathered(gathered, written); // what is left is worked out afresh from the cursor
    } else if (from) {
      this.cursor += written;
      // The kernel took part of it: the rest goes first.
      if (this.cursor < this.#sendingEnd && !this.#isClosed) {
        return this.#writeLog(from, this.cursor, this.#sendingEnd);
      }
    } else if (!this.#isClosed) {
      this.#wrotePrivate(written);
    }
    if (!this.#isClosed) this.#pump(true);
  };

  readonly #writeFailed = (error: unknown): void => {
    this.#isWriting = false;
    this.#sendingFrom = undefined;
    this.#gathered = undefined;
    // The peer is gone (reset, broken pipe) or was closed meanwhile: never write to it again.
    // Anything else was not expected: the reason is the error itself, described.
    this.close(isPeerGone(error) ? undefined : describe(error) as CloseReason);
  };

  #afterLastWrite(): void {
    if (this.#isReadEnded) return this.close();
    if (this.#isWriteClosed) return;
    this.#isWriteClosed = true;
    this.#conn.closeWrite().catch(() => this.close()); // a failure means the socket is gone
  }
}

/**
 * Runs a call for a peer (a hub call, a registration) that may be asynchronous, sending a
 * {@linkcode ProtocolError} from it to the peer as an error line, and calling `then` when it
 * succeeds.
 */
export function replyTo(
  peer: Peer,
  call: () => void | Promise<void>,
  then = () => {},
): void | Promise<void> {
  const onError = (error: unknown) => {
    if (!(error instanceof ProtocolError)) throw error;
    peer.sendError(error.message);
  };
  try {
    const pending = call();
    if (pending) return pending.then(then, onError);
    then();
  } catch (error) {
    onError(error);
  }
}

/** Members by how they came, and the room log's size and the most any member lags by. */
export interface Census {
  members: Record<ConnKind, number>;
  connections: number;
  logSize: number;
  logFill: number;
  /** Bans in force. */
  bans?: number;
  /** Places kept for members whose connection was lost. */
  keptPlaces?: number;
}

/** The census of `peers`, for the metrics. */
export function census(peers: ReadonlySet<Peer>): Census {
  const members = { tcp: 0, tls: 0, websocket: 0, irc: 0 };
  let logSize = 0;
  let logFill = 0;
  for (const peer of peers) {
    if (!peer.isJoined) continue;
    members[peer.kind]++;
    const { log } = peer;
    if (!log) continue;
    logSize = log.size;
    logFill = Math.max(logFill, log.head - peer.cursor);
  }
  return { members, connections: peers.size, logSize, logFill };
}

/** Bytes of read buffers `peers` hold now: what a burst of long lines left behind. */
export function readBufferBytes(peers: Iterable<Peer>): number {
  let bytes = 0;
  for (const peer of peers) bytes += peer.readBufferBytes;
  return bytes;
}

/** One client connection: its bounded outbox and single writer, its flood bucket, and its closing. */
import type { Member } from "./hub.ts";
import type { AddressState, TokenBucket } from "./limits.ts";
import { encodeLine, formatError } from "./protocol.ts";

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

/** The smallest buffer a busy peer gathers its lines in. */
const MIN_BUFFER_BYTES = 4096;
const EMPTY = new Uint8Array(0);

/**
 * What a peer needs of its connection: a `Deno.Conn` (TCP or TLS) has all of it, and another
 * transport (a WebSocket carrying one line per message) can offer the same, so that every member
 * goes through the same limits and the same writer.
 */
export interface ChatConn {
  /** The client's address: its `hostname` is what the per-address limits count. */
  readonly remoteAddr: Deno.Addr;
  /** Reads into `buffer`: the number of bytes read, or `null` at the end of the input. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes from `bytes` (whole lines, each ending in LF): the number of bytes taken. */
  write(bytes: Uint8Array): Promise<number>;
  /** Says that nothing more will be written, while the client may still be sending. */
  closeWrite(): Promise<void>;
  /** Closes the connection now; throws if it is closed already. */
  close(): void;
}

/**
 * One connection. Its outbox has exactly one writer, which writes a line at once when idle (from
 * the line's own bytes, without a copy) and, while a write is in flight, gathers what arrives into
 * the next single write. Gathering copies each line once into one of two buffers that take turns:
 * one being written, one filling. A peer whose backlog passes the limit is closed, so nobody waits
 * for it, and a peer that stays idle gives its buffers back (see {@linkcode Peer.trimBuffers}).
 */
export class Peer implements Member {
  name = "";
  isJoined = false;
  isEnding = false;
  /** Why the server closed it, for the leave notice and the log. */
  closeReason: string | undefined;
  /** Lines that had to wait for the flood bucket since it was last full. */
  floodStrikes = 0;
  /** Since when the peer has been over its byte budget without a pause that refilled it. */
  overBudgetSince: number | undefined;
  /** Whether a TLS handshake is under way, which has a deadline of its own. */
  isHandshaking = false;
  /** When the last line arrived (`Date.now()`, cheaper than `performance.now()`), or connected. */
  lastLineAt = Date.now();
  readonly connectedAt = Date.now();
  /** What the server knows of the peer's address, shared by every connection from it. */
  readonly address: AddressState;
  readonly closed: Promise<void>;
  /** Its flood control: lines, and bytes; none when flood control is off. */
  readonly bucket: TokenBucket | undefined;
  readonly bytes: TokenBucket | undefined;
  readonly #where: string;
  readonly #conn: ChatConn;
  readonly #maxBacklogBytes: number;
  readonly #stop = new AbortController();
  /** Lines waiting for the writer, gathered in `#filling` up to `#fillingLength`. */
  #filling = EMPTY;
  #fillingLength = 0;
  /** The buffer the last write came from, to fill next. */
  #spare = EMPTY;
  /** The write in flight, and how much of its end the kernel has not taken yet. */
  #chunk = EMPTY;
  #inFlightBytes = 0;
  #wroteSinceTrim = false;
  #smallReadBuffer = new Uint8Array(MIN_READ_BYTES);
  #largeReadBuffer: Uint8Array | undefined;
  /** Whether the last read filled its buffer, so that more is probably waiting. */
  #wasReadFull = false;
  #readSinceTrim = false;
  #isWriting = false;
  #writeStartedAt = 0;
  #isClosed = false;
  #isReadEnded = false;
  #endTimer: ReturnType<typeof setTimeout> | undefined;
  #resolveClosed: () => void;

  constructor(
    conn: ChatConn,
    options: {
      maxBacklogBytes: number;
      address: AddressState;
      bucket?: TokenBucket;
      bytes?: TokenBucket;
    },
  ) {
    this.#conn = conn;
    this.#maxBacklogBytes = options.maxBacklogBytes;
    this.address = options.address;
    this.bucket = options.bucket;
    this.bytes = options.bytes;
    const remote = conn.remoteAddr as Deno.NetAddr;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.closed = promise;
    this.#resolveClosed = resolve;
    this.#where = remote.hostname.includes(":")
      ? `[${remote.hostname}]:${remote.port}`
      : `${remote.hostname}:${remote.port}`;
  }

  /** For logs: the remote address, with the current name once it has one. */
  get label(): string {
    return this.name ? `${this.name} (${this.#where})` : this.#where;
  }

  /** Aborted when the socket is closed, to cut short whatever waits for this peer. */
  get signal(): AbortSignal {
    return this.#stop.signal;
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

  send(bytes: Uint8Array): void {
    if (this.#isClosed || this.isEnding) return;
    if (this.#fillingLength + this.#inFlightBytes + bytes.length > this.#maxBacklogBytes) {
      return this.close("stopped reading");
    }
    if (!this.#isWriting) return this.#write(bytes);
    const needed = this.#fillingLength + bytes.length;
    if (needed > this.#filling.length) {
      const grown = new Uint8Array(Math.max(MIN_BUFFER_BYTES, needed, 2 * this.#filling.length));
      grown.set(this.#filling.subarray(0, this.#fillingLength));
      this.#filling = grown;
    }
    this.#filling.set(bytes, this.#fillingLength);
    this.#fillingLength = needed;
  }

  /**
   * Lets go of the gathering buffers if the peer has written nothing since the last call: the
   * server calls this about once a second, so busy peers keep their buffers (allocating them for
   * every burst was a third of the server's time) and idle ones cost nothing.
   */
  trimBuffers(): void {
    if (!this.#wroteSinceTrim && !this.#isWriting) this.#filling = this.#spare = EMPTY;
    if (!this.#readSinceTrim && !this.#wasReadFull) this.#largeReadBuffer = undefined;
    this.#wroteSinceTrim = this.#readSinceTrim = false;
  }

  /** Sends a one-line error to this peer only. */
  sendError(message: string): void {
    this.send(encodeLine(formatError(message)));
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
    if (!this.#isWriting) this.#afterLastWrite();
  }

  /** The read loop has seen the socket end: close as soon as the last lines are out. */
  readEnded(): void {
    this.#isReadEnded = true;
    if (!this.isEnding) return this.end();
    if (!this.#isWriting) this.close();
  }

  /** Closes the socket now, dropping what is queued; the read loop then ends. */
  close(reason?: string): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.closeReason ??= reason;
    clearTimeout(this.#endTimer);
    this.#filling = this.#spare = EMPTY;
    this.#fillingLength = 0;
    try {
      this.#conn.close();
    } catch {
      // Already closed (for example by the other side's reset): closing is all we wanted.
    }
    this.#stop.abort();
    this.#resolveClosed();
  }

  #afterLastWrite(): void {
    if (this.#isReadEnded) return this.close();
    this.#conn.closeWrite().catch(() => this.close()); // a failure means the socket is gone
  }

  /**
   * Starts writing `chunk`. The writer is a chain of callbacks rather than an async loop: a line
   * to an idle peer, the common case, then costs one call into the runtime and nothing more, which
   * matters when one line goes to hundreds of peers at once.
   */
  #write(chunk: Uint8Array): void {
    this.#isWriting = true;
    this.#chunk = chunk as Uint8Array<ArrayBuffer>;
    this.#inFlightBytes = chunk.length;
    this.#writeStartedAt = Date.now();
    this.#conn.write(chunk).then(this.#wrote, this.#writeFailed);
  }

  /** A write has finished: write the rest of it, or what gathered meanwhile, or stop. */
  readonly #wrote = (written: number): void => {
    this.#inFlightBytes -= written;
    if (this.#isClosed) return this.#stopWriting();
    if (this.#inFlightBytes > 0) {
      // The kernel took only part of it: the backlog counts what it has not taken.
      const rest = this.#chunk.subarray(this.#chunk.length - this.#inFlightBytes);
      this.#writeStartedAt = Date.now();
      return void this.#conn.write(rest).then(this.#wrote, this.#writeFailed);
    }
    if (this.#fillingLength === 0) return this.#stopWriting();
    // The gathered lines go out next; the buffer just written fills meanwhile.
    const buffer = this.#filling;
    const gathered = buffer.subarray(0, this.#fillingLength);
    this.#filling = this.#spare;
    this.#fillingLength = 0;
    this.#spare = buffer;
    this.#write(gathered);
  };

  readonly #writeFailed = (error: unknown): void => {
    // The peer is gone (reset, broken pipe) or was closed meanwhile: never write to it again.
    this.close(isPeerGone(error) ? undefined : describe(error));
    this.#stopWriting();
  };

  #stopWriting(): void {
    this.#isWriting = false;
    this.#inFlightBytes = 0;
    this.#chunk = EMPTY;
    this.#wroteSinceTrim = true;
    if (this.isEnding && !this.#isClosed) this.#afterLastWrite();
  }
}

/** Errors that mean the other side went away: a normal ending, not worth a stack trace. */
const PEER_GONE: ReadonlyArray<new (...args: never[]) => Error> = [
  Deno.errors.BadResource,
  Deno.errors.BrokenPipe,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.NotConnected,
  Deno.errors.UnexpectedEof,
  Deno.errors.Interrupted,
];

/** Whether an error only means that the other side went away. */
export function isPeerGone(error: unknown): boolean {
  return PEER_GONE.some((kind) => error instanceof kind);
}

/** An error in one line: its name and message. */
export function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

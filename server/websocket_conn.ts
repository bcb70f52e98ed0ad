/**
 * A WebSocket as a chat connection, shaped like a TCP one: `read` gives the client's lines as
 * bytes (each text message, then a LF), `write` sends the lines it is given as one text frame.
 */
import { type ChatConn, closeQuietly } from "./conn.ts";
import { encodeLine, formatError } from "../protocol.ts";
import { writeAll } from "./http.ts";
import {
  CLOSE_CODE,
  type ControlFrame,
  encodeClose,
  encodeFrame,
  FrameDecoder,
  type FrameError,
  frameHeader,
  OPCODE,
} from "./websocket.ts";

/** How long the last frames (an error, the close) may take to go out once the socket is closed. */
const LINGER_MS = 1000;
/**
 * Bytes of frames that carry no text (pings, empty fragments) a client may send in a row: they
 * cost the server work but pass no bytes to the line splitter and its budget, so they are bounded
 * here.
 */
const MAX_EMPTY_BYTES = 64 * 1024;
/**
 * A write of up to this many bytes goes out as one frame in one buffer (a line or a few at a light
 * load: one write, one segment); a longer one is written as its header and then the bytes it was
 * given (a view of the room log, which keeps them while the write is in flight), copied nowhere.
 * Copies of up to 16 KiB, freed but not given back to the system, left an idle member at 2.0
 * times a TCP member's memory, against 1.7 with copies of up to 1 KiB; the server's CPU a
 * delivery in a burst was the same within the noise (BENCHMARKS.md).
 */
const MAX_COPIED_BYTES = 1024;

/**
 * A WebSocket over `conn` (TCP or TLS), after the opening handshake. The payload of a message is
 * passed on as it arrives, so the server's line splitter bounds it as it bounds a TCP line, and a
 * read is paced by the server as a TCP read is. A binary message, a line end inside a message or a
 * frame the RFC forbids ends the input: the client gets one error line and a close frame with the
 * code for it (1003, 1008 or 1002). The client's pings are answered; `tick` sends our own.
 */
export class WebSocketConn implements ChatConn {
  readonly remoteAddr: Deno.Addr;
  /** When the client last sent anything, and when a ping it has not answered went out (0: none). */
  heardAt = Date.now();
  pingedAt = 0;
  #conn: ChatConn;
  #frames = new FrameDecoder();
  /** Bytes that came after the request head (the first frames), until a read has taken them. */
  #pending: Uint8Array | undefined;
  /** Ends the read in flight with `null`: the input ends though the socket stays open a moment. */
  #stopReading: ((count: null) => void) | undefined;
  #emptyBytes = 0;
  #isInputEnded = false;
  #isCloseSent = false;
  #isPongPending = false;
  #closeCode = CLOSE_CODE.normal;
  #pendingWrites = 0;
  /** Whether a write of the member's (`write`, not a frame of our own) is in flight. */
  #isPeerWriting = false;
  #tail: Promise<void> = Promise.resolve();
  #isClosed = false;
  #onClose: () => void;

  /**
   * `rest`: bytes that came after the request head, the first frames; `remoteAddr`: the client's
   * address, if not the connection's (a trusted proxy's client).
   */
  constructor(
    conn: ChatConn,
    options: { rest: Uint8Array; onClose: () => void; remoteAddr?: Deno.Addr },
  ) {
    this.#conn = conn;
    this.remoteAddr = options.remoteAddr ?? conn.remoteAddr;
    if (options.rest.length > 0) this.#pending = options.rest;
    this.#onClose = options.onClose;
  }

  /**
   * Reads the next bytes of the client's lines into `buffer`; `null` once its input has ended.
   * The frames are read into `buffer` itself, one byte in, and decoded in place: a line is never
   * longer than the frame it came in (whose header is 6 bytes at least) plus its LF, so what is
   * written never overtakes what is still to decode, and a member keeps no buffer of its own.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    if (buffer.length < 2) throw new RangeError("Cannot read frames into fewer than 2 bytes");
    const target = buffer.subarray(1);
    while (!this.#isInputEnded) {
      let count: number | null;
      const pending = this.#pending;
      if (pending) {
        count = Math.min(pending.length, target.length);
        target.set(pending.subarray(0, count));
        this.#pending = count < pending.length ? pending.subarray(count) : undefined;
      } else {
        // The read, or `null` if the input is ended meanwhile: a promise of this read's own (one
        // kept for the socket's life would gather a reaction a read), and no more than that, as
        // every idle member has one waiting.
        count = await new Promise<number | null>((resolve, reject) => {
          this.#stopReading = resolve;
          this.#conn.read(target).then(resolve, reject);
        });
        this.#stopReading = undefined;
        if (count === null || this.#isInputEnded) break;
        this.heardAt = Date.now();
        this.pingedAt = 0; // whatever it sent shows it is there
      }
      const written = this.#decode(buffer, 1 + count);
      if (written > 0) return written;
    }
    this.#isInputEnded = true;
    return null;
  }

  /** Decodes the frames in `buffer[1, end)` into lines from `buffer[0]` on; returns their length. */
  #decode(buffer: Uint8Array, end: number): number {
    let read = 1;
    let written = 0;
    while (read < end && !this.#isInputEnded) {
      const result = this.#frames.decode(buffer.subarray(read, end), buffer.subarray(written));
      read += result.read;
      written += result.written;
      this.#emptyBytes = result.written > 0 ? 0 : this.#emptyBytes + result.read;
      if (result.error) this.#refuse(result.error);
      else if (this.#emptyBytes > MAX_EMPTY_BYTES) {
        // Pings count too: each one is answered, so they are not free to send in a flood.
        this.#refuse({
          code: CLOSE_CODE.policyViolation,
          message: `Over ${MAX_EMPTY_BYTES} bytes of frames without text`,
        });
      } else if (result.control) this.#answer(result.control);
    }
    return written;
  }

  /**
   * Sends `bytes` (whole lines, each ending in LF) as one text frame, and settles once the socket
   * has taken all of it: while the client is not reading, the write stays pending, as a TCP write
   * to a full socket does.
   */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#isClosed || this.#isCloseSent) {
      return Promise.reject(new Deno.errors.BrokenPipe("The WebSocket is closed"));
    }
    const sent = bytes.length <= MAX_COPIED_BYTES
      ? this.#send(encodeFrame(OPCODE.text, bytes))
      : this.#send(frameHeader(OPCODE.text, bytes.length), bytes);
    this.#isPeerWriting = true;
    return sent.then(() => {
      this.#isPeerWriting = false;
      return bytes.length;
    }, (error) => {
      this.#isPeerWriting = false;
      throw error;
    });
  }

  /** Sends the close frame once what was written is out; the client's answer ends the input. */
  async closeWrite(): Promise<void> {
    if (this.#isClosed) throw new Deno.errors.BadResource("The WebSocket is closed");
    if (this.#isCloseSent) return;
    this.#isCloseSent = true;
    await this.#send(encodeClose(this.#closeCode));
  }

  /**
   * Closes the socket: input still unread is dropped, and the last frames of our own (an error
   * line, the close) get a moment to go out. A write of the member's is not waited for: its
   * client has stopped reading, or it was given up on, and the socket closes at once, as a TCP
   * one does. Throws if it was closed already.
   */
  close(): void {
    if (this.#isClosed) throw new Deno.errors.BadResource("The WebSocket is closed");
    this.#isClosed = true;
    this.#endInput();
    if (this.#pendingWrites === 0 || this.#isPeerWriting) return this.abort();
    const timer = setTimeout(() => this.abort(), LINGER_MS);
    this.#tail.then(() => {
      clearTimeout(timer);
      this.abort();
    });
  }

  /** Closes the socket at once, whatever waits to go out (the server is shutting down). */
  abort(): void {
    this.#isClosed = true;
    this.#endInput();
    closeQuietly(this.#conn);
    this.#onClose();
  }

  /**
   * Keeps the connection honest: a ping after `pingMs` without a word from the client, and the
   * socket closed if it has not answered `pingMs` later.
   */
  tick(now: number, pingMs: number): void {
    if (this.#isClosed) return;
    if (this.pingedAt > 0 && now - this.pingedAt >= pingMs) {
      this.#endInput(); // the read loop ends, and the server closes the socket
    } else if (this.pingedAt === 0 && now - this.heardAt >= pingMs && !this.#isCloseSent) {
      this.pingedAt = now;
      this.#send(encodeFrame(OPCODE.ping)).catch(() => {}); // a failed write ends the read too
    }
  }

  /** Ends the input: a read in flight answers `null` now. */
  #endInput(): void {
    this.#isInputEnded = true;
    this.#stopReading?.(null);
  }

  /** Writes `parts` (one frame) after every frame before it: the socket has one writer. */
  #send(...parts: Uint8Array[]): Promise<void> {
    this.#pendingWrites++;
    const sent = this.#tail.then(async () => {
      for (const part of parts) await writeAll(this.#conn, part);
    }).finally(() => this.#pendingWrites--);
    this.#tail = sent.catch(() => {}); // the caller hears of a failure; the next write still runs
    return sent;
  }

  /** Answers a ping with a pong (one at a time: a flood of pings queues nothing) and a close. */
  #answer(control: ControlFrame): void {
    if (control.opcode === OPCODE.ping && !this.#isPongPending && !this.#isCloseSent) {
      this.#isPongPending = true;
      this.#send(encodeFrame(OPCODE.pong, control.payload))
        .catch(() => {}) // the socket is gone: the read ends too
        .finally(() => this.#isPongPending = false);
    } else if (control.opcode === OPCODE.close) {
      this.#isInputEnded = true;
      if (!this.#isCloseSent) {
        this.#isCloseSent = true;
        this.#send(encodeClose(CLOSE_CODE.normal)).catch(() => {}); // gone: nothing to answer
      }
    }
  }

  /** Tells the client what was wrong in one line and closes; its input ends there. */
  #refuse(error: FrameError): void {
    this.#isInputEnded = true;
    if (this.#isCloseSent) return;
    this.#isCloseSent = true;
    this.#closeCode = error.code;
    this.#send(encodeFrame(OPCODE.text, encodeLine(formatError(error.message)))).catch(() => {});
    this.#send(encodeClose(error.code)).catch(() => {}); // gone: there is nobody left to tell
  }
}

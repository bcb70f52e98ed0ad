/**
 * A WebSocket as a chat connection, shaped like a TCP one: `read` gives the client's lines as
 * bytes (each text message, then a LF), `write` sends each line it is given as a text frame.
 */
import { type ChatConn, closeQuietly } from "./conn.ts";
import { encodeLine, formatError } from "../protocol.ts";
import { writeAll } from "./http.ts";
import {
  CLOSE_CODE,
  type ControlFrame,
  encodeClose,
  encodeFrame,
  encodeLines,
  FrameDecoder,
  type FrameError,
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
  /** Bytes read from the socket, from `#rawStart` to `#rawEnd` not yet decoded. */
  #raw: Uint8Array;
  #rawStart = 0;
  #rawEnd: number;
  #emptyBytes = 0;
  #isInputEnded = false;
  #isCloseSent = false;
  #isPongPending = false;
  #closeCode = CLOSE_CODE.normal;
  #pendingWrites = 0;
  #tail: Promise<void> = Promise.resolve();
  #isClosed = false;
  #closed = Promise.withResolvers<null>();
  #onClose: () => void;

  /** `rest`: bytes that came after the request head, the first frames. */
  constructor(conn: ChatConn, options: { rest: Uint8Array; onClose: () => void }) {
    this.#conn = conn;
    this.remoteAddr = conn.remoteAddr;
    this.#raw = options.rest;
    this.#rawEnd = options.rest.length;
    this.#onClose = options.onClose;
  }

  /** Reads the next bytes of the client's lines into `buffer`; `null` once its input has ended. */
  async read(buffer: Uint8Array): Promise<number | null> {
    while (!this.#isInputEnded) {
      if (this.#rawStart === this.#rawEnd && !await this.#readRaw(buffer.length)) break;
      const raw = this.#raw.subarray(this.#rawStart, this.#rawEnd);
      const { read, written, control, error } = this.#frames.decode(raw, buffer);
      this.#rawStart += read;
      this.#emptyBytes = written > 0 ? 0 : this.#emptyBytes + read;
      if (error) this.#refuse(error);
      else if (control) this.#answer(control);
      else if (this.#emptyBytes > MAX_EMPTY_BYTES) {
        this.#refuse({
          code: CLOSE_CODE.policyViolation,
          message: `Over ${MAX_EMPTY_BYTES} bytes of frames without text`,
        });
      }
      if (written > 0) return written;
    }
    return null;
  }

  /** Reads from the socket into a buffer of `size`; false at its end or when closed meanwhile. */
  async #readRaw(size: number): Promise<boolean> {
    if (this.#raw.length !== size) this.#raw = new Uint8Array(size);
    const reading = this.#conn.read(this.#raw);
    reading.catch(() => {}); // when closed meanwhile, the race below has answered already
    const count = await Promise.race([reading, this.#closed.promise]);
    if (count === null || this.#isClosed) {
      this.#isInputEnded = true;
      return false;
    }
    this.#rawStart = 0;
    this.#rawEnd = count;
    this.heardAt = Date.now();
    this.pingedAt = 0; // whatever it sent shows it is there
    return true;
  }

  /**
   * Sends each line in `bytes` (whole lines, each ending in LF) as a text frame, and settles once
   * the socket has taken them all: while the client is not reading, the write stays pending, as a
   * TCP write to a full socket does.
   */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#isClosed || this.#isCloseSent) {
      return Promise.reject(new Deno.errors.BrokenPipe("The WebSocket is closed"));
    }
    return this.#send(encodeLines(bytes)).then(() => bytes.length);
  }

  /** Sends the close frame once what was written is out; the client's answer ends the input. */
  async closeWrite(): Promise<void> {
    if (this.#isClosed) throw new Deno.errors.BadResource("The WebSocket is closed");
    if (this.#isCloseSent) return;
    this.#isCloseSent = true;
    await this.#send(encodeClose(this.#closeCode));
  }

  /**
   * Closes the socket: input still unread is dropped, and the last frames (an error line, the
   * close) get a moment to go out. Throws if it was closed already.
   */
  close(): void {
    if (this.#isClosed) throw new Deno.errors.BadResource("The WebSocket is closed");
    this.#isClosed = true;
    this.#isInputEnded = true;
    this.#closed.resolve(null);
    if (this.#pendingWrites === 0) return this.abort();
    const timer = setTimeout(() => this.abort(), LINGER_MS);
    this.#tail.then(() => {
      clearTimeout(timer);
      this.abort();
    });
  }

  /** Closes the socket at once, whatever waits to go out (the server is shutting down). */
  abort(): void {
    this.#isClosed = true;
    this.#isInputEnded = true;
    this.#closed.resolve(null);
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
      this.#isInputEnded = true;
      this.#closed.resolve(null); // the read loop ends, and the server closes the socket
    } else if (this.pingedAt === 0 && now - this.heardAt >= pingMs && !this.#isCloseSent) {
      this.pingedAt = now;
      this.#send(encodeFrame(OPCODE.ping)).catch(() => {}); // a failed write ends the read too
    }
  }

  /** Writes `frame` after every frame before it: the socket has one writer. */
  #send(frame: Uint8Array): Promise<void> {
    this.#pendingWrites++;
    const sent = this.#tail.then(() => writeAll(this.#conn, frame)).finally(() =>
      this.#pendingWrites--
    );
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
    this.#send(encodeLines(encodeLine(formatError(error.message)))).catch(() => {});
    this.#send(encodeClose(error.code)).catch(() => {}); // gone: there is nobody left to tell
  }
}

/**
 * An IRC client as a chat connection, shaped like a TCP one (as a WebSocket is): `read` gives the
 * server the room's lines the client's commands amount to, `write` tells the client the room's
 * lines as IRC messages. The server's read loop, limits, login, hub and writer are the same as for
 * any member; what only IRC has (registration, PING, numerics) is answered here, by the session.
 */
import { type ChatConn, closeQuietly } from "./conn.ts";
import { IrcSession, type IrcSessionOptions } from "./irc_session.ts";
import { MAX_IRC_LINE_BYTES, MAX_TAG_BYTES } from "./irc.ts";
import { LineBuffer } from "../protocol.ts";
import { IrcLog, type IrcSpan } from "./irc_log.ts";
import type { RoomLog } from "./room_log.ts";

/**
 * Bytes of our own replies (PONG, numerics) that may wait for a client that is not reading them:
 * past this it has stopped reading, and is closed. The room's lines are bounded by the room log.
 */
const MAX_QUEUED_REPLY_BYTES = 64 * 1024;
/** How long the last lines (the ERROR) may take to go out once the socket is closed. */
const LINGER_MS = 1000;

const encoder = new TextEncoder();
const decoder = new TextDecoder();
/** For a promise whose failure someone else hears of. */
const ignore = () => {};

/** Options for {@linkcode IrcConn}: the session's, and what to call once it is closed. */
export interface IrcConnOptions extends IrcSessionOptions {
  onClose?: () => void;
  /** The door's translations of the room log, shared by its connections. */
  translations?: IrcLog;
}

/** One IRC client's connection (TCP or TLS), with its session. */
export class IrcConn implements ChatConn {
  readonly remoteAddr: Deno.Addr;
  /** When the client last sent anything, and when a PING it has not answered went out (0: none). */
  heardAt = Date.now();
  pingedAt = 0;
  readonly session: IrcSession;
  #conn: ChatConn;
  #lines = new LineBuffer({ maxLineBytes: MAX_TAG_BYTES + MAX_IRC_LINE_BYTES });
  /** A read of the socket still in flight when the last `read` returned, and its buffer. */
  #socketRead: { promise: Promise<number | null>; buffer: Uint8Array } | undefined;
  /** Wakes a `read` that waits for the session (a prompt answered) rather than the socket. */
  #wake: (() => void) | undefined;
  #isInputEnded = false;
  #isClosed = false;
  #isAborted = false;
  #isErrorSent = false;
  /** Whether a write of the room's lines (`write`, not a reply of our own) is in flight. */
  #isRoomWriting = false;
  #tail: Promise<void> = Promise.resolve();
  #queuedBytes = 0;
  /** Bytes of our own replies among them: a room write in flight is the room log's to bound. */
  #replyBytes = 0;
  /** The end of a room line cut by a partial write (the server writes whole lines; defensive). */
  #partial = "";
  #onClose: () => void;
  #translations: IrcLog;

  constructor(conn: ChatConn, options: IrcConnOptions) {
    this.#conn = conn;
    this.remoteAddr = conn.remoteAddr;
    this.session = new IrcSession(options);
    this.#onClose = options.onClose ?? (() => {});
    this.#translations = options.translations ?? new IrcLog(options.channel, options.isOperator);
  }

  /**
   * The room's lines the client's commands amount to, into `buffer`; `null` once the client's
   * input has ended (EOF, QUIT before joining, a ping timeout). While a name or password is with
   * the server, the client is not read: its next command depends on the answer.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    const session = this.session;
    while (true) {
      this.#flushReplies();
      if (session.input !== "") {
        const { read, written } = encoder.encodeInto(session.input, buffer);
        session.input = session.input.slice(read);
        return written;
      }
      if (this.#isInputEnded || session.isOver) {
        this.#sayError(); // ended from our side: the client hears why
        break;
      }
      if (session.isHolding) {
        await new Promise<void>((resolve) => this.#wake = resolve);
        this.#wake = undefined;
        continue;
      }
      let count: number | null | undefined;
      try {
        count = await this.#readSocket(buffer);
      } finally {
        this.#wake = undefined;
      }
      if (count === undefined) continue; // woken meanwhile
      if (count === null) break;
      this.heardAt = Date.now();
      this.pingedAt = 0;
      const chunk = this.#socketRead?.buffer ?? buffer;
      this.#socketRead = undefined;
      for (const line of this.#lines.push(chunk.subarray(0, count))) {
        session.fromClient(line);
        if (session.isOver) break;
      }
    }
    this.#isInputEnded = true;
    return null;
  }

  /**
   * The next socket read, or `undefined` if the session woke the reader first. An idle member
   * waits here: one promise and its two functions, no more (an IRC member's memory, mostly idle).
   */
  #readSocket(buffer: Uint8Array): Promise<number | null | undefined> {
    // A read still in flight from before is awaited again, never a second one started.
    this.#socketRead ??= { promise: this.#conn.read(buffer), buffer };
    const { promise, resolve, reject } = Promise.withResolvers<number | null | undefined>();
    this.#wake = resolve as () => void; // resolves with undefined: woken
    this.#socketRead.promise.then(resolve, reject);
    return promise;
  }

  /**
   * Tells the client the room's lines in `bytes` (whole lines, each with its LF) as IRC: lines of
   * the room log (`at` says where they are in `log`) as the door's shared translations, the others
   * (the member's own replies, private messages) through its session.
   */
  async write(
    bytes: Uint8Array,
    at?: number | readonly number[],
    log?: RoomLog,
  ): Promise<number> {
    if (this.#isClosed) throw new Deno.errors.BrokenPipe("The IRC connection is closed");
    const { isJoined, isWaiting } = this.session;
    const isFromLog = log !== undefined && at !== undefined && this.#partial === "" && isJoined &&
      !isWaiting;
    const span = isFromLog ? this.#span(log, bytes.length, at) : undefined;
    const parts = span ? this.#parts(span) : [this.#translate(decoder.decode(bytes))];
    this.#isRoomWriting = true;
    try {
      // Each part is sent as it is, never copied: most writes are one view of shared bytes.
      for (const part of parts) if (part) await this.#send(part);
    } finally {
      this.#isRoomWriting = false;
    }
    return bytes.length;
  }

  /** The door's translations of `length` bytes of the log at `at` (a position, or ranges). */
  #span(log: RoomLog, length: number, at: number | readonly number[]): IrcSpan | undefined {
    if (typeof at === "number") return this.#translations.span(log, at, at + length);
    const span: IrcSpan = [];
    for (let i = 0; i + 1 < at.length; i += 2) {
      const part = this.#translations.span(log, at[i]!, at[i + 1]!);
      if (!part) return undefined; // not all kept: the session reads them all
      span.push(...part);
    }
    return span;
  }

  /** The bytes to send for a span: its shared bytes, and its session's for the lines it reads. */
  #parts(span: IrcSpan): (Uint8Array | undefined)[] {
    return span.map((part) => typeof part === "string" ? this.#translate(`${part}\n`) : part);
  }

  /** Lines through the session, and the replies they make (with the session's own). */
  #translate(lines: string): Uint8Array | undefined {
    const text = this.#partial + lines;
    const end = text.lastIndexOf("\n");
    this.#partial = text.slice(end + 1);
    const session = this.session;
    const wasHolding = session.isHolding;
    for (let start = 0; start <= end;) {
      const lf = text.indexOf("\n", start);
      session.fromRoom(text.slice(start, lf));
      start = lf + 1;
    }
    // The reader waits on the session only for what changes it: input, a hold lifted, the end.
    if (session.input !== "" || (wasHolding && !session.isHolding) || session.isOver) {
      this.#wake?.();
    }
    return this.#takeReplies();
  }

  /** Says goodbye as IRC does (`ERROR`), once what was written is out, then half-closes. */
  async closeWrite(): Promise<void> {
    if (this.#isClosed) throw new Deno.errors.BadResource("The IRC connection is closed");
    this.#sayError();
    await this.#tail;
    await this.#conn.closeWrite();
  }

  /**
   * Closes the socket: our own last lines (the ERROR) get a moment to go out, a write of the
   * room's is not waited for (its client has stopped reading). Throws if it was closed already.
   */
  close(): void {
    if (this.#isClosed) throw new Deno.errors.BadResource("The IRC connection is closed");
    this.#isClosed = true;
    this.#endInput();
    if (this.#queuedBytes === 0 || this.#isRoomWriting) return this.#abort();
    const timer = setTimeout(() => this.#abort(), LINGER_MS);
    this.#tail.then(() => {
      clearTimeout(timer);
      this.#abort();
    });
  }

  /** Closes the socket at once, whatever waits to go out. */
  #abort(): void {
    closeQuietly(this.#conn);
    if (this.#isAborted) return;
    this.#isAborted = true;
    this.#onClose();
  }

  /** The session's last replies and the ERROR line that ends an IRC connection, once. */
  #sayError(): void {
    if (this.#isErrorSent) return;
    this.#isErrorSent = true;
    this.session.replies.push(`ERROR :Closing link: ${this.session.closeReason}`);
    const replies = this.#takeReplies()!;
    this.#send(replies).catch(() => {}); // gone: there is nobody left to tell
  }

  /**
   * Keeps the connection honest: a PING after `pingMs` without a word from the client, and its
   * input ended (the server then closes it) if it has not answered `pingMs` later.
   */
  tick(now: number, pingMs: number): void {
    if (this.#isClosed || this.#isInputEnded) return;
    if (this.pingedAt > 0 && now - this.pingedAt >= pingMs) {
      this.session.closeReason = `Ping timeout: ${pingMs / 1000} seconds`;
      this.#endInput();
    } else if (this.pingedAt === 0 && now - this.heardAt >= pingMs) {
      this.pingedAt = now;
      this.session.ping();
      this.#flushReplies();
    }
  }

  #endInput(): void {
    this.#isInputEnded = true;
    this.#wake?.();
  }

  /** The session's replies, encoded as one chunk, or `undefined` if there are none. */
  #takeReplies(): Uint8Array | undefined {
    const replies = this.session.replies;
    if (replies.length === 0) return undefined;
    this.session.replies = [];
    return encoder.encode(`${replies.join("\r\n")}\r\n`);
  }

  /** Sends the session's own replies (to a command, a PING), in turn with the room's lines. */
  #flushReplies(): void {
    const replies = this.#takeReplies();
    if (!replies) return;
    if (this.#replyBytes + replies.length > MAX_QUEUED_REPLY_BYTES) {
      this.session.closeReason = "Not reading its replies";
      return this.#endInput();
    }
    this.#replyBytes += replies.length;
    this.#send(replies)
      .catch(() => this.#endInput()) // the socket is gone: so is the input
      .finally(() => this.#replyBytes -= replies.length);
  }

  /**
   * Writes `bytes` after everything before it: the socket has one writer. With nothing before it
   * (the usual case: one room write at a time), it is written at once, with few promises made.
   */
  #send(bytes: Uint8Array): Promise<void> {
    const isFirst = this.#queuedBytes === 0;
    this.#queuedBytes += bytes.length;
    const sent = isFirst ? this.#writeAll(bytes) : this.#tail.then(() => this.#writeAll(bytes));
    this.#tail = sent.catch(ignore); // the caller hears of a failure; the next write still runs
    return sent;
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    try {
      for (let at = 0; at < bytes.length;) at += await this.#conn.write(bytes.subarray(at));
    } finally {
      this.#queuedBytes -= bytes.length;
    }
  }
}

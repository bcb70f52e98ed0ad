/**
 * Chat server: one room of named peers over plain TCP, one UTF-8 line per message.
 *
 * Wire protocol (Budget Chat, Protohackers problem 3):
 *   server: * Welcome to chat! What shall I call you?
 *   client: alice
 *   server: * The room contains: bob          (bob gets "* alice has entered the room")
 *   client: hello                             (bob gets "[alice] hello")
 * Every line the server sends is "[NAME] text" from a user or a "* " system line.
 * Try it: `deno task server`, then `nc 127.0.0.1 1234` in two terminals.
 *
 * Data flows one way: socket -> line splitter -> read loop -> hub -> each peer's outbox -> writer.
 */
import { DEFAULT_HISTORY_SIZE, type Hub, LocalHub, type Member } from "./hub.ts";
import {
  cleanText,
  DEFAULT_HOST,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_PORT,
  encodeLine,
  formatError,
  GOODBYE,
  GREETING,
  HELP_LINES,
  LineSplitter,
  LineTooLongError,
  MIN_MAX_LINE_BYTES,
  parseCommand,
  parseName,
  ProtocolError,
  SHUTDOWN_NOTICE,
} from "./protocol.ts";

/** Bytes queued for one peer before it counts as not reading and is dropped. */
export const DEFAULT_MAX_BACKLOG_BYTES = 1024 * 1024;
/** How long a closing peer may take to receive its last lines before its socket is closed anyway. */
const END_TIMEOUT_MS = 2000;
/** Size of each socket read: a small buffer keeps idle connections cheap. */
const READ_CHUNK_BYTES = 8192;
/** Pause after a failed accept (for example out of file descriptors) so the loop does not spin. */
const ACCEPT_RETRY_MS = 100;

/** Options for {@linkcode startServer}. */
export interface ServerOptions {
  /** Address to listen on (default 0.0.0.0). */
  hostname?: string;
  /** Port to listen on (default 1234; 0 picks a free one). */
  port?: number;
  /** Longest accepted line in bytes (default 4096, at least 1000). */
  maxLineBytes?: number;
  /** Bytes that may wait for one peer before it is dropped as not reading (default 1 MiB). */
  maxBacklogBytes?: number;
  /** Lines of chat a newcomer is shown (default 50, 0 for none); for the default hub only. */
  historySize?: number;
  /** The room; a {@linkcode LocalHub} by default. */
  hub?: Hub;
  /** Receives one line per notable event (joins, leaves, errors); silent by default. */
  log?: (message: string) => void;
}

/** A running chat server. */
export interface ChatServer extends AsyncDisposable {
  /** The address it listens on, with the real port. */
  readonly addr: Deno.NetAddr;
  /** Settles when the server is closed and every connection has ended. */
  readonly finished: Promise<void>;
  /** Tells every client, closes every socket and waits for all to end; safe to call twice. */
  close(): Promise<void>;
}

/**
 * Listens and starts accepting clients. Throws what `Deno.listen` throws (for example `AddrInUse`
 * or `NotCapable`) and a `RangeError` for an option out of range.
 */
export function startServer(options: ServerOptions = {}): ChatServer {
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  if (!(Number.isInteger(maxLineBytes) && maxLineBytes >= MIN_MAX_LINE_BYTES)) {
    throw new RangeError(
      `Cannot use line limit ${maxLineBytes}: it must be at least ${MIN_MAX_LINE_BYTES} bytes`,
    );
  }
  const maxBacklogBytes = options.maxBacklogBytes ?? DEFAULT_MAX_BACKLOG_BYTES;
  if (!(Number.isInteger(maxBacklogBytes) && maxBacklogBytes >= maxLineBytes)) {
    throw new RangeError(
      `Cannot use backlog limit ${maxBacklogBytes}: it must be at least the line limit`,
    );
  }
  const listener = Deno.listen({
    hostname: options.hostname ?? DEFAULT_HOST,
    port: options.port ?? DEFAULT_PORT,
  });
  return new Server(listener, {
    maxLineBytes,
    maxBacklogBytes,
    hub: options.hub ?? new LocalHub({ historySize: options.historySize ?? DEFAULT_HISTORY_SIZE }),
    log: options.log ?? (() => {}),
  });
}

interface ServerConfig {
  maxLineBytes: number;
  maxBacklogBytes: number;
  hub: Hub;
  log: (message: string) => void;
}

const SHUTDOWN_LINE = encodeLine(SHUTDOWN_NOTICE);
const GREETING_LINE = encodeLine(GREETING);
const HELP = encodeLine(HELP_LINES.join("\n"));
const GOODBYE_LINE = encodeLine(GOODBYE);

class Server implements ChatServer {
  readonly addr: Deno.NetAddr;
  readonly finished: Promise<void>;
  #listener: Deno.TcpListener;
  #config: ServerConfig;
  #peers = new Set<Peer>();
  #tasks = new Set<Promise<void>>();
  #isClosing = false;
  #stopAccepting = new AbortController();

  constructor(listener: Deno.TcpListener, config: ServerConfig) {
    this.#listener = listener;
    this.#config = config;
    this.addr = listener.addr;
    this.finished = this.#acceptLoop();
  }

  close(): Promise<void> {
    if (this.#isClosing) return this.finished;
    this.#isClosing = true;
    this.#stopAccepting.abort();
    closeQuietly(this.#listener);
    this.#config.hub.close();
    for (const peer of this.#peers) {
      peer.send(SHUTDOWN_LINE);
      peer.end();
    }
    return this.finished;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #acceptLoop(): Promise<void> {
    while (!this.#isClosing) {
      let conn: Deno.TcpConn;
      try {
        conn = await this.#listener.accept();
      } catch (error) {
        if (this.#isClosing) break;
        // Out of file descriptors and the like: log, pause, keep serving the clients we have.
        this.#config.log(`accept failed: ${describe(error)}`);
        await pause(ACCEPT_RETRY_MS, this.#stopAccepting.signal);
        continue;
      }
      const task = this.#serve(conn);
      this.#tasks.add(task);
      task.finally(() => this.#tasks.delete(task));
    }
    await Promise.all(this.#tasks);
  }

  async #serve(conn: Deno.TcpConn): Promise<void> {
    const peer = new Peer(conn, this.#config.maxBacklogBytes);
    const { hub, log } = this.#config;
    this.#peers.add(peer);
    try {
      conn.setNoDelay(true); // a chat line must leave now, not wait for the previous ACK (Nagle)
      peer.send(GREETING_LINE);
      const lines = readableOf(conn).pipeThrough(
        new LineSplitter({ maxLineBytes: this.#config.maxLineBytes }),
      );
      // The loop never breaks: it ends when the socket does, so there is no read to cancel.
      for await (const line of lines) {
        if (peer.isEnding) continue;
        if (line instanceof LineTooLongError) {
          peer.sendError(line.message);
          if (!peer.isJoined) peer.end();
        } else if (peer.isJoined) {
          const pending = this.#handle(peer, cleanText(line));
          if (pending) await pending;
        } else {
          await this.#join(peer, line);
        }
      }
    } catch (error) {
      if (!isPeerGone(error)) log(`${peer.label}: ${describe(error)}`);
    } finally {
      if (peer.isJoined) {
        hub.leave(peer, peer.closeReason ? { problem: peer.closeReason } : {});
        log(`${peer.label} left${peer.closeReason ? ` (${peer.closeReason})` : ""}`);
      }
      peer.readEnded();
      await peer.closed;
      this.#peers.delete(peer);
    }
  }

  async #join(peer: Peer, line: string): Promise<void> {
    try {
      peer.name = parseName(line);
      await this.#config.hub.join(peer);
      peer.isJoined = true;
      this.#config.log(`${peer.label} joined`);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      // The protocol wants a rejected name to be told and disconnected, and nobody else to hear of it.
      peer.sendError(error.message);
      peer.end();
    }
  }

  /** Acts on one line from a joined peer; returns a promise only when the hub must be waited for. */
  #handle(peer: Peer, text: string): void | Promise<void> {
    if (text.trim() === "") return;
    const { hub } = this.#config;
    try {
      const command = parseCommand(text);
      switch (command.name) {
        case "say":
          return hub.say(peer, command.text);
        case "me":
          return hub.act(peer, command.text);
        case "help":
          return peer.send(HELP);
        case "who":
          return answer(peer, () => hub.who(peer));
        case "msg":
          return answer(peer, () => hub.whisper(peer, command.to, command.text));
        case "nick": {
          const oldName = peer.name;
          const renamed = () => this.#config.log(`${oldName} is now known as ${peer.name}`);
          return answer(peer, () => hub.rename(peer, command.newName), renamed);
        }
        case "quit":
          hub.leave(peer, { quit: command.reason });
          this.#config.log(`${peer.label} quit${command.reason ? `: ${command.reason}` : ""}`);
          peer.isJoined = false;
          peer.send(GOODBYE_LINE);
          return peer.end();
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      peer.sendError(error.message);
    }
  }
}

/**
 * Runs a hub call that may be asynchronous, sending a {@linkcode ProtocolError} from it to the peer
 * as an error line, and calling `then` when it succeeds.
 */
function answer(
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

/**
 * One connection: its name once joined, and its outbox. The outbox has exactly one writer, which
 * writes at once when idle and, while a write is in flight, gathers what arrives into the next
 * single write. A peer whose backlog passes the limit is closed, so nobody waits for it.
 */
class Peer implements Member {
  name = "";
  isJoined = false;
  isEnding = false;
  closeReason: string | undefined;
  readonly closed: Promise<void>;
  readonly #conn: Deno.TcpConn;
  readonly #maxBacklogBytes: number;
  readonly #remote: string;
  #queue: Uint8Array[] = [];
  #backlogBytes = 0;
  #isWriting = false;
  #isClosed = false;
  #isReadEnded = false;
  #endTimer: ReturnType<typeof setTimeout> | undefined;
  #resolveClosed: () => void;

  constructor(conn: Deno.TcpConn, maxBacklogBytes: number) {
    this.#conn = conn;
    this.#maxBacklogBytes = maxBacklogBytes;
    this.#remote = `${conn.remoteAddr.hostname}:${conn.remoteAddr.port}`;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.closed = promise;
    this.#resolveClosed = resolve;
  }

  /** For logs: the name once known, and the remote address. */
  get label(): string {
    return this.name ? `${this.name} (${this.#remote})` : this.#remote;
  }

  send(bytes: Uint8Array): void {
    if (this.#isClosed || this.isEnding) return;
    if (this.#backlogBytes + bytes.length > this.#maxBacklogBytes) {
      return this.close("stopped reading");
    }
    this.#queue.push(bytes);
    this.#backlogBytes += bytes.length;
    if (!this.#isWriting) this.#writeAll();
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
    this.#queue = [];
    closeQuietly(this.#conn);
    this.#resolveClosed();
  }

  #afterLastWrite(): void {
    if (this.#isReadEnded) return this.close();
    try {
      this.#conn.closeWrite();
    } catch {
      this.close(); // the socket is already gone
    }
  }

  async #writeAll(): Promise<void> {
    this.#isWriting = true;
    try {
      while (this.#queue.length > 0 && !this.#isClosed) {
        const chunk = this.#queue.length === 1
          ? this.#queue[0]!
          : concat(this.#queue, this.#backlogBytes);
        this.#queue = [];
        // A write may take only part of the buffer; the backlog counts what the kernel has not taken.
        for (let offset = 0; offset < chunk.length;) {
          const written = await this.#conn.write(chunk.subarray(offset));
          offset += written;
          this.#backlogBytes -= written;
        }
      }
    } catch (error) {
      // The peer is gone (reset, broken pipe) or was closed meanwhile: never write to it again.
      this.close(isPeerGone(error) ? undefined : describe(error));
    } finally {
      this.#isWriting = false;
    }
    if (this.isEnding && !this.#isClosed) this.#afterLastWrite();
  }
}

/**
 * The socket's bytes as a stream. Unlike `conn.readable` it does not close the socket at EOF, so
 * the replies to a client's last lines still go out, and its small reads keep idle peers cheap.
 */
function readableOf(conn: Deno.Conn): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const buffer = new Uint8Array(READ_CHUNK_BYTES);
      const count = await conn.read(buffer);
      if (count === null) controller.close();
      else controller.enqueue(buffer.subarray(0, count));
    },
  }, { highWaterMark: 0 });
}

function concat(parts: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
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

function isPeerGone(error: unknown): boolean {
  return PEER_GONE.some((kind) => error instanceof kind);
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Already closed (for example by the other side's reset): closing is all we wanted.
  }
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

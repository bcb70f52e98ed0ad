/**
 * TCP connections from `--proxy-protocol` proxies: their PROXY header read first, under a deadline,
 * then each served as the connection of the client it names. TLS, if any, runs after the header.
 */
import { type ChatConn, closeQuietly, isPeerGone } from "./conn.ts";
import { MAX_V2_BYTES, parseProxyHeader, type ProxySource } from "./proxy_protocol.ts";
import { describe, hostPort, ProtocolError } from "../protocol.ts";

/**
 * Connections from `--proxy-protocol` proxies whose PROXY header is awaited. The header is
 * required: a connection that starts with anything else, or whose header is malformed, cut off, or
 * not there by the deadline, is closed, counted for the log.
 */
export class ProxyHeaders {
  #timeoutMs: number;
  /** Each connection awaited, since when, and whether its deadline closed it. */
  #pending = new Map<Deno.TcpConn, { since: number; isLate: boolean }>();
  #isClosed = false;
  #failures = 0;
  #lastFailure = "";

  /** `timeoutMs`: the time a header has to arrive (the handshake timeout; 0 for none). */
  constructor(options: { timeoutMs: number }) {
    this.#timeoutMs = options.timeoutMs;
  }

  /** Reads `tcp`'s header: its connection as the client's, or `undefined` once it is closed. */
  async unwrap(tcp: Deno.TcpConn): Promise<ProxiedConn | undefined> {
    const remote = tcp.remoteAddr as Deno.NetAddr;
    const state = { since: Date.now(), isLate: false };
    this.#pending.set(tcp, state);
    try {
      const start = await readProxyStart(tcp);
      if (!start.isHeader) throw new ProtocolError("no PROXY header");
      const source = start.source ? { transport: "tcp" as const, ...start.source } : remote;
      return new ProxiedConn(tcp, { remoteAddr: source, rest: start.rest });
    } catch (error) {
      closeQuietly(tcp);
      if (this.#isClosed || (isPeerGone(error) && !state.isLate)) return;
      const late = `no PROXY header within ${this.#timeoutMs / 1000} s`;
      this.#failures++;
      this.#lastFailure = `${hostPort(remote.hostname, remote.port)}: ${
        state.isLate ? late : describe(error)
      }`;
    } finally {
      this.#pending.delete(tcp);
    }
  }

  /** Closes the connections whose header is late, which ends their reads. */
  sweep(now: number): void {
    if (this.#timeoutMs === 0) return;
    for (const [tcp, state] of this.#pending) {
      if (now - state.since > this.#timeoutMs) {
        state.isLate = true;
        closeQuietly(tcp);
      }
    }
  }

  /** Closes every connection still awaited: the server is closing. */
  close(): void {
    this.#isClosed = true;
    for (const tcp of this.#pending.keys()) closeQuietly(tcp);
  }

  /** A log line for the headers that failed since the last one, if any did. */
  takeCounts(): { message: string; count: number; last: string } | undefined {
    if (this.#failures === 0) return;
    const count = this.#failures;
    const message = `${count} PROXY header(s) failed (last: ${this.#lastFailure})`;
    this.#failures = 0;
    return { message, count, last: this.#lastFailure };
  }
}

/** What a connection's first bytes said: a PROXY header and its client (if it named one), or none. */
export interface ProxyStart {
  isHeader: boolean;
  source: ProxySource | undefined;
  /** What came after the header (or every byte read, when there was none). */
  rest: Uint8Array;
}

/**
 * Reads the PROXY header at the start of `tcp`: never more than the longest header allowed, so that
 * a connection costs bounded memory here. Throws a `ProtocolError` for a malformed header, and what
 * `read` throws (`UnexpectedEof` if the connection ends first); the caller closes `tcp` to give up
 * (at its deadline), which ends the wait.
 */
export async function readProxyStart(tcp: Deno.TcpConn): Promise<ProxyStart> {
  const buffer = new Uint8Array(MAX_V2_BYTES);
  for (let length = 0;;) {
    const bytes = buffer.subarray(0, length);
    const header = parseProxyHeader(bytes);
    if (header.kind === "none") return { isHeader: false, source: undefined, rest: bytes };
    if (header.kind === "header") {
      return { isHeader: true, source: header.source, rest: bytes.slice(header.length) };
    }
    // A partial header is shorter than the buffer: the parser refuses any longer one.
    const count = await tcp.read(buffer.subarray(length));
    if (count === null) {
      throw new Deno.errors.UnexpectedEof("The connection ended before its PROXY header did");
    }
    length += count;
  }
}

/** `tcp` with `rest` read first, and `remoteAddr` the client's. */
export class ProxiedConn implements ChatConn {
  readonly remoteAddr: Deno.NetAddr;
  readonly #tcp: Deno.TcpConn;
  #rest: Uint8Array | undefined;

  constructor(tcp: Deno.TcpConn, options: { remoteAddr: Deno.NetAddr; rest: Uint8Array }) {
    this.#tcp = tcp;
    this.remoteAddr = options.remoteAddr;
    if (options.rest.length > 0) this.#rest = options.rest;
  }

  read(buffer: Uint8Array): Promise<number | null> {
    const rest = this.#rest;
    if (!rest) return this.#tcp.read(buffer);
    const count = Math.min(rest.length, buffer.length);
    buffer.set(rest.subarray(0, count));
    this.#rest = count < rest.length ? rest.subarray(count) : undefined;
    return Promise.resolve(count);
  }

  write(bytes: Uint8Array): Promise<number> {
    return this.#tcp.write(bytes);
  }

  closeWrite(): Promise<void> {
    return this.#tcp.closeWrite();
  }

  close(): void {
    this.#tcp.close();
  }

  /** Nagle's algorithm off (`true`), as on any chat connection. */
  setNoDelay(noDelay = true): void {
    this.#tcp.setNoDelay(noDelay);
  }
}

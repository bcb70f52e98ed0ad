/**
 * The IRC door (`--irc [HOST:]PORT`): a listener whose clients speak IRC, each one more connection
 * of the chat server (an {@linkcode IrcConn}), under the same limits as every door, in the same
 * room, seen as one channel. Plain TCP, or TLS with the chat's certificate.
 *
 * Try it: `deno task server --irc 6667`, then `irssi -c 127.0.0.1 -p 6667` beside `nc 127.0.0.1 1234`.
 */
import type { ChatServer } from "../server.ts";
import type { Log } from "./log.ts";
import { acceptAll, stopAccepting } from "./accept.ts";
import { type ChatConn, closeQuietly } from "./conn.ts";
import { IrcConn } from "./irc_conn.ts";
import { IrcLog } from "./irc_log.ts";
import { DEFAULT_CHANNEL, MAX_CHANNEL_LENGTH } from "./irc.ts";
import { TlsConn, tlsContext } from "./tls_conn.ts";
import type { SecureContext } from "node:tls";

/** IRC's port by convention. */
export const DEFAULT_IRC_PORT = 6667;
/** Seconds between PINGs to a quiet client; one that does not answer within them is closed. */
const DEFAULT_PING_SECONDS = 120;

/** Options for {@linkcode startIrc}. */
export interface IrcOptions {
  /** Address to listen on (default 0.0.0.0). */
  hostname?: string;
  /** Port to listen on (default 6667; 0 picks a free one). */
  port?: number;
  /** The room's channel name (default `#chat`). */
  channel?: string;
  /** PEM certificate chain and key: the door then speaks TLS. */
  tls?: { cert: string; key: string };
  /** Seconds between PINGs to a quiet client (default 120). */
  pingSeconds?: number;
  /** Whether a name is registered, so that a client without its password is refused at once. */
  isRegistered?: (name: string) => boolean;
  /** The server's version, told in the welcome. */
  version?: string;
  /** Lines of the message of the day. */
  motd?: readonly string[];
  log?: Log;
}

/** The IRC door. */
export interface IrcServer extends AsyncDisposable {
  /** The address it listens on, with the real port. */
  readonly addr: Deno.NetAddr;
  /** The channel that is the room. */
  readonly channel: string;
  /** IRC connections open now. */
  readonly connectionCount: number;
  /** Takes a renewed certificate and key (SIGHUP) for new connections. */
  reload(tls: { cert: string; key: string }): void;
  /** Closes the listener and every IRC connection; close the chat server first (its goodbye). */
  close(): Promise<void>;
}

/**
 * Whether `channel` can be the room's channel: `#` (or `&`, IRC's local channels) and up to {@linkcode MAX_CHANNEL_LENGTH}
 * characters with no space, comma or control character; the reason if not.
 */
export function channelProblem(channel: string): string | undefined {
  if (!/^[#&][^\s,\p{Cc}]+$/u.test(channel)) {
    return "a channel is # (or &) and letters, digits or punctuation, with no space or comma";
  }
  if (channel.length > MAX_CHANNEL_LENGTH) {
    return `a channel has at most ${MAX_CHANNEL_LENGTH} characters`;
  }
}

/**
 * Listens for IRC clients and hands each to `server` as a connection. Throws what `Deno.listen`
 * throws, an `Error` for an unusable certificate, and a `TypeError` for a bad channel name.
 */
export function startIrc(server: ChatServer, options: IrcOptions = {}): IrcServer {
  const channel = options.channel ?? DEFAULT_CHANNEL;
  const problem = channelProblem(channel);
  if (problem) throw new TypeError(`Cannot use channel ${JSON.stringify(channel)}: ${problem}`);
  const tls = options.tls ? tlsContext(options.tls) : undefined;
  const listener = Deno.listen({
    hostname: options.hostname ?? "0.0.0.0",
    port: options.port ?? DEFAULT_IRC_PORT,
  });
  return new IrcDoor(listener, server, {
    channel,
    pingMs: 1000 * (options.pingSeconds ?? DEFAULT_PING_SECONDS),
    version: options.version ?? "1.0.0",
    motd: options.motd ?? [],
    log: options.log ?? (() => {}),
    isOperator: (name) => server.isOperator(name),
    ...(options.isRegistered ? { isRegistered: options.isRegistered } : {}),
    ...(tls ? { tls } : {}),
  });
}

interface DoorConfig {
  channel: string;
  pingMs: number;
  version: string;
  motd: readonly string[];
  log: Log;
  isRegistered?: (name: string) => boolean;
  isOperator: (name: string) => boolean;
  tls?: SecureContext;
}

class IrcDoor implements IrcServer {
  readonly addr: Deno.NetAddr;
  readonly channel: string;
  #listener: Deno.Listener;
  #config: DoorConfig;
  #conns = new Set<IrcConn>();
  /** The room log's lines as IRC, translated once for every connection. */
  #translations: IrcLog;
  #stop = new AbortController();
  #sweeper: ReturnType<typeof setInterval>;
  #accepting: Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(listener: Deno.Listener, server: ChatServer, config: DoorConfig) {
    this.#listener = listener;
    this.#config = config;
    this.channel = config.channel;
    this.#translations = new IrcLog(config.channel, config.isOperator);
    this.addr = listener.addr as Deno.NetAddr;
    // A quarter of the ping interval keeps it within 25%, at a second at most.
    this.#sweeper = setInterval(
      () => this.#sweep(),
      Math.min(1000, Math.max(10, config.pingMs / 4)),
    );
    this.#accepting = acceptAll(listener, {
      onConn: (tcp) => server.accept(this.#wrap(tcp as Deno.TcpConn)),
      log: config.log,
      signal: this.#stop.signal,
    });
  }

  get connectionCount(): number {
    return this.#conns.size;
  }

  reload(tls: { cert: string; key: string }): void {
    if (!this.#config.tls) throw new TypeError("Cannot take a certificate: the door is not TLS");
    this.#config.tls = tlsContext(tls);
  }

  close(): Promise<void> {
    return this.#closing ??= this.#close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #close(): Promise<void> {
    const [stop, sweeper, accepting] = [this.#stop, this.#sweeper, this.#accepting];
    await stopAccepting(this.#listener, { stop, sweeper, accepting });
    for (const conn of this.#conns) closeQuietly(conn);
  }

  /** An accepted socket as an IRC connection, over TLS if the door speaks it. */
  #wrap(tcp: Deno.TcpConn): IrcConn {
    const { tls, channel, version, motd, isRegistered, isOperator } = this.#config;
    let transport: ChatConn = tcp;
    if (tls) transport = new TlsConn(tcp, tls);
    else tcp.setNoDelay(true); // a chat line must leave now, not wait for an ACK (Nagle)
    const conn: IrcConn = new IrcConn(transport, {
      channel,
      translations: this.#translations,
      version,
      motd,
      isOperator,
      ...(isRegistered ? { isRegistered } : {}),
      onClose: () => this.#conns.delete(conn),
    });
    this.#conns.add(conn);
    return conn;
  }

  /** PINGs quiet clients, and ends those that did not answer the last one. */
  #sweep(): void {
    const now = Date.now();
    for (const conn of this.#conns) conn.tick(now, this.#config.pingMs);
  }
}

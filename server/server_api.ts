/** What a chat server takes (its options) and what it offers (the running server), for server.ts. */
import type { Accounts, Hub } from "./hub.ts";
import type { ModerationStore } from "./moderation_store.ts";
import type { Limits } from "./limits.ts";
import type { Census } from "./peer.ts";
import type { Tally } from "./metrics.ts";
import type { ChatConn } from "./conn.ts";
import type { Log } from "./log.ts";
import type { TrustedProxies } from "./trusted_proxies.ts";
import type { PlaceStore } from "./resume.ts";
/** Options for {@linkcode startServer}. */
export interface ServerOptions extends Partial<Limits> {
  /** Address to listen on (default 0.0.0.0). */
  hostname?: string;
  /** Port to listen on (default 1234; 0 picks a free one). */
  port?: number;
  /** PEM certificate chain and key: the server then speaks TLS. */
  tls?: { cert: string; key: string };
  /** Lines of chat a newcomer is shown (default 50, 0 for none); for the default hub only. */
  historySize?: number;
  /** The room; a {@linkcode LocalHub} by default. */
  hub?: Hub;
  /** The default hub's operators, bans, mutes and topic (in memory, empty, by default). */
  moderation?: ModerationStore;
  /** The default hub's registered names (`--operators-file`'s); none by default. */
  accounts?: Accounts;
  /**
   * The server's own password (`--password-file`): every connection must send it before its name.
   * Kept only as its SHA-256 digest.
   */
  serverPassword?: string;
  /**
   * Where places kept for resume outlive a planned restart (`--store`): read at start, written at
   * {@linkcode ChatServer.close}. Without it, a restart ends every place.
   */
  places?: PlaceStore;
  /** Receives one line per notable event (joins, leaves, refusals, errors); silent by default. */
  log?: Log;
  /**
   * Address blocks exempt from the per-address limits (connections, joins, the address's line
   * bucket, registrations and password backoff by address), not from the global ones or a
   * connection's own flood control (default: loopback, {@linkcode LOOPBACK}; `[]` for none).
   */
  exempt?: readonly string[];
  /**
   * Address blocks of reverse proxies in front of the web page whose `X-Forwarded-For` names each
   * request's client (none by default). Limits and logs then use the client.
   */
  trustProxy?: readonly string[];
  /**
   * Address blocks of proxies in front of the chat's TCP port (none by default): a connection from
   * one must start with a PROXY header (v1 or v2), and is served as the client it names; one
   * without is refused. Required, not optional: a client that waits for the greeting would wait
   * for nothing, and a receiver must not guess (HAProxy's PROXY protocol spec).
   */
  proxyProtocol?: readonly string[];
}

/** A running chat server. */
export interface ChatServer extends AsyncDisposable {
  /** The address it listens on, with the real port. */
  readonly addr: Deno.NetAddr;
  /** Settles when the server is closed and every connection has ended. */
  readonly finished: Promise<void>;
  /** Open connections, joined or not. */
  readonly connectionCount: number;
  /** Bytes of read buffers the connections hold now: what a burst of long lines left behind. */
  readonly readBufferBytes: number;
  /** What it counted so far, for the metrics. */
  readonly tally: Tally;
  /** Its members by how they came, and the room log's size and the most any member lags by. */
  census(): Census;
  /** Whether `name` is an operator (registered, and made one): the IRC door marks it at its JOIN. */
  isOperator(name: string): boolean;
  /**
   * Serves a connection that came another way than the listener (a WebSocket, say) under the same
   * limits as the listener's: refused if over them, else a peer like any other.
   */
  accept(conn: ChatConn, options?: { isJoinTaken?: boolean }): void;
  /**
   * Takes a join of the address's join rate for a connection that is to join (a WebSocket being
   * opened, so that opening them in a loop is held to the join rate, joined or not): why it cannot,
   * if it cannot. Accept the connection with `isJoinTaken`, and its join takes no other.
   */
  takeJoin(hostname: string): string | undefined;
  /**
   * Counts a connection that is not a member yet (a request to the web page) against the same
   * limits: why it cannot be served, or its place, to be given back once it closes or becomes a
   * member (give it back just before {@linkcode accept}, which takes it again). `undefined`: a
   * trusted proxy's connection whose client is not known yet, under the global limit alone.
   */
  hold(hostname: string | undefined): string | { release(): void };
  /** The reverse proxies it trusts to name their clients (`--trust-proxy`). */
  readonly proxies: TrustedProxies;
  /** The limits it enforces. */
  readonly limits: Limits;
  /** The web page's port, set by `startWeb`: a browser that comes to the chat's port is sent there. */
  webPort: number | undefined;
  /**
   * Takes a renewed certificate and key, or server password (SIGHUP): new connections use them,
   * open ones keep what they have. Throws, changing nothing, for a certificate and key that are no
   * pair, or a certificate for a server that does not speak TLS.
   */
  reload(options: { tls?: { cert: string; key: string }; serverPassword?: string }): void;
  /** Tells every client, closes every socket and waits for all to end; safe to call twice. */
  close(): Promise<void>;
}

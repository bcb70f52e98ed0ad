/**
 * The web page: serves it over HTTP (or HTTPS), and turns each WebSocket from it into one more
 * connection of the chat server, with the same protocol: a line per text frame from the page, and
 * whole lines, as many as one write to a TCP member holds, in each text frame to it.
 *
 * Not `Deno.serve` and `Deno.upgradeWebSocket`, but HTTP/1.1 and WebSocket framing of our own over
 * `Deno.listen` (`server/http.ts`, `server/websocket.ts`): `Deno.serve` ended the process when it
 * ran out of file descriptors, kept idle connections for as long as they liked, and waited forever
 * at shutdown for an upgrade whose client had gone; its WebSocket assembles a whole message before
 * JavaScript sees it and cannot be paused or aborted, so a message of fragments was limited only by
 * memory. Here every connection, HTTP or WebSocket, counts against the chat's per-address and
 * global limits, a request head has the handshake deadline, the accept loop is the chat port's,
 * and a message is bounded by the line limit as it arrives.
 *
 * Try it: `deno task web`, then open http://localhost:8080/ beside `nc 127.0.0.1 1234`.
 *
 * The page's files are part of the module graph (text imports), so serving them needs no read
 * permission, and the compiled binary carries them. `web/page.js` is built from `web/page.ts` by
 * `deno task bundle` and committed; a test checks that it matches its source.
 */
import type { Log } from "./log.ts";
import INDEX_HTML from "../web/index.html" with { type: "text" };
import PAGE_JS from "../web/page.js" with { type: "text" };
import STYLE_CSS from "../web/style.css" with { type: "text" };
import ICON_SVG from "../web/icon.svg" with { type: "text" };
import { type ChatConn, closeQuietly, isPeerGone, pause } from "./conn.ts";
import type { ChatServer } from "../server.ts";
import { TlsConn, tlsContext } from "./tls_conn.ts";
import { acceptAll, stopAccepting } from "./accept.ts";
import { formatResponse, HeadReader, HttpError, type RequestHead, writeAll } from "./http.ts";
import { acceptKey, isValidKey } from "./websocket.ts";
import { WebSocketConn } from "./websocket_conn.ts";
import type { SecureContext } from "node:tls";
import { describe, hostPort, SOCKET_PATH } from "../protocol.ts";

/** The page's port when `--web` names none. */
export const DEFAULT_WEB_PORT = 8080;
/** Seconds between pings to a quiet WebSocket; one that does not answer within them is closed. */
const DEFAULT_PING_SECONDS = 30;
/** Longest request head: a browser's is well under 2 KB, cookies and all. */
const MAX_HEAD_BYTES = 16 * 1024;
/**
 * Connections over the limits that are read anyway, at once, for one request: a page's socket
 * then hears why in the chat's own words, as a line. Beyond these, one over the limits is closed
 * unread.
 */
const MAX_REFUSING = 64;
/**
 * How long a connection refused a socket for the join rate is kept, unread, before it is closed:
 * closed at once, a client reconnecting in a loop came back at once, thousands of times a second,
 * each time costing an accept and a request, where a TCP client cut for junk takes the 2 s a
 * closing member gets. Kept, it holds a place under the per-address limit meanwhile.
 */
const OVER_RATE_HOLD_MS = 2000;
/**
 * The answer to a trusted proxy's request that names no client: counted as the proxy's own, it
 * would share the proxy's exemption (loopback is exempt by default), so it is refused instead.
 */
const NO_CLIENT = "The proxy named no client in X-Forwarded-For";

/** Security headers on every response: the page runs our script only and shows no one else's. */
const SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy": [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    // Chromium then refuses every string that would become HTML (innerHTML and the like).
    "require-trusted-types-for 'script'",
    "trusted-types 'none'",
  ].join("; "),
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
};

interface PageFile {
  type: string;
  body: Uint8Array<ArrayBuffer>;
  etag: string;
}

const encoder = new TextEncoder();

function pageFile(type: string, text: string): PageFile {
  const body = encoder.encode(text);
  let hash = 0x811c9dc5; // FNV-1a: an ETag only has to change when the file does
  for (const byte of body) hash = Math.imul(hash ^ byte, 0x01000193);
  return { type, body, etag: `"${(hash >>> 0).toString(16)}-${body.length}"` };
}

const FILES = new Map<string, PageFile>([
  ["/", pageFile("text/html; charset=utf-8", INDEX_HTML)],
  ["/page.js", pageFile("text/javascript; charset=utf-8", PAGE_JS)],
  ["/style.css", pageFile("text/css; charset=utf-8", STYLE_CSS)],
  ["/icon.svg", pageFile("image/svg+xml", ICON_SVG)],
]);

/** Options for {@linkcode startWeb}. */
export interface WebOptions {
  /** Address to listen on (default 0.0.0.0). */
  hostname?: string;
  /** Port to listen on (default 8080; 0 picks a free one). */
  port?: number;
  /** PEM certificate chain and key: the page is then served over HTTPS and the socket is WSS. */
  tls?: { cert: string; key: string };
  /** Origins besides the page's own that may open the socket, such as `https://chat.example`. */
  origins?: readonly string[];
  /** Seconds between pings to a quiet socket (default 30). */
  pingSeconds?: number;
  /**
   * Time for a request head to arrive, from the connection's start or the last response, before
   * the connection is closed (default: the chat's handshake timeout; 0: none).
   */
  headTimeoutMs?: number;
  /** Receives one line per notable event; silent by default. */
  log?: Log;
}

/** The page's server. */
export interface WebServer extends AsyncDisposable {
  /** The address it listens on, with the real port. */
  readonly addr: Deno.NetAddr;
  /** The page's address, `http://HOST:PORT/` or `https://...`. */
  readonly url: string;
  /** Connections open now, HTTP and WebSocket. */
  readonly connectionCount: number;
  /**
   * Takes a renewed certificate and key (SIGHUP) for new connections; throws, changing nothing, for
   * a pair that is not one or a page that is not served over HTTPS.
   */
  reload(tls: { cert: string; key: string }): void;
  /**
   * Closes the listener and every connection, half-done upgrades too, and settles once all have
   * ended; close the chat server first, so that its goodbye reaches the page's members.
   */
  close(): Promise<void>;
}

/**
 * Serves the page and hands each of its WebSockets to `server` as a connection. Throws what
 * `Deno.listen` throws (`AddrInUse`, `NotCapable`) and an `Error` for an unusable certificate.
 */
export function startWeb(server: ChatServer, options: WebOptions = {}): WebServer {
  const tls = options.tls ? tlsContext(options.tls) : undefined;
  const listener = Deno.listen({
    hostname: options.hostname ?? "0.0.0.0",
    port: options.port ?? DEFAULT_WEB_PORT,
  });
  const page = new PageServer(listener, server, {
    origins: new Set(options.origins ?? []),
    log: options.log ?? (() => {}),
    pingMs: 1000 * (options.pingSeconds ?? DEFAULT_PING_SECONDS),
    headTimeoutMs: options.headTimeoutMs ?? server.limits.handshakeTimeoutMs,
    ...(tls ? { tls } : {}),
  });
  server.webPort = page.addr.port;
  return page;
}

interface PageConfig {
  origins: ReadonlySet<string>;
  log: Log;
  pingMs: number;
  headTimeoutMs: number;
  tls?: SecureContext;
}

/** A connection before it is a WebSocket: since when its next request head has been awaited. */
interface HttpState {
  since: number;
}

class PageServer implements WebServer {
  readonly addr: Deno.NetAddr;
  readonly url: string;
  #listener: Deno.Listener;
  #server: ChatServer;
  #config: PageConfig;
  #stop = new AbortController();
  #http = new Map<ChatConn, HttpState>();
  #sockets = new Set<WebSocketConn>();
  #tasks = new Set<Promise<void>>();
  #refusing = 0;
  #sweeper: ReturnType<typeof setInterval>;
  #accepting: Promise<void>;
  #closing: Promise<void> | undefined;

  constructor(listener: Deno.Listener, server: ChatServer, config: PageConfig) {
    this.#listener = listener;
    this.#server = server;
    this.#config = config;
    this.addr = listener.addr as Deno.NetAddr;
    this.url = `${config.tls ? "https" : "http"}://${
      hostPort(this.addr.hostname, this.addr.port)
    }/`;
    const shortest = Math.min(config.pingMs, config.headTimeoutMs || Infinity);
    // A quarter of the shortest time limit keeps each within 25% of its value, at a second at most.
    this.#sweeper = setInterval(() => this.#sweep(), Math.min(1000, Math.max(10, shortest / 4)));
    this.#accepting = acceptAll(listener, {
      onConn: (conn) => this.#track(this.#serve(conn)),
      log: config.log,
      signal: this.#stop.signal,
    });
  }

  reload(tls: { cert: string; key: string }): void {
    if (!this.#config.tls) throw new TypeError("Cannot take a certificate: the page is not HTTPS");
    this.#config.tls = tlsContext(tls); // new connections read it; open ones keep theirs
  }

  get connectionCount(): number {
    return this.#http.size + this.#sockets.size;
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
    for (const conn of this.#http.keys()) closeQuietly(conn);
    for (const socket of this.#sockets) socket.abort();
    await Promise.all(this.#tasks);
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  /** Closes connections whose request head is late, and pings quiet sockets. */
  #sweep(): void {
    const now = Date.now();
    const { headTimeoutMs, pingMs } = this.#config;
    if (headTimeoutMs > 0) {
      for (const [conn, state] of this.#http) {
        if (now - state.since > headTimeoutMs) closeQuietly(conn);
      }
    }
    for (const socket of this.#sockets) socket.tick(now, pingMs);
  }

  /**
   * One connection's requests, each answered in turn, until it closes, asks to, or becomes a
   * WebSocket. It holds a place under the chat's connection limits all along; over them, one
   * request is read to say why (a page's socket hears it from the chat itself), then it is closed.
   */
  async #serve(tcp: Deno.Conn): Promise<void> {
    const remote = tcp.remoteAddr as Deno.NetAddr;
    const { proxies } = this.#server;
    // A trusted proxy's connection counts under the global limit alone until a request of it says
    // whose it is; then its place is that client's.
    const isProxied = proxies.has(remote.hostname);
    let client = remote;
    let held = this.#server.hold(isProxied ? undefined : remote.hostname);
    const conn: ChatConn = this.#config.tls
      ? new TlsConn(tcp as Deno.TcpConn, this.#config.tls)
      : tcp;
    let refusal = typeof held === "string" ? held : undefined;
    if (refusal && this.#refusing >= MAX_REFUSING) return closeQuietly(conn);
    const isRefusing = refusal !== undefined;
    if (isRefusing) this.#refusing++;
    const state: HttpState = { since: Date.now() };
    this.#http.set(conn, state);
    let isUpgraded = false;
    try {
      if (conn instanceof TlsConn) await conn.handshake(); // the sweep ends it when it is late
      const heads = new HeadReader(MAX_HEAD_BYTES);
      for (let isLast = false; !isLast;) {
        state.since = Date.now();
        const head = await heads.read(conn).catch((error) => {
          if (!(error instanceof HttpError)) throw error;
          return error;
        });
        if (head === null) break;
        if (head instanceof HttpError) {
          await writeAll(conn, plain(head.status, head.message, { connection: "close" }));
          break;
        }
        if (isProxied && !refusal) {
          const named = proxies.clientOf(remote, head.headers);
          if (typeof held !== "string") held.release();
          held = named ? this.#server.hold(named.hostname) : NO_CLIENT;
          if (typeof held === "string") refusal = held;
          client = named ?? remote;
        }
        isLast = refusal !== undefined || isLastRequest(head);
        if (head.path === SOCKET_PATH && refusal !== NO_CLIENT) {
          const socket = this.#socket(conn, head, {
            rest: heads.rest(),
            local: (tcp.localAddr as Deno.NetAddr).hostname,
            client,
          });
          if (socket instanceof Uint8Array) {
            await writeAll(conn, socket);
            break; // a socket refused: its connection closes too, as a browser's would
          }
          if ("overRate" in socket) {
            await writeAll(conn, socket.overRate);
            await pause(OVER_RATE_HOLD_MS, this.#stop.signal);
            break;
          }
          await writeAll(conn, socket.response);
          // A chat line must leave now, not wait for an ACK (Nagle), as on the chat's port.
          if (conn === tcp) (tcp as Deno.TcpConn).setNoDelay(true); // TlsConn sets its own
          // Its place passes to the chat, which refuses it in a line if it is over the limits.
          this.#http.delete(conn);
          if (typeof held !== "string") held.release();
          this.#sockets.add(socket.conn);
          isUpgraded = true;
          return this.#server.accept(socket.conn, { isJoinTaken: true });
        }
        const extra: Record<string, string> = isLast ? { connection: "close" } : {};
        await writeAll(
          conn,
          refusal ? plain(refusalStatus(refusal), refusal, extra) : page(head, extra),
        );
      }
    } catch (error) {
      if (!isPeerGone(error) && !this.#stop.signal.aborted) {
        const address = hostPort(client.hostname, client.port);
        this.#config.log(`web: ${address}: ${describe(error)}`, {
          event: "web failed",
          level: "error",
          address,
          reason: describe(error),
        });
      }
    } finally {
      if (isRefusing) this.#refusing--;
      if (!isUpgraded) {
        this.#http.delete(conn);
        if (typeof held !== "string") held.release();
        closeQuietly(conn);
      }
    }
  }

  /**
   * The answer to a request for the socket: a refusal (after which the connection closes), one
   * over the join rate (closed a while later), or the 101 and the socket it opens. `rest`: what
   * came after the request; `local`: the address the connection came in on; `client`: whom it
   * comes from (a trusted proxy's client, if it is one).
   */
  #socket(
    conn: ChatConn,
    head: RequestHead,
    options: { rest: Uint8Array; local: string; client: Deno.NetAddr },
  ): Uint8Array | { overRate: Uint8Array } | { response: Uint8Array; conn: WebSocketConn } {
    const refusal = socketRefusal(head, {
      isTls: this.#config.tls !== undefined,
      origins: this.#config.origins,
      port: this.addr.port,
      local: options.local,
    });
    if (refusal) return refusal;
    const key = head.headers.get("sec-websocket-key") ?? "";
    if (head.headers.get("sec-websocket-version") !== "13" || !isValidKey(key)) {
      return plain(400, "Cannot open a WebSocket: it needs version 13 and a valid key", {
        "sec-websocket-version": "13",
        connection: "close",
      });
    }
    // Each socket opened takes a join (its member's join then takes none), so that opening them
    // in a loop, joining or not, is held to the join rate.
    const tooMany = this.#server.takeJoin(options.client.hostname);
    if (tooMany) return { overRate: plain(429, tooMany, { connection: "close" }) };
    const socket = new WebSocketConn(conn, {
      remoteAddr: options.client,
      rest: options.rest,
      onClose: () => this.#sockets.delete(socket),
    });
    const response = formatResponse(101, {
      upgrade: "websocket",
      connection: "Upgrade",
      "sec-websocket-accept": acceptKey(key),
      ...SECURITY_HEADERS,
    });
    return { response, conn: socket };
  }
}

/** Whether the client asked to close after this request, or sent a body we will not read. */
function isLastRequest(head: RequestHead): boolean {
  const connection = head.headers.get("connection")?.toLowerCase() ?? "";
  const hasBody = (Number(head.headers.get("content-length")) || 0) > 0 ||
    head.headers.has("transfer-encoding");
  return head.version === "HTTP/1.0" || connection.includes("close") || hasBody;
}

function refusalStatus(refusal: string): number {
  if (refusal === NO_CLIENT) return 400;
  return refusal.startsWith("Too many") ? 429 : 503;
}

/** A page file, a 404 for any other path, a 405 for any method but GET and HEAD. */
function page(head: RequestHead, extra: Record<string, string>): Uint8Array {
  const file = FILES.get(head.path);
  if (!file) return plain(404, `Not found: ${head.path}`, extra);
  if (head.method !== "GET" && head.method !== "HEAD") {
    return plain(405, `Method ${head.method} not allowed: use GET`, {
      allow: "GET, HEAD",
      ...extra,
    });
  }
  const headers = {
    ...SECURITY_HEADERS,
    "content-type": file.type,
    "cache-control": "no-cache",
    etag: file.etag,
    ...extra,
  };
  if (head.headers.get("if-none-match") === file.etag) return formatResponse(304, headers);
  return formatResponse(200, headers, file.body, { isHead: head.method === "HEAD" });
}

/** A one-line text response with the security headers. */
function plain(status: number, text: string, extra: Record<string, string> = {}): Uint8Array {
  return formatResponse(
    status,
    { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", ...extra },
    encoder.encode(`${text}\n`),
  );
}

/** Why a request for the socket cannot have it: not a WebSocket, or from another site. */
function socketRefusal(
  head: RequestHead,
  options: OwnOrigins & { origins: ReadonlySet<string> },
): Uint8Array | undefined {
  const close = { connection: "close" };
  if (head.method !== "GET") {
    return plain(405, `Method ${head.method} not allowed: use GET`, { allow: "GET", ...close });
  }
  if (head.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return plain(426, `${SOCKET_PATH} takes WebSocket connections only`, {
      upgrade: "websocket",
      ...close,
    });
  }
  const origin = head.headers.get("origin");
  if (origin === null || isOwnOrigin(origin, head, options)) return;
  if (options.origins.has(origin)) return;
  return plain(
    403,
    `Origin ${
      JSON.stringify(origin)
    } may not open the chat: start the server with --web-origin ${origin}`,
    close,
  );
}

/** What the page's own origins are made of: its scheme and port, and the address it was reached at. */
interface OwnOrigins {
  isTls: boolean;
  port: number;
  /** The address the connection came in on (the listener's, or one of the machine's for 0.0.0.0). */
  local: string;
}

/**
 * Whether `origin` is the page's own: its scheme and port, and a host that is the server's. Over
 * HTTP that is the address the connection came in on (or `localhost` on loopback), never a name
 * from the request's Host header: a page of a domain whose DNS now points at this server (DNS
 * rebinding) sends a Host and an Origin that agree, and a name is the page's only if --web-origin
 * says so. Over HTTPS the Host is the name the browser checked the certificate for, so it stands.
 * A browser always sends Origin with a WebSocket; a request without one is not from a browser, and
 * could claim any origin it liked, so it is let in as gorilla/websocket does.
 */
function isOwnOrigin(origin: string, head: RequestHead, own: OwnOrigins): boolean {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return false;
  }
  const scheme = own.isTls ? "https:" : "http:";
  const port = Number(url.port || (own.isTls ? 443 : 80));
  if (url.protocol !== scheme || port !== own.port || url.origin !== origin.toLowerCase()) {
    return false;
  }
  if (own.isTls) return url.host === head.headers.get("host")?.toLowerCase();
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const local = own.local.replace(/^::ffff:/, ""); // an IPv4 client of a dual-stack listener
  return host === local || (host === "localhost" && /^(127\.|::1$)/.test(local));
}

/**
 * Checks an origin for `--web-origin` and returns it as browsers send it (`https://host[:port]`,
 * no path). Throws a `TypeError` that says what is wrong.
 */
export function parseOrigin(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new TypeError(`Invalid origin ${JSON.stringify(text)}: use SCHEME://HOST[:PORT]`);
  }
  if (url.origin === "null" || url.origin !== text.replace(/\/$/, "").toLowerCase()) {
    throw new TypeError(
      `Invalid origin ${
        JSON.stringify(text)
      }: use SCHEME://HOST[:PORT] with no path, as ${url.origin}`,
    );
  }
  return url.origin;
}

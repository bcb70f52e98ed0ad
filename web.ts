/**
 * The web page: serves it over HTTP (or HTTPS) with `Deno.serve`, and turns each WebSocket from it
 * into one more connection of the chat server, one text frame per line of the same protocol.
 *
 * Try it: `deno task web`, then open http://localhost:8080/ beside `nc 127.0.0.1 1234`.
 *
 * The page's files are part of the module graph (text imports), so serving them needs no read
 * permission, and the compiled binary carries them. `web/page.js` is built from `web/page.ts` by
 * `deno task bundle` and committed; a test checks that it matches its source.
 */
import INDEX_HTML from "./web/index.html" with { type: "text" };
import PAGE_JS from "./web/page.js" with { type: "text" };
import STYLE_CSS from "./web/style.css" with { type: "text" };
import ICON_SVG from "./web/icon.svg" with { type: "text" };
import { type ChatConn, describe } from "./peer.ts";
import { DEFAULT_MAX_LINE_BYTES, formatError } from "./protocol.ts";
import type { ChatServer } from "./server.ts";

/** The page's port when `--web` names none. */
export const DEFAULT_WEB_PORT = 8080;
/** Where the page opens its WebSocket. */
export const SOCKET_PATH = "/chat";
/** Seconds between pings to a quiet WebSocket; one that does not answer within them is closed. */
const DEFAULT_PING_SECONDS = 30;
/**
 * Bytes a WebSocket may hold unsent before its writes wait: the server's per-member backlog holds
 * the rest, so its slow-reader policy and write timeout apply to WebSocket members too.
 */
const HIGH_WATER_BYTES = 64 * 1024;
/** Longest pause between two looks at a stalled socket (a WebSocket has no "drained" event). */
const MAX_DRAIN_POLL_MS = 50;

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
  /** The server's line limit: a longer frame is refused as a longer line is. */
  maxLineBytes?: number;
  /** Sockets at once from one address, counted until each has really closed (0: no limit). */
  maxPerAddress?: number;
  /** Seconds between pings to a quiet socket (default 30). */
  pingSeconds?: number;
  /** Receives one line per notable event; silent by default. */
  log?: (message: string) => void;
}

/** The page's server. */
export interface WebServer extends AsyncDisposable {
  /** The address it listens on, with the real port. */
  readonly addr: Deno.NetAddr;
  /** The page's address, `http://HOST:PORT/` or `https://...`. */
  readonly url: string;
  /** Stops serving; close the chat server first, so that its goodbye reaches the page. */
  close(): Promise<void>;
}

/**
 * Serves the page and hands each of its WebSockets to `server` as a connection. Throws what
 * `Deno.serve` throws (`AddrInUse`, `NotCapable`, a bad certificate).
 */
export function startWeb(server: ChatServer, options: WebOptions = {}): WebServer {
  const sockets = new SocketCount(options.maxPerAddress ?? 0);
  const isTls = options.tls !== undefined;
  const origins = new Set(options.origins ?? []);
  const log = options.log ?? (() => {});
  const conn = {
    maxLineBytes: options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES,
    pingSeconds: options.pingSeconds ?? DEFAULT_PING_SECONDS,
  };
  const http = Deno.serve(
    {
      hostname: options.hostname ?? "0.0.0.0",
      port: options.port ?? DEFAULT_WEB_PORT,
      ...(options.tls ?? {}),
      onListen() {}, // main.ts prints the address
      onError(error) {
        log(`web: ${describe(error)}`);
        return plain(500, "Internal server error");
      },
    },
    (request, info) => {
      const url = new URL(request.url);
      if (url.pathname !== SOCKET_PATH) return serveFile(request, url.pathname);
      const refusal = socketRefusal(request, { isTls, origins }) ??
        sockets.refusal(info.remoteAddr.hostname);
      if (refusal) return refusal;
      return upgrade(request, info.remoteAddr, { server, sockets, log, ...conn });
    },
  );
  const addr = http.addr;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return {
    addr,
    url: `${isTls ? "https" : "http"}://${host}:${addr.port}/`,
    close: () => http.shutdown(),
    [Symbol.asyncDispose]: () => http.shutdown(),
  };
}

/** A page file, a 404 for any other path, a 405 for any method but GET and HEAD. */
function serveFile(request: Request, path: string): Response {
  const file = FILES.get(path);
  if (!file) return plain(404, `Not found: ${path}`);
  if (request.method !== "GET" && request.method !== "HEAD") {
    return plain(405, `Method ${request.method} not allowed: use GET`, { allow: "GET, HEAD" });
  }
  const headers = {
    ...SECURITY_HEADERS,
    "content-type": file.type,
    "cache-control": "no-cache",
    etag: file.etag,
  };
  if (request.headers.get("if-none-match") === file.etag) {
    return new Response(null, { status: 304, headers });
  }
  return new Response(request.method === "HEAD" ? null : file.body, { headers });
}

/** A one-line text response with the security headers. */
function plain(status: number, text: string, extra: Record<string, string> = {}): Response {
  return new Response(`${text}\n`, {
    status,
    headers: { ...SECURITY_HEADERS, "content-type": "text/plain; charset=utf-8", ...extra },
  });
}

/** Why a request for the socket cannot have it: not a WebSocket, or from another site. */
function socketRefusal(
  request: Request,
  options: { isTls: boolean; origins: ReadonlySet<string> },
): Response | undefined {
  if (request.method !== "GET") {
    return plain(405, `Method ${request.method} not allowed: use GET`, { allow: "GET" });
  }
  if (request.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return plain(426, `${SOCKET_PATH} takes WebSocket connections only`, {
      upgrade: "websocket",
    });
  }
  const origin = request.headers.get("origin");
  if (origin === null || isSameOrigin(origin, request, options.isTls)) return;
  if (options.origins.has(origin)) return;
  return plain(
    403,
    `Origin ${
      JSON.stringify(origin)
    } may not open the chat: start the server with --web-origin ${origin}`,
  );
}

/**
 * Whether `origin` is the page's own: the scheme it is served with and the host it was asked for.
 * A browser always sends Origin with a WebSocket; a request without one is not from a browser, and
 * could claim any origin it liked, so it is let in as gorilla/websocket does.
 */
function isSameOrigin(origin: string, request: Request, isTls: boolean): boolean {
  const host = request.headers.get("host");
  return host !== null &&
    origin.toLowerCase() === `${isTls ? "https" : "http"}://${host}`.toLowerCase();
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

/**
 * Open WebSockets per address, each counted until it has really closed. Deno cannot abort a
 * WebSocket whose client has stopped reading: once its buffers are full the socket stays until the
 * client goes, after the server has long dropped the member. Counting them keeps one address
 * from piling up such sockets past the per-address limit.
 */
class SocketCount {
  #limit: number;
  #byAddress = new Map<string, number>();

  constructor(limit: number) {
    this.#limit = limit;
  }

  refusal(address: string): Response | undefined {
    if (this.#limit === 0 || (this.#byAddress.get(address) ?? 0) < this.#limit) return;
    return plain(429, `Too many connections from ${address}: at most ${this.#limit}`);
  }

  add(address: string): void {
    this.#byAddress.set(address, (this.#byAddress.get(address) ?? 0) + 1);
  }

  remove(address: string): void {
    const count = (this.#byAddress.get(address) ?? 1) - 1;
    if (count === 0) this.#byAddress.delete(address);
    else this.#byAddress.set(address, count);
  }
}

/** Upgrades the request and, once the socket is open, hands it to the chat server. */
function upgrade(
  request: Request,
  remoteAddr: Deno.NetAddr,
  options: {
    server: ChatServer;
    sockets: SocketCount;
    log: (message: string) => void;
    maxLineBytes: number;
    pingSeconds: number;
  },
): Response {
  let upgraded: Deno.WebSocketUpgrade;
  try {
    upgraded = Deno.upgradeWebSocket(request, { idleTimeout: options.pingSeconds });
  } catch (error) {
    return plain(400, `Cannot open a WebSocket: ${error instanceof Error ? error.message : error}`);
  }
  const { socket, response } = upgraded;
  const address = remoteAddr.hostname;
  options.sockets.add(address);
  socket.addEventListener("close", () => options.sockets.remove(address), { once: true });
  const conn = new WebSocketConn(socket, remoteAddr, options);
  socket.addEventListener("open", () => options.server.accept(conn), { once: true });
  for (const [name, value] of Object.entries(SECURITY_HEADERS)) response.headers.set(name, value);
  return response;
}

const TEXT = new TextDecoder();
const tooLongLines = new Map<number, Uint8Array>();

/**
 * What the server reads in place of a frame over the limit: a line of spaces one byte too long, so
 * that it answers exactly as to a long line over TCP, and the frame itself is never kept.
 */
function tooLongLine(maxLineBytes: number): Uint8Array {
  let line = tooLongLines.get(maxLineBytes);
  if (!line) {
    tooLongLines.set(maxLineBytes, line = encoder.encode(`${" ".repeat(maxLineBytes + 1)}\n`));
  }
  return line;
}
/** WebSocket close codes (RFC 6455, 7.4.1). */
const UNSUPPORTED_DATA = 1003;
const POLICY_VIOLATION = 1008;

/**
 * A WebSocket as a chat connection. Each text frame is one line: `read` yields its UTF-8 bytes and
 * a LF, and `write` sends each line it is given as a frame of its own.
 *
 * A frame over the line limit is refused as a longer line over TCP is: the server reads a line of
 * spaces over the limit in its place, answers with its own error, and a member stays (a connection
 * without a name yet is closed). A binary frame or one holding a line end is not a line at all: no
 * page sends one, so only a client that does not speak the protocol does. It gets one error line,
 * its input ends there, and its socket is closed with the WebSocket code for it (1003 or 1008);
 * the room hears it left. Lines it sent before are still handled.
 */
export class WebSocketConn implements ChatConn {
  readonly remoteAddr: Deno.NetAddr;
  #socket: WebSocket;
  #maxLineBytes: number;
  /** What the client sent and the server has not read yet, as lines with their LF. */
  #inbox: Uint8Array[] = [];
  #inboxOffset = 0;
  #inboxBytes = 0;
  #maxInboxBytes: number;
  #reader: PromiseWithResolvers<void> | undefined;
  #drain: {
    resolve: () => void;
    reject: (error: Error) => void;
    timer: ReturnType<typeof setTimeout>;
  } | undefined;
  #isInputEnded = false;
  #isClosed = false;
  #closeCode = 1000;

  constructor(
    socket: WebSocket,
    remoteAddr: Deno.NetAddr,
    options: { maxLineBytes: number },
  ) {
    this.#socket = socket;
    this.remoteAddr = remoteAddr;
    this.#maxLineBytes = options.maxLineBytes;
    // Input waits here while flood control holds the server's reading back (a WebSocket cannot
    // be paused as a TCP socket can): room for the flood limit's worth of long lines, and more.
    this.#maxInboxBytes = Math.max(1024 * 1024, 64 * (options.maxLineBytes + 1));
    socket.binaryType = "arraybuffer";
    socket.addEventListener("message", (event) => this.#receive(event.data));
    socket.addEventListener("close", () => this.#closed());
  }

  /** Reads the next bytes of the client's lines into `buffer`; `null` once its input has ended. */
  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#inbox.length === 0) {
      if (this.#isInputEnded) return null;
      this.#reader = Promise.withResolvers<void>();
      await this.#reader.promise;
    }
    const head = this.#inbox[0]!;
    const count = Math.min(buffer.length, head.length - this.#inboxOffset);
    buffer.set(head.subarray(this.#inboxOffset, this.#inboxOffset + count));
    this.#inboxOffset += count;
    this.#inboxBytes -= count;
    if (this.#inboxOffset === head.length) {
      this.#inbox.shift();
      this.#inboxOffset = 0;
    }
    return count;
  }

  /**
   * Sends each line in `bytes` (whole lines, each ending in LF) as a text frame, at once, and
   * settles when the socket can take more: while the client is not taking what it was sent, the
   * write stays pending, as a TCP write to a full socket does.
   */
  write(bytes: Uint8Array): Promise<number> {
    if (this.#isClosed || this.#socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new Deno.errors.BrokenPipe("The WebSocket is closed"));
    }
    const text = TEXT.decode(bytes);
    for (let start = 0, lf = text.indexOf("\n"); lf !== -1; lf = text.indexOf("\n", start)) {
      this.#socket.send(text.slice(start, lf));
      start = lf + 1;
    }
    if (this.#socket.bufferedAmount <= HIGH_WATER_BYTES) return Promise.resolve(bytes.length);
    return this.#drained(HIGH_WATER_BYTES).then(() => bytes.length);
  }

  /** Lets what was sent go out, then closes the socket cleanly (the client answers the close). */
  async closeWrite(): Promise<void> {
    if (this.#isClosed) throw new Deno.errors.BadResource("The WebSocket is closed");
    if (this.#socket.bufferedAmount > 0) await this.#drained(0);
    this.#socket.close(this.#closeCode);
  }

  /** Closes the socket now: input still unread is dropped. Throws if it was closed already. */
  close(): void {
    if (this.#isClosed) throw new Deno.errors.BadResource("The WebSocket is closed");
    this.#inbox = [];
    this.#inboxBytes = 0;
    this.#closed();
    try {
      this.#socket.close(this.#closeCode);
    } catch {
      // Closing already: nothing more to do.
    }
  }

  /** The socket is closed, by either side: end the input and settle whatever waits. */
  #closed(): void {
    this.#isClosed = true;
    this.#isInputEnded = true;
    this.#wake();
    if (this.#drain) {
      clearTimeout(this.#drain.timer);
      this.#drain.reject(new Deno.errors.BrokenPipe("The WebSocket is closed"));
      this.#drain = undefined;
    }
  }

  #receive(data: unknown): void {
    if (this.#isInputEnded) return; // after a bad frame, nothing more is read
    if (typeof data !== "string") {
      return this.#refuse(
        UNSUPPORTED_DATA,
        "Binary frames are not accepted: send each line as one text frame",
      );
    }
    if (data.includes("\n") || data.includes("\r")) {
      return this.#refuse(
        POLICY_VIOLATION,
        "A frame holds one line: send each line as a text frame of its own, without line ends",
      );
    }
    // UTF-8 takes at least a byte per UTF-16 unit, so a long string is over the limit unencoded.
    // A line that is over the limit only in bytes gets the same answer from the server's splitter.
    const max = this.#maxLineBytes;
    const line = data.length > max ? tooLongLine(max) : encoder.encode(`${data}\n`);
    this.#inbox.push(line);
    this.#inboxBytes += line.length;
    if (this.#inboxBytes > this.#maxInboxBytes) {
      this.#inbox = [];
      this.#inboxBytes = 0;
      return this.#refuse(
        POLICY_VIOLATION,
        `Too much input at once: more than ${this.#maxInboxBytes} bytes were waiting`,
      );
    }
    this.#wake();
  }

  /** Tells the client what was wrong in one line and ends its input; the server then closes. */
  #refuse(code: number, message: string): void {
    this.#closeCode = code;
    this.#isInputEnded = true;
    try {
      this.#socket.send(formatError(message));
    } catch {
      // The socket is closing already: there is nobody left to tell.
    }
    this.#wake();
  }

  #wake(): void {
    this.#reader?.resolve();
    this.#reader = undefined;
  }

  /** Settles once no more than `limit` bytes wait to be sent, or rejects if the socket closes. */
  #drained(limit: number): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    let delay = 1;
    const look = () => {
      if (this.#socket.bufferedAmount <= limit) {
        this.#drain = undefined;
        return resolve();
      }
      delay = Math.min(2 * delay, MAX_DRAIN_POLL_MS);
      this.#drain = { resolve, reject, timer: setTimeout(look, delay) };
    };
    this.#drain = { resolve, reject, timer: setTimeout(look, delay) };
    return promise;
  }
}

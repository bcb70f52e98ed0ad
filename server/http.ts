/**
 * The little of HTTP/1.1 the web page needs: request heads read with a size limit (the deadline is
 * the caller's, which closes the connection), and responses written whole with a length.
 */

/** A request's first line and headers. */
export interface RequestHead {
  method: string;
  /** The request target's path, without its query. */
  path: string;
  version: string;
  headers: Headers;
}

/** A request the server cannot read: the status to answer with, and one line saying why. */
export class HttpError extends Error {
  override name = "HttpError";
  readonly status: number;

  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** What {@linkcode HeadReader} needs of a connection. */
export interface Readable {
  read(buffer: Uint8Array): Promise<number | null>;
}

const FIRST_READ_BYTES = 1024;

/**
 * Reads request heads one after another from a connection, each of at most `maxBytes` (a browser's
 * head is well under 2 KB; the limit keeps a client from growing the buffer without end).
 */
export class HeadReader {
  #maxBytes: number;
  #buffer = new Uint8Array(0);
  #length = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  /** Whether part of a head has arrived and its end has not. */
  get isPartial(): boolean {
    return this.#length > 0;
  }

  /**
   * The next head; `null` if the connection ends before its first byte. Throws an
   * {@linkcode HttpError} for a head over the limit or one that is not HTTP/1.x.
   */
  async read(conn: Readable): Promise<RequestHead | null> {
    for (let scanned = 0;;) {
      const end = headEnd(this.#buffer.subarray(0, this.#length), Math.max(0, scanned - 3));
      if (end !== -1) return parseHead(this.#take(end));
      scanned = this.#length;
      if (this.#length === this.#maxBytes) {
        throw new HttpError(431, `Request head over ${this.#maxBytes} bytes`);
      }
      if (this.#length === this.#buffer.length) this.#grow();
      const count = await conn.read(this.#buffer.subarray(this.#length));
      if (count === null) {
        if (this.#length === 0) return null;
        throw new Deno.errors.UnexpectedEof("The connection ended inside a request head");
      }
      this.#length += count;
    }
  }

  /** The bytes read after the last head (a pipelined request, or a WebSocket's first frames). */
  rest(): Uint8Array {
    const rest = this.#buffer.slice(0, this.#length);
    this.#length = 0;
    return rest;
  }

  #grow(): void {
    const size = Math.min(this.#maxBytes, Math.max(FIRST_READ_BYTES, this.#buffer.length * 2));
    const buffer = new Uint8Array(size);
    buffer.set(this.#buffer.subarray(0, this.#length));
    this.#buffer = buffer;
  }

  /** The head's text up to `end`, moving what follows it to the start of the buffer. */
  #take(end: number): string {
    const text = new TextDecoder().decode(this.#buffer.subarray(0, end));
    this.#buffer.copyWithin(0, end, this.#length);
    this.#length -= end;
    if (this.#length === 0 && this.#buffer.length > FIRST_READ_BYTES) {
      this.#buffer = new Uint8Array(0); // an idle connection keeps no large buffer
    }
    return text;
  }
}

/** Where the blank line that ends a head ends (after CRLF CRLF, or LF LF), or -1. */
function headEnd(bytes: Uint8Array, from: number): number {
  for (let i = bytes.indexOf(0x0a, from); i !== -1; i = bytes.indexOf(0x0a, i + 1)) {
    if (bytes[i + 1] === 0x0a) return i + 2;
    if (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a) return i + 3;
  }
  return -1;
}

/** Parses a head's text: the request line, then one header per line. */
export function parseHead(text: string): RequestHead {
  const [requestLine = "", ...lines] = text.split(/\r?\n/);
  const match = /^([A-Z]+) (\S+) (HTTP\/1\.[01])$/.exec(requestLine);
  if (!match) throw new HttpError(400, "Bad request line: this server speaks HTTP/1.1");
  const [, method, target, version] = match as unknown as [string, string, string, string];
  const headers = new Headers();
  for (const line of lines) {
    if (line === "") continue;
    const colon = line.indexOf(":");
    try {
      if (colon <= 0) throw new TypeError("no colon");
      headers.append(line.slice(0, colon), line.slice(colon + 1).trim());
    } catch {
      throw new HttpError(400, `Bad header line ${JSON.stringify(line.slice(0, 40))}`);
    }
  }
  const path = target.split("?")[0]!;
  return { method, path, version, headers };
}

const STATUS_TEXT: Record<number, string> = {
  101: "Switching Protocols",
  200: "OK",
  304: "Not Modified",
  400: "Bad Request",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  426: "Upgrade Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  503: "Service Unavailable",
};

/** A whole response: status line, headers (a length added unless it is a 101 or a 304), body. */
export function formatResponse(
  status: number,
  headers: Record<string, string>,
  body: Uint8Array = new Uint8Array(0),
  options: { isHead?: boolean } = {},
): Uint8Array {
  const lines = [`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? "Unknown"}`];
  for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
  if (status !== 101 && status !== 304) lines.push(`content-length: ${body.length}`);
  const head = new TextEncoder().encode(`${lines.join("\r\n")}\r\n\r\n`);
  if (options.isHead || status === 304 || body.length === 0) return head;
  const response = new Uint8Array(head.length + body.length);
  response.set(head);
  response.set(body, head.length);
  return response;
}

/** Writes all of `bytes`, however many writes that takes. */
export async function writeAll(
  conn: { write(bytes: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

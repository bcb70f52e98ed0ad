/**
 * Test helpers for the page's server and socket: the server and its page in this process, client
 * frames written by hand, as RFC 6455 has them.
 */
import type { ChatServer, ServerOptions } from "../server.ts";
import { startWeb, type WebOptions, type WebServer } from "../server/web.ts";
import { SOCKET_PATH } from "../protocol.ts";
import { startTestServer } from "./_helpers.ts";

/** A chat server with its page, in this process, on free loopback ports. */
export class Site implements AsyncDisposable {
  constructor(readonly server: ChatServer, readonly web: WebServer) {}

  static start(options: ServerOptions = {}, web: WebOptions = {}): Site {
    const server = startTestServer(options);
    try {
      return new Site(
        server,
        startWeb(server, {
          hostname: "127.0.0.1",
          port: 0,
          ...web,
        }),
      );
    } catch (error) {
      server.close();
      throw error;
    }
  }

  get port(): number {
    return this.server.addr.port;
  }

  get url(): string {
    return this.web.url;
  }

  get socketUrl(): string {
    return `${this.url.replace(/^http/, "ws")}chat`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.server.close();
    await this.web.close();
  }
}

/** One client frame: masked (with `mask`, random by default), FIN set unless `isFinal` is false. */
export function clientFrame(
  opcode: number,
  payload: Uint8Array | string,
  options: { isFinal?: boolean; mask?: Uint8Array } = {},
): Uint8Array {
  const bytes = typeof payload === "string" ? new TextEncoder().encode(payload) : payload;
  const length = bytes.length;
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const frame = new Uint8Array(2 + lengthBytes + 4 + length);
  frame[0] = (options.isFinal === false ? 0 : 0x80) | opcode;
  const view = new DataView(frame.buffer);
  if (lengthBytes === 0) frame[1] = 0x80 | length;
  else if (lengthBytes === 2) (frame[1] = 0x80 | 126, view.setUint16(2, length));
  else (frame[1] = 0x80 | 127, view.setUint32(6, length));
  const mask = options.mask ?? crypto.getRandomValues(new Uint8Array(4));
  const start = 2 + lengthBytes + 4;
  frame.set(mask, start - 4);
  for (let i = 0; i < length; i++) frame[start + i] = bytes[i]! ^ mask[i & 3]!;
  return frame;
}

/**
 * The header of a client frame of `length` bytes masked with zeros: its payload is then sent as it
 * is, so a test can send a long message from one buffer written again and again.
 */
export function zeroMaskHeader(opcode: number, length: number, isFinal: boolean): Uint8Array {
  const lengthBytes = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const header = new Uint8Array(2 + lengthBytes + 4);
  header[0] = (isFinal ? 0x80 : 0) | opcode;
  const view = new DataView(header.buffer);
  if (lengthBytes === 0) header[1] = 0x80 | length;
  else if (lengthBytes === 2) (header[1] = 0x80 | 126, view.setUint16(2, length));
  else (header[1] = 0x80 | 127, view.setUint32(6, length));
  return header; // the mask key is the last 4 bytes, all zero
}

/**
 * Opens the page's socket by hand over TCP: writes the upgrade request and reads the answer's head,
 * nothing after it. Fails unless the answer is a 101.
 */
export async function rawUpgrade(
  port: number,
): Promise<{ conn: Deno.TcpConn; frames: ServerFrames }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(new TextEncoder().encode(upgradeRequest(port)));
    const frames = new ServerFrames(conn);
    const head = await frames.readHead();
    if (!head.startsWith("HTTP/1.1 101 ")) {
      throw new Error(`Not upgraded: ${head.split("\r\n")[0]}`);
    }
    return { conn, frames };
  } catch (error) {
    conn.close();
    throw error;
  }
}

/**
 * The request a browser sends to open the socket at `/chat`: without an Origin (not a browser)
 * unless one is given, to `Host: 127.0.0.1:PORT` unless another is.
 */
export function upgradeRequest(
  port: number,
  headers: { origin?: string; host?: string } = {},
): string {
  return [
    `GET ${SOCKET_PATH} HTTP/1.1`,
    `Host: ${headers.host ?? `127.0.0.1:${port}`}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${btoa("chat-test-key-16")}`,
    "Sec-WebSocket-Version: 13",
    ...(headers.origin ? [`Origin: ${headers.origin}`] : []),
    "",
    "",
  ].join("\r\n");
}

/**
 * The server's side of a socket read by hand: its answer's head, then its frames, and the lines in
 * its text frames (each frame holds whole lines, each ended by LF).
 */
export class ServerFrames {
  #conn: { read(buffer: Uint8Array): Promise<number | null> };
  /** Bytes read and not yet parsed: `#buffer[#start, #end)`. */
  #buffer = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  /** Lines of the last text frames, not yet taken by readLine. */
  #lines: string[] = [];

  /** `conn`: a `Deno.Conn`, or anything that reads as one does. */
  constructor(conn: { read(buffer: Uint8Array): Promise<number | null> }) {
    this.#conn = conn;
  }

  /** The response head, up to its blank line. */
  async readHead(): Promise<string> {
    for (;;) {
      const bytes = this.#buffer.subarray(this.#start, this.#end);
      for (let i = 3; i < bytes.length; i++) {
        if (bytes[i] === 0x0a && bytes[i - 1] === 0x0d && bytes[i - 2] === 0x0a) {
          this.#start += i + 1;
          return new TextDecoder().decode(bytes.subarray(0, i - 3));
        }
      }
      if (!await this.#more()) throw new Error("The connection ended before the response");
    }
  }

  /** The body after the head, of the length its `content-length` gives (a refusal's text). */
  async readBody(head: string): Promise<string> {
    const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    while (this.#end - this.#start < length) {
      if (!await this.#more()) throw new Error("The connection ended inside the body");
    }
    this.#start += length;
    return new TextDecoder().decode(this.#buffer.subarray(this.#start - length, this.#start));
  }

  /** The next frame's opcode and text, or null at the end of the stream. */
  async readFrame(): Promise<{ opcode: number; text: string } | null> {
    for (;;) {
      const frame = this.#parse();
      if (frame) return frame;
      if (!await this.#more()) return null;
    }
  }

  /**
   * The next line of the text frames; fails at a close or the end of the stream, or at a text
   * frame that does not hold whole lines.
   */
  async readLine(): Promise<string> {
    while (this.#lines.length === 0) {
      const frame = await this.readFrame();
      if (!frame) throw new Error("The stream ended while a line was expected");
      if (frame.opcode === 8) throw new Error("The socket closed while a line was expected");
      if (frame.opcode === 1) this.#lines = linesOf(frame.text);
    }
    return this.#lines.shift()!;
  }

  /** Reads lines until one matches `pattern`, returning it. */
  async readUntil(pattern: RegExp): Promise<string> {
    for (let line = await this.readLine();; line = await this.readLine()) {
      if (pattern.test(line)) return line;
    }
  }

  #parse(): { opcode: number; text: string } | undefined {
    const bytes = this.#buffer.subarray(this.#start, this.#end);
    if (bytes.length < 2) return;
    const length7 = bytes[1]! & 0x7f;
    const header = length7 === 126 ? 4 : length7 === 127 ? 10 : 2;
    if (bytes.length < header) return;
    const view = new DataView(bytes.buffer, bytes.byteOffset);
    const length = length7 === 126
      ? view.getUint16(2)
      : length7 === 127
      ? view.getUint32(6)
      : length7;
    if (bytes.length < header + length) return;
    const text = new TextDecoder().decode(bytes.subarray(header, header + length));
    this.#start += header + length;
    return { opcode: bytes[0]! & 0x0f, text };
  }

  async #more(): Promise<boolean> {
    if (this.#start > 0) {
      this.#buffer.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    if (this.#end === this.#buffer.length) {
      const larger = new Uint8Array(this.#buffer.length * 2);
      larger.set(this.#buffer);
      this.#buffer = larger;
    }
    const count = await this.#conn.read(this.#buffer.subarray(this.#end));
    if (count === null) return false;
    this.#end += count;
    return true;
  }
}

/** The lines of a text frame from the server: whole lines, each ended by LF. */
export function linesOf(text: string): string[] {
  if (!text.endsWith("\n")) {
    throw new Error(`A frame that does not end a line: ${JSON.stringify(text.slice(-80))}`);
  }
  return text.slice(0, -1).split("\n");
}

/** Writes all of `bytes` (a socket's write may take only part of them). */
export async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

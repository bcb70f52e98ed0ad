/**
 * A WebSocket of the load generator's own, over `Deno.connect`: the opening handshake, masked text
 * frames out (one a line, as the page sends them), and the server's frames turned back into lines
 * in place, in the generator's own read buffer. Not Deno's `WebSocket`, which costs a message
 * event and a string per frame, so that the generator is not what limits the figures.
 */

const LF = 0x0a;
const encoder = new TextEncoder();

/** What a {@linkcode WebSocketClient} needs to open: the page's port, and the Origin to send. */
export interface WebSocketTarget {
  port: number;
  /** The page's origin; a page always sends it (default `http://127.0.0.1:PORT`). */
  origin?: string;
  /** The socket's path (default `/chat`). */
  path?: string;
}

/**
 * Opens the page's socket: connects, sends the upgrade request, and reads the `101`. Throws with
 * the status line if the server answers anything else.
 */
export async function openWebSocket(target: WebSocketTarget): Promise<WebSocketClient> {
  const { port, path = "/chat", origin = `http://127.0.0.1:${port}` } = target;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    conn.setNoDelay(true);
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const request = [
      `GET ${path} HTTP/1.1`,
      `Host: 127.0.0.1:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
      `Origin: ${origin}`,
      "",
      "",
    ].join("\r\n");
    await writeAll(conn, encoder.encode(request));
    const { head, rest } = await readHead(conn);
    if (!head.startsWith("HTTP/1.1 101 ")) {
      throw new Error(`Not upgraded: ${head.split("\r\n")[0]}`);
    }
    return new WebSocketClient(conn, rest);
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** Reads a response head up to its blank line; `rest` is what came after it (the first frames). */
async function readHead(conn: Deno.Conn): Promise<{ head: string; rest: Uint8Array }> {
  let bytes = new Uint8Array(0);
  for (;;) {
    const chunk = new Uint8Array(4096);
    const count = await conn.read(chunk);
    if (count === null) throw new Error("The connection ended before the response");
    const joined = new Uint8Array(bytes.length + count);
    joined.set(bytes);
    joined.set(chunk.subarray(0, count), bytes.length);
    bytes = joined;
    for (let i = 3; i < bytes.length; i++) {
      if (bytes[i] === LF && bytes[i - 1] === 0x0d && bytes[i - 2] === LF) {
        return {
          head: new TextDecoder().decode(bytes.subarray(0, i - 3)),
          rest: bytes.slice(i + 1),
        };
      }
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/**
 * An open WebSocket shaped like the generator's TCP connection: `write` takes whole lines (each
 * ending in LF) and sends each as a masked text frame; `read` gives the lines of the server's text
 * frames, each frame's lines ended by LF (a frame of one line without its LF, as the server sent
 * before frames held several, gets one). Pings are answered; a close frame ends the input.
 */
export class WebSocketClient {
  readonly conn: Deno.TcpConn;
  /** Bytes after the `101`, decoded by the first read. */
  #pending: Uint8Array | undefined;
  /** Whether a frame's header has been read and its payload has not all come. */
  #isInFrame = false;
  /** Payload bytes of the current frame still to come. */
  #payloadLeft = 0;
  /** Whether the current frame is a control frame, whose payload is not text. */
  #isControl = false;
  /** The last payload byte of the current text frame, to end it with a LF if it has none. */
  #lastByte = LF;
  /** Bytes of a frame header split across reads. */
  #header = new Uint8Array(14);
  #headerBytes = 0;
  #isClosed = false;
  #mask = crypto.getRandomValues(new Uint8Array(4));

  constructor(conn: Deno.TcpConn, rest: Uint8Array) {
    this.conn = conn;
    this.#pending = rest.length > 0 ? rest : undefined;
  }

  /**
   * Reads the next lines into `buffer`, decoding in place: the raw bytes are read one byte in, so
   * that the lines, never longer than the frames they came in plus one LF, never overtake them.
   */
  async read(buffer: Uint8Array): Promise<number | null> {
    if (buffer.length < 2) throw new RangeError("A read buffer of 2 bytes at least is needed");
    while (!this.#isClosed) {
      let count: number | null;
      if (this.#pending) {
        count = Math.min(this.#pending.length, buffer.length - 1);
        buffer.set(this.#pending.subarray(0, count), 1);
        this.#pending = count < this.#pending.length ? this.#pending.subarray(count) : undefined;
      } else {
        count = await this.conn.read(buffer.subarray(1));
        if (count === null) return null;
      }
      const written = this.#decode(buffer, 1 + count);
      if (written > 0) return written;
    }
    return null;
  }

  /** Decodes frames from `buffer[1, end)` into lines from `buffer[0]` on; returns their length. */
  #decode(buffer: Uint8Array, end: number): number {
    let read = 1;
    let written = 0;
    while (read < end && !this.#isClosed) {
      if (!this.#isInFrame) {
        read = this.#readHeader(buffer, read, end);
        if (!this.#isInFrame) break; // the rest of the header comes with the next read
      }
      const count = Math.min(this.#payloadLeft, end - read);
      if (!this.#isControl && count > 0) {
        buffer.copyWithin(written, read, read + count);
        written += count;
        this.#lastByte = buffer[written - 1]!;
      }
      read += count;
      this.#payloadLeft -= count;
      if (this.#payloadLeft > 0) break;
      this.#isInFrame = false;
      if (!this.#isControl && this.#lastByte !== LF) buffer[written++] = LF;
      this.#lastByte = LF;
    }
    return written;
  }

  /**
   * Takes header bytes from `buffer[at, end)`; once the header is whole, starts its frame (answers
   * a ping, notes a close). Returns where the bytes it did not take begin.
   */
  #readHeader(buffer: Uint8Array, at: number, end: number): number {
    const header = this.#header;
    while (at < end) {
      const needed = this.#headerBytes < 2 ? 2 : headerLength(header[1]!);
      if (this.#headerBytes === needed) break;
      header[this.#headerBytes++] = buffer[at++]!;
    }
    if (this.#headerBytes < 2 || this.#headerBytes < headerLength(header[1]!)) return at;
    this.#headerBytes = 0;
    const length7 = header[1]! & 0x7f;
    const view = new DataView(header.buffer);
    this.#payloadLeft = length7 === 126
      ? view.getUint16(2)
      : length7 === 127
      ? view.getUint32(2) * 2 ** 32 + view.getUint32(6)
      : length7;
    const opcode = header[0]! & 0x0f;
    this.#isInFrame = true;
    this.#isControl = opcode >= 8;
    if (opcode === 8) this.#isClosed = true; // the server closes: nothing more to read
    else if (opcode === 9) this.#send(frame(10, new Uint8Array(0), this.#mask)); // its pings are empty
    return at;
  }

  /** Sends each line of `bytes` (whole lines, each ending in LF) as a masked text frame. */
  async write(bytes: Uint8Array): Promise<number> {
    let size = 0;
    for (let start = 0, lf = bytes.indexOf(LF); lf !== -1; lf = bytes.indexOf(LF, start)) {
      size += frameBytes(lf - start);
      start = lf + 1;
    }
    const frames = new Uint8Array(size);
    for (let start = 0, at = 0, lf = bytes.indexOf(LF); lf !== -1; lf = bytes.indexOf(LF, start)) {
      at += writeFrame(frames, at, 1, bytes.subarray(start, lf), this.#mask);
      start = lf + 1;
    }
    await writeAll(this.conn, frames);
    return bytes.length;
  }

  /** Closes the socket at once (the generator's members just go, as a closed tab does). */
  close(): void {
    this.conn.close();
  }

  #send(bytes: Uint8Array): void {
    writeAll(this.conn, bytes).catch(() => {}); // the socket is gone: the read ends too
  }
}

/** Header bytes of a server frame (unmasked) or client frame (masked), from its second byte. */
function headerLength(second: number): number {
  const length7 = second & 0x7f;
  return 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + ((second & 0x80) ? 4 : 0);
}

/** Bytes of a masked client frame with `length` bytes of payload. */
function frameBytes(length: number): number {
  return (length < 126 ? 2 : length < 65536 ? 4 : 10) + 4 + length;
}

/** One masked client frame. */
function frame(opcode: number, payload: Uint8Array, mask: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(frameBytes(payload.length));
  writeFrame(bytes, 0, opcode, payload, mask);
  return bytes;
}

/** Writes a masked client frame into `target` at `at`; returns its size. */
function writeFrame(
  target: Uint8Array,
  at: number,
  opcode: number,
  payload: Uint8Array,
  mask: Uint8Array,
): number {
  const length = payload.length;
  target[at] = 0x80 | opcode;
  let offset = at + 2;
  if (length < 126) target[at + 1] = 0x80 | length;
  else if (length < 65536) {
    target[at + 1] = 0x80 | 126;
    target[at + 2] = length >> 8;
    target[at + 3] = length & 0xff;
    offset += 2;
  } else {
    target[at + 1] = 0x80 | 127;
    new DataView(target.buffer, target.byteOffset).setUint32(at + 6, length);
    offset += 8;
  }
  target.set(mask, offset);
  offset += 4;
  for (let i = 0; i < length; i++) target[offset + i] = payload[i]! ^ mask[i & 3]!;
  return offset + length - at;
}

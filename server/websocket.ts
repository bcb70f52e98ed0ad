/**
 * WebSocket framing (RFC 6455) for the page's socket: the opening handshake's answer, a frame
 * decoder that turns a client's text messages into lines as their bytes arrive, and the encoder.
 * From the server, a text frame holds one or more whole lines, each ended by LF (what one write to
 * a TCP member holds); from the page, a text message is one line, without its line end.
 *
 * Written by hand rather than `Deno.upgradeWebSocket`: Deno's WebSocket assembles a whole message
 * (any number of fragments) before JavaScript sees it, and cannot be paused or aborted, so no line
 * limit could apply as bytes arrive and a 512 MiB fragmented message ended the process. Here the
 * payload passes through as it arrives, so the server's line splitter bounds a message as it
 * bounds a TCP line, whatever its fragmentation, and reads are paced by the same byte budget.
 */
import { createHash } from "node:crypto";

/** Opcodes (RFC 6455, 5.2). */
export const OPCODE = { continuation: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 };
/** Close codes (RFC 6455, 7.4.1). */
export const CLOSE_CODE = {
  normal: 1000,
  protocolError: 1002,
  unsupportedData: 1003,
  policyViolation: 1008,
};

/** The GUID a server appends to the client's key (RFC 6455, 1.3). */
const HANDSHAKE_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** Longest payload of a control frame (RFC 6455, 5.5). */
const MAX_CONTROL_BYTES = 125;
const LF = 0x0a;
const CR = 0x0d;

/** The `Sec-WebSocket-Accept` answer to a client's `Sec-WebSocket-Key`. */
export function acceptKey(key: string): string {
  return createHash("sha1").update(key + HANDSHAKE_GUID).digest("base64");
}

/** Whether `key` is a valid `Sec-WebSocket-Key`: 16 bytes in base64 (RFC 6455, 4.1). */
export function isValidKey(key: string): boolean {
  return /^[A-Za-z0-9+/]{22}==$/.test(key);
}

/** A control frame the decoder read whole: the connection answers a ping and a close. */
export interface ControlFrame {
  opcode: number;
  payload: Uint8Array;
}

/** Why the decoder stopped for good: the close code to send, and one line for the client. */
export interface FrameError {
  code: number;
  message: string;
}

/** What one call of {@linkcode FrameDecoder.decode} did. */
export interface DecodeResult {
  /** Input bytes used; the rest must be given again. */
  read: number;
  /** Line bytes put in the output. */
  written: number;
  /** A control frame that ended the call: it is answered before decoding more. */
  control?: ControlFrame;
  /** The input is not a stream of text lines; nothing more is decoded. */
  error?: FrameError;
}

/**
 * Turns a client's frames into lines: each text message's payload, unmasked, then a LF. It holds
 * nothing of a message: payload bytes go to the output as they come, so a message of any length
 * costs the decoder its 14 header bytes and a control frame's 125 at most. A binary message, a line
 * end inside a message, or a frame the RFC forbids is an error.
 */
export class FrameDecoder {
  /** The current frame's header, its mask key last: kept until the next header begins. */
  #header = new Uint8Array(14);
  #headerBytes = 0;
  /** Payload bytes of the current frame still to come; -1 while reading a header. */
  #payloadLeft = -1;
  #opcode = 0;
  #isFinal = false;
  /** Where the mask key starts in `#header`, and the next payload byte's place in the key. */
  #maskAt = 0;
  #maskIndex = 0;
  /** Whether a text message has begun and its last frame has not. */
  #isInMessage = false;
  /** A message ended but its LF did not fit in the output. */
  #isLfOwed = false;
  #control: Uint8Array | undefined;
  #controlBytes = 0;
  #error: FrameError | undefined;

  /**
   * Decodes from `input` into `output` until either is used up or a control frame is read.
   * `output` may share `input`'s buffer, starting before it: each byte is read before the byte at
   * its place in `output` is written, so decoding in place is safe while the output stays behind.
   */
  decode(input: Uint8Array, output: Uint8Array): DecodeResult {
    let read = 0;
    let written = 0;
    while (!this.#error) {
      if (this.#isLfOwed) {
        if (written === output.length) break;
        output[written++] = LF;
        this.#isLfOwed = false;
      }
      if (this.#payloadLeft === -1) {
        read += this.#readHeader(input.subarray(read));
        if (this.#payloadLeft === -1) break; // the header is not complete yet
      } else if (this.#control) {
        const count = Math.min(this.#payloadLeft, input.length - read);
        if (count === 0) break;
        this.#unmask(input.subarray(read, read + count), this.#control, this.#controlBytes);
        read += count;
        this.#controlBytes += count;
        this.#payloadLeft -= count;
      } else {
        const count = Math.min(this.#payloadLeft, input.length - read, output.length - written);
        if (count === 0 && this.#payloadLeft > 0) break;
        if (!this.#unmaskLine(input.subarray(read, read + count), output.subarray(written))) break;
        read += count;
        written += count;
        this.#payloadLeft -= count;
      }
      if (this.#payloadLeft === 0) {
        const control = this.#endFrame();
        if (control) return { read, written, control };
      }
    }
    return this.#error ? { read, written, error: this.#error } : { read, written };
  }

  /** Takes header bytes from `input`; once the header is whole, checks it and starts its payload. */
  #readHeader(input: Uint8Array): number {
    const header = this.#header;
    let used = 0;
    while (used < input.length) {
      const needed = this.#headerBytes < 2 ? 2 : headerLength(header);
      if (this.#headerBytes === needed) break;
      header[this.#headerBytes++] = input[used++]!;
    }
    if (this.#headerBytes < 2 || this.#headerBytes < headerLength(header)) return used;
    this.#headerBytes = 0;
    this.#startFrame(header);
    return used;
  }

  #startFrame(header: Uint8Array): void {
    const opcode = header[0]! & 0x0f;
    const length7 = header[1]! & 0x7f;
    const length = length7 === 126
      ? header[2]! * 256 + header[3]!
      : length7 === 127
      ? header.subarray(2, 10).reduce((sum, byte) => sum * 256 + byte, 0)
      : length7;
    this.#maskAt = headerLength(header) - 4;
    this.#maskIndex = 0;
    this.#opcode = opcode;
    this.#isFinal = (header[0]! & 0x80) !== 0;
    const problem = frameProblem(header, { opcode, length, isInMessage: this.#isInMessage });
    if (problem) return void (this.#error = problem);
    this.#payloadLeft = length;
    if (opcode >= OPCODE.close) {
      this.#control = new Uint8Array(length);
      this.#controlBytes = 0;
    } else {
      this.#isInMessage = true;
    }
  }

  /** The current frame's payload is all read: a message may end, a control frame is whole. */
  #endFrame(): ControlFrame | undefined {
    this.#payloadLeft = -1;
    const control = this.#control;
    if (control) {
      this.#control = undefined;
      return { opcode: this.#opcode, payload: control };
    }
    if (this.#isFinal) {
      this.#isInMessage = false;
      this.#isLfOwed = true;
    }
  }

  /** Unmasks `part` of a control frame into `target` at `offset`. */
  #unmask(part: Uint8Array, target: Uint8Array, offset: number): void {
    const header = this.#header;
    const at = this.#maskAt;
    for (let i = 0; i < part.length; i++) {
      target[offset + i] = part[i]! ^ header[at + (this.#maskIndex++ & 3)]!;
    }
  }

  /** Unmasks `part` of a message into `output`; false (with the error set) at a line end in it. */
  #unmaskLine(part: Uint8Array, output: Uint8Array): boolean {
    const header = this.#header;
    const at = this.#maskAt;
    let index = this.#maskIndex;
    for (let i = 0; i < part.length; i++) {
      const byte = part[i]! ^ header[at + (index++ & 3)]!;
      if (byte === LF || byte === CR) {
        this.#error = {
          code: CLOSE_CODE.policyViolation,
          message:
            "A frame holds one line: send each line as a text frame of its own, without line ends",
        };
        return false;
      }
      output[i] = byte;
    }
    this.#maskIndex = index;
    return true;
  }
}

/** Header bytes a frame takes, from its first two: length fields and the mask key. */
function headerLength(header: Uint8Array): number {
  const length7 = header[1]! & 0x7f;
  return 2 + (length7 === 126 ? 2 : length7 === 127 ? 8 : 0) + ((header[1]! & 0x80) ? 4 : 0);
}

/** What the RFC forbids in a client's frame, or what the chat refuses (a binary message). */
function frameProblem(
  header: Uint8Array,
  frame: { opcode: number; length: number; isInMessage: boolean },
): FrameError | undefined {
  const protocol = (message: string) => ({ code: CLOSE_CODE.protocolError, message });
  if ((header[0]! & 0x70) !== 0) return protocol("A frame has reserved bits set: no extension");
  if ((header[1]! & 0x80) === 0) return protocol("A client's frame must be masked (RFC 6455)");
  const { opcode, length, isInMessage } = frame;
  if (opcode === OPCODE.binary) {
    return {
      code: CLOSE_CODE.unsupportedData,
      message: "Binary frames are not accepted: send each line as one text frame",
    };
  }
  if (opcode === OPCODE.continuation && !isInMessage) {
    return protocol("A continuation frame came with no message begun");
  }
  if (opcode === OPCODE.text && isInMessage) {
    return protocol("A text frame came before the last message ended");
  }
  if (opcode >= OPCODE.close && opcode <= OPCODE.pong) {
    if ((header[0]! & 0x80) === 0 || length > MAX_CONTROL_BYTES) {
      return protocol("A control frame must be whole and at most 125 bytes");
    }
  } else if (opcode > OPCODE.text) {
    return protocol(`Unknown opcode ${opcode}`);
  }
  if (length > Number.MAX_SAFE_INTEGER) return protocol("A frame's length is out of range");
}

/** One unmasked frame from the server, FIN set. */
export function encodeFrame(opcode: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const header = frameHeader(opcode, payload.length);
  const frame = new Uint8Array(header.length + payload.length);
  frame.set(header);
  frame.set(payload, header.length);
  return frame;
}

/** A close frame with `code` (RFC 6455, 5.5.1). */
export function encodeClose(code: number): Uint8Array {
  return encodeFrame(OPCODE.close, new Uint8Array([code >> 8, code & 0xff]));
}

function frameHeaderBytes(length: number): number {
  return length < 126 ? 2 : length < 65536 ? 4 : 10;
}

/** The header of an unmasked frame from the server of `length` bytes, FIN set. */
export function frameHeader(opcode: number, length: number): Uint8Array {
  const header = new Uint8Array(frameHeaderBytes(length));
  header[0] = 0x80 | opcode;
  const view = new DataView(header.buffer);
  if (length < 126) {
    header[1] = length;
  } else if (length < 65536) {
    header[1] = 126;
    view.setUint16(2, length);
  } else {
    header[1] = 127;
    view.setUint32(2, Math.floor(length / 2 ** 32));
    view.setUint32(6, length >>> 0);
  }
  return header;
}

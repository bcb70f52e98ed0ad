/** The page socket's framing: the frame decoder, the encoder and the handshake's answer. */
import assert from "node:assert/strict";
import {
  acceptKey,
  CLOSE_CODE,
  encodeClose,
  encodeLines,
  FrameDecoder,
  isValidKey,
  OPCODE,
} from "../server/websocket.ts";
import { clientFrame, zeroMaskHeader } from "./_websocket.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Decodes `chunks` in turn with an output of `outputBytes`, as a connection's reads would. */
function decodeAll(chunks: Uint8Array[], outputBytes = 512) {
  const frames = new FrameDecoder();
  const output = new Uint8Array(outputBytes);
  let text = "";
  const controls: { opcode: number; payload: string }[] = [];
  for (const chunk of chunks) {
    for (let at = 0;;) {
      const result = frames.decode(chunk.subarray(at), output);
      at += result.read;
      text += decoder.decode(output.subarray(0, result.written), { stream: true });
      if (result.error) return { text, controls, error: result.error };
      if (result.control) {
        controls.push({
          opcode: result.control.opcode,
          payload: decoder.decode(result.control.payload),
        });
      } else if (at === chunk.length && result.written < output.length) {
        break;
      }
    }
  }
  return { text, controls, error: undefined };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) bytes.set(part, offset), offset += part.length;
  return bytes;
}

/** Every split of `bytes` into single bytes: the hardest way for it to arrive. */
function bytewise(bytes: Uint8Array): Uint8Array[] {
  return [...bytes].map((byte) => new Uint8Array([byte]));
}

Deno.test("acceptKey answers the RFC's sample key, and isValidKey takes 16 bytes in base64 only", () => {
  assert.equal(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert.ok(isValidKey("dGhlIHNhbXBsZSBub25jZQ=="));
  for (const bad of ["", "abc", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZXh4eA=="]) {
    assert.ok(!isValidKey(bad), bad);
  }
});

Deno.test("FrameDecoder turns text messages into lines, whole, fragmented or a byte at a time", () => {
  const stream = concat(
    clientFrame(OPCODE.text, "hello"),
    clientFrame(OPCODE.text, "é".repeat(100)), // 200 bytes: a 16-bit length
    clientFrame(OPCODE.text, "frag", { isFinal: false }),
    clientFrame(OPCODE.continuation, "men", { isFinal: false }),
    clientFrame(OPCODE.ping, "are you there"), // between fragments, as the RFC allows
    clientFrame(OPCODE.continuation, "ted"),
    clientFrame(OPCODE.text, ""),
    clientFrame(OPCODE.text, "x".repeat(70_000)), // a 64-bit length
  );
  const expected = `hello\n${"é".repeat(100)}\nfragmented\n\n${"x".repeat(70_000)}\n`;
  for (const chunks of [[stream], bytewise(stream)]) {
    for (const outputBytes of [1, 7, 512, 100_000]) {
      const { text, controls, error } = decodeAll(chunks, outputBytes);
      assert.equal(error, undefined);
      assert.equal(text, expected, `${chunks.length} chunk(s), output of ${outputBytes}`);
      assert.deepEqual(controls, [{ opcode: OPCODE.ping, payload: "are you there" }]);
    }
  }
});

Deno.test("FrameDecoder passes a long fragmented message on as it arrives, holding none of it", () => {
  const frames = new FrameDecoder();
  const output = new Uint8Array(4096);
  const piece = new Uint8Array(1024 * 1024).fill(0x61); // sent as it is under a zero mask
  let written = 0;
  const first = frames.decode(zeroMaskHeader(OPCODE.text, piece.length, false), output);
  assert.deepEqual([first.written, first.error], [0, undefined]);
  // 64 MiB in fragments of 1 MiB: every byte of each comes out before the next fragment is read.
  for (let i = 0; i < 64; i++) {
    if (i > 0) frames.decode(zeroMaskHeader(OPCODE.continuation, piece.length, false), output);
    for (let at = 0; at < piece.length;) {
      const result = frames.decode(piece.subarray(at), output);
      assert.equal(result.error, undefined);
      assert.ok(output.subarray(0, result.written).every((byte) => byte === 0x61));
      at += result.read;
      written += result.written;
    }
    assert.equal(written, (i + 1) * piece.length, "nothing of the fragment held back");
  }
  const end = concat(zeroMaskHeader(OPCODE.continuation, 1, true), new Uint8Array([0x62]));
  const last = frames.decode(end, output);
  assert.equal(decoder.decode(output.subarray(0, last.written)), "b\n");
});

Deno.test("FrameDecoder stops at what the chat refuses or the RFC forbids, with the close code", () => {
  const cases: [string, Uint8Array, number, RegExp][] = [
    ["binary", clientFrame(OPCODE.binary, "hi"), CLOSE_CODE.unsupportedData, /^Binary frames/],
    ["LF", clientFrame(OPCODE.text, "one\ntwo"), CLOSE_CODE.policyViolation, /one line/],
    ["CR", clientFrame(OPCODE.text, "one\rtwo"), CLOSE_CODE.policyViolation, /one line/],
    ["unmasked", new Uint8Array([0x81, 0x02, 0x68, 0x69]), CLOSE_CODE.protocolError, /masked/],
    [
      "reserved bits",
      new Uint8Array([0xc1, 0x80, 0, 0, 0, 0]),
      CLOSE_CODE.protocolError,
      /reserved/,
    ],
    [
      "continuation first",
      clientFrame(OPCODE.continuation, "x"),
      CLOSE_CODE.protocolError,
      /continuation/,
    ],
    [
      "text inside a message",
      concat(clientFrame(OPCODE.text, "a", { isFinal: false }), clientFrame(OPCODE.text, "b")),
      CLOSE_CODE.protocolError,
      /before the last message ended/,
    ],
    [
      "long ping",
      clientFrame(OPCODE.ping, "p".repeat(126)),
      CLOSE_CODE.protocolError,
      /control frame/,
    ],
    [
      "fragmented ping",
      clientFrame(OPCODE.ping, "p", { isFinal: false }),
      CLOSE_CODE.protocolError,
      /control frame/,
    ],
    ["unknown opcode", clientFrame(3, "x"), CLOSE_CODE.protocolError, /Unknown opcode 3/],
  ];
  for (const [what, bytes, code, message] of cases) {
    const before = clientFrame(OPCODE.text, "before");
    const { text, error } = decodeAll([concat(before, bytes, clientFrame(OPCODE.text, "after"))]);
    assert.equal(error?.code, code, what);
    assert.match(error!.message, message, what);
    assert.ok(text.startsWith("before\n") && !text.includes("after"), `${what}: ${text}`);
    assert.ok(!text.includes("two"), what);
  }
});

Deno.test("encodeLines sends each line as a text frame, and encodeClose a close frame", () => {
  const lines = `one\n\n${"é".repeat(100)}\n${"x".repeat(70_000)}\n`;
  const frames = encodeLines(encoder.encode(lines));
  // The server's frames are unmasked: masked again here, they decode as the client's would.
  const texts: string[] = [];
  for (let at = 0; at < frames.length;) {
    assert.equal(frames[at]! & 0xff, 0x81);
    const length7 = frames[at + 1]!;
    const view = new DataView(frames.buffer, frames.byteOffset + at);
    const [length, header] = length7 === 126
      ? [view.getUint16(2), 4]
      : length7 === 127
      ? [view.getUint32(6), 10]
      : [length7, 2];
    texts.push(decoder.decode(frames.subarray(at + header, at + header + length)));
    at += header + length;
  }
  assert.deepEqual(texts, ["one", "", "é".repeat(100), "x".repeat(70_000)]);
  assert.deepEqual([...encodeClose(1003)], [0x88, 2, 0x03, 0xeb]);
});

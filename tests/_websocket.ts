/** Test helpers for the page's socket: client frames written by hand, as RFC 6455 has them. */

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

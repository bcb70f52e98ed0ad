/**
 * The PROXY protocol, versions 1 and 2 (HAProxy's spec, haproxy.org/download/2.6/doc/proxy-protocol.txt):
 * the header a proxy sends first on a TCP connection to say which client it carries. Pure: reads
 * bytes, does no I/O.
 */
import { ProtocolError } from "../protocol.ts";
import { formatAddress, parseAddress } from "./cidr.ts";

/** Version 1 starts with this text. */
const V1_PREFIX = new TextEncoder().encode("PROXY ");
/** Version 2 starts with these 12 bytes, which no text protocol's first line can hold. */
const V2_SIGNATURE = Uint8Array.of(
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
);
/** The longest version 1 header, its CRLF included (the spec's worst case, TCP6 with both ports). */
export const MAX_V1_BYTES = 107;
/**
 * The longest version 2 header taken: the 16 fixed bytes, the addresses (216 bytes at most, for
 * UNIX sockets) and the TLVs a proxy may add (an id, TLS details), with room to spare. A header
 * that says it is longer is refused before it is read: it bounds what a connection makes us keep.
 */
export const MAX_V2_BYTES = 4096;

/** The client a PROXY header names: its address and port. */
export interface ProxySource {
  hostname: string;
  port: number;
}

/**
 * What the first bytes of a connection are: not a PROXY header at all, the start of one (read
 * more), or a whole one of `length` bytes. Its `source` is the client it carries, or `undefined`
 * where the proxy speaks for itself (v2 `LOCAL`, a health check) or names no IP client
 * (`UNKNOWN`, `UNSPEC`, a UNIX socket): the connection is then the proxy's own.
 */
export type ProxyHeader =
  | { kind: "none" }
  | { kind: "partial" }
  | { kind: "header"; length: number; source: ProxySource | undefined };

/**
 * Reads a PROXY header from the start of `bytes`. Throws a `ProtocolError` for one that is
 * malformed or over its size limit.
 */
export function parseProxyHeader(bytes: Uint8Array): ProxyHeader {
  if (bytes.length === 0) return { kind: "partial" };
  if (startsLike(bytes, V1_PREFIX)) {
    return bytes.length < V1_PREFIX.length ? { kind: "partial" } : parseV1(bytes);
  }
  if (startsLike(bytes, V2_SIGNATURE)) {
    return bytes.length < 16 ? { kind: "partial" } : parseV2(bytes);
  }
  return { kind: "none" };
}

/** Whether `bytes` and `prefix` agree as far as both go. */
function startsLike(bytes: Uint8Array, prefix: Uint8Array): boolean {
  const length = Math.min(bytes.length, prefix.length);
  for (let i = 0; i < length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}

/** `PROXY TCP4|TCP6 SOURCE DESTINATION SPORT DPORT\r\n`, or `PROXY UNKNOWN ...\r\n`. */
function parseV1(bytes: Uint8Array): ProxyHeader {
  const scanned = bytes.subarray(0, MAX_V1_BYTES);
  const end = scanned.findIndex((byte, i) => byte === 0x0a && scanned[i - 1] === 0x0d);
  if (end === -1) {
    if (bytes.length < MAX_V1_BYTES && !scanned.includes(0x0a)) return { kind: "partial" };
    throw new ProtocolError(`Invalid PROXY header: no CRLF within ${MAX_V1_BYTES} bytes`);
  }
  const text = new TextDecoder().decode(bytes.subarray(0, end - 1));
  const [, protocol, source, destination, sourcePort, ...rest] = text.split(" ");
  if (protocol === "UNKNOWN") return { kind: "header", length: end + 1, source: undefined };
  const isFamily = (address: string | undefined) =>
    address !== undefined && parseAddress(address) !== undefined &&
    (protocol === "TCP4" ? !address.includes(":") : address.includes(":"));
  const isPort = (port: string | undefined) =>
    /^(0|[1-9]\d{0,4})$/.test(port ?? "") && Number(port) <= 65535;
  const isValid = (protocol === "TCP4" || protocol === "TCP6") && isFamily(source) &&
    isFamily(destination) && isPort(sourcePort) && isPort(rest[0]) && rest.length === 1;
  if (!isValid) throw new ProtocolError(`Invalid PROXY header ${JSON.stringify(text)}`);
  return {
    kind: "header",
    length: end + 1,
    source: { hostname: source!, port: Number(sourcePort) },
  };
}

/**
 * 12 bytes of signature, version and command, family and transport, the length of what follows
 * (addresses, then TLVs, which are skipped), big-endian.
 */
function parseV2(bytes: Uint8Array): ProxyHeader {
  const [versionCommand = 0, family = 0, high = 0, low = 0] = bytes.subarray(12, 16);
  if (versionCommand >> 4 !== 2) {
    throw new ProtocolError(`Invalid PROXY header: version ${versionCommand >> 4}, not 2`);
  }
  const command = versionCommand & 0x0f;
  if (command > 1) throw new ProtocolError(`Invalid PROXY header: command ${command}`);
  const length = 16 + ((high << 8) | low);
  if (length > MAX_V2_BYTES) {
    throw new ProtocolError(`Invalid PROXY header: ${length} bytes, over ${MAX_V2_BYTES}`);
  }
  if (bytes.length < length) return { kind: "partial" };
  const body = bytes.subarray(16, length);
  const isLocal = command === 0; // the proxy's own connection: a health check
  // The addresses: IPv4 source, destination (4 bytes each), ports; IPv6 alike with 16 bytes.
  const size = family >> 4 === 1 ? 4 : family >> 4 === 2 ? 16 : undefined;
  if (!isLocal && family >> 4 > 3) {
    throw new ProtocolError(`Invalid PROXY header: address family ${family >> 4}`);
  }
  // A datagram's source is no TCP client (the PROXY header of a UDP proxy).
  if (!isLocal && size !== undefined && (family & 0x0f) !== 1) {
    throw new ProtocolError(`Invalid PROXY header: transport ${family & 0x0f}, not a stream`);
  }
  // UNSPEC or a UNIX socket names no client we could count.
  if (isLocal || size === undefined) return { kind: "header", length, source: undefined };
  if (body.length < 2 * size + 4) {
    throw new ProtocolError(`Invalid PROXY header: ${body.length} bytes of addresses`);
  }
  const port = (body[2 * size]! << 8) | body[2 * size + 1]!;
  return {
    kind: "header",
    length,
    source: { hostname: formatAddress(body.subarray(0, size)), port },
  };
}

/** Tests of the PROXY protocol's parser: versions 1 and 2, malformed, cut short and oversized. */
import assert from "node:assert/strict";
import {
  MAX_V1_BYTES,
  MAX_V2_BYTES,
  parseProxyHeader,
  type ProxyHeader,
} from "../server/proxy_protocol.ts";
import { ProtocolError } from "../protocol.ts";

const encoder = new TextEncoder();
const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A version 2 header: command (0 LOCAL, 1 PROXY), family byte, then `body` (addresses, TLVs). */
function v2(command: number, family: number, body: number[]): Uint8Array {
  return Uint8Array.of(
    ...SIGNATURE,
    0x20 | command,
    family,
    body.length >> 8,
    body.length & 0xff,
    ...body,
  );
}

/** `bytes` followed by what the client sent next, which the header must not take. */
function withData(bytes: Uint8Array, data = "alice\n"): Uint8Array {
  return Uint8Array.of(...bytes, ...encoder.encode(data));
}

Deno.test("parseProxyHeader reads version 1 for TCP4, TCP6 and UNKNOWN, and only the header's bytes", () => {
  const tcp4 = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 1234\r\n";
  assert.deepEqual(parseProxyHeader(withData(encoder.encode(tcp4))), {
    kind: "header",
    length: tcp4.length,
    source: { hostname: "192.0.2.7", port: 56324 },
  });
  const tcp6 = "PROXY TCP6 2001:db8::17 2001:db8::1 4711 1234\r\n";
  assert.deepEqual(parseProxyHeader(encoder.encode(tcp6)), {
    kind: "header",
    length: tcp6.length,
    source: { hostname: "2001:db8::17", port: 4711 },
  });
  for (const unknown of ["PROXY UNKNOWN\r\n", "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"]) {
    assert.deepEqual(parseProxyHeader(withData(encoder.encode(unknown))), {
      kind: "header",
      length: unknown.length,
      source: undefined, // the connection is the proxy's own
    });
  }
  // The worst case the spec allows, 107 bytes, is taken.
  const longest =
    "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  assert.equal(longest.length, MAX_V1_BYTES);
  assert.equal((parseProxyHeader(encoder.encode(longest)) as { length: number }).length, 107);
});

Deno.test("parseProxyHeader reads version 2 for IPv4 and IPv6, skips its TLVs, and takes LOCAL and UNSPEC as the proxy's own", () => {
  const ipv4 = v2(1, 0x11, [192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x04, 0xd2]);
  assert.deepEqual(parseProxyHeader(withData(ipv4)), {
    kind: "header",
    length: 28,
    source: { hostname: "192.0.2.7", port: 56324 },
  });
  const source6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x17];
  const ipv6 = v2(1, 0x21, [...source6, ...Array(16).fill(0), 0x12, 0x67, 0x04, 0xd2]);
  assert.deepEqual(parseProxyHeader(ipv6), {
    kind: "header",
    length: 52,
    source: { hostname: "2001:db8::17", port: 4711 },
  });
  // TLVs after the addresses (a unique id, type 0x05, here) belong to the header, and are skipped.
  const tlv = [0x05, 0x00, 0x03, 0x61, 0x62, 0x63];
  const withTlv = v2(1, 0x11, [192, 0, 2, 7, 198, 51, 100, 1, 0, 80, 0, 81, ...tlv]);
  assert.deepEqual(parseProxyHeader(withData(withTlv)), {
    kind: "header",
    length: 34,
    source: { hostname: "192.0.2.7", port: 80 },
  });
  // LOCAL (a health check of the proxy's), UNSPEC and UNIX sockets: no client to count.
  for (
    const header of [
      v2(0, 0x00, []),
      v2(0, 0x11, Array(12).fill(1)),
      v2(1, 0x00, []),
      v2(1, 0x31, Array(216).fill(0)),
    ]
  ) {
    assert.deepEqual(parseProxyHeader(header), {
      kind: "header",
      length: header.length,
      source: undefined,
    });
  }
});

Deno.test("parseProxyHeader asks for more bytes while a header may still come, at every cut", () => {
  const v1 = encoder.encode("PROXY TCP4 192.0.2.7 198.51.100.1 56324 1234\r\n");
  const ipv4 = v2(1, 0x11, [192, 0, 2, 7, 198, 51, 100, 1, 0xdc, 0x04, 0x04, 0xd2]);
  for (const header of [v1, ipv4]) {
    for (let cut = 0; cut < header.length; cut++) {
      assert.deepEqual(parseProxyHeader(header.subarray(0, cut)), { kind: "partial" }, `${cut}`);
    }
    assert.equal(parseProxyHeader(header).kind, "header");
  }
});

Deno.test("parseProxyHeader says none for a connection that starts otherwise: a name, TLS, HTTP", () => {
  const none: ProxyHeader = { kind: "none" };
  for (const start of ["alice\n", "P", "PROXY", "PROX\n", "GET / HTTP/1.1\r\n", "\r\n\r\nx"]) {
    const bytes = encoder.encode(start);
    const expected: ProxyHeader = "PROXY".startsWith(start) ? { kind: "partial" } : none;
    assert.deepEqual(parseProxyHeader(bytes), expected, JSON.stringify(start));
  }
  const clientHello = Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0xc8, 0x01);
  assert.deepEqual(parseProxyHeader(clientHello), none);
});

Deno.test("parseProxyHeader refuses a malformed or oversized header in one line", () => {
  const refuses = (bytes: Uint8Array, message: RegExp) =>
    assert.throws(() => parseProxyHeader(bytes), (error) => {
      assert.ok(error instanceof ProtocolError);
      assert.match(error.message, message);
      return true;
    });
  for (
    const text of [
      "PROXY TCP4 192.0.2.7 198.51.100.1 56324\r\n", // a port missing
      "PROXY TCP4 192.0.2.7 198.51.100.1 56324 1234 5\r\n",
      "PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n", // the wrong family
      "PROXY TCP6 192.0.2.7 2001:db8::1 1 2\r\n",
      "PROXY TCP4 192.0.2.256 198.51.100.1 1 2\r\n",
      "PROXY TCP4 192.0.2.7 198.51.100.1 65536 2\r\n",
      "PROXY TCP4 192.0.2.7 198.51.100.1 01 2\r\n",
      "PROXY UDP4 192.0.2.7 198.51.100.1 1 2\r\n",
      "PROXY TCP4  192.0.2.7 198.51.100.1 1 2\r\n",
      "PROXY TCP4 192.0.2.7 198.51.100.1 1 2\n", // LF without CR
    ]
  ) {
    refuses(encoder.encode(text), /^Invalid PROXY header/);
  }
  // No CRLF within the 107 bytes a header may have: refused, not read on without end.
  refuses(encoder.encode(`PROXY TCP4 ${"1".repeat(200)}`), /no CRLF within 107 bytes/);
  refuses(encoder.encode(`PROXY ${"x".repeat(101)}`), /no CRLF within 107 bytes/);
  refuses(Uint8Array.of(...SIGNATURE, 0x11, 0x11, 0, 12), /version 1, not 2/);
  refuses(Uint8Array.of(...SIGNATURE, 0x22, 0x11, 0, 12), /command 2/);
  refuses(v2(1, 0x41, []), /address family 4/);
  refuses(v2(1, 0x12, [192, 0, 2, 7, 198, 51, 100, 1, 0, 80, 4, 210]), /transport 2, not a stream/);
  refuses(v2(1, 0x11, [192, 0, 2, 7, 198, 51, 100, 1, 0, 80]), /10 bytes of addresses/);
  refuses(v2(1, 0x21, Array(35).fill(0)), /35 bytes of addresses/);
  // A header that says it is longer than the limit is refused at its 16th byte, before its body.
  const length = MAX_V2_BYTES - 16 + 1;
  refuses(
    Uint8Array.of(...SIGNATURE, 0x21, 0x11, length >> 8, length & 0xff),
    new RegExp(`${MAX_V2_BYTES + 1} bytes, over ${MAX_V2_BYTES}`),
  );
  const largest = v2(1, 0x11, [
    192,
    0,
    2,
    7,
    198,
    51,
    100,
    1,
    0,
    80,
    0,
    81,
    ...Array(MAX_V2_BYTES - 28).fill(0),
  ]);
  assert.equal(parseProxyHeader(largest).kind, "header");
});

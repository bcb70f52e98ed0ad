/** Tests of the client a proxy forwards: Forwarded (RFC 7239) and X-Forwarded-For, read with no I/O. */
import assert from "node:assert/strict";
import { forwardedChain, forwardedClient } from "../server/forwarded.ts";
import { AddressSet } from "../server/cidr.ts";
import { TrustedProxies } from "../server/trusted_proxies.ts";

const TRUSTED = new AddressSet(["10.0.0.0/8", "2001:db8:ffff::/48"]);

function headers(entries: Record<string, string>): Headers {
  return new Headers(entries);
}

Deno.test("forwardedChain reads Forwarded's for= (quoted, with ports, IPv6 in brackets), else X-Forwarded-For", () => {
  assert.deepEqual(
    forwardedChain(headers({
      forwarded:
        'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711", for="198.51.100.9:56324";host="a;b,c"',
    })),
    [
      { hostname: "192.0.2.60", port: 0 },
      { hostname: "2001:db8:cafe::17", port: 4711 },
      { hostname: "198.51.100.9", port: 56324 },
    ],
  );
  assert.deepEqual(
    forwardedChain(
      headers({ forwarded: 'for=unknown, for=_hidden, proto=https, for="[::1]:_port"' }),
    ),
    [undefined, undefined, undefined, { hostname: "::1", port: 0 }],
  );
  assert.deepEqual(
    forwardedChain(headers({ "x-forwarded-for": "203.0.113.7, 2001:db8::1 ,10.0.0.2" })),
    [
      { hostname: "203.0.113.7", port: 0 },
      { hostname: "2001:db8::1", port: 0 },
      { hostname: "10.0.0.2", port: 0 },
    ],
  );
  // Forwarded wins over X-Forwarded-For: a proxy that writes it is the one to believe.
  assert.deepEqual(
    forwardedChain(headers({ forwarded: "for=192.0.2.1", "x-forwarded-for": "192.0.2.2" })),
    [{ hostname: "192.0.2.1", port: 0 }],
  );
  assert.equal(forwardedChain(headers({})), undefined);
  assert.deepEqual(
    forwardedChain(headers({ "x-forwarded-for": "evil, 1.2.3.4.5, [::1], fe80::1%eth0" })),
    [undefined, undefined, { hostname: "::1", port: 0 }, undefined],
  );
});

Deno.test("forwardedClient takes the right-most address that is not a trusted proxy, never one a client could write", () => {
  const client = (entries: Record<string, string>) => forwardedClient(headers(entries), TRUSTED);
  // The client wrote 198.51.100.1 itself; our proxy 10.0.0.2 appended what it saw, 203.0.113.7.
  assert.deepEqual(client({ "x-forwarded-for": "198.51.100.1, 203.0.113.7, 10.0.0.2" }), {
    hostname: "203.0.113.7",
    port: 0,
  });
  assert.deepEqual(
    client({ forwarded: 'for=198.51.100.1, for="203.0.113.7:5000", for="[2001:db8:ffff::2]"' }),
    { hostname: "203.0.113.7", port: 5000 },
  );
  // Every hop trusted: the client is a proxy host itself, the left-most.
  assert.deepEqual(client({ "x-forwarded-for": "10.0.0.3, 10.0.0.2" }), {
    hostname: "10.0.0.3",
    port: 0,
  });
  // A hop we cannot read between us and the client: no client can be told.
  assert.equal(client({ "x-forwarded-for": "203.0.113.7, unknown, 10.0.0.2" }), undefined);
  assert.equal(client({ forwarded: "proto=https" }), undefined);
  assert.equal(client({}), undefined);
});

Deno.test("TrustedProxies believes a trusted proxy's headers only, and says once per proxy that one sent none", () => {
  const log: string[] = [];
  const proxies = new TrustedProxies(["127.0.0.1"], (line) => log.push(line));
  const proxy: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 40000 };
  const stranger: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.2", port: 40001 };
  const forged = headers({ "x-forwarded-for": "203.0.113.7", forwarded: "for=203.0.113.8" });
  assert.deepEqual(proxies.clientOf(stranger, forged), stranger, "a client's word is nothing");
  assert.deepEqual(proxies.clientOf(proxy, forged), {
    transport: "tcp",
    hostname: "203.0.113.8",
    port: 0,
  });
  assert.deepEqual(log, []);
  for (let i = 0; i < 3; i++) assert.deepEqual(proxies.clientOf(proxy, headers({})), proxy);
  assert.deepEqual(log, [
    "trusted proxy 127.0.0.1:40000 sent a request that names no client in Forwarded or X-Forwarded-For: its connections count as its own address's (said once for this proxy)",
  ]);
  assert.ok(proxies.has("::ffff:127.0.0.1") && !proxies.has("127.0.0.2"));
  assert.ok(!new TrustedProxies().has("127.0.0.1"), "none by default");
});

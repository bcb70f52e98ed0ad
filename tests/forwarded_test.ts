/** Tests of the client a proxy forwards in X-Forwarded-For (Forwarded is not read), with no I/O. */
import assert from "node:assert/strict";
import { forwardedChain, forwardedClient } from "../server/forwarded.ts";
import { AddressSet } from "../server/cidr.ts";
import { TrustedProxies } from "../server/trusted_proxies.ts";

const TRUSTED = new AddressSet(["10.0.0.0/8", "2001:db8:ffff::/48"]);

function headers(entries: Record<string, string>): Headers {
  return new Headers(entries);
}

Deno.test("forwardedChain reads X-Forwarded-For (ports, IPv6 bare or in brackets), never Forwarded", () => {
  assert.deepEqual(
    forwardedChain(headers({ "x-forwarded-for": "198.51.100.9:56324, [2001:db8:cafe::17]:4711" })),
    [{ hostname: "198.51.100.9", port: 56324 }, { hostname: "2001:db8:cafe::17", port: 4711 }],
  );
  assert.deepEqual(
    forwardedChain(headers({ "x-forwarded-for": "203.0.113.7, 2001:db8::1 ,10.0.0.2" })),
    [
      { hostname: "203.0.113.7", port: 0 },
      { hostname: "2001:db8::1", port: 0 },
      { hostname: "10.0.0.2", port: 0 },
    ],
  );
  // Proxies that append X-Forwarded-For pass a client's own Forwarded through: it is not read.
  assert.deepEqual(
    forwardedChain(headers({ forwarded: "for=127.0.0.1", "x-forwarded-for": "192.0.2.2" })),
    [{ hostname: "192.0.2.2", port: 0 }],
  );
  assert.equal(forwardedChain(headers({ forwarded: "for=192.0.2.1" })), undefined);
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
    client({ "x-forwarded-for": "198.51.100.1, 203.0.113.7:5000, [2001:db8:ffff::2]" }),
    { hostname: "203.0.113.7", port: 5000 },
  );
  // Every hop trusted: the client is a proxy host itself, the left-most.
  assert.deepEqual(client({ "x-forwarded-for": "10.0.0.3, 10.0.0.2" }), {
    hostname: "10.0.0.3",
    port: 0,
  });
  // A hop we cannot read between us and the client: no client can be told.
  assert.equal(client({ "x-forwarded-for": "203.0.113.7, unknown, 10.0.0.2" }), undefined);
  assert.equal(client({ forwarded: "for=203.0.113.7" }), undefined);
  assert.equal(client({}), undefined);
});

Deno.test("TrustedProxies believes a trusted proxy's X-Forwarded-For only, names no client for one that has none, and says so once per proxy", () => {
  const log: string[] = [];
  const proxies = new TrustedProxies(["127.0.0.1"], (line) => log.push(line));
  const proxy: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 40000 };
  const stranger: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.2", port: 40001 };
  const forged = headers({ "x-forwarded-for": "203.0.113.7", forwarded: "for=203.0.113.8" });
  assert.deepEqual(proxies.clientOf(stranger, forged), stranger, "a client's word is nothing");
  assert.deepEqual(proxies.clientOf(proxy, forged), {
    transport: "tcp",
    hostname: "203.0.113.7",
    port: 0,
  });
  assert.deepEqual(log, []);
  const unnamed = headers({ forwarded: "for=127.0.0.1" });
  for (let i = 0; i < 3; i++) assert.equal(proxies.clientOf(proxy, unnamed), undefined);
  assert.deepEqual(log, [
    "trusted proxy 127.0.0.1:40000 sent a request that names no client in X-Forwarded-For: such requests are refused (said once for this proxy)",
  ]);
  assert.ok(proxies.has("::ffff:127.0.0.1") && !proxies.has("127.0.0.2"));
  assert.ok(!new TrustedProxies().has("127.0.0.1"), "none by default");
});

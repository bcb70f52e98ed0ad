/** Tests of address blocks: parsing IPv4 and IPv6 addresses and blocks, and matching them. */
import assert from "node:assert/strict";
import { AddressSet, LOOPBACK, parseAddress, parseBlock } from "../server/cidr.ts";

Deno.test("parseAddress reads IPv4 and IPv6, IPv4 as mapped into IPv6, and refuses anything else", () => {
  const mapped = Uint8Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7);
  assert.deepEqual(parseAddress("192.0.2.7"), mapped);
  assert.deepEqual(parseAddress("::ffff:192.0.2.7"), mapped);
  assert.deepEqual(parseAddress("::FFFF:c000:0207"), mapped);
  assert.deepEqual(parseAddress("::1"), Uint8Array.of(...Array(15).fill(0), 1));
  assert.deepEqual(parseAddress("::"), new Uint8Array(16));
  const full = Uint8Array.of(0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6);
  assert.deepEqual(parseAddress("2001:db8:1:2:3:4:5:6"), full);
  assert.deepEqual(parseAddress("2001:0db8:0001:0002:0003:0004:0005:0006"), full);
  assert.deepEqual(parseAddress("2001:db8:1:2:3:4:5:6%eth0"), full); // a zone is not the address
  assert.deepEqual(parseAddress("2001:db8::6"), parseAddress("2001:db8:0:0:0:0:0:6"));
  assert.deepEqual(parseAddress("1:2:3:4:5:6:7::"), parseAddress("1:2:3:4:5:6:7:0"));
  for (
    const text of [
      "",
      "localhost",
      "1.2.3",
      "1.2.3.4.5",
      "256.0.0.1",
      "01.2.3.4", // octal to some parsers: refused rather than guessed
      "1.2.3.-4",
      " 1.2.3.4",
      ":",
      ":::",
      "1::2::3",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7:8::", // "::" stands for one group at least
      "1:2:3:4:5:6:7",
      "12345::",
      "g::1",
      "::1.2.3",
      "[::1]",
    ]
  ) {
    assert.equal(parseAddress(text), undefined, text);
  }
});

Deno.test("parseBlock reads ADDRESS[/BITS] and says what is wrong with anything else", () => {
  assert.deepEqual(parseBlock("10.0.0.0/8"), { bytes: parseAddress("10.0.0.0"), bits: 104 });
  assert.deepEqual(parseBlock("::1"), { bytes: parseAddress("::1"), bits: 128 });
  assert.deepEqual(parseBlock("192.0.2.7"), { bytes: parseAddress("192.0.2.7"), bits: 128 });
  assert.deepEqual(parseBlock("fd00::/8"), { bytes: parseAddress("fd00::"), bits: 8 });
  for (const text of ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/8/8", "10.0.0.0/x", "ten"]) {
    assert.throws(() => parseBlock(text), {
      name: "TypeError",
      message: `Invalid address block ${
        JSON.stringify(text)
      }: use ADDRESS[/BITS], as 10.0.0.0/8 or fd00::/8`,
    });
  }
});

Deno.test("AddressSet has the addresses of its blocks, to the bit, IPv4 mapped into IPv6 too", () => {
  const loopback = new AddressSet(LOOPBACK);
  for (const inside of ["127.0.0.1", "127.255.255.254", "::ffff:127.0.0.2", "::1"]) {
    assert.ok(loopback.has(inside), inside);
  }
  for (const outside of ["128.0.0.1", "126.255.255.255", "::2", "::", "10.0.0.1", "x"]) {
    assert.ok(!loopback.has(outside), outside);
  }
  // A prefix that ends inside a byte: 172.16.0.0/12 is 172.16.0.0 to 172.31.255.255.
  const private12 = new AddressSet(["172.16.0.0/12"]);
  assert.deepEqual(
    ["172.15.255.255", "172.16.0.0", "172.31.255.255", "172.32.0.0"].map((a) => private12.has(a)),
    [false, true, true, false],
  );
  const v6 = new AddressSet(["2001:db8:80::/41"]);
  assert.deepEqual(
    ["2001:db8:7f::1", "2001:db8:80::1", "2001:db8:ff:ffff::1", "2001:db8:100::"].map((a) =>
      v6.has(a)
    ),
    [false, true, true, false],
  );
  // Bits past the prefix do not count, as in nginx and HAProxy.
  assert.ok(new AddressSet(["10.1.2.3/8"]).has("10.200.0.1"));
  assert.ok(new AddressSet(["0.0.0.0/0"]).has("203.0.113.9"));
  assert.ok(!new AddressSet(["0.0.0.0/0"]).has("2001:db8::1")); // every IPv4 address, no IPv6 one
  assert.ok(new AddressSet(["::/0"]).has("2001:db8::1"));
  // An IPv6 block holds no IPv4 client, even one mapped into IPv6 (as nginx matches them).
  for (const block of ["::/0", "::/64", "::/80"]) {
    assert.ok(!new AddressSet([block]).has("203.0.113.9"), block);
    assert.ok(!new AddressSet([block]).has("::ffff:203.0.113.9"), block);
  }
  assert.ok(new AddressSet(["::ffff:0:0/96"]).has("203.0.113.9")); // all of IPv4, said so
  assert.ok(!new AddressSet().has("127.0.0.1"));
  assert.ok(new AddressSet().isEmpty);
  assert.throws(() => new AddressSet(["10.0.0.0/8", "nonsense"]), TypeError);
});

/**
 * Tests of proxies in the server itself, over real sockets: PROXY headers on the chat's port
 * (`proxyProtocol`, plain and TLS), X-Forwarded-For on the page's (`trustProxy`), from those
 * addresses and from others. `deploy_test.ts` puts real nginx and HAProxy in front.
 */
import assert from "node:assert/strict";
import {
  Certificate,
  closeQuietly,
  DEADLINE_MS,
  startTestServer,
  TestClient,
  waitUntil,
  withDeadline,
} from "./_helpers.ts";
import { clientFrame, ServerFrames, Site, upgradeRequest, writeAll } from "./_websocket.ts";
import { OPCODE } from "../server/websocket.ts";

const encoder = new TextEncoder();
const SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A PROXY v2 header for a TCP client at `bytes` (4 for IPv4, 16 for IPv6) and `port`. */
function proxyV2(bytes: number[], port: number): Uint8Array {
  const family = bytes.length === 4 ? 0x11 : 0x21;
  const body = [...bytes, ...Array(bytes.length).fill(0), port >> 8, port & 0xff, 0x04, 0xd2];
  return Uint8Array.of(...SIGNATURE, 0x21, family, 0, body.length, ...body);
}

const V1_ALICE = "PROXY TCP4 192.0.2.7 198.51.100.1 56324 1234\r\n";
const IPV6 = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x17];

/** Reads a client's lines until its welcome: it has joined. */
async function joined(client: TestClient): Promise<void> {
  await client.expect(/^\* Welcome to chat/);
  await client.expect(/^\* The room contains/);
  while (!(await client.readLine()).startsWith("* Welcome, "));
}

Deno.test("server takes a --proxy-protocol proxy's PROXY header, v1 or v2, for its client: limits and log see the client, not the proxy", async () => {
  const log: string[] = [];
  await using server = startTestServer({
    proxyProtocol: ["127.0.0.1"],
    exempt: [],
    maxPerAddress: 1,
    log: (line) => log.push(line),
  });
  const port = server.addr.port;
  // The header and the name in one write: what follows the header is the chat's.
  await using alice = await TestClient.connect(port);
  await alice.write(`${V1_ALICE}alice\n`);
  await joined(alice);
  // The same client again, its header in two pieces: over its address's limit of 1.
  await using again = await TestClient.connect(port);
  const header = proxyV2([192, 0, 2, 7], 40000);
  await again.write(header.subarray(0, 10));
  await again.write(header.subarray(10));
  assert.deepEqual(await again.readToEnd(), [
    "* error: Too many connections from 192.0.2.7: at most 1",
  ]);
  // Another client through the same proxy, over IPv6: the proxy's own address holds nothing.
  await using bob = await TestClient.connect(port);
  await bob.write(proxyV2(IPV6, 4711));
  await bob.send("bob");
  await joined(bob);
  await alice.expect("* bob has entered the room");
  assert.ok(log.includes("alice (192.0.2.7:56324) joined"), log.join("\n"));
  assert.ok(log.includes("bob ([2001:db8::17]:4711) joined"), log.join("\n"));
});

Deno.test("server hears a PROXY header from an address not under --proxy-protocol as a bad name, v1 or v2", async () => {
  const log: string[] = [];
  // 127.0.0.2 sends PROXY headers; the clients here come from 127.0.0.1, which does not.
  await using server = startTestServer({
    proxyProtocol: ["127.0.0.2"],
    log: (line) => log.push(line),
  });
  await using v1 = await TestClient.connect(server.addr.port);
  await v1.expect(/^\* Welcome to chat/);
  await v1.write(`${V1_ALICE}alice\n`);
  const [refusal, ...after] = await v1.readToEnd();
  assert.match(refusal!, /^\* error: Cannot accept name "PROXY TCP4 .*": a name has at most 32/);
  assert.deepEqual(after, []);
  await using v2 = await TestClient.connect(server.addr.port);
  await v2.expect(/^\* Welcome to chat/);
  await v2.write(proxyV2([192, 0, 2, 7], 40000));
  const [line, ...rest] = await v2.readToEnd();
  assert.match(line!, /^\* error: Cannot accept an empty name/);
  assert.deepEqual(rest, []);
  assert.ok(!log.some((line) => line.includes("192.0.2.7")), log.join("\n"));
  // Nobody is trusted by default.
  await using plain = startTestServer();
  await using v1Again = await TestClient.connect(plain.addr.port);
  await v1Again.expect(/^\* Welcome to chat/);
  await v1Again.write(V1_ALICE);
  assert.match((await v1Again.readToEnd())[0]!, /^\* error: Cannot accept name "PROXY TCP4/);
});

Deno.test("server greets a plain client from a --trust-proxy address at once: --trust-proxy is the page's alone", async () => {
  // The README's --trust-proxy 127.0.0.1 is for nginx in front of the page; the handshake timeout
  // is longer than the test's deadline, so waiting for a PROXY header would fail it.
  await using server = startTestServer({
    trustProxy: ["127.0.0.1"],
    handshakeTimeoutMs: 2 * DEADLINE_MS,
  });
  await using client = await TestClient.connect(server.addr.port);
  await client.expect(/^\* Welcome to chat/);
  await client.write(V1_ALICE); // and a PROXY header here is a bad name
  assert.match((await client.readToEnd())[0]!, /^\* error: Cannot accept name "PROXY TCP4/);
});

Deno.test("server requires the PROXY header from a --proxy-protocol address: a connection without one, or with a late or malformed one, is closed, counted", async () => {
  const log: string[] = [];
  await using server = startTestServer({
    proxyProtocol: ["127.0.0.1"],
    exempt: [],
    handshakeTimeoutMs: 300,
    log: (line) => log.push(line),
  });
  const port = server.addr.port;
  // A name first, with no header: refused, never served as the proxy's own.
  await using named = await TestClient.connect(port);
  await named.write("alice\n");
  assert.deepEqual(await named.readToEnd(), []);
  // Nothing at all by the deadline, or a header that is not one: closed without a word.
  await using silent = await TestClient.connect(port);
  assert.deepEqual(await silent.readToEnd(), []);
  await using malformed = await TestClient.connect(port);
  await malformed.write("PROXY TCP4 192.0.2.7\r\n");
  assert.deepEqual(await malformed.readToEnd(), []);
  const failed = () =>
    log.reduce(
      (sum, line) => sum + Number(/^(\d+) PROXY header\(s\) failed/.exec(line)?.[1] ?? 0),
      0,
    );
  await waitUntil(() => failed() === 3, () => `3 failed headers in the log: ${log.join("\n")}`);
  assert.ok(
    log.some((line) =>
      /PROXY header\(s\) failed \(last: 127\.0\.0\.1:\d+: (ProtocolError: no PROXY header|no PROXY header within 0\.3 s|ProtocolError: Invalid PROXY header "PROXY TCP4 192\.0\.2\.7")\)$/
        .test(line)
    ),
    log.join("\n"),
  );
  assert.ok(!log.some((line) => line.includes("joined")), log.join("\n"));
  // With a valid header, served under the address it names.
  await using bob = await TestClient.connect(port);
  await bob.write(`${V1_ALICE}bob\n`);
  await joined(bob);
  await waitUntil(() => log.includes("bob (192.0.2.7:56324) joined"), () => log.join("\n"));
});

Deno.test("server reads a trusted proxy's PROXY header before the TLS handshake", async () => {
  await using certificate = await Certificate.make();
  const log: string[] = [];
  await using server = startTestServer({
    tls: { cert: certificate.pem, key: await certificate.keyPem() },
    proxyProtocol: ["127.0.0.1"],
    log: (line) => log.push(line),
  });
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  await writeAll(tcp, encoder.encode(V1_ALICE));
  const tls = await Deno.startTls(tcp, { hostname: "127.0.0.1", caCerts: [certificate.pem] });
  await using alice = new TestClient(tls);
  await alice.expect(/^\* Welcome to chat/);
  await alice.send("alice");
  await alice.expect(/^\* The room contains/);
  await waitUntil(() => log.includes("alice (192.0.2.7:56324) joined"), () => log.join("\n"));
});

/** Opens the page's socket by hand with `headers` added to the request; the response's head. */
async function upgradeWith(
  port: number,
  headers: string[],
): Promise<{ conn: Deno.TcpConn; frames: ServerFrames; head: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const request = upgradeRequest(port).replace(/\r\n\r\n$/, `\r\n${headers.join("\r\n")}\r\n\r\n`);
  await writeAll(conn, encoder.encode(request));
  const frames = new ServerFrames(conn);
  return { conn, frames, head: await withDeadline(frames.readHead(), "the response") };
}

/** Sends `name` on an opened socket and reads up to its welcome. */
async function joinSocket(frames: ServerFrames, conn: Deno.Conn, name: string): Promise<void> {
  await writeAll(conn, clientFrame(OPCODE.text, name));
  await withDeadline(frames.readUntil(new RegExp(`^\\* Welcome, ${name}! `)), `${name}'s welcome`);
}

/** A whole HTTP exchange on a connection of its own: the response's text. */
async function get(port: number, headers: string[]): Promise<string> {
  using conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const request = [`GET / HTTP/1.1`, `Host: 127.0.0.1:${port}`, "Connection: close", ...headers];
  await writeAll(conn, encoder.encode(`${request.join("\r\n")}\r\n\r\n`));
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(64 * 1024);
  for (let count; (count = await withDeadline(conn.read(buffer), "the answer")) !== null;) {
    chunks.push(buffer.slice(0, count));
  }
  return new TextDecoder().decode(Uint8Array.from(chunks.flatMap((chunk) => [...chunk])));
}

Deno.test("web takes a trusted proxy's X-Forwarded-For for each request's client: limits and log see the client", async () => {
  const log: string[] = [];
  await using site = Site.start({
    trustProxy: ["127.0.0.1"],
    exempt: [],
    maxPerAddress: 1,
    log: (line) => log.push(line),
  });
  const port = site.web.addr.port;
  const sockets: Deno.Conn[] = [];
  try {
    // The client wrote 198.51.100.1 itself; the proxy (us, trusted) appended what it saw.
    const alice = await upgradeWith(port, ["X-Forwarded-For: 198.51.100.1, 192.0.2.7"]);
    sockets.push(alice.conn);
    assert.match(alice.head, /^HTTP\/1\.1 101 /);
    await joinSocket(alice.frames, alice.conn, "alice");
    // The same client again: over its limit of 1, told so by the chat.
    const again = await upgradeWith(port, ["X-Forwarded-For: 192.0.2.7:5000"]);
    sockets.push(again.conn);
    assert.equal(
      await withDeadline(again.frames.readLine(), "the refusal"),
      "* error: Too many connections from 192.0.2.7: at most 1",
    );
    const bob = await upgradeWith(port, ["X-Forwarded-For: [2001:db8::17]:4711"]);
    sockets.push(bob.conn);
    await joinSocket(bob.frames, bob.conn, "bob");
    // A page request counts under its client's address too.
    assert.match(
      await get(port, ["X-Forwarded-For: 192.0.2.7"]),
      /^HTTP\/1\.1 429 [^]*\r\n\r\nToo many connections from 192\.0\.2\.7: at most 1\n$/,
    );
    assert.match(await get(port, ["X-Forwarded-For: 192.0.2.9"]), /^HTTP\/1\.1 200 /);
    assert.ok(log.includes("alice (192.0.2.7) joined"), log.join("\n"));
    assert.ok(log.includes("bob ([2001:db8::17]:4711) joined"), log.join("\n"));
  } finally {
    for (const conn of sockets) closeQuietly(conn as Deno.TcpConn);
  }
});

Deno.test("web ignores a trusted proxy's Forwarded: X-Forwarded-For names the client, and a request that names none is refused, not exempt", async () => {
  const log: string[] = [];
  // Loopback is exempt by default; the proxy is on it.
  await using site = Site.start({
    trustProxy: ["127.0.0.1"],
    maxPerAddress: 1,
    log: (line) => log.push(line),
  });
  const port = site.web.addr.port;
  // The client wrote Forwarded itself, and the proxy passed it through, appending X-Forwarded-For.
  const forged = ["Forwarded: for=127.0.0.1", "X-Forwarded-For: 198.51.100.7"];
  const carol = await upgradeWith(port, forged);
  try {
    await joinSocket(carol.frames, carol.conn, "carol");
    assert.ok(log.includes("carol (198.51.100.7) joined"), log.join("\n"));
    assert.match(
      await get(port, forged),
      /^HTTP\/1\.1 429 [^]*Too many connections from 198\.51\.100\.7: at most 1\n$/,
    );
    // No client named: refused, page and socket alike, not served as the (exempt) proxy.
    const unnamed = "The proxy named no client in X-Forwarded-For";
    for (const headers of [[], ["Forwarded: for=127.0.0.1"]]) {
      assert.match(await get(port, headers), new RegExp(`^HTTP/1\\.1 400 [^]*${unnamed}\n$`));
      const socket = await upgradeWith(port, headers);
      closeQuietly(socket.conn);
      assert.match(socket.head, /^HTTP\/1\.1 400 /);
    }
  } finally {
    closeQuietly(carol.conn);
  }
  await waitUntil(() => site.web.connectionCount === 0, "the socket to close", DEADLINE_MS);
});

Deno.test("web ignores Forwarded and X-Forwarded-For from an address it does not trust", async () => {
  const log: string[] = [];
  await using site = Site.start({
    trustProxy: ["127.0.0.2"],
    exempt: [],
    maxPerAddress: 1,
    log: (line) => log.push(line),
  });
  const port = site.web.addr.port;
  const forged = ["X-Forwarded-For: 192.0.2.7", 'Forwarded: for="192.0.2.8:1"'];
  const carol = await upgradeWith(port, forged);
  try {
    await joinSocket(carol.frames, carol.conn, "carol");
    assert.ok(log.some((line) => /^carol \(127\.0\.0\.1:\d+\) joined$/.test(line)), log.join("\n"));
    // Another forged client is still 127.0.0.1, which carol's socket fills.
    assert.match(
      await get(port, ["X-Forwarded-For: 192.0.2.9"]),
      /^HTTP\/1\.1 429 [^]*Too many connections from 127\.0\.0\.1: at most 1\n$/,
    );
  } finally {
    closeQuietly(carol.conn);
  }
  await waitUntil(() => site.web.connectionCount === 0, "the socket to close", DEADLINE_MS);
});

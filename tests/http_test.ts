/**
 * The page's HTTP side under abuse: idle and slow connections, the connection limits, running out
 * of file descriptors, and a shutdown with an upgrade half done. Heads parsed by server/http.ts.
 */
import assert from "node:assert/strict";
import { connect } from "node:net";
import { HeadReader, HttpError, parseHead } from "../server/http.ts";
import {
  Child,
  CLOSE_DEADLINE_MS,
  closeQuietly,
  DEADLINE_MS,
  joinAs,
  run,
  serverArgs,
  TestClient,
  waitUntil,
  withDeadline,
} from "./_helpers.ts";
import { clientFrame, rawUpgrade, Site, upgradeRequest, writeAll } from "./_websocket.ts";
import { OPCODE } from "../server/websocket.ts";

const encoder = new TextEncoder();

/** Reads until the server closes the connection; returns what it sent. */
async function readToEnd(conn: Deno.Conn, ms = CLOSE_DEADLINE_MS): Promise<string> {
  const buffer = new Uint8Array(64 * 1024);
  let text = "";
  const reading = (async () => {
    try {
      for (let count; (count = await conn.read(buffer)) !== null;) {
        text += new TextDecoder().decode(buffer.subarray(0, count));
      }
    } catch (error) {
      if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
    }
  })();
  await withDeadline(reading, "the server to close the connection", ms);
  return text;
}

Deno.test("HeadReader reads heads one after another, within its limit, and parseHead checks them", async () => {
  const chunks = ["GET /a?x=1 HTTP/1.1\r\nHost: h\r\n", "\r\nHEAD / HTTP/1.0\n\nrest"];
  const conn = {
    read(buffer: Uint8Array) {
      const chunk = chunks.shift();
      if (chunk === undefined) return Promise.resolve(null);
      const bytes = encoder.encode(chunk);
      buffer.set(bytes);
      return Promise.resolve(bytes.length);
    },
  };
  const heads = new HeadReader(1024);
  const first = await heads.read(conn);
  assert.deepEqual([first?.method, first?.path, first?.headers.get("host")], ["GET", "/a", "h"]);
  const second = await heads.read(conn);
  assert.deepEqual([second?.method, second?.version], ["HEAD", "HTTP/1.0"]);
  assert.equal(new TextDecoder().decode(heads.rest()), "rest");
  const long = new HeadReader(64);
  const endless = { read: (buffer: Uint8Array) => Promise.resolve(buffer.fill(0x61).length) };
  await assert.rejects(
    long.read(endless),
    (error) => error instanceof HttpError && error.status === 431,
  );
  for (const bad of ["GET /", "GET / HTTP/2", "get / HTTP/1.1", "GET / HTTP/1.1\r\nno colon"]) {
    assert.throws(() => parseHead(bad), HttpError, bad);
  }
});

Deno.test("web closes a connection whose request head is late: idle, trickling, or after a response", async () => {
  await using chat = Site.start({ handshakeTimeoutMs: 500 });
  const port = chat.web.addr.port;
  using idle = await Deno.connect({ hostname: "127.0.0.1", port });
  using trickle = await Deno.connect({ hostname: "127.0.0.1", port });
  using kept = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(trickle, encoder.encode("GET / HTTP/1.1\r\n"));
  await writeAll(kept, encoder.encode(`GET /icon.svg HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`));
  const [idleText, trickleText, keptText] = await Promise.all([
    readToEnd(idle),
    (async () => {
      // One header line at a time, each well within the deadline, never the blank line.
      const ended = readToEnd(trickle);
      for (let i = 0; i < 20; i++) {
        try {
          await writeAll(trickle, encoder.encode(`X-Slow-${i}: 1\r\n`));
        } catch {
          break; // closed
        }
        await new Promise((resolve) => setTimeout(resolve, 100)); // pacing the slow client
      }
      return await ended;
    })(),
    readToEnd(kept),
  ]);
  assert.equal(idleText, "");
  assert.equal(trickleText, "");
  assert.match(keptText, /^HTTP\/1\.1 200 OK\r\n/); // then nothing more was asked: closed
  await waitUntil(() => chat.web.connectionCount === 0, "the page's connections to close");
});

Deno.test("web counts its connections against the chat's per-address and global limits", async () => {
  await using chat = Site.start({ maxPerAddress: 2, exempt: [] });
  const port = chat.web.addr.port;
  // One connection kept open after its request, and one member: the address's two places.
  using first = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(
    first,
    encoder.encode(`GET /icon.svg HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`),
  );
  await withDeadline(first.read(new Uint8Array(64 * 1024)), "the first answer");
  await using _member = await joinAs(chat.server.addr.port, "member");
  using refused = await Deno.connect({ hostname: "127.0.0.1", port });
  await writeAll(refused, encoder.encode(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`));
  const answer = await readToEnd(refused);
  assert.match(answer, /^HTTP\/1\.1 429 /);
  assert.match(answer, /\r\n\r\nToo many connections from 127\.0\.0\.1: at most 2\n$/);
  await using refusedMember = await TestClient.connect(chat.server.addr.port);
  assert.deepEqual(await refusedMember.readToEnd(), [
    "* error: Too many connections from 127.0.0.1: at most 2",
  ]);
  closeQuietly(first);
  await waitUntil(() => chat.web.connectionCount === 0, "the idle connection to close");
  const response = await fetch(chat.web.url);
  assert.equal(response.status, 200);
  await response.body?.cancel();

  await using full = Site.start({ maxConnections: 1, maxPerAddress: 0 });
  using only = await Deno.connect({ hostname: "127.0.0.1", port: full.web.addr.port });
  await waitUntil(() => full.web.connectionCount === 1, "the connection to be counted");
  await using over = await TestClient.connect(full.server.addr.port);
  assert.deepEqual(await over.readToEnd(), [
    "* error: Server is full: at most 1 connections; try again later",
  ]);
  closeQuietly(only);
});

/** The server's open file descriptors, from /proc. */
async function openFds(pid: number): Promise<number> {
  return (await run("ls", [`/proc/${pid}/fd`])).trim().split("\n").length;
}

/** The server under `ulimit -n 256`, with its page; its ports from its first lines. */
async function lowFdServer(): Promise<{ child: Child; port: number; webPort: number }> {
  const args = serverArgs(["--web", "127.0.0.1:0", "--max-per-address", "0"]);
  const quoted = [Deno.execPath(), ...args].map((arg) => `'${arg}'`).join(" ");
  const child = new Child("sh", ["-c", `ulimit -n 256; exec ${quoted}`]);
  try {
    const port = Number(/:(\d+)/.exec(await child.stdout.readUntil(/^listening on /))![1]);
    const webPort = Number(/:(\d+)\/$/.exec(await child.stdout.readUntil(/^web page on /))![1]);
    return { child, port, webPort };
  } catch (error) {
    await child[Symbol.asyncDispose]();
    throw error;
  }
}

Deno.test("web: a browser at the chat's port is told the page's port", async () => {
  const { child, port, webPort } = await lowFdServer();
  await using _ = child;
  await using browser = await TestClient.connect(port);
  await browser.readLine();
  await browser.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  assert.deepEqual(await browser.readToEnd(), [
    `* error: This port speaks chat lines, not HTTP: the web page is on port ${webPort}`,
  ]);
});

Deno.test("web survives running out of file descriptors, logs it once a second, and serves after", async () => {
  const { child, port, webPort } = await lowFdServer();
  await using _ = child;
  const pid = child.process.pid;
  const before = await openFds(pid);
  const flood: Deno.Conn[] = [];
  try {
    // Far more connections than the server has descriptors: idle HTTP ones and chat ones.
    for (let i = 0; i < 200; i++) {
      flood.push(await Deno.connect({ hostname: "127.0.0.1", port: webPort }));
      flood.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    // The page's listener is out of descriptors (the chat's is too, and says so the same way).
    await child.stdout.readUntil(new RegExp(`accept failed.* on 127\\.0\\.0\\.1:${webPort}: `));
    // A request while it is out of descriptors: answered once there are some again.
    const page = fetch(`http://127.0.0.1:${webPort}/`);
    for (const conn of flood.splice(0)) closeQuietly(conn);
    const response = await withDeadline(page, "the page after the flood");
    assert.equal(response.status, 200);
    await response.body?.cancel();
    await using member = await joinAs(port, "survivor");
    await member.send("/who");
    await member.expect(/survivor/);
  } finally {
    for (const conn of flood) closeQuietly(conn);
  }
  // Every flood connection closed: no descriptor is left behind (the fetch client's may linger).
  await waitUntil(async () => await openFds(pid) <= before + 2, "the descriptors to be freed");
  child.process.kill("SIGTERM");
  const { code, stdout } = await child.finish(CLOSE_DEADLINE_MS);
  assert.equal(code, 0);
  // The failures of one second come as one line.
  const failures = stdout.split("\n").filter((line) => line.includes("accept failed"));
  const seconds = new Set(failures.map((line) => line.slice(0, 19)));
  assert.ok(failures.length <= 2 * seconds.size + 2, failures.join("\n"));
});

Deno.test("SIGTERM ends the server promptly though upgrade requests were reset before their 101", async () => {
  const { child, webPort } = await lowFdServer();
  await using _ = child;
  for (let i = 0; i < 10; i++) {
    // A reset right after the request, before the answer is read (node:net can send one).
    const socket = connect({ host: "127.0.0.1", port: webPort });
    await withDeadline(new Promise((resolve) => socket.once("connect", resolve)), "connect");
    socket.write(upgradeRequest(webPort));
    socket.resetAndDestroy();
    await withDeadline(new Promise((resolve) => socket.once("close", resolve)), "the reset");
  }
  // And one that is upgraded and never speaks, and one that is idle.
  using silent = await Deno.connect({ hostname: "127.0.0.1", port: webPort });
  await writeAll(silent, encoder.encode(upgradeRequest(webPort)));
  using idle = await Deno.connect({ hostname: "127.0.0.1", port: webPort });
  await withDeadline(silent.read(new Uint8Array(1024)), "the 101");
  child.process.kill("SIGTERM");
  const { code } = await child.finish(DEADLINE_MS);
  assert.equal(code, 0);
  closeQuietly(idle);
});

Deno.test("web counts each WebSocket it opens against the join rate, and its join not again", async () => {
  await using chat = Site.start({ joinRate: 2, exempt: [] });
  const port = chat.web.addr.port;
  // Two sockets open (no name sent yet); a third from the address is refused before its 101.
  const first = await rawUpgrade(port);
  const second = await rawUpgrade(port);
  using third = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(third, encoder.encode(upgradeRequest(port)));
    const refused = await readToEnd(third, DEADLINE_MS);
    assert.match(refused, /^HTTP\/1\.1 429 /);
    assert.match(
      refused,
      /\r\n\r\nToo many joins from 127\.0\.0\.1: at most 2 a minute; try again in \d+ s\n$/,
    );
    // The sockets opened join on the tokens their opening took; a TCP join has none left.
    for (const [i, { conn, frames }] of [first, second].entries()) {
      await writeAll(conn, clientFrame(OPCODE.text, `web${i}`));
      await withDeadline(frames.readUntil(new RegExp(`^\\* Welcome, web${i}! `)), "the welcome");
    }
    await using late = await TestClient.connect(chat.port);
    await late.expect(/^\* Welcome to chat/);
    await late.send("late");
    await late.expect(/^\* error: Too many joins from 127\.0\.0\.1: at most 2 a minute/);
  } finally {
    first.conn.close();
    second.conn.close();
  }
});

Deno.test("web answers each broken or refused socket request with its status, then closes", async () => {
  // A head's deadline longer than the wait for each close: the server closes them itself.
  await using chat = Site.start({ handshakeTimeoutMs: 3 * CLOSE_DEADLINE_MS });
  await using slow = Site.start({ handshakeTimeoutMs: 500 });
  const port = chat.web.addr.port;
  const request = (lines: string[]) => [...lines, "", ""].join("\r\n");
  const upgrade = upgradeRequest(port).trimEnd().split("\r\n");
  const without = (name: string) => upgrade.filter((line) => !line.startsWith(`${name}:`));
  const cases: [string, string, RegExp][] = [
    ["no key", request(without("Sec-WebSocket-Key")), /^HTTP\/1\.1 400 /],
    [
      "a key of 15 bytes",
      request([...without("Sec-WebSocket-Key"), `Sec-WebSocket-Key: ${btoa("x".repeat(15))}`]),
      /^HTTP\/1\.1 400 /,
    ],
    [
      "version 8",
      request([...without("Sec-WebSocket-Version"), "Sec-WebSocket-Version: 8"]),
      /^HTTP\/1\.1 400 [^]*\r\nsec-websocket-version: 13\r\n/,
    ],
    ["another origin", request([...upgrade, "Origin: http://evil.example"]), /^HTTP\/1\.1 403 /],
    ["no upgrade", request(without("Upgrade")), /^HTTP\/1\.1 426 /],
    ["a POST", request(["POST /chat HTTP/1.1", ...upgrade.slice(1)]), /^HTTP\/1\.1 405 /],
    [
      "a head over 16 KiB",
      request([...upgrade, `X-Big: ${"b".repeat(17 * 1024)}`]),
      /^HTTP\/1\.1 431 /,
    ],
  ];
  for (const [what, text, expected] of cases) {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await writeAll(conn, encoder.encode(text));
    const answer = await readToEnd(conn);
    assert.match(answer, expected, what);
    assert.match(answer, /\r\nconnection: close\r\n/i, what);
  }
  // A head that never ends is closed at its deadline, unanswered.
  using late = await Deno.connect({ hostname: "127.0.0.1", port: slow.web.addr.port });
  await writeAll(late, encoder.encode(upgrade.slice(0, 3).join("\r\n")));
  assert.equal(await readToEnd(late), "");
  // Without an Origin (not a browser), the socket opens.
  const { conn } = await rawUpgrade(port);
  conn.close();
  await waitUntil(() => chat.web.connectionCount === 0, "the page's connections to close");
});

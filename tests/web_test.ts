/**
 * The web page's server: HTTP and its WebSocket driven from here (by hand over TCP, and by Deno's
 * own WebSocket client) beside raw TCP clients in the same room, and the command line and build
 * of the page. The page itself, in a real browser, is tests/page_test.ts.
 */
import assert from "node:assert/strict";
import {
  ANY_GREETING,
  closeQuietly,
  DEADLINE_MS,
  denoChild,
  joinAs,
  ROOT,
  run,
  serverChild,
  startServerProcess,
  TestClient,
  unusedPort,
  waitUntil,
  withDeadline,
} from "./_helpers.ts";
import { clientFrame, linesOf, Site, upgradeRequest } from "./_websocket.ts";
import { OPCODE } from "../server/websocket.ts";

// --- helpers ---

/** A WebSocket client of the chat, reading lines as a TestClient does. */
class SocketClient implements AsyncDisposable {
  readonly socket: WebSocket;
  readonly closed: Promise<CloseEvent>;
  #lines: string[] = [];
  #waiter: (() => void) | undefined;
  #isClosed = false;

  private constructor(socket: WebSocket) {
    this.socket = socket;
    this.closed = new Promise((resolve) =>
      socket.addEventListener("close", (event) => {
        this.#isClosed = true;
        this.#waiter?.();
        resolve(event);
      })
    );
    socket.addEventListener("message", (event) => {
      // A frame holds whole lines, each ended by LF.
      this.#lines.push(...linesOf(String(event.data)));
      this.#waiter?.();
    });
  }

  /** Opens a socket to `url` (with `Origin` set to `origin`, as a browser would). */
  static async open(url: string, origin = new URL(url).origin.replace(/^ws/, "http")) {
    const socket = new WebSocket(url, { headers: { origin } });
    const client = new SocketClient(socket);
    await withDeadline(
      new Promise((resolve, reject) => {
        socket.addEventListener("open", resolve);
        socket.addEventListener("error", () => reject(new Error(`Cannot open ${url}`)));
      }),
      "the WebSocket to open",
    );
    return client;
  }

  /** Joins as `name`: greeting, room list, limits, welcome. */
  static async join(url: string, name: string): Promise<SocketClient> {
    const client = await SocketClient.open(url);
    await client.expect(/^\* Welcome to chat/);
    client.send(name);
    await client.expect(/^\* The room contains:/);
    let line = await client.readLine();
    while (/^\* (The room also contains|history) /.test(line)) line = await client.readLine();
    assert.match(line, /^\* Limits: /);
    await client.expect(new RegExp(`^\\* Welcome, ${name}! `));
    return client;
  }

  send(frame: string | Uint8Array): void {
    this.socket.send(frame);
  }

  /** The next line; fails once the socket has closed or after the deadline. */
  async readLine(ms = DEADLINE_MS): Promise<string> {
    const deadline = Date.now() + ms;
    while (this.#lines.length === 0) {
      if (this.#isClosed) throw new Error("The socket closed while a line was expected");
      await withDeadline(
        new Promise<void>((resolve) => this.#waiter = resolve),
        "a line on the WebSocket",
        Math.max(1, deadline - Date.now()),
      );
    }
    return this.#lines.shift()!;
  }

  async expect(expected: string | RegExp, ms = DEADLINE_MS): Promise<string> {
    const line = await this.readLine(ms);
    const isMatch = typeof expected === "string" ? line === expected : expected.test(line);
    if (!isMatch) throw new Error(`Expected ${expected}, got ${JSON.stringify(line)}`);
    return line;
  }

  /** Every line until the socket closes, and how it closed. */
  async readToEnd(ms = DEADLINE_MS): Promise<{ lines: string[]; code: number }> {
    const event = await withDeadline(this.closed, "the WebSocket to close", ms);
    return { lines: this.#lines.splice(0), code: event.code };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.socket.readyState !== WebSocket.CLOSED) {
      this.socket.close();
      await withDeadline(this.closed, "the WebSocket to close");
    }
  }
}

/** The flags that work for Debian's Chromium here, headless, with a fresh profile. */
async function rawSocket(
  port: number,
  headers: { origin?: string; host?: string } = {},
): Promise<{ conn: Deno.TcpConn; status: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(upgradeRequest(port, headers)));
  const buffer = new Uint8Array(4096);
  const count = await withDeadline(conn.read(buffer), "the handshake's answer");
  const status = new TextDecoder().decode(buffer.subarray(0, count ?? 0)).split("\r\n")[0]!;
  return { conn, status };
}

// --- HTTP and the socket ---

Deno.test("web serves the page with strict headers on every response, 404 and 405 otherwise", async () => {
  await using site = Site.start();
  const expectHeaders = (response: Response) => {
    const csp = response.headers.get("content-security-policy") ?? "";
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(response.headers.get("x-content-type-options"), "nosniff");
    assert.equal(response.headers.get("x-frame-options"), "DENY");
    assert.equal(response.headers.get("referrer-policy"), "no-referrer");
  };
  const files = {
    "": "text/html",
    "page.js": "text/javascript",
    "style.css": "text/css",
    "icon.svg": "image/svg+xml",
  };
  for (const [path, type] of Object.entries(files)) {
    const response = await fetch(`${site.url}${path}`);
    const body = await response.text();
    assert.equal(response.status, 200, path);
    assert.ok(response.headers.get("content-type")?.startsWith(type), path);
    expectHeaders(response);
    if (path === "") {
      // No inline script or style and no event handler attributes: the CSP would refuse them.
      assert.doesNotMatch(body, /<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=/i);
      assert.doesNotMatch(body, /https?:\/\//, "the page loads nothing from elsewhere");
    }
    const etag = response.headers.get("etag")!;
    const again = await fetch(`${site.url}${path}`, { headers: { "if-none-match": etag } });
    await again.body?.cancel();
    assert.equal(again.status, 304);
  }
  const cases: [string, string, number][] = [
    ["GET", "nope", 404],
    ["GET", "page.ts", 404],
    ["GET", "../deno.json", 404],
    ["POST", "", 405],
    ["PUT", "style.css", 405],
    ["DELETE", "chat", 405],
    ["GET", "chat", 426],
  ];
  for (const [method, path, status] of cases) {
    const response = await fetch(`${site.url}${path}`, { method });
    const text = await response.text();
    assert.equal(response.status, status, `${method} /${path}`);
    assert.equal(text.split("\n").length, 2, "one line of explanation");
    expectHeaders(response);
  }
  const head = await fetch(site.url, { method: "HEAD" });
  assert.equal(head.status, 200);
  assert.equal(await head.text(), "");
});

Deno.test("web lets only the page's own origins open the socket, never one a Host header claims", async () => {
  await using site = Site.start({}, { origins: ["https://chat.example"] });
  const { port } = site.web.addr;
  const cases: [{ origin?: string; host?: string }, string][] = [
    [{ origin: `http://127.0.0.1:${port}` }, "101"], // the address the socket came in on
    [{ origin: `http://localhost:${port}`, host: `localhost:${port}` }, "101"], // loopback's name
    [{ origin: "https://chat.example" }, "101"], // --web-origin
    [{}, "101"], // not a browser: it could claim any origin
    [{ origin: "http://evil.example" }, "403"],
    [{ origin: `https://127.0.0.1:${port}` }, "403"], // another scheme is another origin
    [{ origin: "http://127.0.0.1:1" }, "403"],
    [{ origin: `http://127.0.0.2:${port}` }, "403"], // an address this socket did not come in on
    [{ origin: "null" }, "403"],
    // DNS rebinding: a page of evil.example whose name now points at this server sends a Host
    // and an Origin that agree. A name is only the page's own if --web-origin says so.
    [{ origin: `http://rebind.example:${port}`, host: `rebind.example:${port}` }, "403"],
    [{ origin: `http://chat.lan:${port}`, host: `chat.lan:${port}` }, "403"],
  ];
  for (const [headers, expected] of cases) {
    const { conn, status } = await rawSocket(port, headers);
    closeQuietly(conn);
    assert.match(status, new RegExp(`^HTTP/1.1 ${expected} `), JSON.stringify(headers));
  }
});

Deno.test("parseOrigin takes an origin as browsers send it and explains any other", async () => {
  const { parseOrigin } = await import("../server/web.ts");
  assert.equal(parseOrigin("https://chat.example"), "https://chat.example");
  assert.equal(parseOrigin("http://chat.example:8080/"), "http://chat.example:8080");
  for (const bad of ["chat.example", "https://chat.example/path", "*", "null", "file:///x"]) {
    assert.throws(() => parseOrigin(bad), TypeError, bad);
  }
});

Deno.test("a WebSocket member chats with TCP members: same lines, names, history and commands", async () => {
  await using site = Site.start();
  await using bob = await joinAs(site.port, "bob");
  await bob.send("before you came");
  await using anna = await SocketClient.open(site.socketUrl);
  await anna.expect(ANY_GREETING);
  anna.send("bob");
  await anna.expect(/^\* error: Cannot accept name "bob": .*taken/);
  assert.equal((await anna.readToEnd()).code, 1000);
  await using emil = await SocketClient.open(site.socketUrl);
  await emil.expect(/^\* Welcome to chat/);
  emil.send("Emil");
  await emil.expect("* The room contains: bob");
  await emil.expect(/^\* history \S+ \[bob\] before you came$/);
  await emil.expect(/^\* Limits: /);
  await emil.expect("* Welcome, Emil! 2 users online; /help lists the commands");
  await bob.expect("* Emil has entered the room");
  emil.send("[bob] I am bob \x1b[31m");
  await bob.expect("[Emil] [bob] I am bob ");
  emil.send("/msg bob hi");
  await emil.expect("* private to bob: hi");
  await bob.expect("* private from Emil: hi");
  await bob.send("hello Emil");
  await emil.expect("[bob] hello Emil");
  emil.send("/quit bye");
  await emil.expect("* Goodbye!");
  assert.equal((await emil.readToEnd()).code, 1000);
  await bob.expect("* Emil has left the room: bye");
});

Deno.test("a WebSocket frame over the line limit gets the server's error; the member stays", async () => {
  // Flood control off: its byte budget would pace the 10 MB below (see the slow sender's test).
  await using site = Site.start({ maxLineBytes: 4000, floodRate: 0 });
  await using bob = await joinAs(site.port, "bob");
  await using anna = await SocketClient.join(site.socketUrl, "anna");
  await bob.expect("* anna has entered the room");
  anna.send("é".repeat(2001)); // 4002 bytes in UTF-8, 2001 characters
  await anna.expect("* error: Line too long: the limit is 4000 bytes");
  anna.send("x".repeat(10_000_000)); // 10 MB: dropped as it is, never held as a line
  await anna.expect("* error: Line too long: the limit is 4000 bytes");
  anna.send("x".repeat(4000)); // exactly the limit
  await bob.expect(`[anna] ${"x".repeat(4000)}`);
  await bob.send("still here?");
  await anna.expect("[bob] still here?");
  // Before a name, a line over the limit ends the connection, as over TCP.
  await using nameless = await SocketClient.open(site.socketUrl);
  await nameless.expect(/^\* Welcome to chat/);
  nameless.send("n".repeat(5000));
  const { lines } = await nameless.readToEnd();
  assert.deepEqual(lines, ["* error: Line too long: the limit is 4000 bytes"]);
});

Deno.test("a binary WebSocket frame or one with a line end gets one error line and the socket closes", async () => {
  await using site = Site.start();
  await using bob = await joinAs(site.port, "bob");
  const cases: [string | Uint8Array, number, RegExp][] = [
    [new TextEncoder().encode("hi"), 1003, /^\* error: Binary frames are not accepted/],
    ["one\n[bob] forged", 1008, /^\* error: A frame holds one line/],
    ["one\r\ntwo", 1008, /^\* error: A frame holds one line/],
    ["carriage\rreturn", 1008, /^\* error: A frame holds one line/],
  ];
  for (const [index, [frame, code, error]] of cases.entries()) {
    const name = `ws${index}`;
    await using member = await SocketClient.join(site.socketUrl, name);
    await bob.expect(`* ${name} has entered the room`);
    member.send("before");
    await bob.expect(`[${name}] before`);
    member.send(frame);
    member.send("after"); // never read: the input ended at the bad frame
    const end = await member.readToEnd();
    assert.equal(end.lines.length, 1, JSON.stringify(end.lines));
    assert.match(end.lines[0]!, error);
    assert.equal(end.code, code);
    await bob.expect(`* ${name} has left the room`);
  }
  // The room chats on.
  await using emil = await SocketClient.join(site.socketUrl, "emil");
  await bob.expect("* emil has entered the room");
  await bob.send("all fine");
  await emil.expect("[bob] all fine");
});

Deno.test("WebSocket and TCP members share the per-address and global connection limits", async () => {
  await using site = Site.start({ maxPerAddress: 2, exempt: [] });
  await using tcp = await joinAs(site.port, "tcp");
  await using ws = await SocketClient.join(site.socketUrl, "ws");
  await using refusedWs = await SocketClient.open(site.socketUrl);
  assert.deepEqual((await refusedWs.readToEnd()).lines, [
    "* error: Too many connections from 127.0.0.1: at most 2",
  ]);
  await using refusedTcp = await TestClient.connect(site.port);
  assert.deepEqual(await refusedTcp.readToEnd(), [
    "* error: Too many connections from 127.0.0.1: at most 2",
  ]);
  await tcp.send("still chatting");
  await ws.expect("[tcp] still chatting");

  await using full = Site.start({ maxConnections: 2 });
  await using a = await SocketClient.join(full.socketUrl, "a");
  await using b = await joinAs(full.port, "b");
  await using c = await SocketClient.open(full.socketUrl);
  assert.deepEqual((await c.readToEnd()).lines, [
    "* error: Server is full: at most 2 connections; try again later",
  ]);
  await a.expect("* b has entered the room");
  await b.send("hi a");
  await a.expect("[b] hi a");
});

Deno.test("a WebSocket the server gave up on is closed, though its client answers nothing", async () => {
  await using site = Site.start({ maxPerAddress: 2, exempt: [] });
  const port = site.web.addr.port;
  const origin = site.url.slice(0, -1);
  // Two clients the server closes (a binary frame is not a line) and that never answer the
  // WebSocket close: Deno's own WebSocket could not be aborted, and left such sockets open.
  const binary = new Uint8Array([0x82, 0x82, 0, 0, 0, 0, 0x68, 0x69]); // masked, with a zero mask
  const lingering: Deno.TcpConn[] = [];
  try {
    for (let i = 0; i < 2; i++) {
      const { conn, status } = await rawSocket(port, { origin });
      lingering.push(conn);
      assert.match(status, /^HTTP\/1.1 101 /);
      await conn.write(binary);
    }
    // Each gets its error line and the close frame, then the end of the stream.
    for (const conn of lingering) {
      const buffer = new Uint8Array(4096);
      let received = "";
      for (let count; (count = await withDeadline(conn.read(buffer), "the close")) !== null;) {
        received += new TextDecoder().decode(buffer.subarray(0, count));
      }
      assert.match(received, /\* error: Binary frames are not accepted/);
    }
    await waitUntil(() => site.web.connectionCount === 0, "the page's sockets to close");
    const { conn, status } = await rawSocket(port, { origin });
    closeQuietly(conn);
    assert.match(status, /^HTTP\/1.1 101 /);
  } finally {
    for (const conn of lingering) closeQuietly(conn);
  }
});

Deno.test("flood control slows a WebSocket member, then disconnects it; the others chat on", async () => {
  await using site = Site.start({ floodBurst: 2, floodRate: 2, floodLimit: 3 });
  await using bob = await joinAs(site.port, "bob");
  await using flood = await SocketClient.join(site.socketUrl, "flood");
  await bob.expect("* flood has entered the room");
  for (let i = 0; i < 50; i++) flood.send(`line ${i}`);
  await flood.expect(/^\* error: Slow down: at most 2 lines a second/);
  const { lines } = await flood.readToEnd();
  assert.deepEqual(lines, ["* error: Disconnected for flooding"]);
  const relayed = [await bob.readLine(), await bob.readLine()];
  assert.deepEqual(relayed, ["[flood] line 0", "[flood] line 1"]);
  for (let line = await bob.readLine(); !line.includes("has left"); line = await bob.readLine()) {
    assert.match(line, /^\[flood\] line \d+$/);
  }
  await using emil = await SocketClient.join(site.socketUrl, "emil");
  await bob.send("calm again");
  await emil.expect("[bob] calm again");
});

Deno.test("a WebSocket member that stops reading is dropped as a TCP one is; the room hears why", async () => {
  // Flood control off, so that one member can send faster than the sloth would read.
  await using site = Site.start({ floodRate: 0 });
  await using bob = await joinAs(site.port, "bob");
  await using carol = await SocketClient.join(site.socketUrl, "carol");
  await bob.expect("* carol has entered the room");
  const { conn: sloth, status } = await rawSocket(site.web.addr.port, {
    origin: site.url.slice(0, -1),
  });
  try {
    assert.match(status, /^HTTP\/1.1 101 /);
    await sloth.write(clientFrame(OPCODE.text, "sloth"));
    await bob.expect("* sloth has entered the room");
    await carol.expect("* sloth has entered the room");
    // Batches of 400 KB, each read by carol before the next, until the sloth is dropped: it
    // takes more than the kernel's buffers, the socket's and the backlog hold (about 10 MB).
    const text = "x".repeat(4000);
    let isDropped = false;
    for (let batch = 0; batch < 100 && !isDropped; batch++) {
      await bob.write(`${text}\n`.repeat(100));
      for (let i = 0; i < 100; i++) {
        const line = await carol.readLine();
        if (line === "* sloth has left the room (stopped reading)") isDropped = true;
        else assert.equal(line, `[bob] ${text}`);
      }
    }
    if (!isDropped) await carol.expect("* sloth has left the room (stopped reading)");
    await bob.expect("* sloth has left the room (stopped reading)");
  } finally {
    closeQuietly(sloth);
  }
});

Deno.test("a WebSocket that answers no ping is closed; one that does stays past every timer", async () => {
  await using site = Site.start({ nameTimeoutMs: 1000, writeTimeoutMs: 1000 }, {
    pingSeconds: 1,
  });
  await using bob = await joinAs(site.port, "bob");
  await using alive = await SocketClient.join(site.socketUrl, "alive");
  const { conn: mute } = await rawSocket(site.web.addr.port);
  try {
    await mute.write(clientFrame(OPCODE.text, "mute"));
    await bob.expect("* alive has entered the room");
    await bob.expect("* mute has entered the room");
    await alive.expect("* mute has entered the room");
    // The mute client reads (so writes go through) but never answers a ping.
    const drain = (async () => {
      const buffer = new Uint8Array(4096);
      try {
        while (await mute.read(buffer) !== null);
      } catch {
        // Closed by the server or by the test.
      }
    })();
    await bob.expect("* mute has left the room", 10_000);
    await alive.expect("* mute has left the room");
    await drain;
    // Three seconds: past the ping interval, the name timeout and the write timeout, each twice.
    const until = Date.now() + 3000;
    for (let i = 0; Date.now() < until; i++) {
      alive.send(`still here ${i}`);
      await bob.expect(`[alive] still here ${i}`);
      await bob.send(`ack ${i}`);
      await alive.expect(`[bob] ack ${i}`);
      await new Promise((resolve) => setTimeout(resolve, 200)); // pacing, not waiting for an event
    }
  } finally {
    closeQuietly(mute);
  }
});

Deno.test("shutting down tells WebSocket members and closes their sockets cleanly", async () => {
  const site = Site.start();
  try {
    await using anna = await SocketClient.join(site.socketUrl, "anna");
    const closing = site.server.close();
    await anna.expect("* Server is shutting down, goodbye");
    assert.equal((await anna.readToEnd()).code, 1000);
    await closing;
  } finally {
    await site[Symbol.asyncDispose]();
  }
});

// --- the command line and the build ---

Deno.test("chat server --web prints both addresses and serves the page; missing permission is one line", async () => {
  const { child, port } = await startServerProcess(["--web", "127.0.0.1:0"]);
  await using _ = child;
  const line = await child.stdout.readUntil(/^web page on /);
  const match = /^web page on (http:\/\/127\.0\.0\.1:(\d+)\/)$/.exec(line);
  assert.ok(match, line);
  const response = await fetch(match[1]!);
  assert.match(await response.text(), /<title>chat<\/title>/);
  await using ws = await SocketClient.join(`ws://127.0.0.1:${match[2]}/chat`, "web");
  await using _tcp = await joinAs(port, "tcp");
  await ws.expect("* tcp has entered the room");

  const denied = serverChild(["--web", `127.0.0.1:${unusedPort()}`]);
  const result = await denied.finish();
  assert.equal(result.code, 1);
  assert.match(
    result.stderr,
    /^error: No permission to listen on 127\.0\.0\.1:\d+ for the web page .*run: deno run --allow-net=127\.0\.0\.1:0,127\.0\.0\.1:\d+ --v8-flags=\S+ main\.ts server --host 127\.0\.0\.1 --port 0 --web 127\.0\.0\.1:\d+\n$/,
  );
  for (
    const [args, error] of [
      [["--web-origin", "https://a.example"], /--web-origin goes with --web/],
      [["--web", "nope"], /Invalid --web "nope"/],
      [["--web", "8080", "--web-origin", "a.example"], /Invalid origin "a\.example"/],
    ] as const
  ) {
    const usage = await denoChild(["run", "-q", "main.ts", "server", ...args]).finish();
    assert.equal(usage.code, 2, usage.stderr);
    assert.match(usage.stderr, error);
    assert.equal(usage.stderr.split("\n").length, 2, "one line");
  }
});

Deno.test("web/page.js is the bundle of the current page sources", async () => {
  const bundle = await run(Deno.execPath(), [
    "bundle",
    "-q",
    "--platform",
    "browser",
    "--import-map",
    `${ROOT}web/import_map.json`,
    `${ROOT}web/page.ts`,
  ]);
  const committed = await run("cat", [`${ROOT}web/page.js`]);
  assert.ok(bundle === committed, "web/page.js is out of date: run deno task bundle");
});

/**
 * The web page and its WebSocket: HTTP and the socket driven from here, and the page itself in a
 * real Chromium (Debian's `chromium`, installed by .ci/packages.sh) driven by puppeteer-core,
 * beside raw TCP clients in the same room.
 *
 * puppeteer-core only connects here: the test starts Chromium itself as a child process, so that
 * it owns the process, its profile folder and its output, and closes all three on every path.
 * The test permission set grants `env` because puppeteer-core's `debug` dependency lists the
 * environment when it loads.
 */
import assert from "node:assert/strict";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { nameColor } from "../client.ts";
import type { ChatServer, ServerOptions } from "../server.ts";
import { startWeb, type WebOptions, type WebServer } from "../web.ts";
import { firstNewLine, nameSlot, reconnectDelay, Roster, TERMINAL_COLORS } from "../web/room.ts";
import { parseServerLine } from "../protocol.ts";
import {
  Child,
  DEADLINE_MS,
  denoChild,
  joinAs,
  ROOT,
  startServerProcess,
  startTestServer,
  TestClient,
  unusedPort,
  withDeadline,
} from "./_helpers.ts";

// --- helpers ---

/** A chat server with its page, in this process, on free loopback ports. */
class Site implements AsyncDisposable {
  constructor(readonly server: ChatServer, readonly web: WebServer) {}

  static start(options: ServerOptions = {}, web: WebOptions = {}): Site {
    const server = startTestServer(options);
    try {
      return new Site(
        server,
        startWeb(server, {
          hostname: "127.0.0.1",
          port: 0,
          ...(options.maxLineBytes ? { maxLineBytes: options.maxLineBytes } : {}),
          ...web,
        }),
      );
    } catch (error) {
      server.close();
      throw error;
    }
  }

  get port(): number {
    return this.server.addr.port;
  }

  get url(): string {
    return this.web.url;
  }

  get socketUrl(): string {
    return `${this.url.replace(/^http/, "ws")}chat`;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.server.close();
    await this.web.close();
  }
}

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
      this.#lines.push(String(event.data));
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
    await client.expect(/^\* Limits: /);
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
const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--remote-debugging-port=0",
  "--remote-debugging-address=127.0.0.1",
];

/** A real Chromium, driven through puppeteer-core; disposing it ends the process and its profile. */
class Chromium implements AsyncDisposable {
  readonly browser: Browser;
  /** Errors the pages reported: script errors and console errors (a CSP refusal is one). */
  readonly errors: string[] = [];
  readonly #child: Child;
  readonly #profile: string;

  private constructor(browser: Browser, child: Child, profile: string) {
    this.browser = browser;
    this.#child = child;
    this.#profile = profile;
  }

  static async launch(): Promise<Chromium> {
    const profile = (await run("mktemp", ["-d", "-t", "chat-chromium-XXXXXX"])).trim();
    const child = new Child("chromium", [...CHROMIUM_FLAGS, `--user-data-dir=${profile}`]);
    try {
      const line = await child.stderr.readUntil(/DevTools listening on ws:\/\//, 30_000);
      const browserWSEndpoint = line.slice(line.indexOf("ws://"));
      const browser = await puppeteer.connect({ browserWSEndpoint, defaultViewport: null });
      return new Chromium(browser, child, profile);
    } catch (error) {
      await child[Symbol.asyncDispose]();
      await run("rm", ["-rf", profile]);
      throw error;
    }
  }

  /** A new tab of `width` x `height` on `url`, in the light or the dark scheme. */
  async open(
    url: string,
    options: { width?: number; height?: number; dark?: boolean } = {},
  ): Promise<Page> {
    const page = await this.browser.newPage();
    // A script error in the page fails the test that made it, with the page's own message.
    page.on("pageerror", (error) => this.errors.push(String(error)));
    page.on("console", (message) => {
      if (message.type() === "error") this.errors.push(message.text());
    });
    page.setDefaultTimeout(DEADLINE_MS);
    await page.setViewport({ width: options.width ?? 1000, height: options.height ?? 700 });
    await page.emulateMediaFeatures([
      { name: "prefers-color-scheme", value: options.dark ? "dark" : "light" },
    ]);
    await page.goto(url);
    return page;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.browser.close().catch(() => {});
    await this.#child[Symbol.asyncDispose]();
    await run("rm", ["-rf", this.#profile]);
  }
}

async function run(command: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(command, { args, stdin: "null" })
    .output();
  if (code !== 0) throw new Error(`${command} failed: ${new TextDecoder().decode(stderr)}`);
  return new TextDecoder().decode(stdout);
}

/** Types a name into the page's prompt and waits for the conversation to show. */
async function joinPage(page: Page, name: string): Promise<void> {
  await page.locator("#name").fill(name);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#chat:not([hidden])");
  await waitForLine(page, `Welcome, ${name}!`);
}

/** Types a line into the page's input and presses Enter. */
async function say(page: Page, text: string): Promise<void> {
  await page.focus("#line");
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

/**
 * What callbacks that run in the page use of it. The tests are checked without the DOM's types,
 * which would replace Deno's own (WebSocket, streams) for every test file, so each callback casts
 * `globalThis` to this.
 */
interface PageGlobals {
  document: {
    title: string;
    hidden: boolean;
    querySelectorAll(selector: string): Iterable<{ textContent: string | null }>;
    scrollingElement: { scrollWidth: number } | null;
  };
  innerWidth: number;
}

/** Waits for a line of the conversation whose text contains `text`; returns its text. */
async function waitForLine(page: Page, text: string): Promise<string> {
  const handle = await page.waitForFunction(
    (wanted: string) =>
      [...(globalThis as unknown as PageGlobals).document.querySelectorAll("#log li")].find((
        item,
      ) => item.textContent?.includes(wanted))?.textContent,
    // Not the default (each animation frame): a tab in the background gets none.
    { timeout: DEADLINE_MS, polling: "mutation" },
    text,
  );
  return String(await handle.jsonValue());
}

/** The conversation's lines as text. */
function lines(page: Page): Promise<string[]> {
  return page.$$eval("#log li", (items) => items.map((item) => item.textContent ?? ""));
}

/** Who is online, as the page lists them. */
function roster(page: Page): Promise<string[]> {
  return page.$$eval("#roster li .name", (items) => items.map((item) => item.textContent ?? ""));
}

// --- the page in a browser ---

Deno.test("page: two browser pages and a raw TCP client chat in one room, both ways", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  await using tcp = await joinAs(site.port, "tcpuser");
  const anna = await chromium.open(site.url);
  await joinPage(anna, "Anna");
  await tcp.expect("* Anna has entered the room");
  const emil = await chromium.open(site.url);
  await joinPage(emil, "Emil");
  await tcp.expect("* Emil has entered the room");
  await waitForLine(anna, "Emil has entered the room");

  await say(anna, "hello from the browser");
  await tcp.expect("[Anna] hello from the browser");
  await waitForLine(emil, "hello from the browser");
  await tcp.send("hello from nc");
  await waitForLine(anna, "hello from nc");
  await waitForLine(emil, "hello from nc");
  await say(emil, "/me waves");
  await tcp.expect("* [Emil] waves");
  await say(anna, "/msg Emil psst");
  await waitForLine(emil, "psst");
  await waitForLine(anna, "psst");

  // Own lines are marked, each kind is styled apart, names carry their color slot.
  const own = await anna.$eval("#log li.own.user", (item) => item.textContent);
  assert.match(own ?? "", /Anna.*hello from the browser/);
  assert.equal(await emil.$$eval("#log li.action", (items) => items.length), 1);
  assert.equal(await emil.$$eval("#log li.private", (items) => items.length), 1);
  const slot = await anna.$eval(
    "#log li.user:not(.own) .name",
    (name) => [...name.classList].find((c) => /^c\d+$/.test(c)),
  );
  assert.equal(slot, `c${nameSlot("tcpuser")}`);

  // Who is online follows joins, renames and leaves.
  assert.deepEqual((await roster(anna)).sort(), ["Anna", "Emil", "tcpuser"]);
  await tcp.send("/nick tcp2");
  await tcp.expect("* tcpuser is now known as tcp2");
  await waitForLine(anna, "tcpuser is now known as tcp2");
  assert.deepEqual((await roster(anna)).sort(), ["Anna", "Emil", "tcp2"]);
  await emil.close();
  await tcp.expect("* Emil has left the room");
  await waitForLine(anna, "Emil has left the room");
  assert.deepEqual((await roster(anna)).sort(), ["Anna", "tcp2"]);
  await anna.screenshot({ path: "/tmp/webexp/s1.png" });
  assert.deepEqual(chromium.errors, []);
});

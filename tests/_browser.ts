/**
 * A real Chromium for the page's tests (Debian's `chromium`, installed by .ci/packages.sh), driven
 * by puppeteer-core, and what the tests do with a page: join, say, wait for a line, read the roster.
 */
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { Child, DEADLINE_MS, run, waitUntil } from "./_helpers.ts";

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
export class Chromium implements AsyncDisposable {
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

  static async launch(flags: string[] = []): Promise<Chromium> {
    const profile = (await run("mktemp", ["-d", "-t", "chat-chromium-XXXXXX"])).trim();
    const child = new Child("chromium", [
      ...CHROMIUM_FLAGS,
      ...flags,
      `--user-data-dir=${profile}`,
    ]);
    try {
      const line = await child.stderr.readUntil(/DevTools listening on ws:\/\//, 30_000);
      const browserWSEndpoint = line.slice(line.indexOf("ws://"));
      const browser = await puppeteer.connect({ browserWSEndpoint, defaultViewport: null });
      return new Chromium(browser, child, profile);
    } catch (error) {
      await child[Symbol.asyncDispose]();
      await removeProfile(profile);
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
    await removeProfile(this.#profile);
  }
}

/**
 * Removes a browser profile. Chromium's helper processes outlive the browser's by a moment and
 * may still write to it, so "Directory not empty" means: try again once they are gone.
 */
async function removeProfile(profile: string): Promise<void> {
  await waitUntil(
    () => run("rm", ["-rf", profile]).then(() => true, () => false),
    `the removal of ${profile}`,
  );
}

/** Types a name into the page's prompt and waits for the conversation to show. */
export async function joinPage(page: Page, name: string): Promise<void> {
  await page.locator("#name").fill(name);
  await page.keyboard.press("Enter");
  await page.waitForSelector("#chat:not([hidden])");
  await waitForLine(page, `Welcome, ${name}!`);
}

/** Types a line into the page's input and presses Enter. */
export async function say(page: Page, text: string): Promise<void> {
  await page.focus("#line");
  await page.keyboard.type(text);
  await page.keyboard.press("Enter");
}

/**
 * What callbacks that run in the page use of it. The tests are checked without the DOM's types,
 * which would replace Deno's own (WebSocket, streams) for every test file, so each callback casts
 * `globalThis` to this.
 */
export interface PageGlobals {
  document: {
    title: string;
    hidden: boolean;
    querySelectorAll(selector: string): Iterable<{ textContent: string | null }>;
    querySelector(selector: string): { textContent: string | null } | null;
    activeElement: { id: string } | null;
    scrollingElement: { scrollWidth: number } | null;
  };
  innerWidth: number;
}

/** Waits for a line of the conversation whose text contains `text`; returns its text. */
export async function waitForLine(page: Page, text: string): Promise<string> {
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
export function lines(page: Page): Promise<string[]> {
  return page.$$eval("#log li", (items) => items.map((item) => item.textContent ?? ""));
}

/** Who is online, as the page lists them. */
export function roster(page: Page): Promise<string[]> {
  return page.$$eval("#roster li .name", (items) => items.map((item) => item.textContent ?? ""));
}

/**
 * Mentions on the page, in a real Chromium: highlighted, counted in the tab title apart from other
 * unread lines, and a desktop notification while the tab is hidden, only if the person allowed it.
 * The permission is granted through the browser's own permission API, as a person's click would.
 */
import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import { mentions, tabTitle } from "../web/mentions.ts";
import { joinAs } from "./_helpers.ts";
import { Chromium, joinPage, type PageGlobals, waitForLine } from "./_browser.ts";
import { Site } from "./_websocket.ts";

/** What the page's notifications are seen through: the real ones, each also kept in a list. */
interface Shown {
  shown: { title: string; body: string }[];
}

Deno.test("mentions finds a name said as a word, in any case, and nowhere inside a longer word", () => {
  assert.ok(mentions("hi Reader!", "reader"));
  assert.ok(mentions("reader: look", "READER"));
  assert.ok(mentions("ask a-b now", "a-b"));
  assert.ok(!mentions("readers unite", "reader"));
  assert.ok(!mentions("proofreader", "reader"));
  assert.ok(!mentions("reader_2 said", "reader"));
  assert.ok(!mentions("anything", ""));
  assert.ok(mentions("a.b", "a.b") && !mentions("axb", "a.b")); // a name is no pattern
  assert.equal(tabTitle("chat", 0, 0), "chat");
  assert.equal(tabTitle("chat", 5, 0), "(5) chat");
  assert.equal(tabTitle("chat", 5, 2), "@2 (5) chat");
  assert.equal(tabTitle("chat", 0, 1), "@1 chat");
});

/** A tab on the site whose notifications are recorded as they are made (and still made). */
async function openRecorded(chromium: Chromium, url: string): Promise<Page> {
  const page = await chromium.open("about:blank");
  await page.evaluateOnNewDocument(() => {
    type Made = new (title: string, options?: { body?: string }) => object;
    const scope = globalThis as unknown as Shown & { Notification: Made };
    const real = scope.Notification;
    scope.shown = [];
    scope.Notification = class extends real {
      constructor(title: string, options?: { body?: string }) {
        super(title, options);
        scope.shown.push({ title, body: options?.body ?? "" });
      }
    };
  });
  await page.goto(url);
  return page;
}

Deno.test("page: a mention is highlighted, counted apart in the title, and notified while hidden only when allowed", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  await chromium.browser.defaultBrowserContext().overridePermissions(
    new URL(site.url).origin,
    ["notifications"],
  );
  await using tcp = await joinAs(site.port, "tcp");
  const page = await openRecorded(chromium, site.url);
  await joinPage(page, "reader");
  await tcp.expect("* reader has entered the room");
  const title = () => page.evaluate("document.title");
  const shown = () => page.evaluate(() => (globalThis as unknown as Shown).shown);

  // Off until the person allows it: a mention then notifies nobody.
  assert.equal(
    await page.$eval("#notify", (box) => (box as unknown as { checked: boolean }).checked),
    false,
  );
  const other = await chromium.open("about:blank");
  await other.bringToFront();
  assert.equal(await page.evaluate("document.hidden"), true);
  await tcp.send("before you allowed it, reader");
  await waitForLine(page, "before you allowed it");
  assert.deepEqual(await shown(), []);
  assert.equal(await title(), "@1 chat");
  await page.bringToFront();
  await page.waitForFunction(
    () => (globalThis as unknown as PageGlobals).document.title === "chat",
    {
      polling: 100,
    },
  );

  await page.click("#notify");
  await page.waitForFunction(() => localStorage.getItem("chat.notify") === "on", { polling: 50 });
  assert.equal(
    await page.$eval("#notify", (box) => (box as unknown as { checked: boolean }).checked),
    true,
  );
  await tcp.send("seen while you look, reader"); // the tab is shown: no notification
  await waitForLine(page, "seen while you look");
  await other.bringToFront();
  await tcp.send("hi READER!");
  await tcp.send("readers unite");
  await tcp.send("/me pokes reader");
  await tcp.send("last line");
  await waitForLine(page, "last line");
  assert.equal(await title(), "@2 (2) chat");
  assert.deepEqual(await shown(), [
    { title: "tcp mentioned you", body: "hi READER!" },
    { title: "tcp mentioned you", body: "pokes reader" },
  ]);
  const marked = await page.$$eval("#log li.mention", (items) => items.map((i) => i.textContent));
  assert.equal(marked.length, 4, marked.join(" | "));
  assert.ok(marked.every((text) => /reader/i.test(text ?? "") && !/readers unite/.test(text!)));
  // A private message is a mention too.
  await tcp.send("/msg reader just for you");
  await waitForLine(page, "just for you");
  assert.equal(await title(), "@3 (2) chat");
  assert.deepEqual((await shown()).at(-1), { title: "tcp, privately", body: "just for you" });

  // The choice is remembered: another tab starts with it, and turning it off there holds here.
  const second = await openRecorded(chromium, site.url);
  await joinPage(second, "second");
  assert.equal(
    await second.$eval("#notify", (box) => (box as unknown as { checked: boolean }).checked),
    true,
  );
  await second.click("#notify");
  await second.waitForFunction(() => localStorage.getItem("chat.notify") === "off", {
    polling: 50,
  });
  await other.bringToFront();
  await tcp.send("reader, once more");
  await waitForLine(page, "once more");
  assert.equal(await title(), "@4 (2) chat");
  assert.equal((await shown()).length, 3);
  assert.deepEqual(chromium.errors, []);
});

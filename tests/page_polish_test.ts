/**
 * The page's polish, in a real Chromium: `/help` as a table with one time stamp, and, while the
 * connection is lost, the input and the list of who is online out of use and the banner counting
 * the seconds down to the next try.
 */
import assert from "node:assert/strict";
import { HELP_LINES } from "../protocol.ts";
import { Chromium, joinPage, say, waitForLine } from "./_browser.ts";
import { Site } from "./_websocket.ts";

Deno.test("page: /help shows as a table of commands with one time stamp, not one a row", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  const page = await chromium.open(site.url);
  await joinPage(page, "helper");
  await say(page, "/help");
  await waitForLine(page, "this list");
  const rows = await page.$$eval("#log li.help", (items) =>
    items.map((item) => ({
      stamps: item.querySelectorAll("time").length,
      command: item.querySelector(".command")?.textContent,
      text: item.querySelector(".text")?.textContent,
    })));
  assert.equal(rows.length, HELP_LINES.length);
  assert.deepEqual(rows.map((row) => row.stamps), [1, ...rows.slice(1).map(() => 0)]);
  assert.deepEqual(rows[0], { stamps: 1, command: "/who", text: "who is online" });
  assert.deepEqual(rows.at(-1), { stamps: 0, command: "/help", text: "this list" });
  // A second /help is a table of its own, with its own time stamp.
  await say(page, "hello");
  await say(page, "/help");
  await page.waitForFunction(
    `document.querySelectorAll("#log li.help").length === ${2 * HELP_LINES.length}`,
    { polling: "mutation" },
  );
  assert.equal(await page.$$eval("#log li.help time", (times) => times.length), 2);
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: while disconnected the input and the roster are out of use, and the banner counts down", async () => {
  const site = Site.start();
  let isOpen = true;
  try {
    await using chromium = await Chromium.launch();
    const page = await chromium.open(site.url);
    await joinPage(page, "waiter");
    assert.equal(await page.$eval("#line", (line) => line.disabled), false);
    assert.equal(await page.evaluate("document.activeElement?.id"), "line");
    // Every text the banner shows, in order, kept by the page as it changes.
    await page.evaluate(`{
      const texts = globalThis.bannerTexts = [];
      const banner = document.getElementById("banner-text");
      new MutationObserver(() => texts.push(banner.textContent)).observe(banner, {
        childList: true,
        characterData: true,
        subtree: true,
      });
    }`);
    isOpen = false;
    await site[Symbol.asyncDispose](); // the server goes: the page's tries are refused
    await page.waitForSelector("#banner:not([hidden])");
    assert.equal(await page.$eval("#line", (line) => line.disabled), true);
    assert.equal(await page.$eval("#send-button", (button) => button.disabled), true);
    assert.equal(
      await page.$eval("#people", (people) => people.getAttribute("aria-disabled")),
      "true",
    );
    // The second wait is 1.5 to 2.5 s: it shows 2 s, then 1 s, before the try.
    await page.waitForFunction(
      `globalThis.bannerTexts.some((text, i) =>
        / in 2 s…$/.test(text) && / in 1 s…$/.test(globalThis.bannerTexts[i + 1] ?? ""))`,
      { polling: 100 },
    );
    assert.deepEqual(
      chromium.errors.filter((error) => !/WebSocket|ERR_CONNECTION_REFUSED/.test(error)),
      [],
    );
  } finally {
    if (isOpen) await site[Symbol.asyncDispose]();
  }
});

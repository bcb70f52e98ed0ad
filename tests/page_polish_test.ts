/**
 * The page's polish, in a real Chromium: `/help` as a table with one time stamp, and, while the
 * connection is lost, the input and the list of who is online out of use and the banner counting
 * the seconds down to the next try, for the eye only: a screen reader is told the message once.
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
    // Every text the banner shows, in order, as it changes; and each change a screen reader is
    // told of (outside what is aria-hidden), with the text of the element it changed in.
    await page.evaluate(`{
      const texts = globalThis.bannerTexts = [];
      const said = globalThis.bannerSaid = [];
      const banner = document.getElementById("banner");
      new MutationObserver((records) => {
        texts.push(document.getElementById("banner-line").textContent);
        for (const { target } of records) {
          const element = target.nodeType === 1 ? target : target.parentElement;
          if (!element.closest("[aria-hidden=true]")) said.push(element.textContent);
        }
      }).observe(banner, { childList: true, characterData: true, subtree: true });
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
    // Said once, however many seconds were counted: the message (again only if it changed, as
    // from the server's shutdown to a lost connection after a try), and its button.
    const said = await page.evaluate("globalThis.bannerSaid") as string[];
    assert.deepEqual(said.slice(0, 2), [
      "The server shut down. Reconnecting as waiter",
      "Reconnect now",
    ]);
    assert.equal(new Set(said).size, said.length, said.join(" | "));
    assert.equal(await page.$eval("#banner-count", (count) => count.ariaHidden), "true");
    // The accessibility tree has the message and no count.
    const tree = JSON.stringify(
      await page.accessibility.snapshot({
        root: (await page.$("#banner"))!,
        interestingOnly: false,
      }),
    );
    assert.match(tree, /(The server shut down|Connection lost)\. Reconnecting as waiter/);
    assert.doesNotMatch(tree, / s…|[0-9] s/);
    assert.deepEqual(
      chromium.errors.filter((error) => !/WebSocket|ERR_CONNECTION_REFUSED/.test(error)),
      [],
    );
  } finally {
    if (isOpen) await site[Symbol.asyncDispose]();
  }
});

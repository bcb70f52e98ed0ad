/**
 * The page's join form in a real Chromium: Tab goes through it in the order it is filled in. (That
 * a wrong password keeps the cursor in the password field is proven in page_test.ts, with a store.)
 */
import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import { Chromium, type PageGlobals, waitForLine } from "./_browser.ts";
import { Site } from "./_websocket.ts";

/** The id of the element that has the focus. */
function focused(page: Page): Promise<string | undefined> {
  return page.evaluate(() => (globalThis as unknown as PageGlobals).document.activeElement?.id);
}

Deno.test("page: Tab goes name, password, Join in the join form, and Shift+Tab back", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  const page = await chromium.open(site.url);
  assert.equal(await focused(page), "name");
  await page.keyboard.type("tabber");
  await page.keyboard.press("Tab");
  assert.equal(await focused(page), "password");
  await page.keyboard.press("Tab");
  assert.equal(await focused(page), "join-button");
  await page.keyboard.down("Shift");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  await page.keyboard.up("Shift");
  assert.equal(await focused(page), "name");
  // Join, from the button reached by Tab alone.
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#chat:not([hidden])");
  await waitForLine(page, "Welcome, tabber!");
  assert.deepEqual(chromium.errors, []);
});

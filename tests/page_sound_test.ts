/**
 * The page's sound on a mention, in a real Chromium allowed to play audio without a gesture (as a
 * page the person clicked in is): a real AudioContext runs, and the page's checkbox says how many
 * tones started and how many played to their end. Turned off, it stays off, remembered.
 */
import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import { joinAs } from "./_helpers.ts";
import { Chromium, joinPage, waitForLine } from "./_browser.ts";
import { Site } from "./_websocket.ts";

/** What the Sound checkbox says: ticked, tones started, tones played, the audio context's state. */
function sound(page: Page): Promise<{ on: boolean; tones: string; played: string; audio: string }> {
  return page.$eval("#sound", (box) => {
    const { checked, dataset } = box as unknown as {
      checked: boolean;
      dataset: Record<string, string | undefined>;
    };
    return {
      on: checked,
      tones: dataset.tones ?? "0",
      played: dataset.played ?? "0",
      audio: dataset.audio ?? "",
    };
  });
}

/** Waits out the least time between two tones, as the page says it (`data-quiet-until`). */
async function quiet(page: Page): Promise<void> {
  await page.waitForFunction(
    "performance.now() >= Number(document.querySelector('#sound').dataset.quietUntil ?? 0)",
    { polling: 50 },
  );
}

Deno.test("page: a mention while the tab is not in front plays a short tone through a real AudioContext, unless Sound is turned off, which is remembered", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch(["--autoplay-policy=no-user-gesture-required"]);
  await using tcp = await joinAs(site.port, "tcp");
  const page = await chromium.open(site.url);
  await joinPage(page, "hearer");
  await tcp.expect("* hearer has entered the room");
  assert.deepEqual(await sound(page), { on: true, tones: "0", played: "0", audio: "" });
  // In front, a mention is seen: no tone.
  await tcp.send("hearer, you are looking");
  await waitForLine(page, "you are looking");
  assert.equal((await sound(page)).tones, "0");
  // Behind another tab: one tone per mention, none for other lines; each plays to its end.
  const other = await chromium.open("about:blank");
  await other.bringToFront();
  await tcp.send("hearer: a tone");
  await waitForLine(page, "a tone");
  assert.equal((await sound(page)).tones, "1");
  // Tones are at least a gap apart (see the burst below): each line from here comes after it.
  await quiet(page);
  await tcp.send("a line for nobody");
  await waitForLine(page, "a line for nobody");
  assert.equal((await sound(page)).tones, "1");
  await tcp.send("/msg hearer a private one");
  await waitForLine(page, "a private one");
  assert.equal((await sound(page)).tones, "2");
  await page.waitForSelector('#sound[data-played="2"][data-audio="running"]');
  // Turned off: silent, and remembered in another tab.
  await page.bringToFront();
  await page.click("#sound");
  await page.waitForFunction(() => localStorage.getItem("chat.sound") === "off", { polling: 50 });
  await other.bringToFront();
  await quiet(page);
  await tcp.send("hearer, in silence");
  await waitForLine(page, "in silence");
  assert.deepEqual(await sound(page), { on: false, tones: "2", played: "2", audio: "running" });
  const second = await chromium.open(site.url);
  await joinPage(second, "second");
  assert.equal((await sound(second)).on, false);
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: a burst of mentions plays one tone, not one each on top of the other (whose loudness would add up)", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch(["--autoplay-policy=no-user-gesture-required"]);
  await using tcp = await joinAs(site.port, "tcp");
  const page = await chromium.open(site.url);
  await joinPage(page, "hearer");
  await tcp.expect("* hearer has entered the room");
  const other = await chromium.open("about:blank");
  await other.bringToFront();
  // Eight mentions in one write: they arrive together, as a storm of them would.
  await tcp.write(Array.from({ length: 8 }, (_, i) => `hearer ${i}\n`).join(""));
  await waitForLine(page, "hearer 7");
  await page.waitForSelector('#sound[data-played="1"]');
  assert.equal((await sound(page)).tones, "1");
  assert.deepEqual(chromium.errors, []);
});

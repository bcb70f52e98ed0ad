/** Private conversations on the page: `@name` completion in the input, in a real Chromium. */
import assert from "node:assert/strict";
import { completions } from "../web/room.ts";
import { joinAs } from "./_helpers.ts";
import { Chromium, joinPage } from "./_browser.ts";
import { Site } from "./_websocket.ts";

Deno.test("completions offer names after an @ anywhere in a line, keeping the @", () => {
  const options = { commands: ["/me"], names: ["Anna", "andreas", "bob"] };
  assert.deepEqual(completions("hi @an", options), { start: 4, candidates: ["andreas", "Anna"] });
  assert.deepEqual(completions("@B", options), { start: 1, candidates: ["bob"] });
  assert.deepEqual(completions("@", options).candidates, ["andreas", "Anna", "bob"]);
  assert.deepEqual(completions("mail me@an", options).candidates, []); // not after a space
  assert.deepEqual(completions("hi an", options).candidates, []);
});

Deno.test("page: Tab completes @name in a line, and the line goes out with it", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  await using tcp = await joinAs(site.port, "Annabel");
  const page = await chromium.open(site.url);
  await joinPage(page, "typer");
  await tcp.expect("* typer has entered the room");
  await page.focus("#line");
  await page.keyboard.type("hi @ann");
  await page.keyboard.press("Tab");
  assert.equal(await page.$eval("#line", (line) => line.value), "hi @Annabel ");
  assert.equal(await page.evaluate("document.activeElement?.id"), "line");
  await page.keyboard.type("how are you");
  await page.keyboard.press("Enter");
  await tcp.expect("[typer] hi @Annabel how are you");
  assert.deepEqual(chromium.errors, []);
});

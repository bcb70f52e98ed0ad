/**
 * Private conversations on the page, in a real Chromium: a view per person beside the room with an
 * unread count, and `@name` completion in the input.
 */
import assert from "node:assert/strict";
import { completions } from "../web/room.ts";
import { joinAs } from "./_helpers.ts";
import { Chromium, joinPage, say, waitForLine } from "./_browser.ts";
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

Deno.test("page: private messages get a conversation of their own beside the room, with an unread count", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  await using bob = await joinAs(site.port, "bob");
  const page = await chromium.open(site.url);
  await joinPage(page, "pm");
  await bob.expect("* pm has entered the room");
  await bob.send("in the room");
  await bob.send("/msg pm first secret");
  await bob.send("/msg pm second secret");
  await bob.expect("* private to pm: first secret");
  await bob.expect("* private to pm: second secret");
  await waitForLine(page, "second secret");
  const count = () =>
    page.$eval("#views button[data-peer=bob] .count", (count) => count.textContent);
  assert.equal(await count(), "2");
  const visible = () =>
    page.$$eval(
      "#log li",
      (items) => items.filter((item) => !item.hidden).map((item) => item.textContent ?? ""),
    );
  // bob's conversation: only his private lines, and what is typed there goes to him.
  await page.click("#views button[data-peer=bob]");
  assert.equal(await count(), "");
  const shown = await visible();
  assert.equal(shown.length, 2, shown.join(" | "));
  assert.ok(shown.every((text) => text.includes("secret")));
  await say(page, "only for you");
  await bob.expect("* private from pm: only for you");
  await waitForLine(page, "only for you");
  assert.equal((await visible()).length, 3);
  await bob.send("/msg pm seen at once");
  await bob.expect("* private to pm: seen at once");
  await waitForLine(page, "seen at once");
  assert.equal(await count(), ""); // shown: not unread
  // Back to the room: everything, in order; lines there go to the room.
  await page.click("#room-view");
  assert.ok((await visible()).some((text) => text.includes("in the room")));
  await say(page, "to everyone");
  await bob.expect("[pm] to everyone");
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: a private message is a mention (highlighted, counted in the title), and its conversation follows /nick on either side", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  await using bob = await joinAs(site.port, "bob");
  const page = await chromium.open(site.url);
  await joinPage(page, "pm");
  await bob.expect("* pm has entered the room");
  const other = await chromium.open("about:blank");
  await other.bringToFront();
  await bob.send("/msg pm while you were away");
  await bob.expect("* private to pm: while you were away");
  await bob.send("nothing about you");
  await waitForLine(page, "nothing about you");
  assert.equal(await page.evaluate("document.title"), "@1 (1) chat");
  const marked = await page.$$eval("#log li.mention", (items) => items.map((i) => i.textContent));
  assert.equal(marked.length, 1, marked.join(" | "));
  assert.match(marked[0]!, /while you were away/);
  await page.bringToFront();
  // bob becomes robert: his conversation, its unread count and its lines go with him.
  await bob.send("/msg pm second");
  await bob.expect("* private to pm: second");
  await waitForLine(page, "second");
  await bob.send("/nick robert");
  await bob.expect("* bob is now known as robert");
  await waitForLine(page, "bob is now known as robert");
  assert.equal(await page.$("#views button[data-peer=bob]"), null);
  const button = "#views button[data-peer=robert]";
  assert.equal(await page.$eval(button, (button) => button.textContent), "robert2");
  assert.equal(await page.$eval(button, (b) => b.getAttribute("aria-label")), "robert, 2 unread");
  await page.click(button);
  const visible = () =>
    page.$$eval(
      "#log li",
      (items) => items.filter((item) => !item.hidden).map((item) => item.textContent ?? ""),
    );
  assert.deepEqual((await visible()).map((text) => /away|second/.test(text)), [true, true]);
  await say(page, "to the new name");
  await bob.expect("* private from pm: to the new name");
  // pm becomes pmx: the conversation goes on, under pm's new name.
  await say(page, "/nick pmx");
  await bob.expect("* pm is now known as pmx");
  await waitForLine(page, "pm is now known as pmx");
  await say(page, "after my rename");
  await bob.expect("* private from pmx: after my rename");
  await waitForLine(page, "after my rename"); // the page shows it when the server echoes it
  assert.equal((await visible()).length, 4);
  assert.deepEqual(chromium.errors, []);
});

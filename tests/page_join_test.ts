/**
 * The page's join form in a real Chromium: Tab goes through it in the order it is filled in, and
 * the password field is there only when the server's greeting says some names are registered. (That
 * a wrong password keeps the cursor in the password field is proven in page_test.ts, with a store.)
 */
import assert from "node:assert/strict";
import type { Page } from "puppeteer-core";
import { Chromium, type PageGlobals, waitForLine } from "./_browser.ts";
import { ANY_GREETING, connectFrom, joinAs, startServerProcess, waitUntil } from "./_helpers.ts";
import { MemoryModerationStore } from "../server/moderation_store.ts";
import { Folder } from "./_store.ts";
import { Site } from "./_websocket.ts";
import { FixedAccounts } from "../server/operators_file.ts";
import { hashPassword } from "../server/passwords.ts";

const PASSWORD = "correct horse battery";

/** The id of the element that has the focus. */
function focused(page: Page): Promise<string | undefined> {
  return page.evaluate(() => (globalThis as unknown as PageGlobals).document.activeElement?.id);
}

/** What the page made of the server's greeting: "true", "false" or "unknown" registered names. */
async function greeted(page: Page, expected: string): Promise<void> {
  await page.waitForSelector(`#join-form[data-registered-names="${expected}"]`);
}

/** Whether the password field and its label can be seen (hidden, not just disabled, when not). */
function isPasswordShown(page: Page): Promise<boolean[]> {
  return page.evaluate(() => {
    const document = (globalThis as unknown as {
      document: { querySelector(selector: string): { checkVisibility(): boolean } };
    }).document;
    return ["#password", "label[for=password]"].map((selector) =>
      document.querySelector(selector).checkVisibility()
    );
  });
}

Deno.test("page: Tab goes name, password, Join in the join form, and Shift+Tab back", async () => {
  await using site = Site.start({
    accounts: new FixedAccounts([await hashPassword("op", PASSWORD)]),
  });
  await using chromium = await Chromium.launch();
  const page = await chromium.open(site.url);
  assert.equal(await focused(page), "name");
  // The first key opens the socket; its greeting shows the field while the name is typed.
  await page.keyboard.type("tabber");
  await greeted(page, "true");
  assert.deepEqual(await isPasswordShown(page), [true, true]);
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

Deno.test("page: the password field shows only once a name is registered on the server, and a name registered while the page is open asks for it", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startServerProcess(
    ["--store", folder.file, "--web", "127.0.0.1:0"],
    folder.permissions,
  );
  await using _server = child;
  const url = /^web page on (\S+)$/.exec(await child.stdout.readUntil(/^web page on /))![1]!;
  await using chromium = await Chromium.launch();
  // No name registered: no password field, and Tab goes from the name straight to Join.
  const page = await chromium.open(url);
  assert.equal(await focused(page), "name");
  await page.keyboard.type("bob");
  await greeted(page, "false");
  assert.deepEqual(await isPasswordShown(page), [false, false]);
  await page.keyboard.press("Tab");
  assert.equal(await focused(page), "join-button");
  // Alice registers through the server, as nc users do, while the page waits unjoined.
  {
    await using alice = await joinAs(port, "alice");
    await alice.send("/register");
    await alice.expect(/^\* Send the new password for alice on the next line/);
    await alice.send(PASSWORD);
    await alice.expect("* alice is registered: joining as alice now asks for its password");
  }
  // The page greeted before that still joins as alice: the server asks, and the field shows then.
  await page.locator("#name").fill("alice");
  await page.keyboard.press("Enter");
  await page.waitForFunction(
    () => {
      const document = (globalThis as unknown as PageGlobals).document;
      return document.querySelector("#join-error")?.textContent ===
          "alice is registered: type its password" && document.activeElement?.id === "password";
    },
    { polling: "mutation" },
  );
  assert.deepEqual(await isPasswordShown(page), [true, true]);
  await page.keyboard.type(PASSWORD);
  await page.keyboard.press("Enter");
  await waitForLine(page, "Welcome, alice!");
  // A page opened now shows the field before anything is typed (this browser heard the server say
  // so), in the order name, password, Join: Tab from a remembered name reaches it.
  const next = await chromium.open(url);
  assert.deepEqual(await isPasswordShown(next), [true, true]);
  await next.keyboard.press("Tab");
  assert.equal(await focused(next), "password");
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: the socket opened on starting the form is the one it joins over, and one the server gave up on is replaced quietly", async () => {
  await using chromium = await Chromium.launch();
  {
    await using site = Site.start();
    const page = await chromium.open(site.url);
    await page.keyboard.type("e");
    await greeted(page, "false");
    assert.equal(site.server.connectionCount, 1);
    await page.locator("#name").fill("early");
    await page.keyboard.press("Enter");
    await waitForLine(page, "Welcome, early!");
    assert.equal(site.server.connectionCount, 1); // the same socket: none other opened
    await page.close();
  }
  // The server closes a socket that gave no name in time; the page says nothing of it, and
  // joining opens another.
  await using site = Site.start({ nameTimeoutMs: 500 });
  const page = await chromium.open(site.url);
  await page.click("#name");
  await greeted(page, "false");
  await waitUntil(() => site.server.connectionCount === 0, "the server to give up on the page");
  assert.equal(await page.$eval("#banner", (banner) => banner.hidden), true);
  assert.equal(await page.$eval("#join", (join) => join.hidden), false);
  assert.equal(await page.$eval("#join-error", (error) => error.textContent), "");
  await page.locator("#name").fill("late");
  await page.keyboard.press("Enter");
  await waitForLine(page, "Welcome, late!");
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: a tab loaded and left untouched holds no connection and spends none of its address's joins, so the tab someone uses still joins", async () => {
  // Two joins a minute from one address: three tabs loaded at once (a person's restored tabs, a
  // class behind one address), of which one is used.
  await using site = Site.start({ joinRate: 2, exempt: [] });
  await using chromium = await Chromium.launch();
  const pages = [];
  for (let i = 0; i < 3; i++) pages.push(await chromium.open(site.url));
  assert.equal(site.server.connectionCount, 0);
  const used = pages[2]!;
  await used.locator("#name").fill("user");
  await used.keyboard.press("Enter");
  await waitForLine(used, "Welcome, user!");
  assert.equal(site.server.connectionCount, 1);
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: a private server's greeting shows the server's password field before Join, and one Join gets in over one socket", async () => {
  // One join a minute from this address: a second socket would be refused.
  await using site = Site.start({ serverPassword: PASSWORD, joinRate: 1, exempt: [] });
  await using chromium = await Chromium.launch();
  const page = await chromium.open(site.url);
  await page.keyboard.type("insider");
  await greeted(page, "unknown");
  await page.waitForSelector("#server-password", { visible: true });
  await page.locator("#server-password").fill(PASSWORD);
  await page.keyboard.press("Enter");
  await waitForLine(page, "Welcome, insider!");
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: a server that refuses the socket opened on starting the form says why at once, its refusal not taken for a greeting; Join tries again", async () => {
  await using site = Site.start({
    accounts: new FixedAccounts([await hashPassword("op", PASSWORD)]),
    moderation: new MemoryModerationStore(["op"]),
  });
  await using chromium = await Chromium.launch();
  const page = await chromium.open(site.url);
  // The operator, on another address, bans the page's.
  await using op = await connectFrom(site.port, "127.0.0.2");
  await op.expect(ANY_GREETING);
  await op.send("op");
  await op.expect("* op is registered: send its password");
  await op.send(PASSWORD);
  while (!(await op.readLine()).startsWith("* Welcome, op!")); // the room list, history
  await op.send("/ban 127.0.0.1 1h");
  while (!(await op.readLine()).startsWith("* Banned 127.0.0.1")); // after the limits, topic
  await page.keyboard.type("later");
  await page.waitForFunction(
    () =>
      (globalThis as unknown as PageGlobals).document.querySelector("#join-error")
        ?.textContent?.startsWith("You are banned") === true,
    { polling: "mutation" },
  );
  assert.deepEqual(await isPasswordShown(page), [false, false]);
  assert.equal(await page.$eval("#join-form", (form) => form.dataset.registeredNames), undefined);
  await op.send("/unban 127.0.0.1");
  await op.expect("* Unbanned 127.0.0.1");
  await page.keyboard.press("Enter");
  await waitForLine(page, "Welcome, later!");
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: where storage refuses every read and write (private mode, quota), the page still joins and chats", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  await using tcp = await joinAs(site.port, "tcp");
  const page = await chromium.open("about:blank");
  await page.evaluateOnNewDocument(() => {
    const storage = (globalThis as unknown as { Storage: { prototype: Record<string, unknown> } })
      .Storage.prototype;
    for (const method of ["getItem", "setItem", "removeItem"]) {
      storage[method] = () => {
        throw new DOMException("refused", "QuotaExceededError");
      };
    }
  });
  await page.goto(site.url);
  await page.locator("#name").fill("private");
  await page.keyboard.press("Enter");
  await tcp.expect("* private has entered the room");
  await waitForLine(page, "Welcome, private!");
  await tcp.send("hello private");
  await waitForLine(page, "hello private");
});

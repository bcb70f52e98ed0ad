/**
 * Moderation as the two clients show it, against a real server: the terminal client in a real
 * terminal (tmux) and piped, and the page in a real Chromium. Operators marked `@`, the topic, Tab
 * completing the operator commands for operators only, and a kick or a ban ending the session
 * instead of rejoining by itself.
 */
import assert from "node:assert/strict";
import type { ChatServer } from "../server.ts";
import { hashPassword } from "../server/passwords.ts";
import { FixedAccounts } from "../server/operators_file.ts";
import { MemoryModerationStore } from "../server/moderation_store.ts";
import type { Page } from "puppeteer-core";
import { ANY_GREETING, Child, DEADLINE_MS, startTestServer, TestClient, Tmux } from "./_helpers.ts";
import { Chromium, joinPage, type PageGlobals, say, waitForLine } from "./_browser.ts";
import { Site } from "./_websocket.ts";

const PASSWORD = "correct horse";
/** alice is an operator; dave is registered, and no operator until made one. */
const ACCOUNTS = await Promise.all(["alice", "dave"].map((name) => hashPassword(name, PASSWORD)));
const UNTIL = String.raw`\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC`;

/** A server in this process whose operators, bans and topic are `store`'s. */
function moderatedServer(
  store = new MemoryModerationStore(["alice"]),
  port = 0,
): ChatServer {
  return startTestServer({ accounts: new FixedAccounts(ACCOUNTS), moderation: store, port });
}

/** Joins as a registered name from a raw socket, as nc would; reads up to the welcome. */
async function logIn(port: number, name: string): Promise<TestClient> {
  const client = await TestClient.connect(port);
  await client.expect(ANY_GREETING);
  await client.send(name);
  await client.expect(`* ${name} is registered: send its password`);
  await client.send(PASSWORD);
  await readUntil(client, new RegExp(`^\\* Welcome, ${name}!`));
  return client;
}

/** Reads lines until one matches, returning it. */
async function readUntil(client: TestClient, pattern: RegExp | string): Promise<string> {
  for (;;) {
    const line = await client.readLine();
    if (typeof pattern === "string" ? line === pattern : pattern.test(line)) return line;
  }
}

/** client.ts in a real terminal, as terminal_test.ts starts it; the shell shows its exit status. */
function terminalClient(name: string, port: number): Promise<Tmux> {
  return Tmux.start([
    "sh",
    "-c",
    '"$@"; echo "[exit $?]"; exec sleep 600',
    "sh",
    Deno.execPath(),
    "run",
    "-q",
    "-N",
    "--allow-env=TERM",
    "client.ts",
    name,
    "--port",
    String(port),
  ], { width: 100, height: 30 });
}

/** client.ts piped, reconnecting up to 5 times after a loss. */
function pipedClient(name: string, port: number): Child {
  return new Child(Deno.execPath(), [
    "run",
    "-q",
    "-N",
    "client.ts",
    name,
    "--port",
    String(port),
    "--reconnect",
    "5",
  ], { stdin: true });
}

/** Types `text`, Tab, then `x`: the input shows what Tab made of it (nothing, or a completion). */
async function tab(terminal: Tmux, text: string, expected: RegExp): Promise<void> {
  await terminal.type(text, "Tab");
  await terminal.type("x");
  await terminal.waitFor(expected);
  await terminal.type("", "C-u");
}

Deno.test("terminal: operators marked @, the topic in bold, operator commands for Tab and /help only while an operator, and a kick ends the client", async () => {
  await using server = moderatedServer();
  const { port } = server.addr;
  await using alice = await logIn(port, "alice");
  await using bob = await TestClient.connect(port);
  await bob.expect(ANY_GREETING);
  await bob.send("bob");
  await readUntil(bob, /^\* Welcome, bob!/);
  await alice.send("/topic Be kind");
  await readUntil(bob, "* alice set the topic: Be kind");

  await using terminal = await terminalClient("dave", port);
  await terminal.waitFor(/Password for dave:$/m);
  await terminal.type(PASSWORD, "Enter");
  let screen = await terminal.waitFor(/# Topic: Be kind\n/);
  assert.match(screen, /- In the room: @alice, bob\n/);
  assert.match(screen, /Welcome, dave!.*\n.*# Topic: Be kind\n/);
  // A member: no operator command for Tab, nor in /help; names complete bare, without their @.
  await tab(terminal, "/ki", /\n> \/kix$/);
  await tab(terminal, "/msg al", /\n> \/msg alice x$/);
  await terminal.type("/to", "Tab");
  await terminal.waitFor(/\n> \/topic$/);
  await terminal.type("", "Enter");
  await terminal.waitFor(/# Topic: Be kind\n(.*\n)*.*# Topic: Be kind\n>/);
  await terminal.type("/help", "Enter");
  screen = await terminal.waitFor(/Ctrl\+C +clear the line/);
  assert.doesNotMatch(screen, /Operator commands|\/kick/);
  await terminal.type("/kick bob", "Enter"); // typed whole: the server says no, in one line
  await terminal.waitFor(/! \/kick is for operators only\n/);

  // Made an operator: Tab offers the operator commands, and /help lists them after the others.
  await alice.send("/op dave");
  await readUntil(alice, "* dave is now an operator (by alice)");
  await terminal.waitFor(/dave is now an operator \(by alice\)/);
  await terminal.type("/ki", "Tab");
  await terminal.type("bo", "Tab");
  await terminal.waitFor(/\n> \/kick bob$/);
  await terminal.type("spamming", "Enter");
  await readUntil(bob, "* error: You were kicked by dave: spamming");
  await terminal.waitFor(/bob was kicked by dave: spamming/);
  await tab(terminal, "/msg b", /\n> \/msg bx$/); // put out: Tab offers bob no more
  await terminal.type("", "C-l");
  await terminal.type("/help", "Enter");
  screen = await terminal.waitFor(/Ctrl\+C +clear the line/);
  assert.match(screen, /\/help +this list\n.*Operator commands:\n.*\/kick NAME \[REASON\]/);
  await alice.send("/topic lunch at noon");
  await terminal.waitFor(/# alice set the topic: lunch at noon/);

  // No longer one: Tab stops offering them. Then a kick ends the client, which does not rejoin.
  await alice.send("/deop dave");
  await terminal.waitFor(/dave is no longer an operator \(by alice\)/);
  await tab(terminal, "/ki", /\n> \/kix$/);
  await alice.send("/kick dave bye");
  await readUntil(alice, "* dave was kicked by alice: bye");
  screen = await terminal.waitFor(/^\[exit \d+\]$/m);
  assert.match(
    screen,
    /! You were kicked by alice: bye\nerror: You were kicked by alice: bye\n\[exit 1\]$/,
  );
  assert.doesNotMatch(screen, /reconnecting/);
});

/** Starts client.ts piped as `name` until the server lets it in (a timed ban ends by itself). */
async function joinWhenAllowed(name: string, port: number): Promise<Child> {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const client = pipedClient(name, port);
    // A refused client prints nothing on stdout: its line is the one on stderr.
    const first = await client.stdout.readLine().catch(() => "");
    if (first.startsWith("* The room contains:")) return client;
    const end = await client.finish();
    await client[Symbol.asyncDispose]();
    assert.match(end.stderr, /^error: You are banned until /);
    assert.ok(Date.now() < deadline, `${name} is still banned`);
    await new Promise((resolve) => setTimeout(resolve, 50)); // paced retries, not a wait for the end
  }
}

Deno.test("terminal: an operator's commands from the terminal, each answered on screen; a banned member's client ends, and joins again once a timed ban ends", async () => {
  await using server = moderatedServer();
  const { port } = server.addr;
  await using carl = await TestClient.connect(port);
  await carl.expect(ANY_GREETING);
  await carl.send("carl");
  await readUntil(carl, /^\* Welcome, carl!/);
  await using eve = pipedClient("eve", port);
  await readUntil(carl, "* eve has entered the room");

  await using terminal = await terminalClient("alice", port);
  await terminal.waitFor(/Password for alice:$/m);
  await terminal.type(PASSWORD, "Enter");
  await terminal.waitFor(/Welcome, alice!/);
  // The server tells an operator so after the welcome: Tab offers its commands from then on.
  await terminal.waitFor(/- You are an operator: \/help lists your commands\n/);
  await terminal.type("/ops", "Enter");
  await terminal.waitFor(/- 1 operator online: alice\n/);
  await terminal.type("/kick alice", "Enter");
  await terminal.waitFor(/! You cannot kick yourself\n/);

  await terminal.type("/ba", "Tab");
  await terminal.waitFor(/\n> \/ban$/);
  await terminal.type("ev", "Tab");
  await terminal.type("2s flooding", "Enter");
  const banned = new RegExp(`eve was banned by alice until ${UNTIL}: flooding`);
  await readUntil(carl, new RegExp(`^\\* ${banned.source}$`));
  await terminal.waitFor(banned);
  const end = await eve.finish();
  assert.equal(end.code, 1);
  assert.match(end.stderr, new RegExp(`^error: You are banned until ${UNTIL}: flooding\n$`));
  await terminal.type("/bans", "Enter");
  await terminal.waitFor(new RegExp(`- 1 ban:\n.*- eve by alice until ${UNTIL}: flooding\n`));
  await using _back = await joinWhenAllowed("eve", port);
  await terminal.waitFor(/eve has entered the room/);

  await terminal.type("/mute carl 1h shouting", "Enter");
  await readUntil(carl, new RegExp(`^\\* carl was muted by alice until ${UNTIL}: shouting$`));
  await terminal.waitFor(/carl was muted by alice until/);
  await carl.send("hello?");
  await readUntil(carl, /^\* error: You are muted until .*: your line was not sent$/);
  await terminal.type("/unmute carl", "Enter");
  await terminal.waitFor(/carl was unmuted by alice/);
  await terminal.type("/whois carl", "Enter");
  await terminal.waitFor(/- carl: from 127\.0\.0\.1, TCP, not registered, not an operator\n/);
  await terminal.type("/topic Be kind", "Enter");
  await terminal.waitFor(/# alice set the topic: Be kind\n/);
  await readUntil(carl, "* alice set the topic: Be kind");
});

Deno.test("client: kicked, or banned at a rejoin after a loss or at a first join, it says why in one line and exits 1 instead of reconnecting; a /nick refused by a ban ends nothing", async () => {
  const store = new MemoryModerationStore(["alice"]);
  let server = moderatedServer(store);
  const { port } = server.addr;
  try {
    {
      await using alice = await logIn(port, "alice");
      await using emil = pipedClient("Emil", port);
      await readUntil(alice, "* Emil has entered the room");
      await alice.send("/kick Emil bye");
      await readUntil(alice, "* Emil was kicked by alice: bye");
      const end = await emil.finish();
      assert.equal(end.code, 1);
      assert.match(end.stdout, /\n\* error: You were kicked by alice: bye\n$/);
      assert.equal(end.stderr, "error: You were kicked by alice: bye\n");
    }
    {
      // A /nick to a banned name is refused with the ban's line, but the member stays: so does
      // the client, which leaves at the end of its input as usual.
      await using alice = await logIn(port, "alice");
      await alice.send("/ban zed");
      await readUntil(alice, "* zed was banned by alice");
      await using emil = pipedClient("Emil", port);
      await readUntil(alice, "* Emil has entered the room");
      await emil.write("/nick ZED\nstill here\n");
      await readUntil(alice, "[Emil] still here");
      await emil.closeStdin();
      const end = await emil.finish();
      assert.equal(end.code, 0);
      assert.match(end.stdout, /\n\* error: You are banned\n/);
      assert.equal(end.stderr, "");
      await alice.send("/unban zed");
      await readUntil(alice, "* zed was unbanned by alice");
    }
    // Lost with the server, then banned before it comes back: the rejoin is refused, and ends it.
    await using emil = pipedClient("Emil", port);
    await emil.stdout.readUntil(/^\* Welcome, Emil!/);
    await server.close();
    await emil.stderr.readUntil("error: The server shut down: reconnecting");
    await store.addBan({
      target: "Emil",
      kind: "name",
      by: "alice",
      at: Date.now(),
      until: Date.now() + 3_600_000,
      reason: "flood",
    });
    server = moderatedServer(store, port);
    const end = await emil.finish(30_000);
    assert.equal(end.code, 1);
    assert.match(end.stderr, new RegExp(`^error: You are banned until ${UNTIL}: flood\n$`));
    // At a first join too, in any case of the name: one line, nothing on stdout.
    await using again = pipedClient("EMIL", port);
    const first = await again.finish();
    assert.equal(first.code, 1);
    assert.equal(first.stdout, "");
    assert.match(first.stderr, new RegExp(`^error: You are banned until ${UNTIL}: flood\n$`));
  } finally {
    await server.close();
  }
});

/** The roster as the page shows it: each entry's text, marks and all. */
function rosterEntries(page: Page): Promise<string[]> {
  return page.$$eval("#roster li", (items) => items.map((item) => item.textContent ?? ""));
}

/** The message field's value. */
function typed(page: Page): Promise<string> {
  return page.$eval("#line", (line) => (line as unknown as { value: string }).value);
}

/** The banner's text, once it shows. */
async function bannerText(page: Page, pattern: RegExp): Promise<string> {
  await page.waitForFunction(
    (source: string) =>
      new RegExp(source).test(
        (globalThis as unknown as PageGlobals).document.querySelector("#banner-text")
          ?.textContent ?? "",
      ),
    { timeout: DEADLINE_MS, polling: "mutation" },
    pattern.source,
  );
  return await page.$eval("#banner-text", (text) => text.textContent ?? "");
}

Deno.test("page: the topic in the header, operators marked @, operator commands for Tab only while an operator, and a kick or a ban ends it with a button to rejoin", async () => {
  await using site = Site.start({
    accounts: new FixedAccounts(ACCOUNTS),
    moderation: new MemoryModerationStore(["alice"]),
  });
  await using chromium = await Chromium.launch();
  await using alice = await logIn(site.port, "alice");
  await using bob = await TestClient.connect(site.port);
  await bob.expect(ANY_GREETING);
  await bob.send("bob");
  await readUntil(bob, /^\* Welcome, bob!/);
  await alice.send("/topic Be kind");
  await readUntil(bob, "* alice set the topic: Be kind");

  const page = await chromium.open(site.url);
  await page.click("#name"); // the greeting, read then, shows the password field
  await page.locator("#password").fill(PASSWORD);
  await joinPage(page, "dave");
  await page.waitForSelector("#topic:not([hidden])");
  assert.equal(await page.$eval("#topic", (topic) => topic.textContent), "Topic: Be kind");
  assert.deepEqual(await rosterEntries(page), ["dave (you)", "@alice", "bob"]);
  await waitForLine(page, "In the room: @alice, bob");
  // A member: Tab has no operator command to offer, and moves on as anywhere on the page.
  await page.focus("#line");
  await page.keyboard.type("/ki");
  await page.keyboard.press("Tab");
  assert.equal(await typed(page), "/ki");
  assert.equal(await page.evaluate("document.activeElement.textContent"), "Send");

  // Made an operator: Tab completes /kick, then a name, bare.
  await alice.send("/op dave");
  await waitForLine(page, "dave is now an operator (by alice)");
  assert.deepEqual(await rosterEntries(page), ["@dave (you)", "@alice", "bob"]);
  await page.focus("#line");
  await page.keyboard.press("Tab");
  assert.equal(await typed(page), "/kick ");
  await page.keyboard.type("b");
  await page.keyboard.press("Tab");
  await page.keyboard.type("spamming");
  await page.keyboard.press("Enter");
  await readUntil(bob, "* error: You were kicked by dave: spamming");
  await waitForLine(page, "bob was kicked by dave: spamming");
  // The topic changes in the header with the room's notices.
  await alice.send("/topic lunch at noon");
  await waitForLine(page, "alice set the topic: lunch at noon");
  assert.equal(await page.$eval("#topic-text", (text) => text.textContent), "lunch at noon");
  await alice.send("/topic -");
  await waitForLine(page, "alice cleared the topic");
  await page.waitForSelector("#topic", { hidden: true });

  // Kicked: the page says why and waits for the person, who may rejoin.
  await alice.send("/deop dave");
  await waitForLine(page, "dave is no longer an operator (by alice)");
  assert.deepEqual(await rosterEntries(page), ["dave (you)", "@alice"]);
  await alice.send("/kick dave bye");
  assert.equal(
    await bannerText(page, /kicked/),
    "Disconnected: You were kicked by alice: bye",
  );
  assert.equal(await page.$eval("#banner-button", (button) => button.textContent), "Rejoin");
  await page.click("#banner-button");
  await readUntil(alice, "* dave has entered the room");
  await waitForLine(page, "Reconnected");
  // Banned, with a reason that reads like a refusal that passes: the page still does not retry.
  await alice.send("/ban dave 1h Server is full of spam");
  assert.match(
    await bannerText(page, /banned/),
    new RegExp(`^Disconnected: You are banned until ${UNTIL}: Server is full of spam$`),
  );
  await page.click("#banner-button");
  assert.match(
    await bannerText(page, /Cannot rejoin/),
    new RegExp(`^Cannot rejoin as dave: You are banned until ${UNTIL}: Server is full of spam$`),
  );
  assert.deepEqual(chromium.errors.filter((error) => !/WebSocket/.test(error)), []);
});

Deno.test("page: an operator's commands from the page, each answered in the conversation; a member is refused in one line", async () => {
  await using site = Site.start({
    accounts: new FixedAccounts(ACCOUNTS),
    moderation: new MemoryModerationStore(["alice"]),
  });
  await using chromium = await Chromium.launch();
  await using carl = await TestClient.connect(site.port);
  await carl.expect(ANY_GREETING);
  await carl.send("carl");
  await readUntil(carl, /^\* Welcome, carl!/);
  const member = await chromium.open(site.url);
  await joinPage(member, "emil");
  await say(member, "/mute carl");
  await waitForLine(member, "/mute is for operators only");

  const page = await chromium.open(site.url);
  await page.click("#name"); // the greeting, read then, shows the password field
  await page.locator("#password").fill(PASSWORD);
  await joinPage(page, "alice");
  // The server tells an operator so after the welcome (the room list leaves the newcomer out).
  await waitForLine(page, "You are an operator");
  assert.deepEqual(await rosterEntries(page), ["@alice (you)", "carl", "emil"]);
  await page.focus("#line");
  await page.keyboard.type("/mu");
  await page.keyboard.press("Tab");
  await page.keyboard.type("ca");
  await page.keyboard.press("Tab");
  assert.equal(await typed(page), "/mute carl ");
  await page.keyboard.type("1h shouting");
  await page.keyboard.press("Enter");
  await readUntil(carl, new RegExp(`^\\* carl was muted by alice until ${UNTIL}: shouting$`));
  await waitForLine(member, "carl was muted by alice");
  await say(page, "/whois emil");
  await waitForLine(page, "emil: from 127.0.0.1, web, not registered, not an operator");
  await say(page, "/ban emil 1h trolling");
  await waitForLine(page, "emil was banned by alice");
  assert.match(
    await bannerText(member, /banned/),
    new RegExp(`^Disconnected: You are banned until ${UNTIL}: trolling$`),
  );
  await say(page, "/bans");
  await waitForLine(page, "emil by alice until");
  await say(page, "/unban emil");
  await waitForLine(page, "emil was unbanned by alice");
  await member.bringToFront(); // a tab in the background gets no clicks
  await member.click("#banner-button"); // lifted: the person rejoins by hand
  await waitForLine(member, "Reconnected");
  await say(page, "/kick alice");
  await waitForLine(page, "You cannot kick yourself");
  assert.deepEqual(chromium.errors.filter((error) => !/WebSocket/.test(error)), []);
});

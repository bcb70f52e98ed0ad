/**
 * The web page in a real Chromium (Debian's `chromium`, installed by .ci/packages.sh) driven by
 * puppeteer-core, beside raw TCP clients in the same room, and the page's own logic without one.
 *
 * puppeteer-core only connects here: the test starts Chromium itself as a child process, so that
 * it owns the process, its profile folder and its output, and closes all three on every path.
 * The test permission set grants `env` because puppeteer-core's `debug` dependency lists the
 * environment when it loads.
 */
import assert from "node:assert/strict";
import css from "../web/style.css" with { type: "text" };
import { NAME_COLORS, nameColor } from "../client/terminal.ts";
import { commandsOf, completions, reconnectDelay, Roster } from "../web/room.ts";
import {
  formatResume,
  HELP_LINES,
  nameColorSlot,
  OPERATOR_WELCOME,
  parseServerLine,
} from "../protocol.ts";
import type { Page } from "puppeteer-core";
import { hashPassword } from "../server/passwords.ts";
import { FixedAccounts } from "../server/operators_file.ts";
import {
  ANY_GREETING,
  Certificate,
  denoChild,
  joinAs,
  ROOT,
  run,
  startServerProcess,
  TestClient,
} from "./_helpers.ts";
import {
  Chromium,
  joinPage,
  lines,
  type PageGlobals,
  roster,
  say,
  waitForLine,
} from "./_browser.ts";
import { Folder } from "./_store.ts";
import { Site } from "./_websocket.ts";

// --- the page's own logic, without a browser ---

/** The hue of an RGB color, in degrees. */
function hue(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255) as [
    number,
    number,
    number,
  ];
  const max = Math.max(r, g, b);
  const span = max - Math.min(r, g, b);
  const h = max === r ? (g - b) / span : max === g ? 2 + (b - r) / span : 4 + (r - g) / span;
  return (h * 60 + 360) % 360;
}

/** The RGB of a 256-color palette index in its 6x6x6 cube. */
function xterm(index: number): string {
  const levels = [0, 95, 135, 175, 215, 255];
  const n = index - 16;
  return `#${
    [levels[Math.floor(n / 36)]!, levels[Math.floor(n / 6) % 6]!, levels[n % 6]!]
      .map((level) => level.toString(16).padStart(2, "0")).join("")
  }`;
}

Deno.test("the page shows each name in the hue the terminal client gives it, light and dark", () => {
  const schemes = [...css.matchAll(/--c(\d+): (#[0-9a-f]{6});/g)];
  assert.equal(schemes.length, 2 * NAME_COLORS.length); // light, then dark
  for (const [, slot, color] of schemes) {
    const terminal = hue(xterm(NAME_COLORS[Number(slot)]!));
    const distance = Math.abs(hue(color!) - terminal);
    assert.ok(Math.min(distance, 360 - distance) < 12, `slot ${slot}: ${color} and ${terminal}`);
  }
  for (let i = 0; i < 2000; i++) {
    const name = `${String.fromCharCode(65 + (i % 26))}user_${i.toString(36)}`;
    assert.equal(NAME_COLORS[nameColorSlot(name)], nameColor(name), name);
  }
});

Deno.test("Roster follows the room list, joins, leaves and renames, and nothing a user says", () => {
  const roster = new Roster();
  const feed = (line: string) => roster.apply(parseServerLine(line)!);
  feed("* The room contains: alice, bob");
  feed("* The room also contains: carol");
  assert.deepEqual(roster.names, ["alice", "bob", "carol"]);
  feed("* dave has entered the room");
  feed("* bob has left the room");
  feed("* carol has left the room: lunch");
  feed("* alice is now known as Alice2");
  feed("[mallory] * eve has entered the room");
  feed("* [mallory] has entered the room");
  feed("* dave has left the building");
  assert.deepEqual(roster.names, ["dave", "Alice2"]);
  feed("* dave has left the room (stopped reading)");
  assert.deepEqual(roster.names, ["Alice2"]);
  feed("* The room contains: ");
  assert.deepEqual(roster.names, []);
});

Deno.test("Roster knows who is an operator from the room list, /who and the notices, you included, and drops whom a kick or a ban put out", () => {
  let own = "Emil";
  const roster = new Roster(() => own);
  const feed = (line: string) => roster.apply(parseServerLine(line)!, line);
  feed("* The room contains: @alice, bob");
  assert.deepEqual(roster.names, ["alice", "bob"]);
  assert.ok(roster.isOperator("ALICE") && !roster.isOperator("bob"));
  assert.ok(!roster.isOperator("Emil"));
  feed("* 3 online: @alice, bob, @Emil");
  assert.deepEqual(roster.names, ["alice", "bob"]); // you are shown apart, first
  assert.ok(roster.isOperator("Emil"));
  // A rejoin's list leaves you out: whether you still are one, the server says after the welcome.
  feed("* The room contains: alice");
  assert.ok(!roster.isOperator("Emil"));
  assert.ok(feed(OPERATOR_WELCOME));
  assert.ok(roster.isOperator("Emil") && !roster.isOperator("alice"));
  assert.equal(feed("[mallory] * You are an operator: /help lists your commands"), false);
  assert.ok(feed("* bob is now an operator (by Emil)"));
  assert.ok(roster.isOperator("bob"));
  feed("* Emil is no longer an operator (by the server)");
  assert.ok(!roster.isOperator("Emil"));
  assert.equal(feed("[mallory] * mallory is now an operator (by Emil)"), false);
  assert.equal(feed("* [mallory] is now an operator (by Emil)"), false);
  assert.ok(!roster.isOperator("mallory"));
  feed("* carl has entered the room");
  assert.ok(feed("* carl was kicked by Emil: spam")); // the notice stands for carl's leave
  assert.ok(feed("* alice and carl were banned by Emil until 2026-12-07 10:00:00 UTC"));
  assert.deepEqual(roster.names, []);
  assert.equal(feed("* zed was banned by Emil"), false); // nobody the list had
  own = "Emil2";
  feed("* bob is now known as robert");
  assert.ok(!roster.isOperator("robert")); // a name is an operator, not a person: /who says
});

Deno.test("reconnectDelay doubles from about a second to at most 30 seconds", () => {
  assert.equal(reconnectDelay(0, 0.5), 1000);
  assert.equal(reconnectDelay(3, 0.5), 8000);
  assert.equal(reconnectDelay(20, 0.5), 30_000);
  assert.ok(reconnectDelay(20, 1) <= 37_500 && reconnectDelay(0, 0) >= 750);
});

Deno.test("completions offer the commands /help lists after a / that starts the line, and names in its arguments", () => {
  const commands = commandsOf(HELP_LINES);
  assert.deepEqual(commands.slice(0, 3), ["/who", "/nick", "/me"]);
  assert.ok(!commands.includes("//"));
  const names = ["Anna", "andreas", "bob"];
  assert.deepEqual(completions("/m", { commands, names }), {
    start: 0,
    candidates: ["/me", "/msg"],
  });
  assert.deepEqual(completions("/WH", { commands, names }), { start: 0, candidates: ["/who"] });
  assert.deepEqual(completions("/msg an", { commands, names }), {
    start: 5,
    candidates: ["andreas", "Anna"],
  });
  // Plain text and "//" complete nothing: Tab there moves the focus on, as anywhere on the page.
  assert.deepEqual(completions("an", { commands, names }).candidates, []);
  assert.deepEqual(completions("//m", { commands, names }).candidates, []);
  assert.deepEqual(completions("/x", { commands, names }).candidates, []);
});

// --- the page in a browser ---

Deno.test("page: two browser pages and a raw TCP client chat in one room, both ways", async () => {
  // A closed tab keeps its place for the grace, like a reload: short here, to hear it leave.
  await using site = Site.start({ resumeGraceMs: 300 });
  await using chromium = await Chromium.launch();
  await using tcp = await joinAs(site.port, "tcpuser");
  const anna = await chromium.open(site.url);
  await joinPage(anna, "Anna");
  await tcp.expect("* Anna has entered the room");
  const emil = await chromium.open(site.url);
  await joinPage(emil, "Emil");
  await tcp.expect("* Emil has entered the room");
  await waitForLine(anna, "Emil has entered the room");

  await say(anna, "hello from the browser");
  await tcp.expect("[Anna] hello from the browser");
  await waitForLine(emil, "hello from the browser");
  await tcp.send("hello from nc");
  await waitForLine(anna, "hello from nc");
  await waitForLine(emil, "hello from nc");
  await say(emil, "/me waves");
  await tcp.expect("* [Emil] waves");
  await say(anna, "/msg Emil psst");
  await waitForLine(emil, "psst");
  await waitForLine(anna, "psst");

  // Own lines are marked, each kind is styled apart, names carry their color slot.
  const own = await anna.$eval("#log li.own.user", (item) => item.textContent);
  assert.match(own ?? "", /Anna.*hello from the browser/);
  assert.equal(await emil.$$eval("#log li.action", (items) => items.length), 1);
  assert.equal(await emil.$$eval("#log li.private", (items) => items.length), 1);
  const slot = await anna.$eval(
    "#log li.user:not(.own) .name",
    (name) => [...name.classList].find((c) => /^c\d+$/.test(c)),
  );
  assert.equal(slot, `c${nameColorSlot("tcpuser")}`);
  // The time shows hours and minutes today; its tooltip has the full date.
  const tooltip = await anna.$eval("#log li.user:not(.own) time", (time) => time.title);
  assert.match(tooltip, new RegExp(`\\b${new Date().getFullYear()}\\b`));

  // Who is online follows joins, renames and leaves.
  assert.deepEqual((await roster(anna)).sort(), ["Anna", "Emil", "tcpuser"]);
  await tcp.send("/nick tcp2");
  await tcp.expect("* tcpuser is now known as tcp2");
  await waitForLine(anna, "tcpuser is now known as tcp2");
  assert.deepEqual((await roster(anna)).sort(), ["Anna", "Emil", "tcp2"]);
  await emil.close();
  await tcp.expect("* Emil has left the room");
  await waitForLine(anna, "Emil has left the room");
  assert.deepEqual((await roster(anna)).sort(), ["Anna", "tcp2"]);
  // New lines are announced to screen readers.
  assert.deepEqual(
    await anna.$eval("#log", (log) => [log.getAttribute("role"), log.getAttribute("aria-live")]),
    ["log", "polite"],
  );
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: names and messages with markup show as text and never run", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  await using tcp = await joinAs(site.port, "mallory");
  const page = await chromium.open(site.url);
  const dialogs: string[] = [];
  page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  await joinPage(page, "victim");
  await tcp.expect("* victim has entered the room");
  const hostile = [
    "<script>window.pwned = 1; alert(1)</script>",
    '<img src=x onerror="window.pwned = 2; alert(2)">',
    "javascript:alert(3)",
    '<a href="javascript:window.pwned=4">click me</a>',
    "&lt;b&gt;not bold&lt;/b&gt; <b>nor this</b>",
    '"><svg onload=alert(5)>',
    "<iframe src=javascript:alert(6)></iframe>",
  ];
  for (const text of hostile) await tcp.send(text);
  await tcp.send("/me <img src=x onerror=alert(7)>");
  await tcp.send("/msg victim <script>alert(8)</script>");
  await tcp.send("/quit <img src=x onerror=alert(9)>");
  await waitForLine(page, "has left the room: <img src=x onerror=alert(9)>");
  const shown = await lines(page);
  for (const text of hostile) {
    assert.ok(shown.some((line) => line.endsWith(`mallory${text}`)), `${text} in ${shown}`);
  }
  assert.ok(shown.some((line) => line.endsWith("mallory<img src=x onerror=alert(7)>")));
  assert.ok(shown.some((line) => line.endsWith("<script>alert(8)</script>")));
  const elements = await page.$$eval(
    "#log *",
    (all) => [...new Set(all.map((element) => element.tagName.toLowerCase()))].sort(),
  );
  assert.deepEqual(elements, ["li", "span", "time"]);
  assert.equal(await page.evaluate("typeof window.pwned"), "undefined");
  assert.deepEqual(dialogs, []);
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: shows the server's own error for a bad or taken name, then joins", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  await using tcp = await joinAs(site.port, "taken");
  const page = await chromium.open(site.url);
  const tryName = async (name: string) => {
    await page.locator("#name").fill(name);
    await page.keyboard.press("Enter");
    const error = await page.waitForFunction(
      () => {
        const shown = (globalThis as unknown as PageGlobals).document.querySelectorAll(
          "#join-error",
        );
        return [...shown][0]?.textContent || undefined;
      },
      { polling: "mutation" },
    );
    return String(await error.jsonValue());
  };
  assert.equal(
    await tryName("bad name!"),
    'Cannot accept name "bad name!": use only ASCII letters, digits, "_" and "-"',
  );
  assert.match(await tryName("TAKEN"), /^Cannot accept name "TAKEN": .*taken/);
  await joinPage(page, "fresh");
  await tcp.expect("* fresh has entered the room");
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: keyboard alone joins, sends, recalls lines, completes commands, and jumps to new messages", async () => {
  await using site = Site.start({ floodRate: 0 });
  await using chromium = await Chromium.launch();
  await using tcp = await joinAs(site.port, "tcp");
  const page = await chromium.open(site.url, { height: 400 });
  // The name field has the focus from the start: type, Enter.
  await page.keyboard.type("keys");
  await page.keyboard.press("Enter");
  await waitForLine(page, "Welcome, keys!");
  await tcp.expect("* keys has entered the room");
  // The input has the focus once joined.
  await page.keyboard.type("first line");
  await page.keyboard.press("Enter");
  await tcp.expect("[keys] first line");
  await page.keyboard.type("second line");
  await page.keyboard.press("Enter");
  await tcp.expect("[keys] second line");
  await page.keyboard.press("ArrowUp");
  await page.keyboard.press("ArrowUp");
  await page.keyboard.press("Enter");
  await tcp.expect("[keys] first line");
  // After a / that starts the line, Tab completes a command, then a name in its arguments.
  await page.keyboard.type("/ms");
  await page.keyboard.press("Tab");
  assert.equal(await page.$eval("#line", (line) => line.value), "/msg ");
  await page.keyboard.type("t");
  await page.keyboard.press("Tab");
  await page.keyboard.type("psst");
  await page.keyboard.press("Enter");
  await tcp.expect("* private from keys: psst");
  await page.keyboard.type("/m");
  await page.keyboard.press("Tab");
  await page.keyboard.press("Tab"); // again: the next match
  assert.equal(await page.$eval("#line", (line) => line.value), "/msg ");
  await page.keyboard.down("Control");
  await page.keyboard.press("a");
  await page.keyboard.up("Control");
  await page.keyboard.press("Backspace");
  // On plain text, Tab reaches the send button.
  await page.keyboard.type("by button");
  await page.keyboard.press("Tab");
  assert.equal(await page.evaluate("document.activeElement.textContent"), "Send");
  await page.keyboard.press("Enter");
  await tcp.expect("[keys] by button");

  // Scrolled up, new lines do not move the view: a button says how many came, and takes you down.
  for (let i = 0; i < 40; i++) await tcp.send(`filler ${i}`);
  await waitForLine(page, "filler 39");
  await page.$eval("#log", (log) => log.scrollTop = 0);
  await tcp.send("while you read above");
  await waitForLine(page, "while you read above");
  await page.waitForSelector("#new-messages:not([hidden])");
  assert.equal(await page.$eval("#log", (log) => log.scrollTop), 0);
  assert.equal(await page.$eval("#new-messages", (button) => button.textContent), "1 new ↓");
  await page.focus("#new-messages");
  await page.keyboard.press("Enter");
  await page.waitForSelector("#new-messages", { hidden: true });
  const gap = await page.$eval(
    "#log",
    (log) => log.scrollHeight - log.scrollTop - log.clientHeight,
  );
  assert.ok(gap < 2, `scrolled to the newest line (${gap} px short)`);
  // At the bottom, the view follows new lines by itself.
  await tcp.send("follows");
  await waitForLine(page, "follows");
  const after = await page.$eval(
    "#log",
    (log) => log.scrollHeight - log.scrollTop - log.clientHeight,
  );
  assert.ok(after < 2);
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: counts unread lines in the tab title while the tab is hidden", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  await using tcp = await joinAs(site.port, "tcp");
  const page = await chromium.open(site.url);
  await joinPage(page, "reader");
  await tcp.expect("* reader has entered the room");
  const title = () => page.evaluate("document.title");
  assert.equal(await title(), "chat");
  const other = await chromium.open("about:blank");
  await other.bringToFront();
  assert.equal(await page.evaluate("document.hidden"), true);
  await tcp.send("one");
  await tcp.send("/me two");
  await tcp.send("/msg reader three");
  await tcp.send("/nick tcp2"); // not a message: not counted
  await waitForLine(page, "tcp is now known as tcp2");
  assert.equal(await title(), "@1 (2) chat"); // a private message counts as a mention
  await page.bringToFront();
  await page.waitForFunction(
    () => (globalThis as unknown as PageGlobals).document.title === "chat",
    { polling: 100 },
  );
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: at 375 px wide nothing scrolls sideways, whatever the names and words", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  const longName = "N".repeat(32);
  await using tcp = await joinAs(site.port, longName);
  const page = await chromium.open(site.url, { width: 375, height: 667 });
  const overflow = () =>
    page.evaluate(() => {
      const { document, innerWidth } = globalThis as unknown as PageGlobals;
      return document.scrollingElement!.scrollWidth - innerWidth;
    });
  assert.ok(await overflow() <= 0, "the name prompt fits");
  await joinPage(page, "W".repeat(32));
  await tcp.send("x".repeat(3000));
  await tcp.send(`https://example.com/${"a/".repeat(200)}`);
  await tcp.send(`/me ${"ü".repeat(500)}`);
  await tcp.send(`/msg ${"W".repeat(32)} ${"long".repeat(300)}`);
  await waitForLine(page, "longlong");
  assert.ok(await overflow() <= 0, `overflow of ${await overflow()} px`);
  const logOverflow = await page.$eval("#log", (log) => log.scrollWidth - log.clientWidth);
  assert.ok(logOverflow <= 0, `the conversation overflows by ${logOverflow} px`);
  assert.deepEqual(chromium.errors, []);
});

/** In the page: the WCAG contrast of every visible text against what is behind it, worst first. */
const CONTRAST_SCRIPT = `(() => {
  const rgb = (color) => color.match(/[\\d.]+/g).map(Number);
  const channel = (value) => {
    const c = value / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const luminance = ([r, g, b]) => 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b);
  const background = (element) => {
    for (let at = element; at; at = at.parentElement) {
      const color = rgb(getComputedStyle(at).backgroundColor);
      if (color[3] === undefined || color[3] > 0) return color.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const results = [];
  for (const element of document.querySelectorAll("body *")) {
    const own = [...element.childNodes].some((node) => node.nodeType === 3 && node.textContent.trim());
    if (!own || element.closest("[hidden]") || element.closest(".visually-hidden")) continue;
    const style = getComputedStyle(element);
    const [a, b] = [luminance(rgb(style.color)), luminance(background(element))];
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    results.push({ ratio, text: element.textContent.slice(0, 30), className: element.className });
  }
  return results.sort((x, y) => x.ratio - y.ratio);
})()`;

Deno.test("page: every text passes WCAG AA contrast in the light and the dark scheme", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  // A name in each of the twelve colors, and one line of each kind.
  const names: string[] = [];
  for (let i = 0; names.length < 12; i++) {
    if (!names.some((name) => nameColorSlot(name) === nameColorSlot(`n${i}`))) names.push(`n${i}`);
  }
  const clients = await Promise.all(names.map((name) => joinAs(site.port, name)));
  try {
    await clients[0]!.send("said before");
    for (const dark of [false, true]) {
      const page = await chromium.open(site.url, { dark });
      const me = dark ? "night" : "day";
      await joinPage(page, me);
      for (const client of clients) await client.send(`hello from ${client === clients[0]}`);
      await clients[1]!.send("/me acts");
      await clients[2]!.send(`/msg ${me} private`);
      await say(page, "my own line");
      await say(page, "/nosuchcommand");
      await waitForLine(page, "Unknown command");
      await waitForLine(page, "private");
      const results = await page.evaluate(CONTRAST_SCRIPT) as {
        ratio: number;
        text: string;
        className: string;
      }[];
      assert.ok(results.length > 30);
      const worst = results[0]!;
      assert.ok(
        worst.ratio >= 4.5,
        `${dark ? "dark" : "light"}: ${
          worst.ratio.toFixed(2)
        } for "${worst.text}" (${worst.className})`,
      );
      const slots = await page.$$eval(
        "#log .name",
        (tags) => new Set(tags.map((tag) => tag.className)).size,
      );
      assert.ok(slots >= 12, `${slots} colors shown`);
    }
  } finally {
    for (const client of clients) client.close();
  }
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: reconnects by itself after the server restarts, and rejoins with the same name", async () => {
  await using chromium = await Chromium.launch();
  let server = await startServerProcess(["--web", "127.0.0.1:0"]);
  try {
    const webLine = await server.child.stdout.readUntil(/^web page on /);
    const url = /http:\/\/127\.0\.0\.1:\d+\//.exec(webLine)![0];
    const webPort = Number(new URL(url).port);
    const page = await chromium.open(url);
    const requests: string[] = [];
    page.on("request", (request) => requests.push(request.url()));
    await joinPage(page, "phoenix");
    {
      await using tcp = await joinAs(server.port, "watcher");
      await waitForLine(page, "watcher has entered the room");
      await tcp.send("before the restart");
      await waitForLine(page, "before the restart");
    }
    server.child.process.kill("SIGTERM");
    await server.child.finish();
    await server.child[Symbol.asyncDispose]();
    await page.waitForSelector("#banner:not([hidden])");
    const banner = await page.$eval("#banner-text", (text) => text.textContent);
    assert.match(banner ?? "", /^The server shut down\. Reconnecting as phoenix/);
    // The same ports again, as a restarted server would have them.
    server = await startServerProcess(
      ["--port", String(server.port), "--web", `127.0.0.1:${webPort}`],
      [`--allow-net=127.0.0.1:${server.port},127.0.0.1:${webPort}`],
    );
    await using tcp = await joinAs(server.port, "watcher2");
    await tcp.expect("* phoenix has entered the room", 40_000);
    await page.waitForSelector("#banner", { hidden: true });
    await waitForLine(page, "Reconnected");
    await tcp.send("after the restart");
    await waitForLine(page, "after the restart");
    await say(page, "I am back");
    await tcp.expect("[phoenix] I am back");
    assert.ok(requests.every((request) => request.startsWith(url)), requests.join(", "));
  } finally {
    await server.child[Symbol.asyncDispose]();
  }
  assert.deepEqual(
    chromium.errors.filter((error) => !/WebSocket|ERR_CONNECTION_REFUSED/.test(error)),
    [],
  );
});

Deno.test("page: closed by the server for its rules, it says why and offers to rejoin rather than rejoin by itself", async () => {
  await using site = Site.start({ idleTimeoutMs: 1000 });
  await using chromium = await Chromium.launch();
  const page = await chromium.open(site.url);
  await joinPage(page, "calm");
  // Silent for a second: the server closes it for idling. Rejoining by itself would only be
  // closed again, so the page waits for the person: the banner says why and offers to rejoin.
  await page.waitForSelector("#banner:not([hidden])");
  const banner = await page.$eval("#banner-text", (text) => text.textContent);
  assert.equal(banner, "Disconnected: Closed after 1 seconds without a line");
  assert.equal(await page.$eval("#banner-button", (button) => button.textContent), "Rejoin");
  await page.click("#banner-button"); // the person rejoins (and has a second to speak again)
  await waitForLine(page, "Reconnected"); // in the room again, the banner gone
  assert.deepEqual(chromium.errors.filter((error) => !/WebSocket/.test(error)), []);
});

Deno.test("page screenshot for the README, taken in the tests' browser", async () => {
  await using site = Site.start();
  await using chromium = await Chromium.launch();
  await using alice = await joinAs(site.port, "alice");
  await alice.send("anyone up for lunch?");
  await using bob = await joinAs(site.port, "bob");
  await alice.expect("* bob has entered the room");
  const page = await chromium.open(site.url, { width: 900, height: 520 });
  await joinPage(page, "Emil");
  await alice.expect("* Emil has entered the room");
  await alice.send("hi Emil, the terminal says hello");
  await bob.send("/me waves from nc");
  await alice.expect("* [bob] waves from nc");
  await say(page, "hello from the browser!");
  await alice.expect("[Emil] hello from the browser!");
  await alice.send("/msg Emil noodles at noon?");
  await waitForLine(page, "noodles at noon?");
  await say(page, "/msg alice yes!");
  await waitForLine(page, "yes!");
  const png = await page.screenshot({ type: "png" });
  assert.deepEqual([...png.subarray(0, 4)], [0x89, 0x50, 0x4e, 0x47]);
  // `deno task screenshot` may write it; the test suite itself writes nothing.
  const path = `${ROOT}web/screenshot.png`;
  if ((await Deno.permissions.query({ name: "write", path })).state === "granted") {
    await Deno.writeFile(path, png);
  }
  assert.deepEqual(chromium.errors, []);
});

Deno.test("with --cert and --key the page is served over HTTPS and joins over WSS", async () => {
  await using certificate = await Certificate.make();
  const { cert, key } = certificate;
  const { child, port } = await startServerProcess(
    ["--cert", cert, "--key", key, "--web", "127.0.0.1:0"],
    ["--allow-net=127.0.0.1:0", `--allow-read=${cert},${key}`],
  );
  await using _ = child;
  const line = await child.stdout.readUntil(/^web page on /);
  const url = /https:\/\/127\.0\.0\.1:\d+\//.exec(line)?.[0];
  assert.ok(url, line);
  using client = Deno.createHttpClient({ caCerts: [certificate.pem] });
  const response = await fetch(url, { client });
  assert.match(response.headers.get("content-security-policy") ?? "", /default-src 'self'/);
  await response.body?.cancel();
  // The browser is told to accept the test's own certificate, as a person would click through.
  await using chromium = await Chromium.launch(["--ignore-certificate-errors"]);
  const page = await chromium.open(url);
  await joinPage(page, "secure");
  await using tls = await Deno.connectTls({
    hostname: "127.0.0.1",
    port,
    caCerts: [certificate.pem],
  });
  const tcp = new TestClient(tls);
  await tcp.expect(/^\* Welcome to chat/);
  await tcp.send("tlsuser");
  await waitForLine(page, "tlsuser has entered the room");
  await say(page, "over wss");
  for (
    let line = await tcp.readLine();
    line !== "[secure] over wss";
    line = await tcp.readLine()
  );
  tcp.close();
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: /register takes the password in a password field, and joining as a registered name asks for it", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startServerProcess(
    ["--store", folder.file, "--web", "127.0.0.1:0"],
    folder.permissions,
  );
  await using _server = child;
  const url = /^web page on (\S+)$/.exec(await child.stdout.readUntil(/^web page on /))![1]!;
  await using chromium = await Chromium.launch();
  await using bob = await joinAs(port, "bob");
  const page = await chromium.open(url);
  // Loopback over HTTP: no warning about passwords in clear.
  assert.equal(await page.$eval("#password-hint", (hint) => hint.hidden), true);
  await joinPage(page, "alice");
  await say(page, "/register");
  await page.waitForSelector("#line[type=password]");
  await say(page, "correct horse battery");
  await waitForLine(page, "alice is registered: joining as alice now asks for its password");
  assert.equal(await page.$eval("#line", (line) => line.type), "text");
  await say(page, "after registering");
  await bob.expect("* alice has entered the room");
  await bob.expect("[alice] after registering"); // and nothing of the password before it
  assert.ok(!(await lines(page)).some((line) => line.includes("correct horse")));
  // A second page as alice: asked for the password, then let in (and the first page is replaced).
  const second = await chromium.open(url);
  await second.locator("#name").fill("alice");
  await second.keyboard.press("Enter");
  await second.waitForFunction(
    () =>
      [...(globalThis as unknown as PageGlobals).document.querySelectorAll("#join-error")][0]
        ?.textContent === "alice is registered: type its password",
    { polling: "mutation" },
  );
  // A wrong password: said, and the cursor stays in the password field, to type it again.
  await second.locator("#password").fill("a wrong guess");
  await second.keyboard.press("Enter");
  await second.waitForFunction(
    () => {
      const document = (globalThis as unknown as PageGlobals).document;
      return document.querySelector("#join-error")?.textContent === 'Wrong password for "alice"' &&
        document.activeElement?.id === "password";
    },
    { polling: "mutation" },
  );
  await second.locator("#password").fill("correct horse battery");
  await second.keyboard.press("Enter");
  await second.waitForSelector("#chat:not([hidden])");
  await waitForLine(second, "Welcome, alice!");
  // The first page says why it left, and takes the name back only when asked to.
  await page.waitForFunction(
    () => {
      const document = (globalThis as unknown as PageGlobals).document;
      return document.querySelector("#banner-text")?.textContent ===
          "You logged in as alice from elsewhere, so this page left the room." &&
        document.querySelector("#banner-button")?.textContent === "Take it back";
    },
    { polling: "mutation" },
  );
  await page.bringToFront();
  await page.click("#banner-button");
  await page.waitForFunction(
    () =>
      (globalThis as unknown as PageGlobals).document.querySelector("#join-error")
        ?.textContent === "alice is registered: type its password",
    { polling: "mutation" },
  );
  assert.deepEqual(chromium.errors, []);
});

Deno.test("page: over HTTP from an address that is not loopback, it warns that a password crosses in clear", async () => {
  const interfaces = await run("ip", ["-4", "-o", "addr", "show", "scope", "global"]);
  const address = /\binet (\d+\.\d+\.\d+\.\d+)\//.exec(interfaces)?.[1];
  if (!address) {
    throw new Error(`This test needs an IPv4 address other than loopback:\n${interfaces}`);
  }
  // The server on every address, so that the page can be loaded from this machine's network one.
  await using server = denoChild([
    "run",
    "-q",
    "--allow-net=0.0.0.0:0",
    "main.ts",
    "server",
    "--host",
    "0.0.0.0",
    "--port",
    "0",
    "--web",
    "0.0.0.0:0",
  ]);
  const line = await server.stdout.readUntil(/^web page on /);
  const port = /^web page on http:\/\/0\.0\.0\.0:(\d+)\//.exec(line)![1]!;
  await using chromium = await Chromium.launch();
  const page = await chromium.open(`http://${address}:${port}/`);
  assert.equal(await page.$eval("#password-hint", (hint) => hint.hidden), false);
  const local = await chromium.open(`http://localhost:${port}/`);
  assert.equal(await local.$eval("#password-hint", (hint) => hint.hidden), true);
  // Chromium's own notice that an HTTP origin other than localhost gets no COOP: that is the point.
  const coop = /^The Cross-Origin-Opener-Policy header has been ignored/;
  assert.deepEqual(chromium.errors.filter((error) => !coop.test(error)), []);
});

/** What the page keeps in session storage for its place (`chat.resume`), if anything. */
function keptPlace(page: Page): Promise<string | null> {
  return page.evaluate(() =>
    (globalThis as unknown as { sessionStorage: { getItem(key: string): string | null } })
      .sessionStorage.getItem("chat.resume")
  );
}

Deno.test("page: a reload comes back to the same place: the room hears no leave, and a registered name is not asked its password", async () => {
  const password = "correct horse battery";
  await using site = Site.start({
    accounts: new FixedAccounts([await hashPassword("rita", password)]),
  });
  await using chromium = await Chromium.launch();
  await using tcp = await joinAs(site.port, "watcher");
  const page = await chromium.open(site.url);
  await page.locator("#name").fill("rita");
  await page.locator("#password").fill(password);
  await page.keyboard.press("Enter");
  await waitForLine(page, "Welcome, rita!");
  await tcp.expect("* rita has entered the room");
  // What the tab keeps is the server's token, never the password.
  const kept = JSON.parse((await keptPlace(page))!);
  assert.equal(kept.name, "rita");
  assert.match(kept.token, /^[A-Za-z0-9_-]{24}$/);
  assert.ok(!JSON.stringify(kept).includes(password));
  assert.ok(!(await lines(page)).some((line) => line.includes(kept.token)), "the token is shown");

  await page.reload();
  await page.waitForSelector("#chat:not([hidden])");
  await waitForLine(page, "Resumed: the room did not see you leave");
  assert.equal(await page.$eval("#password", (field) => field.value), ""); // nothing to type
  await say(page, "after the reload");
  // The watcher's next line is rita's: no leave and no join came between.
  await tcp.expect("[rita] after the reload");
  assert.notEqual(JSON.parse((await keptPlace(page))!).token, kept.token, "a new token each time");
  assert.deepEqual(chromium.errors.filter((error) => !/WebSocket/.test(error)), []);
});

Deno.test("page: a token is useless after its grace period and after /quit", async () => {
  await using site = Site.start({ resumeGraceMs: 500 });
  await using chromium = await Chromium.launch();
  await using tcp = await joinAs(site.port, "watcher");

  // Past the grace: the room hears the leave, and the tab's token joins anew (the room hears it).
  const first = await chromium.open(site.url);
  await joinPage(first, "gus");
  await tcp.expect("* gus has entered the room");
  const kept = (await keptPlace(first))!;
  await first.close();
  await tcp.expect("* gus has left the room");
  const second = await chromium.open(site.url);
  await second.evaluate(
    (value: string) =>
      (globalThis as unknown as { sessionStorage: { setItem(key: string, value: string): void } })
        .sessionStorage.setItem("chat.resume", value),
    kept,
  );
  await second.reload();
  await waitForLine(second, "Welcome, gus!");
  await tcp.expect("* gus has entered the room");
  assert.ok(!(await lines(second)).some((line) => line.startsWith("Resumed")));

  // After /quit: the room hears it at once, the tab forgets its place, and the token is dead.
  const token = JSON.parse((await keptPlace(second))!).token;
  await say(second, "/quit");
  await tcp.expect("* gus has left the room");
  await second.waitForSelector("#banner:not([hidden])");
  assert.equal(await keptPlace(second), null);
  await using raw = await TestClient.connect(site.port);
  await raw.expect(ANY_GREETING);
  await raw.send(formatResume("gus", token));
  await raw.expect("* Could not resume gus: that place is no longer kept; joining anew");
  await second.reload(); // nothing kept: the join form, not a join
  await second.waitForSelector("#join:not([hidden])");
  assert.deepEqual(chromium.errors.filter((error) => !/WebSocket/.test(error)), []);
});

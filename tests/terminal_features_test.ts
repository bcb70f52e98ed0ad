/**
 * The terminal client's features for people who live in it (issue 29), at a real terminal (tmux):
 * mentions and the bell, /r, /ignore, storms of joins folded, and days across a midnight.
 */
import assert from "node:assert/strict";

import { joinAs, startServerProcess } from "./_helpers.ts";

import { CLIENT_HELP, commandsOf } from "../client/terminal.ts";
import { count, FakeClock, rawOutput, readUntil, room, terminalClient } from "./_terminal.ts";

Deno.test("terminal: a line saying your name, or a private one, is highlighted, rings the bell once and is counted until a key; --no-bell is quiet", async () => {
  const { server, clients: [alice] } = await room({}, "alice");
  await using _server = server;
  await using _alice = alice!;
  await using terminal = await terminalClient("Emil", server.addr.port);
  await alice!.expect("* Emil has entered the room");
  await terminal.waitFor(/^> ?$/m);
  const output = await rawOutput(terminal);
  await alice!.send("emily is not you, nor is xemil");
  await terminal.waitFor(/\[alice\] emily is not you/);
  await alice!.send("hi EMIL, look");
  await terminal.waitFor(/^\(1 mention\) > ?$/m);
  await alice!.send("/msg Emil psst");
  await terminal.waitFor(/^\(2 mentions\) > ?$/m);
  const screen = await terminal.screen({ escapes: true });
  const line = (text: string) => screen.split("\n").find((row) => row.includes(text))!;
  assert.ok(line("hi EMIL").includes("\x1b[7m"), line("hi EMIL"));
  assert.ok(line("psst").includes("\x1b[7m"), line("psst"));
  assert.ok(!line("emily is not you").includes("\x1b[7m"), line("emily is not you"));
  await terminal.type("x");
  await terminal.waitFor(/^> x$/m);
  const raw = await output.bytes();
  assert.equal(raw.split("\x07").length - 1, 2, JSON.stringify(raw)); // once for each mention

  // Renames on either side: a private line from alice renamed is a mention still, and after the
  // user's own /nick the new name is the one that counts.
  await alice!.send("/nick alicia");
  await terminal.waitFor(/alice is now known as alicia/);
  await alice!.send("/msg Emil still me");
  await terminal.waitFor(/^\(1 mention\) > x$/m);
  await terminal.type("", "BSpace");
  await terminal.type("/nick Emilio", "Enter");
  await readUntil(alice!, "* Emil is now known as Emilio");
  await alice!.send("is emil here?");
  await alice!.send("emilio, there you are");
  await terminal.waitFor(/there you are[^]*^\(1 mention\) > ?$/m);
  const renamed = await terminal.screen({ escapes: true });
  const row = (text: string) => renamed.split("\n").find((line) => line.includes(text))!;
  assert.ok(row("still me").includes("\x1b[7m"), row("still me"));
  assert.ok(row("there you are").includes("\x1b[7m"), row("there you are"));
  assert.ok(!row("is emil here").includes("\x1b[7m"), row("is emil here"));

  await using quiet = await terminalClient("Anna", server.addr.port, { args: ["--no-bell"] });
  await readUntil(alice!, "* Anna has entered the room");
  await quiet.waitFor(/^> ?$/m);
  const quietOutput = await rawOutput(quiet);
  await alice!.send("anna: hello");
  await quiet.waitFor(/^\(1 mention\) > ?$/m);
  assert.ok(!(await quietOutput.bytes()).includes("\x07"));
});

Deno.test("terminal: /r answers the last private message, following a rename; before one, a clear error and nothing sent", async () => {
  assert.ok(commandsOf(CLIENT_HELP).includes("/r")); // Tab completes it after /
  const { server, clients: [alice, bob] } = await room({}, "alice", "bob");
  await using _server = server;
  await using _alice = alice!;
  await using _bob = bob!;
  await using terminal = await terminalClient("Emil", server.addr.port);
  await readUntil(alice!, "* Emil has entered the room");
  await terminal.type("/r too soon", "Enter");
  await terminal.waitFor(/! No private message to answer yet: \/r answers the last one/);
  await alice!.send("/msg Emil are you there?");
  await terminal.waitFor(/\[alice -> you\] are you there\?/);
  await alice!.send("/nick alicia");
  await terminal.waitFor(/alice is now known as alicia/);
  await terminal.type("/r here", "Enter");
  await readUntil(alice!, "* private from Emil: here");
  await bob!.send("/msg Emil hi from bob");
  await bob!.send("/msg Emil a second one");
  await terminal.waitFor(/a second one/);
  await terminal.type("/r yes bob", "Enter");
  await readUntil(bob!, "* private from Emil: yes bob");
  await terminal.type("said aloud", "Enter");
  await readUntil(alice!, "[Emil] said aloud"); // "/r too soon" never reached the room
});

Deno.test("terminal: /ignore hides a member's lines, live and from history, following a rename, until /unignore; /ignored lists them", async () => {
  const { server, clients: [alice, bob] } = await room({}, "alice", "bob");
  await using _server = server;
  await using _alice = alice!;
  await using _bob = bob!;
  await bob!.send("bob before Emil");
  await using terminal = await terminalClient("Emil", server.addr.port);
  await readUntil(alice!, "* Emil has entered the room");
  await terminal.waitFor(/\| \[bob\] bob before Emil/);
  for (const commandLine of ["/ignore", "/ignore Emil", "/ignore b@d", "/unignore carol"]) {
    await terminal.type(commandLine, "Enter");
  }
  await terminal.waitFor(/! carol is not ignored/);
  await terminal.type("/ignore BOB", "Enter");
  await terminal.waitFor(/- Ignoring BOB for this session/);
  await bob!.send("hidden line");
  await bob!.send("/me hidden action");
  await bob!.send("/msg Emil hidden private");
  await bob!.send("/nick robert");
  await bob!.send("hidden after the rename");
  await alice!.send("alice is shown");
  let screen = await terminal.waitFor(/\[alice\] alice is shown/);
  assert.match(screen, /! Usage: \/ignore NAME/);
  assert.match(screen, /! You cannot ignore yourself/);
  assert.match(screen, /! Cannot accept name "b@d"/);
  assert.match(screen, /bob is now known as robert/);
  assert.doesNotMatch(screen, /hidden/);
  await terminal.type("/ignored", "Enter");
  await terminal.waitFor(/- Ignored: robert$/m);
  await terminal.type("/unignore robert", "Enter");
  await terminal.waitFor(/- No longer ignoring robert/);
  await bob!.send("shown again");
  screen = await terminal.waitFor(/\[robert\] shown again/);
  assert.doesNotMatch(screen, /hidden/);
  await terminal.type("/ignored", "Enter");
  await terminal.waitFor(/- Nobody is ignored/);
  await terminal.type("/ignore alice", "Enter");
  await terminal.waitFor(/- Ignoring alice/);
  await terminal.type("still mine", "Enter");
  await readUntil(alice!, "[Emil] still mine"); // the commands never reached the room
  await readUntil(bob!, "[Emil] still mine");
  assert.doesNotMatch(await terminal.screen(), /Unknown command/);
});

Deno.test("terminal: a storm of 50 joins is folded after the first; leaves fold when the second ends; a few stay apart", async () => {
  const { server, clients: [alice] } = await room({}, "alice");
  await using _server = server;
  await using _alice = alice!;
  await using terminal = await terminalClient("Emil", server.addr.port);
  await alice!.expect("* Emil has entered the room");
  await terminal.waitFor(/^> ?$/m);
  // 50 members join at once, as after a restart or a heal: the room tells each join.
  const names = Array.from({ length: 50 }, (_, i) => `user${i}`);
  const storm = await Promise.all(names.map((name) => joinAs(server.addr.port, name)));
  try {
    await alice!.send("after the storm");
    let screen = await terminal.waitFor(/\[alice\] after the storm/);
    // Every join is accounted for, one by one or folded, and most of them folded.
    const single = count(screen, /has entered the room/);
    const folded = [
      ...screen.matchAll(/- (\d+) joined: user\d+(?:, user\d+)*(?:, …)? \(\/who for all\)/g),
    ]
      .reduce((sum, match) => sum + Number(match[1]), 0);
    assert.equal(single + folded, 50, screen);
    assert.ok(single <= 5, `${single} joins shown one by one:\n${screen}`);
    // Leaves with nothing after them: folded when their second ends.
    for (const member of storm.splice(0, 10)) await member[Symbol.asyncDispose]();
    screen = await terminal.waitFor(/- \d+ left: user\d+/);
    // Three joins within a second are too few to fold; and the names still complete with Tab.
    storm.push(
      ...await Promise.all(["bob", "carol", "dave"].map((name) => joinAs(server.addr.port, name))),
    );
    await alice!.send("done");
    screen = await terminal.waitFor(/\[alice\] done/);
    for (const name of ["bob", "carol", "dave"]) {
      assert.match(screen, new RegExp(`- ${name} has entered`));
    }
    await terminal.type("user4", "Tab");
    await terminal.waitFor(/^> user4\d: ?$/m); // user4 left; user40 to user49 joined in the fold
  } finally {
    for (const member of storm) await member[Symbol.asyncDispose]();
  }
});

Deno.test("terminal: past midnight on the client's own clock, a row names the new day between two lines; the history gives each line its time and day", async () => {
  // The server and the clients run on a clock the test sets (libfaketime): never waited for.
  await using clock = await FakeClock.start("2026-12-08 23:59:00");
  const { child, port } = await startServerProcess([], undefined, { env: clock.env });
  await using _server = child;
  await using alice = await joinAs(port, "alice");
  await using terminal = await terminalClient("Emil", port, { env: clock.env });
  await readUntil(alice, "* Emil has entered the room");
  await terminal.waitFor(/^23:59 - Welcome, Emil!/m); // the client's Date is the fake one
  await alice.send("said before midnight");
  await terminal.waitFor(/said before midnight/);
  // Half a minute past: libfaketime's first look after a change may give a moment before it.
  await clock.set("2026-12-09 00:00:30");
  await alice.send("said after midnight");
  const screen = await terminal.waitFor(/said after midnight/);
  const rows = screen.split("\n");
  const before = rows.findIndex((row) => row.includes("said before midnight"));
  assert.deepEqual(rows.slice(before, before + 3), [
    "23:59   [alice] said before midnight",
    "        ──── Wednesday 9 December ────",
    "00:00   [alice] said after midnight",
  ]);

  // Who joins now reads both in the history, each at the time it was said, under its day.
  await using late = await terminalClient("Anna", port, { env: clock.env });
  const history = await late.waitFor(/Welcome, Anna!/);
  const first = history.split("\n").findIndex((row) => row.includes("──── Tuesday"));
  assert.deepEqual(history.split("\n").slice(first, first + 4), [
    "        ──── Tuesday 8 December ────",
    "23:59 | [alice] said before midnight",
    "        ──── Today ────",
    "00:00 | [alice] said after midnight",
  ], history);
});

/**
 * The terminal client at a real terminal (tmux): typing while others chat fast, wrapped input,
 * resizes, pastes, pacing, reconnection, exits, completion and search. The pure parts of
 * line_editor.ts and terminal.ts are tests/line_editor_test.ts.
 */
import assert from "node:assert/strict";
import { formatHistory, formatRoomList } from "../protocol.ts";

import {
  closeQuietly,
  DEADLINE_MS,
  joinAs,
  startServerProcess,
  startTestServer,
  TestClient,
  Tmux,
  unusedPort,
  waitOutNameTimeout,
  withDeadline,
} from "./_helpers.ts";
import { Folder, startStoreServer } from "./_store.ts";

import {
  count,
  exitStatus,
  expectLines,
  rawOutput,
  readUntil,
  room,
  SLOW_MS,
  terminalClient,
  TIME,
} from "./_terminal.ts";

Deno.test("terminal: incoming lines are all kept while the typed line wraps, at any width", async () => {
  const { server, clients: [alice] } = await room({ floodBurst: 200, floodRate: 100 }, "alice");
  await using _server = server;
  await using _alice = alice!;
  await using terminal = await terminalClient("Emil", server.addr.port);
  await alice!.expect("* Emil has entered the room");
  await terminal.waitFor(/Welcome, Emil!/);
  // A line of 152 columns with the prompt: two rows at 100 columns. The cursor goes to its start.
  const typed = `${"a".repeat(60)} ${"b".repeat(89)}`;
  await terminal.type(typed, "Home");
  await terminal.waitFor(/^> a{60} b{37}\nb{52}$/m);
  await alice!.write(Array.from({ length: 50 }, (_, i) => `burst ${i + 1}\n`).join(""));
  await terminal.waitFor(/\[alice\] burst 50\n> a/);
  let all = await terminal.scrollback();
  for (let i = 1; i <= 50; i++) {
    assert.equal(
      count(all, new RegExp(`^${TIME}   \\[alice\\] burst ${i}$`)),
      1,
      `burst ${i}\n${all}`,
    );
  }
  assert.equal(count(all, /^> a{60}/), 1, all); // the input, once, never in the scrollback
  assert.match(all, /\[alice\] burst 50\n> a{60} b{37}\nb{52}$/);
  const rows = (await terminal.screen()).split("\n");
  assert.deepEqual(await terminal.cursor(), { x: 2, y: rows.length - 2 });

  // Narrower, with the cursor on the input's last row: the input is laid out again at 40 columns
  // from its first row (the terminal rewrapped the rows above the cursor), and a long line
  // arrives whole, wrapped.
  await terminal.type("", "End");
  await waitForCursor(terminal, { x: 52, y: rows.length - 1 });
  await terminal.resize(40, 30);
  await terminal.waitFor(/^> a{38}\na{22} b{17}\nb{40}\nb{32}$/m);
  const words = Array.from({ length: 12 }, (_, i) => `word${i}`).join(" ");
  await alice!.send(`start ${words} end`);
  const screen = await terminal.waitFor(/ end\n> a{38}\n/);
  assert.match(screen, /\[alice\] start word0 word1 word2\n {8}word3 word4 word5 word6 word7\n/);
  all = await terminal.scrollback();
  assert.equal(count(all, /^> a{38}$/), 1, all);
  assert.equal(count(all, /^b{40}$/), 1, all);

  // A wide character that does not fit at the end of a row starts the next; Home goes to the start.
  await terminal.type("", "C-e", "C-u");
  await terminal.type(`${"x".repeat(37)}日本語`, "Home");
  await terminal.waitFor(/^> x{37}\n日本語$/m);
  await alice!.send("after the wide ones");
  const wide = await terminal.waitFor(/after the wide ones\n> x{37}\n日本語$/);
  assert.equal(count(await terminal.scrollback(), /^> x{37}$/), 1, wide);
  const wideRows = wide.split("\n");
  assert.deepEqual(await terminal.cursor(), { x: 2, y: wideRows.length - 2 });
  await terminal.type("", "End", "Left");
  assert.deepEqual(await waitForCursor(terminal, { x: 4, y: wideRows.length - 1 }), {
    x: 4,
    y: wideRows.length - 1,
  });
});

/** Waits until the cursor is where it is expected (it moves once the client has drawn). */
async function waitForCursor(
  terminal: Tmux,
  expected: { x: number; y: number },
): Promise<{ x: number; y: number }> {
  const deadline = Date.now() + DEADLINE_MS;
  let cursor = await terminal.cursor();
  while ((cursor.x !== expected.x || cursor.y !== expected.y) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
    cursor = await terminal.cursor();
  }
  return cursor;
}

Deno.test("terminal: a pasted burst of lines shows each once, stamped, in order", async () => {
  const { server, clients: [alice] } = await room({}, "alice");
  await using _server = server;
  await using _alice = alice!;
  await using terminal = await terminalClient("Emil", server.addr.port);
  await alice!.expect("* Emil has entered the room");
  await terminal.waitFor(/Welcome, Emil!/);
  await terminal.paste("paste line 1\npaste line 2\npaste line 3\npaste line 4\npaste line 5\n");
  await expectLines(alice!, [1, 2, 3, 4, 5].map((i) => `[Emil] paste line ${i}`));
  const screen = await terminal.waitFor(/paste line 5\n>$/);
  for (let i = 1; i <= 5; i++) {
    assert.equal(count(screen, new RegExp(`^${TIME} > \\[Emil\\] paste line ${i}$`)), 1, screen);
  }
  // A paste that does not end with a line end stays typed, for editing.
  await terminal.paste("one more\nkept");
  await alice!.expect("[Emil] one more");
  await terminal.waitFor(/one more\n> kept$/);
});

Deno.test("terminal: a long paste waits its turn within the flood limits and arrives whole", async () => {
  // Faster than the defaults so that the test is short; the client paces from the limits line.
  // Without pacing, 70 of the 80 lines would be delayed and the 51st delayed one cut Emil off.
  const { server, clients: [alice] } = await room(
    { floodBurst: 10, floodRate: 20, maxLineBytes: 4000 },
    "alice",
  );
  await using _server = server;
  await using _alice = alice!;
  await using terminal = await terminalClient("Emil", server.addr.port);
  await alice!.expect("* Emil has entered the room");
  await terminal.waitFor(/Welcome, Emil!/);
  const lines = Array.from({ length: 80 }, (_, i) => `line ${i + 1} of the paste`);
  await terminal.paste(`${lines.join("\n")}\n`);
  // While lines wait, they show dimmed, with a count.
  const waiting = await terminal.waitFor(/\d+ waiting to be sent/, { escapes: true });
  assert.match(waiting, new RegExp(`${"\x1b"}\\[2m.*line \\d+ of the paste`));
  // The others get all 80, in order, and Emil is neither warned nor cut off.
  await expectLines(alice!, lines.map((line) => `[Emil] ${line}`));
  const screen = await terminal.waitFor(/line 80 of the paste\n>$/, { ms: SLOW_MS });
  assert.doesNotMatch(screen, /flooding|waiting|reconnect/);
  const all = await terminal.scrollback();
  for (const line of lines) {
    assert.equal(count(all, new RegExp(`^${TIME} > \\[Emil\\] ${line}$`)), 1, `${line}\n${all}`);
  }

  // A line over the server's limit is refused by the client: one line, not sent, not shown as said.
  await terminal.paste(`${"y".repeat(4001)}\n`);
  await terminal.waitFor(/! Not sent: that line is 4001 bytes and the server takes at most 4000/);
  await terminal.type("after", "Enter");
  await alice!.expect("[Emil] after"); // and nothing before it
  assert.equal(count(await terminal.scrollback(), /y{20}/), 0);
  // The up arrow brings the refused line back (its last rows show: the cursor is at its end).
  await terminal.type("", "Up", "Up");
  await terminal.waitFor(/^y{100}\ny{3}$/m);
});

/**
 * A loopback proxy in front of the server, to cut the network under a client while the server
 * lives on. While it is down it accepts and at once closes what connects.
 */
class Proxy implements AsyncDisposable {
  readonly listener: Deno.TcpListener;
  #target: number;
  #links = new Set<Deno.TcpConn>();
  #tasks = new Set<Promise<void>>();
  isDown = false;

  constructor(target: number) {
    this.#target = target;
    this.listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    this.#tasks.add(this.#accept());
  }

  get port(): number {
    return this.listener.addr.port;
  }

  /** Cuts every connection through it, as a lost network would. */
  cut(): void {
    for (const conn of this.#links) closeQuietly(conn);
    this.#links.clear();
  }

  async #accept(): Promise<void> {
    for await (const conn of this.listener) {
      if (this.isDown) {
        closeQuietly(conn);
        continue;
      }
      const task = this.#link(conn);
      this.#tasks.add(task);
      task.finally(() => this.#tasks.delete(task));
    }
  }

  async #link(client: Deno.TcpConn): Promise<void> {
    const server = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
    this.#links.add(client).add(server);
    const pipe = async (from: Deno.TcpConn, to: Deno.TcpConn) => {
      const buffer = new Uint8Array(16 * 1024);
      try {
        for (let n = await from.read(buffer); n !== null; n = await from.read(buffer)) {
          for (let at = 0; at < n;) at += await to.write(buffer.subarray(at, n));
        }
      } catch {
        // Cut: the other direction ends too.
      }
      closeQuietly(from);
      closeQuietly(to);
    };
    await Promise.all([pipe(client, server), pipe(server, client)]);
    this.#links.delete(client);
    this.#links.delete(server);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.listener.close();
    this.cut();
    await Promise.allSettled([...this.#tasks]);
  }
}

Deno.test("terminal: a lost connection is reconnected to the same place (the room hears no leave), keeping the typed line and showing what was missed once", async () => {
  const { server, clients: [alice] } = await room({ historySize: 50 }, "alice");
  await using _server = server;
  await using _alice = alice!;
  await using proxy = new Proxy(server.addr.port);
  await using terminal = await terminalClient("Emil", proxy.port);
  await alice!.expect("* Emil has entered the room");
  await alice!.send("seen before the loss");
  await terminal.waitFor(/seen before the loss/);
  await terminal.type("half typed");
  await terminal.waitFor(/\n> half typed$/);

  proxy.isDown = true;
  proxy.cut();
  await terminal.waitFor(/The server closed the connection: reconnecting/);
  await alice!.send("said while Emil was away");
  await terminal.type(" and more", "Enter"); // sent once we are back
  await terminal.waitFor(/1 waiting to be sent: reconnecting/);
  proxy.isDown = false;

  // Back with its resume token within the grace: alice heard no leave and no join in between.
  await alice!.expect("[Emil] half typed and more", SLOW_MS);
  const screen = await terminal.waitFor(/> \[Emil\] half typed and more\n>$/);
  assert.match(screen, /said while Emil was away\n.*reconnected: missed lines above/);
  const all = await terminal.scrollback();
  assert.equal(count(all, /seen before the loss/), 1, all); // not again from the history
  assert.equal(count(all, /said while Emil was away/), 1, all);

  // When the server stays away, the client gives up after its attempts, in one line of its own.
  await using limited = await terminalClient("Ada", proxy.port, { args: ["--reconnect", "2"] });
  await alice!.expect("* Ada has entered the room");
  await limited.type("unsent");
  proxy.isDown = true;
  proxy.cut();
  assert.equal(await exitStatus(limited), 1);
  const end = await limited.screen();
  assert.match(
    end,
    /\n> unsent\n.*\n?error: Gave up reconnecting to 127\.0\.0\.1:\d+ after 2 attempts: /,
  );
});

Deno.test("terminal: history shows the time each line was said, with the date before lines of another day", async () => {
  // A server of our own, which replays lines said long ago and today.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using terminal = await terminalClient("Emil", listener.addr.port, { env: { TZ: "UTC" } });
  await using conn = new TestClient(await withDeadline(listener.accept(), "Emil"));
  await conn.write("* Welcome to chat! What shall I call you?\n");
  assert.equal(await conn.readLine(), "/resume Emil"); // at a terminal it asks for a resume token
  const today = new Date();
  await conn.write(
    "* The room contains: alice\n" +
      "* history 2020-01-02T03:04:05Z [alice] said long ago\n" +
      "* history 2020-01-02T23:59:00Z [alice] later that day\n" +
      "* history 2020-01-03T00:01:00Z [alice] the day after\n" +
      `${formatHistory(today, "[alice] said today")}\n` +
      "* Welcome, Emil! 2 users online\n",
  );
  const screen = await terminal.waitFor(/Welcome, Emil!/);
  const clock = today.toISOString().slice(11, 16);
  assert.equal(
    screen.split("\n").slice(1, 8).join("\n"),
    [
      "        ──── Thursday 2 January 2020 ────",
      "03:04 | [alice] said long ago",
      "23:59 | [alice] later that day",
      "        ──── Friday 3 January 2020 ────",
      "00:01 | [alice] the day after",
      "        ──── Today ────",
      `${clock} | [alice] said today`,
    ].join("\n"),
  );
  assert.match(screen.split("\n")[8]!, /^ +─+ history above, live below ─+$/);
});

Deno.test("terminal: a server restart is reconnected, keeping the typed line; --reconnect 0 ends the client instead", async () => {
  const { server, clients: [alice] } = await room({}, "alice");
  const port = server.addr.port;
  await using _alice = alice!;
  await using terminal = await terminalClient("Emil", port);
  await alice!.expect("* Emil has entered the room");
  await using once = await terminalClient("Ada", port, { args: ["--reconnect", "0"] });
  await alice!.expect("* Ada has entered the room");
  await terminal.type("half typed");
  await terminal.waitFor(/> half typed$/);
  await once.type("typed before the end");
  await once.waitFor(/> typed before the end$/);
  await server.close();
  await terminal.waitFor(/The server shut down: reconnecting\n(.*\n)*> half typed$/);
  // Without reconnecting, the client ends as before, with the typed line left in sight.
  assert.equal(await exitStatus(once), 1);
  assert.match(await once.screen(), /\n> typed before the end\nerror: The server shut down\n/);

  await using _again = startTestServer({ port });
  await using bob = await joinAs(port, "bob");
  await bob.expect("* Emil has entered the room", SLOW_MS);
  await terminal.waitFor(/- reconnected\n(.*\n)*> half typed$/);
  await terminal.type(" and sent", "Enter");
  await bob.expect("[Emil] half typed and sent");
});

Deno.test("terminal: /register asks for the new password twice; a wrong password at login is asked again, as ssh does", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startStoreServer(folder);
  await using _server = child;
  await using bob = await joinAs(port, "bob");
  {
    await using terminal = await terminalClient("Emil", port);
    await bob.expect("* Emil has entered the room");
    await terminal.type("/register", "Enter");
    await terminal.waitFor(/\nNew password for Emil:$/);
    await terminal.type("correct horse battery", "Enter");
    await terminal.waitFor(/\nNew password for Emil again:$/);
    await terminal.type("correct horse batterY", "Enter");
    await terminal.waitFor(/The two passwords differ: nothing changed\n.*Cancelled\n>$/);
    await terminal.type("/register", "Enter");
    await terminal.waitFor(/\nNew password for Emil:$/);
    await terminal.type("correct horse battery", "Enter");
    await terminal.waitFor(/\nNew password for Emil again:$/);
    await terminal.type("correct horse battery", "Enter");
    await terminal.waitFor(/Emil is registered: joining as Emil now asks for its password\n>$/);
    await terminal.type("/quit", "Enter");
    assert.equal(await exitStatus(terminal), 0);
  }
  await bob.expect("* Emil has left the room");
  await using terminal = await terminalClient("Emil", port);
  await terminal.waitFor(/^Password for Emil:$/);
  await terminal.type("a wrong guess", "Enter");
  await terminal.waitFor(/Wrong password for "Emil"\nPassword for Emil:$/);
  await terminal.type("correct horse battery", "Enter");
  await bob.expect("* Emil has entered the room");
  await terminal.waitFor(/Welcome, Emil!.*\n>$/);
  // Three wrong ones end it, as ssh does.
  await using guesser = await terminalClient("Emil", port);
  for (let i = 0; i < 3; i++) {
    await guesser.waitFor(/(^|\n)Password for Emil:$/);
    await guesser.type(`wrong guess ${i}`, "Enter");
  }
  assert.equal(await exitStatus(guesser), 1);
  assert.match(await guesser.screen(), /^error: Wrong password for "Emil"$/m);
});

Deno.test("terminal: a taken name ends the client, with the reason on its own line", async () => {
  await using again = await startTestServer();
  await using _bob = await joinAs(again.addr.port, "bob");
  await using taken = await terminalClient("BOB", again.addr.port);
  assert.equal(await exitStatus(taken), 1);
  assert.match(await taken.screen(), /^error: Cannot accept name "BOB": name is taken$/m);
});

Deno.test("terminal: after Ctrl+L, typing leaves nothing in the scrollback and every line is there once", async () => {
  const { server, clients: [alice] } = await room({}, "alice");
  await using _server = server;
  await using _alice = alice!;
  await using terminal = await terminalClient("Emil", server.addr.port, { height: 10 });
  await alice!.expect("* Emil has entered the room");
  await alice!.send("said before the clear");
  await terminal.waitFor(/said before the clear\n>$/);
  await terminal.type("", "C-l");
  await terminal.waitFor(/^>$/);
  for (const key of "typed") {
    await terminal.type(key);
    await terminal.waitFor(new RegExp(`^> ${"typed".slice(0, "typed".indexOf(key) + 1)}$`));
  }
  await alice!.send("said after the clear");
  await terminal.waitFor(/^.*said after the clear\n> typed$/);
  await terminal.type("", "Enter");
  await alice!.expect("[Emil] typed");
  await terminal.type("more");
  await terminal.waitFor(/\[Emil\] typed\n> more$/);
  const all = await terminal.scrollback();
  assert.equal(count(all, /said before the clear/), 1, all);
  assert.equal(count(all, /said after the clear/), 1, all);
  assert.equal(count(all, /\[Emil\] typed/), 1, all);
  assert.equal(count(all, /^> /), 1, all); // the line being typed, once: at the bottom
});

Deno.test("terminal: Ctrl+C clears a typed line, then leaves with exit code 0; Enter on nothing keeps the prompt", async () => {
  const { server, clients: [alice] } = await room({}, "alice");
  await using _server = server;
  await using _alice = alice!;
  await using terminal = await terminalClient("Emil", server.addr.port);
  await alice!.expect("* Emil has entered the room");
  await terminal.waitFor(/Welcome, Emil!.*\n>$/);
  await terminal.type("", "Enter", "Enter");
  await alice!.send("still here");
  const screen = await terminal.waitFor(/still here\n>$/);
  assert.match(screen, /Welcome, Emil!.*\n.*\[alice\] still here\n>$/); // no empty rows
  await terminal.type("typed but not sent", "C-c");
  await terminal.waitFor(/still here\n>$/);
  await terminal.type("", "C-c");
  await alice!.expect("* Emil has left the room");
  assert.equal(await exitStatus(terminal), 0);
  assert.doesNotMatch(await terminal.screen(), /typed but not sent/);
});

Deno.test("terminal: TERM=dumb gets no escape codes at all", async () => {
  const { server, clients: [alice] } = await room({}, "alice");
  await using _server = server;
  await using _alice = alice!;
  await alice!.send("before Emil");
  await using terminal = await terminalClient("Emil", server.addr.port, { env: { TERM: "dumb" } });
  const output = await rawOutput(terminal);
  await alice!.expect("* Emil has entered the room");
  await alice!.send("/me waves");
  await alice!.send("hello Emil");
  await terminal.waitFor(/\[alice\] hello Emil/);
  await terminal.type("hi alice", "Enter");
  await alice!.expect("[Emil] hi alice");
  await terminal.waitFor(/> \[Emil\] hi alice/);
  await terminal.type("", "C-d");
  await alice!.expect("* Emil has left the room");
  const raw = await output.bytes();
  assert.match(raw, /alice waves/);
  assert.ok(!raw.includes("\x1b"), JSON.stringify(raw));
});

Deno.test("terminal: long lines wrap at word boundaries under the text column; history ends at a separator", async () => {
  const { server, clients: [alice] } = await room({}, "alice");
  await using _server = server;
  await using _alice = alice!;
  for (let i = 1; i <= 3; i++) await alice!.send(`earlier ${i}`);
  await using terminal = await terminalClient("Emil", server.addr.port, { width: 50 });
  await alice!.expect("* Emil has entered the room");
  const joined = await terminal.waitFor(/Welcome, Emil!/);
  assert.match(joined, /\| \[alice\] earlier 3\n {8}─+ history above, live below ─+\n/);
  const words = "the quick brown fox jumps over the lazy dog and keeps running far away";
  await alice!.send(words);
  const screen = await terminal.waitFor(/away\n>/);
  const rows = screen.split("\n");
  const first = rows.findIndex((row) => row.includes("[alice] the quick"));
  const message = rows.slice(first, rows.length - 1);
  assert.ok(message.length >= 2, screen);
  for (const row of message.slice(1)) assert.match(row, /^ {8}\S/, screen);
  // Every word whole, in order.
  assert.equal(message.map((row, i) => i === 0 ? row.slice(16) : row.trim()).join(" "), words);
});

Deno.test("terminal: Tab completes names from the room, joins, leaves and renames, and commands after /; a tab is never sent", async () => {
  const { server, clients: [alice, bob] } = await room({}, "alice", "bob");
  await using _server = server;
  await using _alice = alice!;
  await using _bob = bob!;
  await using terminal = await terminalClient("Emil", server.addr.port);
  await alice!.expect("* bob has entered the room");
  await alice!.expect("* Emil has entered the room");
  await using carol = await joinAs(server.addr.port, "carol");
  await terminal.waitFor(/carol has entered/);
  await bob!.send("/nick robert");
  await terminal.waitFor(/bob is now known as robert/);
  await carol.send("/quit");
  await terminal.waitFor(/carol has left/);

  await terminal.type("al", "Tab");
  await terminal.waitFor(/\n> alice:$/);
  await terminal.type("hi", "Enter");
  await expectLines(bob!, ["[Emil] alice: hi"]);
  await terminal.type("/msg r", "Tab");
  await terminal.waitFor(/\n> \/msg robert$/);
  await terminal.type("psst", "Enter");
  await bob!.expect("* private from Emil: psst");
  // Gone and renamed names are not offered; a tab with nothing to complete adds nothing.
  await terminal.type("ca", "Tab");
  await terminal.type("", "Tab");
  await terminal.type("b", "Tab");
  await terminal.type(" x", "Enter");
  await expectLines(alice!, ["[Emil] alice: hi", "[Emil] cab x"]);
  // After a / that starts the line, Tab completes the commands /help lists.
  await terminal.type("/wh", "Tab");
  await terminal.waitFor(/\n> \/who$/);
  await terminal.type("", "Enter");
  await terminal.waitFor(/3 online: .*robert/);
});

Deno.test("terminal: Ctrl+R finds a line sent before; /help shows the client's own view", async () => {
  const { server, clients: [alice] } = await room({}, "alice");
  await using _server = server;
  await using _alice = alice!;
  await using terminal = await terminalClient("Emil", server.addr.port);
  await alice!.expect("* Emil has entered the room");
  for (const line of ["first line", "second thing", "third line"]) {
    await terminal.type(line, "Enter");
    await alice!.expect(`[Emil] ${line}`);
  }
  await terminal.type("", "C-r");
  await terminal.type("sec");
  await terminal.waitFor(/\(search: sec\) second thing$/);
  await terminal.type("", "Enter");
  await alice!.expect("[Emil] second thing");
  await terminal.type("", "C-r");
  await terminal.type("nothing like it");
  await terminal.waitFor(/\(search, no match: nothing like it\)$/);
  await terminal.type("", "C-g");
  await terminal.waitFor(/\n>$/);

  await terminal.type("/help", "Enter");
  const help = await terminal.waitFor(/Ctrl\+C +clear the line/);
  assert.match(help, /\/me TEXT +an action, shown as \* NAME TEXT/);
  await terminal.type("after help", "Enter");
  await alice!.expect("[Emil] after help"); // /help went nowhere
});

Deno.test("terminal: Ctrl+Z stops the client and fg brings it back whole", async () => {
  const { server, clients: [alice] } = await room({}, "alice");
  await using _server = server;
  await using _alice = alice!;
  await using shell = await Tmux.start(["sh"], { width: 100, height: 30 });
  await shell.type(
    `exec 2>&1; ${Deno.execPath()} run -q -N --allow-env=TERM client.ts Emil --port ${server.addr.port}`,
    "Enter",
  );
  await alice!.expect("* Emil has entered the room");
  await shell.type("kept");
  await shell.waitFor(/\n> kept$/);
  await shell.type("", "C-z");
  await shell.waitFor(/Stopped|\$ $/);
  await alice!.send("while stopped");
  await shell.type("fg", "Enter");
  await shell.waitFor(/while stopped\n> kept$/);
  await shell.type(" and sent", "Enter");
  await alice!.expect("[Emil] kept and sent");
});

Deno.test("terminal: Ctrl+Z under deno task says why it cannot suspend, and the client goes on", async () => {
  // deno task ignores the stop signal and keeps the terminal: a client that stopped itself there
  // left the shell waiting for a job that never stops.
  const { server, clients: [alice] } = await room({}, "alice");
  await using _server = server;
  await using _alice = alice!;
  await using shell = await Tmux.start(["bash", "--norc", "--noprofile", "-i"], { width: 120 });
  await shell.type(
    `exec 2>&1; ${Deno.execPath()} task -q client Emil --port ${server.addr.port}`,
    "Enter",
  );
  await alice!.expect("* Emil has entered the room");
  await shell.type("kept");
  await shell.waitFor(/\n> kept$/);
  await shell.type("", "C-z");
  await shell.waitFor(/! Ctrl\+Z does not work under deno task.*\n> kept$/s);
  await shell.type(" and sent", "Enter");
  await alice!.expect("[Emil] kept and sent");
});

Deno.test("terminal: a big room's list is shown whole and completes names", async () => {
  // A server of our own would say this; the list is cut into lines as the real server cuts it.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const names = Array.from({ length: 600 }, (_, i) => `member-${i}-${"x".repeat(10)}`);
  await using terminal = await terminalClient("Emil", listener.addr.port, { height: 20 });
  await using conn = new TestClient(await listener.accept());
  await conn.write("* Welcome to chat! What shall I call you?\n");
  assert.equal(await conn.readLine(), "/resume Emil");
  const list = formatRoomList(names);
  assert.ok(list.length > 1);
  await conn.write(`${list.join("\n")}\n* Welcome, Emil! 601 users online\n`);
  await terminal.waitFor(/Welcome, Emil!/);
  await terminal.type("member-599", "Tab");
  await terminal.waitFor(/\n> member-599-x{10}:$/);
  const all = await terminal.scrollback();
  for (const name of names) assert.ok(all.includes(name), name);
});

Deno.test("terminal: the client stays in the room past every time limit, its own and the server's", async () => {
  const { server } = await room({ nameTimeoutMs: 1000, writeTimeoutMs: 1000, idleTimeoutMs: 3000 });
  await using _server = server;
  const { port } = server.addr;
  // alice joins once the client is in: starting a client can take more than the idle limit.
  await using terminal = await terminalClient("Emil", port, { args: ["--join-timeout", "1"] });
  await terminal.waitFor(/Welcome, Emil/);
  await using alice = await joinAs(port, "alice");
  await terminal.waitFor(/alice has entered the room/);
  await using idler = await joinAs(port, "idler");
  for (let tick = 1; tick <= 5; tick++) {
    // One name timeout (1 s) passes on the server's clock; both talk, so neither is idle.
    assert.equal(await waitOutNameTimeout(port), "* error: No valid name within 1 seconds");
    await terminal.type(`tick ${tick}`, "Enter");
    await expectLines(alice!, [`[Emil] tick ${tick}`]);
    await alice.send(`tock ${tick}`);
    await terminal.waitFor(new RegExp(`\\[alice\\] tock ${tick}\\n>$`));
  }
  // Past the join timer (1 s), the name and write limits (1 s) and the idle limit (3 s).
  const screen = await terminal.screen();
  assert.match(screen, /idler has left the room \(idle\)/);
  assert.doesNotMatch(screen, /^\d\d:\d\d ! |error|\[exit/m);
  await terminal.type("", "C-d");
  assert.equal(await exitStatus(terminal), 0);
  idler.close();
});

/** The others in the long session: five people, each saying 4 lines a second. */
const TALKERS = ["alice", "bob", "carol", "dave", "erin"];

// Needs a server process that can be restarted on the same port.
Deno.test("terminal: a session of fast traffic, resizes, pastes and a server restart shows every line once", async () => {
  const started = Date.now();
  const port = unusedPort();
  // Everyone here comes from 127.0.0.1: flood control is set for the room, not for one person.
  const serverArgs = ["--port", String(port), "--history", "100", "--flood-burst", "100"];
  serverArgs.push("--flood-rate", "50");
  const permissions = [`--allow-net=127.0.0.1:${port}`];
  let { child: server } = await startServerProcess(serverArgs, permissions);
  try {
    await using terminal = await terminalClient("Emil", port, { historyLimit: 100_000 });
    let talkers = await Promise.all(TALKERS.map((name) => joinAs(port, name)));
    const said: string[] = [];
    let next = 0;
    /** Each talker says a numbered line, within the flood limits: 4 a second each. */
    const talk = async (rounds: number) => {
      for (let round = 0; round < rounds; round++) {
        for (const [i, talker] of talkers.entries()) {
          const line = `m${++next}`;
          await talker.send(line);
          said.push(`[${TALKERS[i]}] ${line}`);
        }
        await new Promise((resolve) => setTimeout(resolve, 250)); // the traffic's own pace
      }
    };
    await terminal.waitFor(/Welcome, Emil!/);
    const widths = [60, 40, 120, 80, 100];
    let pastes = 0;
    for (const width of widths) {
      await terminal.type(`typing at ${width}`);
      await talk(20);
      await terminal.resize(width, 30);
      await terminal.waitFor(new RegExp(`\\n> typing at ${width}$`)); // intact through it all
      await terminal.type("", "C-u");
      await terminal.paste(Array.from({ length: 6 }, () => `p${++pastes}`).join("\n") + "\n");
    }
    // The server restarts: the others come back at once and speak before Emil is back.
    server.process.kill("SIGKILL");
    await server.finish();
    for (const talker of talkers) talker.close();
    await terminal.waitFor(/reconnecting/);
    ({ child: server } = await startServerProcess(serverArgs, permissions));
    talkers = await Promise.all(TALKERS.map((name) => joinAs(port, name)));
    await talk(2);
    await readUntil(talkers[0]!, "* Emil has entered the room", SLOW_MS);
    for (const width of [50, 100]) {
      await talk(20);
      await terminal.resize(width, 30);
      await terminal.paste(Array.from({ length: 6 }, () => `p${++pastes}`).join("\n") + "\n");
    }
    await talkers[0]!.send("the end");
    said.push("[alice] the end");
    await terminal.waitFor(/\[alice\] the end\n/);
    await terminal.waitFor(new RegExp(`> \\[Emil\\] p${pastes}\\n(.*\\n)*>$`), { ms: SLOW_MS });
    const all = await terminal.command(["capture-pane", "-p", "-J", "-S", "-", "-E", "-"]);
    for (const line of said) {
      const escaped = line.replace(/[[\]]/g, "\\$&");
      assert.equal(count(all, new RegExp(`${escaped}$`)), 1, `${line}:\n${all}`);
    }
    for (let i = 1; i <= pastes; i++) {
      assert.equal(count(all, new RegExp(`> \\[Emil\\] p${i}$`)), 1, `p${i}:\n${all}`);
    }
    for (const talker of talkers) talker.close();
    console.log(
      `session: ${said.length} lines, ${pastes} pasted, ${(Date.now() - started) / 1000} s`,
    );
  } finally {
    await server[Symbol.asyncDispose]();
  }
});

/** Tests of client.ts run as a real subprocess: piped, and at a real terminal under tmux. */
import assert from "node:assert/strict";
import { nameColor } from "../client/terminal.ts";
import { Pacer } from "../client/outbox.ts";
import {
  formatBan,
  formatHistory,
  formatKick,
  formatMute,
  formatOperatorChange,
  formatRoomList,
  formatUnban,
  formatUserLine,
  formatWho,
  MAX_LINE_OVERHEAD_BYTES,
  MAX_MAX_LINE_BYTES,
  parseOperatorChange,
  parsePutOut,
  parseTakeOver,
} from "../protocol.ts";
import {
  ANY_GREETING,
  Child,
  denoChild,
  joinAs,
  run,
  startTestServer,
  TestClient,
  Tmux,
  unusedPort,
  waitOutNameTimeout,
  withDeadline,
} from "./_helpers.ts";
import { Folder, startStoreServer } from "./_store.ts";

/** The limits line at the default limits. */
const LIMITS = "* Limits: lines of up to 4096 bytes, 10 at once, then 5 a second";

/** client.ts started the way the README says, with a pipe for stdin. */
function clientChild(name: string, port: number, extra: string[] = []) {
  return denoChild(["run", "-q", "-N", "client.ts", name, "--port", String(port), ...extra], {
    stdin: true,
  });
}

Deno.test("client sends its name and typed lines while printing the room's lines", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using emil = clientChild("Emil", server.addr.port);
  await alice.expect("* Emil has entered the room");
  assert.equal(await emil.stdout.readLine(), "* The room contains: alice");
  assert.equal(await emil.stdout.readLine(), LIMITS);
  assert.equal(
    await emil.stdout.readLine(),
    "* Welcome, Emil! 2 users online; /help lists the commands",
  );
  await alice.send("hello Emil");
  assert.equal(await emil.stdout.readLine(), "[alice] hello Emil");
  await emil.write("hi alice\n");
  await alice.expect("[Emil] hi alice");
  await alice.send("bye");
  assert.equal(await emil.stdout.readLine(), "[alice] bye");
  await emil.closeStdin(); // Ctrl+D
  await alice.expect("* Emil has left the room");
  assert.deepEqual(await emil.finish(), { code: 0, signal: null, stdout: "", stderr: "" });
});

Deno.test("client leaves on /quit and sends a last line without a line end", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using emil = clientChild("Emil", server.addr.port);
  await alice.expect("* Emil has entered the room");
  await emil.write("one\n/quit\nnever sent\n");
  await alice.expect("[Emil] one");
  await alice.expect("* Emil has left the room");
  assert.equal((await emil.finish()).code, 0);

  await using piped = clientChild("Piped", server.addr.port);
  await alice.expect("* Piped has entered the room");
  await piped.write("no line end");
  await piped.closeStdin();
  await alice.expect("[Piped] no line end");
  await alice.expect("* Piped has left the room");
  assert.equal((await piped.finish()).code, 0);
});

Deno.test("client reports a refused connection in one line and exits 1", async () => {
  await using emil = clientChild("Emil", unusedPort());
  const { code, stdout, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.match(stderr, /^error: Cannot connect to 127\.0\.0\.1:\d+: connection refused\n$/);
});

Deno.test("client reports a taken name with the server's reason and exits 1", async () => {
  await using server = startTestServer();
  await using _emil = await joinAs(server.addr.port, "Emil");
  await using other = clientChild("emil", server.addr.port);
  const { code, stdout, stderr } = await other.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(stderr, 'error: Cannot accept name "emil": name is taken\n');
});

Deno.test("client refuses an invalid name before connecting", async () => {
  await using emil = clientChild("not valid", unusedPort());
  const { code, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.match(stderr, /^error: Cannot accept name "not valid": use only ASCII letters.*\n$/);
});

Deno.test("client says so and exits 1 when the server shuts down", async () => {
  const server = startTestServer();
  await using emil = clientChild("Emil", server.addr.port);
  assert.equal(await emil.stdout.readLine(), "* The room contains:");
  await server.close();
  const { code, stdout, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.equal(
    stdout,
    `${LIMITS}\n* Welcome, Emil! 1 user online; /help lists the commands\n` +
      "* Server is shutting down, goodbye\n",
  );
  assert.equal(stderr, "error: The server shut down\n");
});

const PASSWORD = "correct horse battery";

/** Joins as `name` and registers it with {@linkcode PASSWORD}, as nc users would. */
async function register(port: number, name: string): Promise<TestClient> {
  const client = await joinAs(port, name);
  await client.send("/register");
  await client.expect(/^\* Send the new password for \w+ on the next line/);
  await client.send(PASSWORD);
  await client.expect(`* ${name} is registered: joining as ${name} now asks for its password`);
  return client;
}

/** Logs in as registered `name` with its password, as nc users would. */
async function logIn(port: number, name: string): Promise<TestClient> {
  const client = await TestClient.connect(port);
  await client.expect(ANY_GREETING);
  await client.send(name);
  await client.expect(`* ${name} is registered: send its password`);
  await client.send(PASSWORD);
  await client.expect(/^\* The room contains:/);
  return client;
}

Deno.test("client stops and says why when its registered name logs in from elsewhere, instead of taking it back", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startStoreServer(folder);
  await using _server = child;
  await using bob = await joinAs(port, "bob");
  await using first = await register(port, "alice");
  // The client logs in with the password (and would reconnect, as after a loss) ...
  await using alice = new Child(Deno.execPath(), [
    "run",
    "-q",
    "-N",
    "--allow-env=CHAT_PASSWORD",
    "client.ts",
    "alice",
    "--port",
    String(port),
    "--reconnect",
    "5",
  ], { stdin: true, env: { CHAT_PASSWORD: PASSWORD } });
  assert.deepEqual(await first.readToEnd(), [
    "* error: alice logged in from elsewhere with its password",
  ]);
  await alice.stdout.readUntil(/^\* Welcome, alice!/);
  // ... then the person logs in from another device: the client gives way for good.
  await using second = await logIn(port, "alice");
  const end = await alice.finish();
  assert.equal(end.code, 1);
  assert.equal(end.stdout, "* error: alice logged in from elsewhere with its password\n");
  assert.equal(
    end.stderr,
    "error: You logged in as alice from elsewhere: not reconnecting, which would take the name " +
      "back\n",
  );
  // The second login keeps the name: the room hears it speak, and no one enters or leaves again.
  await second.send("still me");
  let line;
  while ((line = await bob.readLine()) !== "[alice] still me") {
    assert.match(line, /^\* alice has (entered|left) the room/);
  }
  await bob.send("/who");
  assert.equal(await bob.readLine(), "* 2 online: alice, bob");
});

Deno.test("parseTakeOver tells the take-over notice apart from every other error", () => {
  assert.equal(parseTakeOver("* error: alice logged in from elsewhere with its password"), "alice");
  assert.equal(parseTakeOver("* error: Disconnected for flooding"), undefined);
  assert.equal(
    parseTakeOver("[alice] * error: bob logged in from elsewhere with its password"),
    undefined,
  );
  assert.equal(
    parseTakeOver("* [bob] error: alice logged in from elsewhere with its password"),
    undefined,
  );
});

Deno.test("parseOperatorChange reads the room's notice of an operator made or unmade, and nothing a user says", () => {
  const cases: [string, boolean, string | undefined][] = [["alice", true, "bob"], [
    "al-1",
    false,
    undefined,
  ]];
  for (const [name, isOperator, by] of cases) {
    assert.deepEqual(parseOperatorChange(formatOperatorChange(name, isOperator, by)), {
      name,
      isOperator,
    });
  }
  assert.equal(parseOperatorChange("[mallory] * alice is now an operator (by bob)"), undefined);
  assert.equal(parseOperatorChange("* [mallory] alice is now an operator (by bob)"), undefined);
  assert.equal(parseOperatorChange("* alice is now an operator (by bob) really"), undefined);
});

Deno.test("parsePutOut reads whom the room's notice of a kick or a ban put out, and nothing else", () => {
  const until = Date.UTC(2026, 11, 7, 10);
  assert.deepEqual(parsePutOut(formatKick("alice", "bob", "spam: again")), ["alice"]);
  assert.deepEqual(parsePutOut(formatKick("alice", "bob")), ["alice"]);
  assert.deepEqual(parsePutOut(formatBan(["alice"], "bob", { until, reason: "x" })), ["alice"]);
  assert.deepEqual(parsePutOut(formatBan(["carol", "dave", "e-1"], "bob")), [
    "carol",
    "dave",
    "e-1",
  ]);
  assert.deepEqual(parsePutOut(formatBan(["carol", "dave"], "bob", { until })), ["carol", "dave"]);
  for (
    const line of [
      formatUnban("alice", "bob"),
      formatMute("alice", "bob"),
      "[mallory] * alice was kicked by bob",
      "* [mallory] alice was kicked by bob",
      "* alice was kicked by the door",
    ]
  ) {
    assert.equal(parsePutOut(line), undefined, line);
  }
});

Deno.test("client says so and exits 1 when the connection is lost", async () => {
  // A bare listener stands in for a server that accepts, greets and then drops the connection.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using emil = clientChild("Emil", listener.addr.port);
  await using conn = new TestClient(await listener.accept());
  await conn.write("* hello\n");
  assert.equal(await conn.readLine(), "Emil");
  await conn.write("* The room contains:\n");
  assert.equal(await emil.stdout.readLine(), "* The room contains:");
  conn.close();
  const { code, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.equal(stderr, "error: The server closed the connection\n");
});

Deno.test("client removes escapes from a hostile server's lines", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using emil = clientChild("Emil", listener.addr.port);
  await using conn = new TestClient(await listener.accept());
  await conn.write("* hello\n");
  assert.equal(await conn.readLine(), "Emil");
  await conn.write("* The room contains:\n[evil] \x1b[2J\x1b]0;title\x07hi\x00 there\r\n");
  assert.equal(await emil.stdout.readLine(), "* The room contains:");
  assert.equal(await emil.stdout.readLine(), "[evil] hi there");
});

Deno.test("client reports a connection reset before it joined in one line", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using emil = clientChild("Emil", listener.addr.port);
  const conn = await listener.accept();
  assert.equal(await conn.read(new Uint8Array(1)), 1); // "E" read, "mil\n" left unread:
  conn.close(); // closing with unread input sends a reset
  const { code, stdout, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.match(
    stderr,
    /^error: (Connection to the server lost: .*|The server closed the connection before we joined)\n$/,
  );
});

Deno.test("client reports unreadable input in one line and exits 1", async () => {
  await using server = startTestServer();
  const shell = `exec "$0" run -q -N client.ts Emil --port ${server.addr.port} < /`; // a folder as stdin
  await using emil = new Child("sh", ["-c", shell, Deno.execPath()]);
  const { code, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.match(stderr, /^error: Cannot read your input: .*\n$/);
});

Deno.test("client prints usage errors in one line and exits 2", async () => {
  for (const args of [[], ["--port", "99999", "Emil"], ["Emil", "extra"], ["--bogus", "Emil"]]) {
    await using child = denoChild(["run", "-q", "-N", "client.ts", ...args]);
    const { code, stdout, stderr } = await child.finish();
    assert.equal(code, 2, `exit code for ${args.join(" ")}`);
    assert.equal(stdout, "");
    assert.match(
      stderr,
      /^error: .* \(see deno task client --help\)\n$/,
      `stderr for ${args.join(" ")}`,
    );
  }
});

Deno.test("client --help documents the client and exits 0", async () => {
  await using child = denoChild(["run", "-q", "-N", "client.ts", "--help"]);
  const { code, stdout } = await child.finish();
  assert.equal(code, 0);
  assert.match(stdout, /deno task client NAME/);
  assert.match(stdout, /\/quit/);
});

const ESC = "\x1b";

/** client.ts at a real terminal (tmux), with colors unless NO_COLOR is given. */
function terminalClient(name: string, port: number, options: { noColor?: boolean } = {}) {
  const env = options.noColor ? ["env", "NO_COLOR=1"] : ["env", "-u", "NO_COLOR"];
  return Tmux.start([
    ...env,
    Deno.execPath(),
    "run",
    "-q",
    "-N",
    "client.ts",
    name,
    "--port",
    String(port),
  ]);
}

Deno.test("client at a terminal keeps a half-typed line intact while a message arrives above it", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using terminal = await terminalClient("Emil", server.addr.port);
  await alice.expect("* Emil has entered the room");
  await terminal.waitFor(/Welcome, Emil!.*\n>$/);
  await terminal.type("half ty");
  await terminal.waitFor(/\n> half ty$/);
  await alice.send("hello all"); // not a mention, which the prompt would count
  // The message comes on screen a moment before the prompt is drawn again below it: waits for both.
  const screen = await terminal.waitFor(/\[alice\] hello all\n> half ty$/);
  const lines = screen.split("\n");
  assert.match(lines.at(-2)!, /^\d\d:\d\d {3}\[alice\] hello all$/, screen);
  assert.equal(lines.at(-1), "> half ty", screen);

  // Editing still works on the kept line; Enter sends it and shows it as the room sees it.
  await terminal.type("ped", "Enter");
  await alice.expect("[Emil] half typed");
  await terminal.waitFor(/\d\d:\d\d > \[Emil\] half typed\n>$/);
  await terminal.type("/me waves", "Enter");
  await alice.expect("* [Emil] waves");
  await terminal.waitFor(/\d\d:\d\d \* Emil waves\n>$/);

  // The up arrow brings back what was sent; Ctrl+U clears it; Ctrl+D leaves.
  await terminal.type("", "Up", "Up");
  await terminal.waitFor(/\n> half typed$/);
  await terminal.type("", "C-u", "C-d");
  await alice.expect("* Emil has left the room");
});

Deno.test("client at a terminal shows each kind of line distinctly, with a stable color per name", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await alice.send("said before Emil came");
  await using terminal = await terminalClient("Emil", server.addr.port);
  await alice.expect("* Emil has entered the room");
  await terminal.waitFor(/Welcome, Emil/);
  await alice.send("/me waves");
  await alice.send("/msg Emil psst");
  await alice.send("/nosuch");
  await alice.send("plain");
  await alice.expect(/^\* private to Emil/);
  await terminal.type("/msg nobody x", "Enter");
  const screen = await terminal.waitFor(/No user named "nobody"/);
  const time = String.raw`\d\d:\d\d`;
  for (
    const pattern of [
      `${time} - In the room: alice`,
      `${time} \\| \\[alice\\] said before Emil came`, // history, marked
      `${time} - Welcome, Emil! 2 users online; /help lists the commands`,
      `${time} \\* alice waves`,
      `${time} ~ \\[alice -> you\\] psst`,
      `${time}   \\[alice\\] plain`,
      `${time} ! No user named "nobody" is online: /who lists who is`,
    ]
  ) {
    assert.match(screen, new RegExp(`^${pattern}$`, "m"));
  }
  // alice's name carries the same color escape wherever it appears, as in every client.
  const colored = await terminal.screen({ escapes: true });
  const aliceColor = new RegExp(`(${ESC}\\[[0-9;]*m)alice`).exec(colored)?.[1];
  assert.ok(aliceColor, colored);
  assert.ok(colored.split(`${aliceColor}alice`).length >= 4, colored);
});

Deno.test("client at a terminal prints no color escapes when NO_COLOR is set", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using terminal = await terminalClient("Emil", server.addr.port, { noColor: true });
  await alice.expect("* Emil has entered the room");
  await alice.send("hello");
  const screen = await terminal.waitFor(/\[alice\] hello/, { escapes: true });
  assert.ok(!screen.includes(`${ESC}[`), screen);
});

Deno.test("client prints the server's lines byte for byte when stdout is not a terminal", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await alice.send("before");
  await using emil = clientChild("Emil", server.addr.port);
  await alice.expect("* Emil has entered the room");
  await alice.send("/me waves");
  await alice.send("/msg Emil psst");
  await alice.send("caf\u00e9 \x1b[31mred");
  await alice.expect("* private to Emil: psst");
  await emil.write("/who\n");
  await emil.stdout.readUntil("* 2 online: alice, Emil");
  await emil.closeStdin();
  await alice.expect("* Emil has left the room");
  const { code } = await emil.finish();
  assert.equal(code, 0);
  const expected = [
    "* The room contains: alice",
    /^\* history \S+ \[alice\] before$/,
    LIMITS,
    "* Welcome, Emil! 2 users online; /help lists the commands",
    "* [alice] waves",
    "* private from alice: psst",
    "[alice] caf\u00e9 red",
    "* 2 online: alice, Emil",
  ];
  assert.equal(emil.stdout.seen.length, expected.length, JSON.stringify(emil.stdout.seen));
  expected.forEach((line, i) => {
    if (typeof line === "string") assert.equal(emil.stdout.seen[i], line);
    else assert.match(emil.stdout.seen[i]!, line);
  });
});

Deno.test("nameColor gives a name the same color whatever its case, and names differ", () => {
  assert.equal(nameColor("Emil"), nameColor("emil"));
  const colors = new Set(
    ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"].map(nameColor),
  );
  assert.ok(colors.size >= 4, `only ${colors.size} colors for 8 names`);
});

/** Reads the next line that is not a server notice (`* ...`), and checks it. */
async function expectSkippingNotices(client: TestClient, expected: string): Promise<void> {
  let line = await client.readLine();
  while (line.startsWith("* ")) line = await client.readLine();
  assert.equal(line, expected);
}

/** Server time limits made short for the tests that outlive them (seconds on the wire). */
export const SHORT_LIMITS = { nameTimeoutMs: 1000, writeTimeoutMs: 1000, idleTimeoutMs: 3000 };

Deno.test("client stays in the room past every time limit, its own and the server's, chatting throughout", async () => {
  await using server = startTestServer(SHORT_LIMITS);
  const { port } = server.addr;
  await using alice = await joinAs(port, "alice");
  // The client's own join timer is the shortest of all: 1 s.
  await using emil = clientChild("Emil", port, ["--join-timeout", "1"]);
  await alice.expect("* Emil has entered the room");
  // A member who says nothing: the idle limit (3 s) closes it while Emil, who talks, stays.
  await using idler = await joinAs(port, "idler");
  await alice.expect("* idler has entered the room");
  for (let tick = 1; tick <= 5; tick++) {
    // One name timeout (1 s) passes on the server's own clock; then Emil says something.
    assert.equal(await waitOutNameTimeout(port), "* error: No valid name within 1 seconds");
    await emil.write(`tick ${tick}\n`);
    await expectSkippingNotices(alice, `[Emil] tick ${tick}`);
    await alice.send(`tock ${tick}`); // alice talks too, or the idle limit would close her
    await emil.stdout.readUntil(`[alice] tock ${tick}`);
  }
  // 5 s and more have passed: past the join timer (1 s), the name and write limits (1 s) and the
  // idle limit (3 s), which closed the idler.
  assert.ok(
    emil.stdout.seen.includes("* idler has left the room (idle)"),
    emil.stdout.seen.join("\n"),
  );
  await alice.send("still there?");
  assert.equal(await emil.stdout.readUntil(/^\[alice\] still/), "[alice] still there?");
  await emil.write("yes\n");
  await expectSkippingNotices(alice, "[Emil] yes");
  await emil.closeStdin();
  await alice.expect("* Emil has left the room");
  const end = await emil.finish();
  assert.equal(end.code, 0);
  assert.equal(end.stderr, "");
  idler.close();
});

Deno.test("client ends its process when the server never lets it in, even with input still open", async () => {
  // A listener that accepts and says nothing: the join timer must end the client, stdin open or not.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using emil = clientChild("Emil", listener.addr.port, ["--join-timeout", "0.5"]);
  await using _conn = new TestClient(await listener.accept());
  const { code, stdout, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(stderr, "error: No reply from the server within 0.5 s: is it a chat server?\n");
});

Deno.test("client takes every line a server can send, a big room's list and /who included, and reports one it cannot", async () => {
  // A server of our own speaks here, so that every size is exact: 3,000 names of 30 characters
  // (90 KB of names, cut into lines as the real server cuts them) and a history line of 1 MB (a
  // server with --max-line 1000000 may send one).
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using emil = clientChild("Emil", listener.addr.port);
  await using conn = new TestClient(await listener.accept());
  await conn.write("* Welcome to chat! What shall I call you?\n");
  assert.equal(await conn.readLine(), "Emil");
  const names = Array.from(
    { length: 3000 },
    (_, i) => `member-${String(i).padStart(4, "0")}`.padEnd(30, "x"),
  );
  const room = formatRoomList(names);
  const big = formatHistory(new Date(), formatUserLine("alice", "b".repeat(1_000_000)));
  await conn.write(`${room.join("\n")}\n${big}\n* Welcome, Emil! 3001 users online\n`);
  for (const line of room) assert.equal(await emil.stdout.readLine(), line);
  assert.equal(await emil.stdout.readLine(), big);
  assert.equal(await emil.stdout.readLine(), "* Welcome, Emil! 3001 users online");

  await emil.write("/who\n");
  assert.equal(await conn.readLine(), "/who");
  const who = formatWho(["Emil", ...names]);
  assert.ok(who.length > 20);
  await conn.write(`${who.join("\n")}\n`);
  for (const line of who) assert.equal(await emil.stdout.readLine(), line);

  // Longer than any server of ours sends: reported in one line, and the session goes on.
  const most = MAX_MAX_LINE_BYTES + MAX_LINE_OVERHEAD_BYTES;
  await conn.write(`[mallory] ${"z".repeat(most)}\n[alice] after it\n`);
  assert.equal(await emil.stdout.readLine(), "[alice] after it");
  assert.equal(
    await emil.stderr.readLine(),
    `error: The server sent a line over ${most} bytes: not shown`,
  );
});

Deno.test("client paces piped lines within the server's flood limits, refuses a line over its limit, and leaves once all are sent", async () => {
  // 10 at once, then 20 a second: without pacing, 70 of the 80 lines would be delayed, and the
  // 51st delayed one would cut Emil off.
  await using server = startTestServer({ floodBurst: 10, floodRate: 20, maxLineBytes: 4000 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using emil = clientChild("Emil", server.addr.port);
  await alice.expect("* Emil has entered the room");
  const lines = Array.from({ length: 80 }, (_, i) => `piped ${i + 1}`);
  lines.splice(30, 0, "x".repeat(4001));
  await emil.write(`${lines.join("\n")}\n`);
  await emil.closeStdin();
  for (const line of lines.filter((line) => line.length < 100)) {
    await alice.expect(`[Emil] ${line}`);
  }
  await alice.expect("* Emil has left the room");
  const end = await emil.finish();
  assert.equal(end.code, 0);
  assert.equal(
    end.stderr,
    "error: Not sent: that line is 4001 bytes and the server takes at most 4000\n",
  );
  assert.doesNotMatch(end.stdout, /Slow down|flooding/);
});

Deno.test("client reconnects after a loss, waiting twice as long each time, and gives up after its attempts in one line", async () => {
  // A server of our own: it lets the client in once and drops it, then takes each attempt to
  // reconnect and closes it at once, noting when it came.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using emil = clientChild("Emil", listener.addr.port, ["--reconnect", "4"]);
  const attempts: number[] = [];
  let accepting = Promise.resolve();
  try {
    {
      await using first = new TestClient(await withDeadline(listener.accept(), "Emil"));
      await first.write("* Welcome to chat! What shall I call you?\n");
      assert.equal(await first.readLine(), "/resume Emil"); // it reconnects, so it asks for a resume token
      await first.write("* The room contains:\n* Welcome, Emil! 1 user online\n");
      await emil.stdout.readUntil("* Welcome, Emil! 1 user online");
    }
    attempts.push(performance.now()); // lost here
    accepting = (async () => {
      for (;;) {
        const conn = await listener.accept();
        attempts.push(performance.now());
        conn.close();
      }
    })().catch(() => {}); // the listener closed
    const { code, stdout, stderr } = await emil.finish(60_000);
    assert.equal(code, 1);
    assert.equal(stdout, "");
    const lines = stderr.trimEnd().split("\n");
    assert.equal(lines[0], "error: The server closed the connection: reconnecting");
    assert.match(
      lines.at(-1)!,
      /^error: Gave up reconnecting to 127\.0\.0\.1:\d+ after 4 attempts: /,
    );
  } finally {
    listener.close();
    await accepting;
  }
  assert.equal(attempts.length, 1 + 4, "4 attempts, and no more");
  // Each wait is 0.5 s, 1 s, 2 s and 4 s, spread by -25% to +25% so that a restarted server is not
  // hit by every client at once; a loaded machine can only make it longer.
  const waits = attempts.slice(1).map((at, i) => at - attempts[i]!);
  [500, 1000, 2000, 4000].forEach((base, i) =>
    assert.ok(waits[i]! >= 0.75 * base - 10, `wait ${i + 1}: ${waits.map(Math.round)} ms`)
  );
});

Deno.test("client says how many lines it could not send when the server is gone", async () => {
  // A server of our own, whose flood limits make the client keep all but its first line waiting.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using emil = clientChild("Emil", listener.addr.port);
  {
    await using conn = new TestClient(await withDeadline(listener.accept(), "Emil"));
    await conn.write("* Welcome to chat! What shall I call you?\n");
    assert.equal(await conn.readLine(), "Emil");
    await conn.write(
      "* The room contains:\n* Limits: lines of up to 4096 bytes, 1 at once, then 0.1 a second\n" +
        "* Welcome, Emil! 1 user online\n",
    );
    await emil.stdout.readUntil("* Welcome, Emil! 1 user online");
    await emil.write("one\ntwo\nthree\nfour\n");
    assert.equal(await conn.readLine(), "one"); // the others wait 11 s each for their turn
  } // the server goes
  const { code, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.equal(stderr, "error: 3 lines were not sent\nerror: The server closed the connection\n");
});

Deno.test("Pacer sends a burst less its headroom, then a little under the rate, and backs off when told", () => {
  const pacer = new Pacer({ burst: 10, rate: 5 }, 0);
  const sent = Array.from({ length: 10 }, () => pacer.take(0));
  assert.deepEqual(sent, [0, 0, 0, 0, 0, 0, 0, 0, 223, 223]); // 8 now, then wait
  // At 5 a second, with the margin, a token takes 1000 / 4.5 ms: never faster than the server.
  assert.equal(pacer.take(222), 1);
  assert.equal(pacer.take(223), 0);
  // Over a long paste the client never sends more than the server's bucket allows at any time.
  let time = 223;
  let count = 9;
  while (time < 60_000) {
    const wait = pacer.take(time);
    if (wait === 0) count++;
    time += Math.max(wait, 1);
    assert.ok(count <= 10 + (time * 5) / 1000, `${count} lines by ${time} ms`);
  }
  pacer.backOff(time);
  assert.ok(pacer.take(time) > 0);
  // A server without flood control: no waiting at all.
  pacer.setLimits({ burst: 10, rate: 0 }, time);
  assert.equal(pacer.take(time), 0);
});

Deno.test("client --log FILE appends every line shown, plain, after full time stamps; without --allow-write, one line says how", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  const dir = (await run("mktemp", ["-d", "/tmp/chat-log-XXXXXX"])).trim();
  await using _dir = { [Symbol.asyncDispose]: () => run("rm", ["-rf", dir]).then(() => {}) };
  const file = `${dir}/chat.log`;
  for (const word of ["first", "second"]) {
    await using emil = denoChild([
      "run",
      "-q",
      "-N",
      `--allow-write=${file}`,
      "client.ts",
      "Emil",
      "--port",
      String(server.addr.port),
      "--log",
      file,
    ], { stdin: true });
    await alice.expect("* Emil has entered the room");
    await alice.send(`hello Emil, ${word}`);
    while (await emil.stdout.readLine() !== `[alice] hello Emil, ${word}`);
    await emil.write(`hi alice, ${word}\n`);
    await alice.expect(`[Emil] hi alice, ${word}`);
    await emil.closeStdin();
    assert.equal((await emil.finish()).code, 0);
    await alice.expect("* Emil has left the room");
  }
  const stamp = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`;
  const lines = (await run("cat", [file])).trimEnd().split("\n");
  for (const line of lines) assert.match(line, new RegExp(`^${stamp} `), line);
  const bodies = lines.map((line) => line.slice(25));
  assert.ok(!lines.join("").includes("\x1b"));
  for (const word of ["first", "second"]) {
    assert.ok(bodies.includes(`  [alice] hello Emil, ${word}`), bodies.join("\n"));
    assert.ok(bodies.includes(`> [Emil] hi alice, ${word}`), bodies.join("\n"));
  }
  assert.ok(
    bodies.indexOf("  [alice] hello Emil, first") < bodies.indexOf("  [alice] hello Emil, second"),
  );

  await using denied = denoChild(
    ["run", "-q", "-N", "client.ts", "Emil", "--port", String(server.addr.port), "--log", file],
  );
  const { code, stdout, stderr } = await denied.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(stderr, `error: No permission to write ${file}; run with --allow-write=${file}\n`);
});

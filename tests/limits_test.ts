/**
 * Tests of the protections: flood control, connection limits and time limits, over real sockets.
 * Each limit is tested alone (the others out of reach) and with 0, which turns it off. Timers on a
 * loaded machine fire late, so the tests assert what a policy guarantees, never one schedule.
 */
import assert from "node:assert/strict";
import { FloodControl } from "../server/flood.ts";
import { addressKey, AddressTable, TokenBucket } from "../server/limits.ts";
import { AddressSet } from "../server/cidr.ts";
import { DEFAULT_LIMITS } from "../server.ts";
import {
  Child,
  connectFrom,
  DEADLINE_MS,
  joinAs,
  startServerProcess,
  startTestServer,
  TestClient,
  type TestConn,
  waitUntil,
  withDeadline,
} from "./_helpers.ts";

/** A limit on private lines no test's traffic comes near, for tests of the other limits. */
const BACKLOG_OUT_OF_REACH = 1024 * 1024 * 1024;
/** A room log four times the 16 MiB of the stalling talks below: it never cuts the stuck member. */
const LOG_OUT_OF_REACH = 64 * 1024 * 1024;

/**
 * A person's pause: not a wait for an event but the behaviour under test (between two pastes, or
 * before sending a name). Only ever a lower bound: a longer pause must pass the test too.
 */
function personPauses(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** `count` numbered lines of `text` in one write, as a paste sends them. */
function paste(prefix: string, count: number, text = ""): string {
  return Array.from({ length: count }, (_, i) => `${prefix} ${i}${text}\n`).join("");
}

/** Reads the lines a flooder gets until `last`: each before it must be the flood warning. */
async function warningsUntil(client: TestClient, last: string, rate: number): Promise<number> {
  const warning =
    `* error: Slow down: at most ${rate} lines a second; your lines are being delayed`;
  let warnings = 0;
  for (let line = await client.readLine(); line !== last; line = await client.readLine()) {
    assert.equal(line, warning);
    warnings++;
  }
  return warnings;
}

Deno.test("TokenBucket allows a burst, then one token per 1/rate, and refills while idle", () => {
  const bucket = new TokenBucket({ burst: 3, perSecond: 2, now: 0 });
  assert.ok(bucket.isFull(0));
  assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0)], [0, 0, 0]);
  assert.equal(bucket.take(0), 500); // the next token in half a second
  assert.equal(bucket.take(250), 250);
  assert.equal(bucket.take(500), 0);
  assert.ok(!bucket.isFull(1000));
  assert.ok(bucket.isFull(2000));
});

Deno.test("addressKey counts an IPv4 address as it is and an IPv6 one by its /64 network", () => {
  assert.equal(addressKey("192.0.2.7"), "192.0.2.7");
  assert.equal(addressKey("::ffff:192.0.2.7"), "192.0.2.7"); // IPv4 mapped into IPv6
  // One home or host has a whole /64: every address in it is one address for the limits.
  const home = "2001:db8:1:2::/64";
  for (const address of ["2001:db8:1:2::1", "2001:DB8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::"]) {
    assert.equal(addressKey(address), home, address);
  }
  assert.equal(addressKey("2001:0db8:0001:0002:0:0:0:9%eth0"), home);
  assert.notEqual(addressKey("2001:db8:1:3::1"), home); // the next /64 is someone else
  assert.equal(addressKey("2001:db8::1"), "2001:db8:0:0::/64");
  assert.equal(addressKey("::1"), "0:0:0:0::/64");
});

Deno.test("AddressTable forgets idle addresses and remembers a bounded number, never one in use", () => {
  const budgets = {
    lineBurst: 2,
    linesPerSecond: 1,
    joinBurst: 1,
    joinsPerSecond: 1,
    registrationBurst: 0,
    registrationsPerSecond: 0,
  };
  const table = new AddressTable(budgets, { maxRemembered: 3 });
  // One address per /64 however many it uses, with one bucket for all its connections.
  const first = table.get("2001:db8::1", 0);
  assert.equal(table.get("2001:db8::2", 0), first);
  first.connections++;
  first.lines!.take(0);
  // Addresses whose buckets have not refilled are remembered, up to the bound; beyond it the
  // oldest with nothing open is forgotten, so a flood of addresses costs bounded memory.
  for (let i = 1; i <= 10; i++) table.get(`192.0.2.${i}`, 0).lines!.take(0);
  assert.equal(table.size, 3);
  assert.equal(table.peek("2001:db8::3"), first, "an address with a connection open stays");
  assert.ok(table.peek("192.0.2.10") && table.peek("192.0.2.9"));
  assert.equal(table.peek("192.0.2.1"), undefined);
  // Full buckets and nothing open carry no information: pruned.
  table.prune(10_000);
  assert.equal(table.size, 1);
  first.connections--;
  table.prune(10_000);
  assert.equal(table.size, 0);
});

Deno.test("AddressTable gives an exempt address no budget, and keeps it apart from its /64", () => {
  const budgets = {
    lineBurst: 2,
    linesPerSecond: 1,
    joinBurst: 1,
    joinsPerSecond: 1,
    registrationBurst: 1,
    registrationsPerSecond: 1,
  };
  const table = new AddressTable(budgets, { exempt: new AddressSet(["127.0.0.0/8", "::1"]) });
  for (const hostname of ["127.0.0.1", "::ffff:127.0.0.9", "::1"]) {
    const state = table.get(hostname, 0);
    assert.deepEqual(
      [state.isExempt, state.lines, state.joins, state.registrations],
      [true, undefined, undefined, undefined],
      hostname,
    );
  }
  const other = table.get("10.0.0.1", 0);
  assert.equal(other.isExempt, false);
  assert.ok(other.lines && other.joins && other.registrations);
  // ::1 and ::2 are one /64 to the limits, but only ::1 is exempt: ::2 keeps its budgets.
  const neighbour = table.get("::2", 0);
  assert.equal(neighbour.isExempt, false);
  assert.notEqual(neighbour, table.get("::1", 0));
  assert.equal(neighbour.key, table.get("::1", 0).key);
  assert.ok(neighbour.joins);
  assert.ok(!new AddressTable(budgets).get("127.0.0.1", 0).isExempt, "none by default");
});

/** Joins as `name` from `from` (a loopback address), leaving again: the answer to the name. */
async function joinAndLeave(port: number, from: string, name: string): Promise<string> {
  await using client = await connectFrom(port, from);
  await client.expect(/^\* Welcome to chat/);
  await client.send(name);
  const answer = await client.readLine();
  if (answer.startsWith("* The room contains")) await client.send("/quit");
  await client.readToEnd();
  return answer;
}

Deno.test("server exempts loopback from the per-address limits by default: 25 joins in a minute, all open at once, are let in", async () => {
  const { child, port } = await startServerProcess();
  await using _server = child;
  const members: TestClient<TestConn>[] = [];
  try {
    // Over the 20 connections and the 20 joins a minute an address has.
    for (let i = 0; i < 25; i++) {
      const member = await connectFrom(port, "127.0.0.1");
      members.push(member);
      await member.expect(/^\* Welcome to chat/);
      await member.send(`bot${i}`);
      await member.expect(/^\* The room contains/);
    }
    await child.stdout.readUntil(/ bot24 \(127\.0\.0\.1:\d+\) joined$/);
  } finally {
    for (const member of members) member.close();
  }
});

Deno.test("server holds an address that is not exempt to the per-address limits: the 21st join in a minute is refused", async () => {
  const { child, port } = await startServerProcess(["--exempt", "127.0.0.1"]);
  await using _server = child;
  for (let i = 0; i < 20; i++) {
    assert.match(await joinAndLeave(port, "127.0.0.2", `guest${i}`), /^\* The room contains/);
  }
  assert.match(
    await joinAndLeave(port, "127.0.0.2", "guest20"),
    /^\* error: Too many joins from 127\.0\.0\.2: at most 20 a minute; try again in \d+ s$/,
  );
  // The exempt address is not: it joins on.
  for (let i = 0; i < 21; i++) {
    assert.match(await joinAndLeave(port, "127.0.0.1", `bot${i}`), /^\* The room contains/);
  }
});

Deno.test("server holds exempt addresses to the global limit and to each connection's flood control", async () => {
  await using server = startTestServer({
    maxConnections: 4,
    maxPerAddress: 1,
    joinRate: 1,
    floodBurst: 2,
    floodRate: 2,
    floodLimit: 100,
  });
  const port = server.addr.port;
  await using alice = await joinAs(port, "alice");
  await using _bob = await joinAs(port, "bob");
  await using carol = await joinAs(port, "carol");
  await alice.expect("* bob has entered the room");
  await alice.expect("* carol has entered the room");
  await using _dave = await TestClient.connect(port);
  await using over = await TestClient.connect(port);
  assert.deepEqual(await over.readToEnd(), [
    "* error: Server is full: at most 4 connections; try again later",
  ]);
  await carol.write(paste("burst", 4));
  assert.equal(
    await carol.readLine(),
    "* error: Slow down: at most 2 lines a second; your lines are being delayed",
  );
  for (let i = 0; i < 4; i++) await alice.expect(`[carol] burst ${i}`);
});

Deno.test("DEFAULT_LIMITS are the defaults the README promises", () => {
  assert.deepEqual(DEFAULT_LIMITS, {
    maxLineBytes: 4096,
    logSize: 16 * 1024 * 1024,
    maxBacklogBytes: 1024 * 1024,
    maxConnections: 10_000,
    maxPerAddress: 20,
    joinRate: 20,
    registerRate: 10,
    handshakeTimeoutMs: 10_000,
    nameTimeoutMs: 30_000,
    idleTimeoutMs: 0,
    resumeGraceMs: 30_000,
    writeTimeoutMs: 30_000,
    floodBurst: 10,
    floodRate: 5,
    floodLimit: 50,
  });
});

Deno.test("flood control delays a burst over the limit, warns once per flood and loses nothing", async () => {
  await using server = startTestServer({ floodBurst: 3, floodRate: 10, floodLimit: 100 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using flooder = await joinAs(server.addr.port, "flooder");
  await alice.expect("* flooder has entered the room");
  await flooder.write(paste("line", 10));
  for (let i = 0; i < 10; i++) await alice.expect(`[flooder] line ${i}`);
  await flooder.send("/who");
  const warnings = await warningsUntil(flooder, "* 2 online: alice, flooder", 10);
  // One warning per flood, not one per delayed line (7 here, 100 ms apart). A second flood would
  // need the bucket full again, 300 ms without a line, between two lines of one paste: at most a
  // server stalled that long once.
  assert.ok(warnings >= 1 && warnings <= 2, `${warnings} warnings`);
});

Deno.test("flood control stops reading only from the flooder: the others chat on at once", async () => {
  await using server = startTestServer({ floodBurst: 1, floodRate: 0.1, floodLimit: 100 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await using flooder = await joinAs(server.addr.port, "flooder");
  await alice.expect("* bob has entered the room");
  await alice.expect("* flooder has entered the room");
  await flooder.write("one\ntwo\nthree\n"); // "two" must wait ten seconds for its token
  await alice.expect("[flooder] one");
  await flooder.expect(/^\* error: Slow down/);
  await bob.send("not held up");
  await alice.expect("[bob] not held up"); // before "[flooder] two"
});

Deno.test("flood control disconnects a client that keeps flooding, and the others are told", async () => {
  await using server = startTestServer({ floodBurst: 2, floodRate: 10, floodLimit: 5 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using flooder = await joinAs(server.addr.port, "flooder");
  await alice.expect("* flooder has entered the room");
  await flooder.write(paste("line", 50));
  // Two lines at once and five delayed, then the next is one too many. A server stalled long
  // enough to refill the bucket may let more through, never fewer, and never all fifty.
  let relayed = 0;
  for (let line = await alice.readLine(); line !== "* flooder has left the room (flooding)";) {
    assert.equal(line, `[flooder] line ${relayed++}`);
    line = await alice.readLine();
  }
  assert.ok(relayed >= 7 && relayed < 50, `${relayed} lines relayed`);
  const rest = await flooder.readToEnd();
  assert.equal(rest.at(-1), "* error: Disconnected for flooding");
  assert.match(rest[0]!, /^\* error: Slow down: at most 10 lines a second/);
  assert.ok(rest.slice(0, -1).every((line) => line === rest[0]), JSON.stringify(rest));
});

Deno.test("flood control forgives a flooder who pauses until the bucket is full again", async () => {
  // Each paste alone stays within the flood limit (7 delayed lines of 10); both together are over
  // it, so a pause that did not clear the count would cut the paster off in the second paste.
  await using server = startTestServer({ floodBurst: 5, floodRate: 20, floodLimit: 10 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using paster = await joinAs(server.addr.port, "paster");
  await alice.expect("* paster has entered the room");
  await paster.write(paste("first", 12));
  for (let i = 0; i < 12; i++) await alice.expect(`[paster] first ${i}`);
  // The bucket is full 250 ms (burst / rate) after the last token, taken before alice got the
  // last line; a person pausing three times that long has earned a clean slate.
  await personPauses(750);
  await paster.write(paste("second", 12));
  for (let i = 0; i < 12; i++) await alice.expect(`[paster] second ${i}`);
  await paster.send("/who");
  assert.ok(await warningsUntil(paster, "* 2 online: alice, paster", 20) >= 1);
});

Deno.test("flood control at the defaults lets a paste of three dozen lines through, slowed", async () => {
  await using server = startTestServer(); // 10 at once, then 5 a second, cut after 50 delayed
  await using alice = await joinAs(server.addr.port, "alice");
  await using paster = await joinAs(server.addr.port, "paster");
  await alice.expect("* paster has entered the room");
  const code = "    const value = compute(input, options); // a line of pasted code";
  await paster.write(paste("line", 36, code));
  // 26 of them wait for a token, 200 ms each: about 5 s in all.
  for (let i = 0; i < 36; i++) await alice.expect(`[paster] line ${i}${code}`);
  await paster.send("/who");
  assert.ok(await warningsUntil(paster, "* 2 online: alice, paster", 5) >= 1);
});

Deno.test("flood control is off with floodRate 0: a burst of hundreds passes unwarned", async () => {
  await using server = startTestServer({ floodRate: 0, floodBurst: 1, floodLimit: 1 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  await bob.write(paste("line", 500));
  for (let i = 0; i < 500; i++) await alice.expect(`[bob] line ${i}`);
  await bob.send("/who");
  await bob.expect("* 2 online: alice, bob"); // no warning before it
});

Deno.test("maxConnections refuses one more connection with a reason and disturbs nobody", async () => {
  await using server = startTestServer({ maxConnections: 2 });
  await using alice = await joinAs(server.addr.port, "alice");
  const bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  await using third = await TestClient.connect(server.addr.port);
  assert.deepEqual(await third.readToEnd(), [
    "* error: Server is full: at most 2 connections; try again later",
  ]);
  await bob.send("still here");
  await alice.expect("[bob] still here");
  bob.close();
  await alice.expect("* bob has left the room");
  // The leave notice goes out before the connection's last lines; the slot is free once it ends.
  await waitUntil(() => server.connectionCount === 1, "the server to let go of bob's connection");
  await using _carol = await joinAs(server.addr.port, "carol"); // a slot is free again
  await alice.expect("* carol has entered the room");
});

/** A raw client connecting from another loopback address, as `nc` on another host would. */
function socatFrom(bindAddress: string, port: number): Child {
  return new Child("socat", ["-", `TCP:127.0.0.1:${port},bind=${bindAddress}`], { stdin: true });
}

Deno.test("maxPerAddress refuses a third connection from one address, not from another", async () => {
  await using server = startTestServer({ maxPerAddress: 2, exempt: [] });
  await using alice = await joinAs(server.addr.port, "alice");
  await using _second = await TestClient.connect(server.addr.port);
  await using third = await TestClient.connect(server.addr.port);
  assert.deepEqual(await third.readToEnd(), [
    "* error: Too many connections from 127.0.0.1: at most 2",
  ]);

  await using other = socatFrom("127.0.0.2", server.addr.port);
  assert.equal(await other.stdout.readLine(), "* Welcome to chat! What shall I call you?");
  await other.write("remote\n");
  await alice.expect("* remote has entered the room");
  await using again = socatFrom("127.0.0.2", server.addr.port);
  assert.equal(await again.stdout.readLine(), "* Welcome to chat! What shall I call you?");
  await using refused = socatFrom("127.0.0.2", server.addr.port);
  assert.equal(
    await refused.stdout.readLine(),
    "* error: Too many connections from 127.0.0.2: at most 2",
  );
});

Deno.test("maxPerAddress gives an address its slot back each time a connection closes", async () => {
  // Joins are limited per address too: out of reach here, where 21 join in a row.
  await using server = startTestServer({ maxPerAddress: 2, joinRate: 0, exempt: [] });
  await using alice = await joinAs(server.addr.port, "alice");
  // Ten times the limit, one after another: every closed connection must give its slot back.
  for (let i = 0; i < 20; i++) {
    const guest = await joinAs(server.addr.port, `guest${i}`);
    await alice.expect(`* guest${i} has entered the room`);
    guest.close();
    await alice.expect(`* guest${i} has left the room`);
    await waitUntil(() => server.connectionCount === 1, `guest${i}'s connection to end`);
  }
});

Deno.test("maxConnections 0 and maxPerAddress 0 turn the connection limits off", async () => {
  // Loopback is not exempt here, so that only the 0 can let them in.
  await using server = startTestServer({ maxConnections: 0, maxPerAddress: 0, exempt: [] });
  const clients: TestClient[] = [];
  try {
    // More than the default 20 from one address.
    for (let i = 0; i < 25; i++) clients.push(await joinAs(server.addr.port, `user${i}`));
    assert.equal(server.connectionCount, 25);
  } finally {
    for (const client of clients) client.close();
  }
});

/** The connections the log has reported as refused so far. */
function refusedInLog(log: string[]): number {
  let refused = 0;
  for (const line of log) {
    const match = /^refused (\d+) connection\(s\) over the connection limits$/.exec(line);
    if (match) refused += Number(match[1]);
  }
  return refused;
}

/** Connects and reads the server's refusal, which must be `reason`, to the end. */
async function expectRefused(port: number, reason: string): Promise<void> {
  await using client = await TestClient.connect(port);
  assert.deepEqual(await client.readToEnd(), [`* error: ${reason}`]);
}

Deno.test("refused connections are counted in the log, each once", async () => {
  const log: string[] = [];
  await using server = startTestServer({
    maxConnections: 1,
    nameTimeoutMs: 1200,
    log: (line) => log.push(line),
  });
  const alice = await joinAs(server.addr.port, "alice");
  const full = "Server is full: at most 1 connections; try again later";
  for (let i = 0; i < 3; i++) await expectRefused(server.addr.port, full);
  // The server checks its counts every 300 ms here.
  await waitUntil(() => refusedInLog(log) >= 3, () => `3 refusals in the log: ${log}`, 5000);
  alice.close();
  await waitUntil(() => server.connectionCount === 0, "alice's connection to end");
  // A connection that times out proves that the server has checked its counts again since, more
  // than a second after it logged them (it logs them once a second at most): a count it did not
  // reset would have been logged again by then.
  await using late = await TestClient.connect(server.addr.port);
  assert.equal((await late.readToEnd()).at(-1), "* error: No valid name within 1.2 seconds");
  assert.equal(refusedInLog(log), 3, JSON.stringify(log));
});

Deno.test("refused connections are logged once a second at most, also with a short time limit", async () => {
  const log: { at: number; line: string }[] = [];
  await using server = startTestServer({
    maxConnections: 1,
    nameTimeoutMs: 400, // the server checks its time limits every 100 ms
    log: (line) => log.push({ at: Date.now(), line }),
  });
  await using _alice = await joinAs(server.addr.port, "alice");
  const full = "Server is full: at most 1 connections; try again later";
  const started = Date.now();
  let refused = 0;
  for (; Date.now() - started < 1500; refused++) await expectRefused(server.addr.port, full);
  const lines = () => log.map((entry) => entry.line);
  await waitUntil(
    () => refusedInLog(lines()) === refused,
    () => `${refused} refusals in the log: ${lines()}`,
  );
  const times = log.filter((entry) => entry.line.startsWith("refused ")).map((entry) => entry.at);
  const seconds = (times.at(-1)! - started) / 1000;
  // A flood of connections must not flood the log: one line a second is the README's bound.
  assert.ok(
    times.length <= Math.floor(seconds) + 1,
    `${times.length} log lines for ${refused} refusals in ${seconds} s: ${JSON.stringify(lines())}`,
  );
});

Deno.test("nameTimeout closes a connection that sends no valid name in time, with a reason", async () => {
  await using server = startTestServer({ nameTimeoutMs: 200 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using silent = await TestClient.connect(server.addr.port);
  await using slowloris = await TestClient.connect(server.addr.port);
  await slowloris.write("a"); // a name that never ends
  assert.deepEqual(await silent.readToEnd(), [
    "* Welcome to chat! What shall I call you?",
    "* error: No valid name within 0.2 seconds",
  ]);
  assert.equal((await slowloris.readToEnd()).at(-1), "* error: No valid name within 0.2 seconds");
  await using _bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room"); // alice, joined, was not timed out
});

Deno.test("nameTimeout 0 turns the name timeout off", async () => {
  await using server = startTestServer({ nameTimeoutMs: 0, idleTimeoutMs: 200 });
  await using silent = await TestClient.connect(server.addr.port);
  await silent.expect("* Welcome to chat! What shall I call you?");
  // The witness idles out 200 ms after joining, later than the silent connection arrived: the
  // server has checked the silent one's time then, and must have let it be.
  await using witness = await joinAs(server.addr.port, "witness");
  assert.deepEqual(await witness.readToEnd(), [
    "* error: Closed after 0.2 seconds without a line",
  ]);
  await silent.send("late");
  await silent.expect("* The room contains:");
});

Deno.test("idleTimeout closes a silent member with a notice, and the others are told", async () => {
  await using server = startTestServer({ idleTimeoutMs: 300 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using sleepy = await joinAs(server.addr.port, "sleepy");
  // Alice speaks after sleepy joined, and sleepy after alice: alice falls silent first, so she
  // idles out first, however late the timers, and sleepy is still there to hear it.
  await alice.expect("* sleepy has entered the room");
  await alice.send("a");
  await sleepy.expect("[alice] a");
  await sleepy.send("s");
  assert.deepEqual(await sleepy.readToEnd(), [
    "* alice has left the room (idle)",
    "* error: Closed after 0.3 seconds without a line",
  ]);
  // Alice may have idled out before sleepy's line reached her.
  const rest = await alice.readToEnd();
  assert.equal(rest.at(-1), "* error: Closed after 0.3 seconds without a line");
  assert.ok(rest.length === 1 || (rest.length === 2 && rest[0] === "[sleepy] s"), `${rest}`);
});

Deno.test("idleTimeout 0, the default, keeps silent members", async () => {
  await using server = startTestServer({ nameTimeoutMs: 200 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  // The witness times out 200 ms after it came, after alice's and bob's last lines: the server
  // has checked their silence then, and must have let them be.
  await using witness = await TestClient.connect(server.addr.port);
  assert.equal((await witness.readToEnd()).at(-1), "* error: No valid name within 0.2 seconds");
  await alice.send("still here");
  await bob.expect("[alice] still here");
});

/** A member that never reads once it has joined, so that the server's writes to it stall. */
interface Room {
  alice: TestClient;
  bob: TestClient;
  stuck: TestClient;
}

async function roomWithStuckReader(port: number): Promise<Room & AsyncDisposable> {
  const alice = await joinAs(port, "alice");
  const bob = await joinAs(port, "bob");
  const stuck = await joinAs(port, "stuck");
  await alice.expect("* bob has entered the room");
  await alice.expect("* stuck has entered the room");
  await bob.expect("* stuck has entered the room");
  return {
    alice,
    bob,
    stuck,
    [Symbol.asyncDispose]() {
      for (const client of [alice, bob, stuck]) client.close();
      return Promise.resolve();
    },
  };
}

const TEXT = "w".repeat(4000);
/** 16 MiB: far more than the kernel buffers for a client that does not read (about 4 MiB). */
const STALLING_LINES = 4096;

/**
 * Alice says `STALLING_LINES` lines of 4 KB, eight at a time, and bob reads each in order, so bob
 * never falls behind while the writes to the stuck member stall. Returns whether bob saw `notice`.
 */
async function talkPastStuck(room: Room, notice?: string): Promise<boolean> {
  let received = 0;
  let isNoticed = false;
  for (let sent = 0; sent < STALLING_LINES;) {
    for (const end = sent + 8; sent < end;) await room.alice.send(`${sent++} ${TEXT}`);
    while (received < sent) {
      const line = await room.bob.readLine();
      if (line === notice && !isNoticed) isNoticed = true;
      else assert.equal(line, `[alice] ${received++} ${TEXT}`);
    }
  }
  return isNoticed;
}

Deno.test("writeTimeout alone drops a member whose writes stall, and the others lose nothing", async () => {
  // The room log and the limit on private lines out of reach: only the write timeout can cut.
  const logs: string[] = [];
  await using server = startTestServer({
    writeTimeoutMs: 200,
    logSize: LOG_OUT_OF_REACH,
    maxBacklogBytes: BACKLOG_OUT_OF_REACH,
    floodRate: 0,
    log: (line) => logs.push(line),
  });
  await using room = await roomWithStuckReader(server.addr.port);
  const notice = "* stuck has left the room (stopped reading)";
  if (!await talkPastStuck(room, notice)) {
    // The writes stalled during the talk; the timeout is 200 ms, checked every 50 ms.
    await room.bob.expect(notice, 5000);
  }
  await room.alice.expect(notice);
  const detail = "stopped reading: no byte taken for 0.2 s";
  assert.ok(logs.some((line) => line.endsWith(`left (${detail})`)), logs.join("\n"));
  await room.alice.send("after");
  await room.bob.expect("[alice] after");
});

Deno.test("writeTimeout 0 turns the write timeout off: a stalled member stays", async () => {
  await using server = startTestServer({
    writeTimeoutMs: 0,
    nameTimeoutMs: 200,
    logSize: LOG_OUT_OF_REACH,
    maxBacklogBytes: BACKLOG_OUT_OF_REACH,
    floodRate: 0,
  });
  await using room = await roomWithStuckReader(server.addr.port);
  assert.equal(await talkPastStuck(room), false);
  // The witness times out 200 ms after it came, while the writes to stuck had stalled already: the
  // server has looked at the stall then, and must have let it be.
  await using witness = await TestClient.connect(server.addr.port);
  assert.equal((await witness.readToEnd()).at(-1), "* error: No valid name within 0.2 seconds");
  for (let i = 0; i < STALLING_LINES; i++) await room.stuck.expect(`[alice] ${i} ${TEXT}`);
  await room.stuck.send("caught up");
  await room.bob.expect("[stuck] caught up");
});

Deno.test("connections are served again after a burst of refusals", async () => {
  // Each limit's refusals cost the server nothing it keeps: after many, the slots are all there.
  await using server = startTestServer({ maxConnections: 3, maxPerAddress: 2, exempt: [] });
  await using alice = await joinAs(server.addr.port, "alice");
  const bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  const reason = "Too many connections from 127.0.0.1: at most 2";
  await withDeadline(
    Promise.all(Array.from({ length: 50 }, () => expectRefused(server.addr.port, reason))),
    "50 refusals",
    DEADLINE_MS,
  );
  bob.close();
  await alice.expect("* bob has left the room");
  await waitUntil(() => server.connectionCount === 1, "bob's connection to end");
  await using _carol = await joinAs(server.addr.port, "carol");
  await alice.expect("* carol has entered the room");
});

Deno.test("FloodControl answers go, wait with one warning, or flooding, and never calls back", () => {
  const address = {
    key: "10.0.0.1",
    isExempt: false,
    connections: 1,
    lines: undefined,
    joins: undefined,
    registrations: undefined,
  };
  const limits = {
    maxLineBytes: 10,
    floodBurst: 2,
    floodRate: 1,
    floodLimit: 2,
    maxPerAddress: 20,
  };
  assert.equal(FloodControl.for({ ...limits, floodRate: 0 }, address), undefined);
  const flood = FloodControl.for(limits, address, 0)!;
  assert.deepEqual([flood.admit(0), flood.admit(0), flood.admit(0)], [true, true, false]);
  const first = flood.delay(0);
  assert.deepEqual(first, {
    kind: "wait",
    ms: 1000,
    warning: "Slow down: at most 1 lines a second; your lines are being delayed",
  });
  assert.deepEqual(flood.delay(0), { kind: "wait", ms: 1000, warning: undefined });
  assert.deepEqual(flood.delay(0), { kind: "flooding" }, "one delayed line over the limit");
  assert.equal(flood.wait(1000), 0);
  flood.take(1000);
  assert.equal(flood.wait(1000), 1000);
  // Bytes: a burst of two lines' worth at once, then 10 a second, over budget for 4 s at most.
  assert.equal(flood.spend(0, 20), 0);
  assert.equal(flood.spend(0, 10), 1000);
  assert.equal(flood.spend(0, 30), 4000);
  assert.equal(flood.spend(0, 1), "flooding");
});

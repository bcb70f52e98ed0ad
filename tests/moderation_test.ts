/**
 * Moderation on one server, from raw sockets as nc would speak: each operator command, the room's
 * notice, the refusal at rejoin, timed bans and mutes ending by themselves, operators protected,
 * and everyone else refused.
 */
import assert from "node:assert/strict";
import {
  ANY_GREETING,
  Certificate,
  connectFrom,
  DEADLINE_MS,
  joinAs,
  startTestServer,
  TestClient,
  type TestConn,
  TimeoutError,
  waitUntil,
} from "./_helpers.ts";
import type { ChatServer } from "../server.ts";
import { rawUpgrade, Site } from "./_websocket.ts";
import { formatUntil, OPERATOR_WELCOME, parseResumeToken } from "../protocol.ts";
import { hashPassword } from "../server/passwords.ts";
import { FixedAccounts } from "../server/operators_file.ts";
import { MemoryModerationStore } from "../server/moderation_store.ts";
import { Moderation, normalizeAddress } from "../server/moderation.ts";
import { LocalHub } from "../server/hub.ts";
import type { LogFields } from "../server/log.ts";
import { formatMetrics, serverFamilies } from "../server/metrics.ts";

const PASSWORD = "correct horse";
/** alice and carol are operators; dave is registered, and no operator. */
const ACCOUNTS = await Promise.all(
  ["alice", "carol", "dave"].map((name) => hashPassword(name, PASSWORD)),
);
const UNTIL = "\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC";

function startModeratedServer(): ChatServer {
  return startTestServer({
    accounts: new FixedAccounts(ACCOUNTS),
    moderation: new MemoryModerationStore(["alice", "carol"]),
    floodRate: 0, // the tests send lines faster than a person
  });
}

/** Joins as a registered name, with its password; reads up to the welcome (and the topic, if any). */
async function loginAs<C extends TestConn>(
  client: TestClient<C>,
  name: string,
): Promise<TestClient<C>> {
  await client.expect(ANY_GREETING);
  await client.send(name);
  await client.expect(`* ${name} is registered: send its password`);
  await client.send(PASSWORD);
  await readUntil(client, new RegExp(`^\\* Welcome, ${name}!`));
  return client;
}

/** Reads lines until one matches, returning it (the others are skipped). */
async function readUntil(client: TestClient<TestConn>, pattern: RegExp): Promise<string> {
  for (;;) {
    const line = await client.readLine();
    if (pattern.test(line)) return line;
  }
}

/**
 * The next line but join notices (who joins when is not what these tests are about) and an
 * operator's welcome (a test of its own looks at it), checked against `expected`.
 */
async function hear(
  client: TestClient<TestConn>,
  expected: string | RegExp,
): Promise<string> {
  let line = await client.readLine();
  while (/^\* [\w-]+ has entered the room$/.test(line) || line === OPERATOR_WELCOME) {
    line = await client.readLine();
  }
  const isMatch = typeof expected === "string" ? line === expected : expected.test(line);
  assert.ok(isMatch, `Expected ${String(expected)}, got ${JSON.stringify(line)}`);
  return line;
}

/** Joins from another loopback address (127.0.0.2...), as an unregistered name. */
async function joinFrom(port: number, address: string, name: string) {
  const client = await connectFrom(port, address);
  await client.expect(ANY_GREETING);
  await client.send(name);
  await readUntil(client, new RegExp(`^\\* Welcome, ${name}!`));
  return client;
}

/**
 * Tries to join as `name` (from `address`, or 127.0.0.1) until the server lets it in, within the
 * deadline: what a banned member does once the ban ends. Returns the joined client.
 */
async function rejoinWhenAllowed(port: number, name: string, address?: string) {
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    const client = address ? await connectFrom(port, address) : await TestClient.connect(port);
    const first = await client.readLine();
    if (first.startsWith("* Welcome")) {
      await client.send(name);
      const line = await client.readLine();
      if (!line.startsWith("* error: You are banned")) {
        await readUntil(client, new RegExp(`^\\* Welcome, ${name}!`));
        return client;
      }
    }
    client.close();
    if (Date.now() > deadline) throw new TimeoutError(`${name} was still banned: ${first}`);
    await new Promise((resolve) => setTimeout(resolve, 50)); // paced retries, not a wait for the end
  }
}

Deno.test("moderation: anyone but an operator is refused each operator command with one line", async () => {
  await using server = startModeratedServer();
  const { port } = server.addr;
  await using bob = await joinAs(port, "bob");
  await using dave = await loginAs(await TestClient.connect(port), "dave");
  for (const client of [bob, dave]) {
    for (
      const line of [
        "/kick x",
        "/ban x 1h",
        "/unban x",
        "/bans",
        "/mute x",
        "/unmute x",
        "/topic hi",
        "/topic -",
        "/op x",
        "/deop x",
        "/whois x",
        "/KICK",
      ]
    ) {
      const word = /^\/(\w+)/.exec(line)![1]!.toLowerCase();
      await client.send(line);
      await hear(client, `* error: /${word} is for operators only`);
    }
    // What everyone may do still works.
    await client.send("/topic");
    await hear(client, "* No topic is set");
    await client.send("/ops");
    await hear(client, "* No operator is online");
    await client.send("/help");
    const help = [];
    for (
      let line = await client.readLine();
      !line.startsWith("* /help");
      line = await client.readLine()
    ) {
      help.push(line);
    }
    assert.ok(!help.some((line) => line.includes("/kick")), help.join("\n"));
  }
});

Deno.test("moderation: /kick puts a member out with one notice; it may come back", async () => {
  await using server = startModeratedServer();
  const { port } = server.addr;
  await using alice = await loginAs(await TestClient.connect(port), "alice");
  await using bob = await joinAs(port, "bob");
  await using eve = await joinAs(port, "eve");
  await readUntil(alice, /^\* eve has entered/);
  await readUntil(bob, /^\* eve has entered/);
  await alice.send("/kick EVE spamming: links");
  assert.deepEqual(await eve.readToEnd(), ["* error: You were kicked by alice: spamming: links"]);
  await hear(bob, "* eve was kicked by alice: spamming: links");
  await hear(alice, "* eve was kicked by alice: spamming: links");
  // No leave line follows: the next thing bob hears is what is said next.
  await alice.send("after");
  await hear(bob, "[alice] after");
  await using _back = await joinAs(port, "eve");
  await alice.send("/kick nobody");
  await hear(alice, '* error: No user named "nobody" is online: /who lists who is');
});

Deno.test("moderation: an operator cannot kick, ban or mute another operator, nor themselves", async () => {
  await using server = startModeratedServer();
  const { port } = server.addr;
  await using alice = await loginAs(await TestClient.connect(port), "alice");
  await using carol = await loginAs(await TestClient.connect(port), "carol");
  for (const verb of ["kick", "ban", "mute"]) {
    await alice.send(`/${verb} Carol`);
    await hear(alice, `* error: Cannot ${verb} "Carol": an operator cannot ${verb} an operator`);
    await alice.send(`/${verb} alice`);
    await hear(alice, `* error: You cannot ${verb} yourself`);
  }
  // Every client here comes from 127.0.0.1: an address ban would put the operators out.
  await alice.send("/ban 127.0.0.0/8 1h");
  await hear(
    alice,
    "* error: Cannot ban 127.0.0.0/8: it holds operator alice, carol, whom no ban may put out",
  );
  await alice.send("/deop alice");
  await hear(alice, "* error: You cannot deop yourself: the server's chat admin can");
  await alice.send("/bans");
  await hear(alice, "* No bans");
  await carol.send("still here");
  await hear(alice, "[carol] still here");
});

Deno.test("moderation: a ban by name puts the member out, and holds for every case of it until it ends", async () => {
  await using server = startModeratedServer();
  const { port } = server.addr;
  await using alice = await loginAs(await TestClient.connect(port), "alice");
  await using bob = await joinAs(port, "bob");
  await using eve = await joinAs(port, "Eve");
  await readUntil(bob, /^\* Eve has entered/);
  await alice.send("/ban eve 1s flooding");
  const [kicked] = await eve.readToEnd();
  assert.match(kicked!, new RegExp(`^\\* error: You are banned until ${UNTIL}: flooding$`));
  const banned = new RegExp(`^\\* Eve was banned by alice until ${UNTIL}: flooding$`);
  await hear(bob, banned);
  await hear(alice, banned);
  await alice.send("/bans");
  await hear(alice, "* 1 ban:");
  await hear(alice, new RegExp(`^\\* eve by alice until ${UNTIL}: flooding$`));
  // Another case of the name is the same name: refused at its name, and closed.
  await using again = await TestClient.connect(port);
  await again.expect(ANY_GREETING);
  await again.send("EVE");
  assert.match((await again.readToEnd())[0]!, /^\* error: You are banned until .*: flooding$/);
  // Nor can a member take the name by /nick: refused, not closed.
  await bob.send("/nick eVe");
  await hear(bob, new RegExp(`^\\* error: You are banned until ${UNTIL}: flooding$`));
  await bob.send("/who");
  await hear(bob, /^\* 2 online: @alice, bob$/);
  // The ban ends by itself: the name is let in again.
  await using _back = await rejoinWhenAllowed(port, "eve");
  await alice.send("/bans");
  await hear(alice, "* No bans");
});

Deno.test("moderation: a ban on a registered name made while a /nick to it awaits its password holds", async () => {
  await using server = startModeratedServer();
  const { port } = server.addr;
  await using alice = await loginAs(await TestClient.connect(port), "alice");
  await using bob = await joinAs(port, "bob");
  await bob.send("/nick dave");
  await hear(bob, "* dave is registered: send its password");
  await alice.send("/ban dave");
  await hear(alice, "* dave was banned by alice");
  await hear(bob, "* dave was banned by alice");
  await bob.send(PASSWORD);
  await hear(bob, "* error: You are banned");
  await bob.send("/who");
  await hear(bob, /^\* 2 online: @alice, bob$/);
});

Deno.test("moderation: /unban lifts a ban until lifted, and the room is told", async () => {
  await using server = startModeratedServer();
  const { port } = server.addr;
  await using alice = await loginAs(await TestClient.connect(port), "alice");
  await using bob = await joinAs(port, "bob");
  await alice.send("/ban mallory");
  await hear(alice, "* mallory was banned by alice");
  await hear(bob, "* mallory was banned by alice");
  await using refused = await TestClient.connect(port);
  await refused.expect(ANY_GREETING);
  await refused.send("mallory");
  assert.deepEqual(await refused.readToEnd(), ["* error: You are banned"]);
  await alice.send("/unban MALLORY");
  await hear(bob, "* mallory was unbanned by alice");
  await hear(alice, "* mallory was unbanned by alice");
  await alice.send("/unban mallory");
  await hear(alice, '* error: There is no ban on "mallory": /bans lists them');
  await using _back = await joinAs(port, "mallory");
});

Deno.test("moderation: a ban by address holds for every name from it, at accept, until it ends", async () => {
  await using server = startModeratedServer();
  const { port } = server.addr;
  await using alice = await loginAs(await TestClient.connect(port), "alice");
  await using bob = await joinAs(port, "bob");
  await using eve = await joinFrom(port, "127.0.0.2", "eve");
  await using mallory = await joinFrom(port, "127.0.0.2", "mallory");
  await readUntil(bob, /^\* mallory has entered/);
  await alice.send("/whois eve");
  await hear(alice, "* eve: from 127.0.0.2, TCP, not registered, not an operator");
  await alice.send("/ban 127.0.0.2 1s trolls");
  const banned = new RegExp(`^\\* eve and mallory were banned by alice until ${UNTIL}: trolls$`);
  await hear(alice, banned);
  await hear(alice, new RegExp(`^\\* Banned 127\\.0\\.0\\.2 until ${UNTIL}$`));
  for (const client of [eve, mallory]) {
    const lines = (await client.readToEnd()).filter((line) => !line.endsWith("entered the room"));
    assert.match(lines.join("\n"), /^\* error: You are banned until [^\n]*: trolls$/);
  }
  // One notice names both, and never the address; no leave line of either.
  await hear(bob, banned);
  // Reconnecting does not dodge it, under any name: refused before the greeting.
  await using again = await connectFrom(port, "127.0.0.2");
  assert.match((await again.readToEnd())[0]!, /^\* error: You are banned until .*: trolls$/);
  // It ends by itself.
  await using _back = await rejoinWhenAllowed(port, "someone", "127.0.0.2");
  await bob.expect("* someone has entered the room");
});

Deno.test("moderation: a ban by address holds for a connection from it that had not joined yet", async () => {
  await using server = startModeratedServer();
  const { port } = server.addr;
  await using alice = await loginAs(await TestClient.connect(port), "alice");
  // bob, from an address no ban holds for, holds a resume token.
  await using bob = await TestClient.connect(port);
  await bob.expect(ANY_GREETING);
  await bob.send("/resume bob");
  let token: string | undefined;
  while (token === undefined) token = parseResumeToken(await bob.readLine());
  // Opened from 127.0.0.2 before the ban, each goes on after it: a fresh name, a registered
  // name's password, bob's token. None gets in.
  const early = await Promise.all([0, 1, 2].map(() => connectFrom(port, "127.0.0.2")));
  try {
    for (const client of early) await client.expect(ANY_GREETING);
    const [fresh, registered, resuming] = early;
    await registered!.send("dave");
    await registered!.expect("* dave is registered: send its password");
    await alice.send("/ban 127.0.0.2");
    await hear(alice, "* Banned 127.0.0.2");
    await fresh!.send("eve");
    await registered!.send(PASSWORD);
    await resuming!.send(`/resume bob ${token}`);
    for (const client of early) {
      assert.deepEqual(await client.readToEnd(), ["* error: You are banned"]);
    }
  } finally {
    for (const client of early) client.close();
  }
  await bob.send("/who");
  assert.equal(await readUntil(bob, /online/), "* 2 online: @alice, bob");
});

Deno.test("moderation: an IPv6 address is banned by its /64, and a block as written", () => {
  assert.equal(normalizeAddress("2001:db8:0:0:1::7"), "2001:db8::/64");
  assert.equal(normalizeAddress("2001:DB8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(normalizeAddress("2001:db8::/32"), "2001:db8::/32");
  assert.equal(normalizeAddress("203.0.113.7"), "203.0.113.7");
  assert.equal(normalizeAddress("::ffff:203.0.113.7"), "203.0.113.7");
  assert.equal(normalizeAddress("10.1.2.3/8"), "10.0.0.0/8");
  assert.throws(() => normalizeAddress("1.2.3.4/40"), /Cannot ban "1.2.3.4\/40"/);
  assert.throws(() => normalizeAddress("1.2.3"), /Cannot ban/);
});

Deno.test("moderation: a mute refuses the member's lines to others until it ends; they still read", async () => {
  await using server = startModeratedServer();
  const { port } = server.addr;
  await using alice = await loginAs(await TestClient.connect(port), "alice");
  await using bob = await joinAs(port, "bob");
  await alice.send("/mute BOB 1s shouting");
  const notice = new RegExp(`^\\* bob was muted by alice until ${UNTIL}: shouting$`);
  await hear(bob, notice);
  await hear(alice, notice);
  const muted = new RegExp(`^\\* error: You are muted until ${UNTIL}: your line was not sent$`);
  for (const line of ["hello", "/me waves", "/msg alice psst", "/nick robert"]) {
    await bob.send(line);
    await hear(bob, muted);
  }
  await bob.send("/who");
  await hear(bob, "* 2 online: @alice, bob");
  await alice.send("you can read this");
  await hear(bob, "[alice] you can read this");
  // Once it ends, lines pass: bob tries until one is not refused.
  const deadline = Date.now() + DEADLINE_MS;
  for (;;) {
    await bob.send("free at last");
    await bob.send("/topic"); // answered either way: tells a refusal from a relay
    const line = await bob.readLine();
    if (line === "* No topic is set") break;
    assert.match(line, muted);
    await hear(bob, "* No topic is set");
    assert.ok(Date.now() < deadline, "the mute did not end");
    await new Promise((resolve) => setTimeout(resolve, 50)); // paced retries
  }
  await hear(alice, "[bob] free at last");
});

Deno.test("moderation: /unmute lets lines through again, and a muted /quit still quits", async () => {
  await using server = startModeratedServer();
  const { port } = server.addr;
  await using alice = await loginAs(await TestClient.connect(port), "alice");
  await using bob = await joinAs(port, "bob");
  await using eve = await joinAs(port, "eve");
  await readUntil(alice, /^\* eve has entered/);
  await alice.send("/mute bob");
  await hear(alice, "* bob was muted by alice");
  await alice.send("/mute eve");
  await hear(alice, "* eve was muted by alice");
  await alice.send("/unmute bob");
  await hear(alice, "* bob was unmuted by alice");
  await bob.send("thanks");
  await hear(alice, "[bob] thanks");
  await alice.send("/unmute bob");
  await hear(alice, '* error: "bob" is not muted');
  await eve.send("/quit you will all regret this");
  assert.deepEqual((await eve.readToEnd()).slice(-2), [
    "* error: You are muted: your line was not sent",
    "* Goodbye!",
  ]);
  await hear(alice, "* eve has left the room");
});

Deno.test("moderation: the topic is told after the welcome, set and cleared with one notice", async () => {
  await using server = startModeratedServer();
  const { port } = server.addr;
  const alice = await TestClient.connect(port);
  await using _alice = alice;
  await alice.expect(ANY_GREETING);
  await alice.send("alice");
  await alice.send(PASSWORD);
  await readUntil(alice, /^\* Welcome, alice!/);
  await alice.expect("* You are an operator: /help lists your commands");
  await using bob = await joinAs(port, "bob");
  await alice.send("/topic Be kind: no spam");
  await hear(bob, "* alice set the topic: Be kind: no spam");
  await hear(alice, "* alice set the topic: Be kind: no spam");
  await using carl = await TestClient.connect(port);
  await carl.expect(ANY_GREETING);
  await carl.send("carl");
  await carl.expect("* The room contains: @alice, bob");
  await readUntil(carl, /^\* Welcome, carl!/);
  await hear(carl, "* Topic: Be kind: no spam");
  await using dave = await TestClient.connect(port);
  await dave.expect(ANY_GREETING);
  await dave.send("dave");
  await dave.send(PASSWORD);
  await readUntil(dave, /^\* Welcome, dave!/);
  // Registered and no operator: the topic, and nothing about operators.
  await dave.expect("* Topic: Be kind: no spam");
  await dave.send("/topic");
  await dave.expect("* Topic: Be kind: no spam");
  await carl.send("/topic");
  await hear(carl, "* Topic: Be kind: no spam");
  await alice.send("/topic -");
  await hear(carl, "* alice cleared the topic");
  await hear(alice, "* alice cleared the topic");
  await carl.send("/topic");
  await hear(carl, "* No topic is set");
  await alice.send(`/topic ${"x".repeat(301)}`);
  await hear(alice, "* error: Topic too long: at most 300 characters");
});

Deno.test("moderation: /op and /deop make a registered name an operator, marked @ in /who and the room list", async () => {
  await using server = startModeratedServer();
  const { port } = server.addr;
  await using alice = await loginAs(await TestClient.connect(port), "alice");
  await using dave = await loginAs(await TestClient.connect(port), "dave");
  await alice.send("/op bob");
  await hear(alice, '* error: Cannot op "bob": only a registered name can be an operator');
  await alice.send("/op DAVE");
  await hear(dave, "* dave is now an operator (by alice)");
  await hear(alice, "* dave is now an operator (by alice)");
  await dave.send("/who");
  await hear(dave, "* 2 online: @alice, @dave");
  await dave.send("/ops");
  await hear(dave, "* 2 operators online: alice, dave");
  await using bob = await TestClient.connect(port);
  await bob.expect(ANY_GREETING);
  await bob.send("bob");
  await bob.expect("* The room contains: @alice, @dave");
  await dave.send("/help");
  await readUntil(dave, /^\* Operator commands:$/);
  await readUntil(dave, /^\* \/whois NAME /);
  await dave.send("/deop carol");
  await hear(dave, "* carol is no longer an operator (by dave)");
  await hear(alice, "* carol is no longer an operator (by dave)");
  await alice.send("/deop dave");
  await hear(dave, "* dave is no longer an operator (by alice)");
  await hear(alice, "* dave is no longer an operator (by alice)");
  await dave.send("/kick bob");
  await readUntil(dave, /^\* error: \/kick is for operators only$/);
  await alice.send("/op dave");
  await hear(alice, "* dave is now an operator (by alice)");
  await alice.send("/op dave");
  await hear(alice, "* error: dave is an operator already");
});

Deno.test("moderation: a ban by address holds for the client a trusted proxy reports", async () => {
  // Connections from 127.0.0.1 come through a proxy (a PROXY header first); the operator, from
  // 127.0.0.2, comes straight.
  await using server = startTestServer({
    accounts: new FixedAccounts(ACCOUNTS),
    moderation: new MemoryModerationStore(["alice"]),
    proxyProtocol: ["127.0.0.1"],
    floodRate: 0,
  });
  const { port } = server.addr;
  await using alice = await loginAs(await connectFrom(port, "127.0.0.2"), "alice");
  const proxied = async () => {
    const client = await TestClient.connect(port);
    await client.write("PROXY TCP4 203.0.113.7 127.0.0.1 40000 1234\r\n");
    return client;
  };
  await using eve = await proxied();
  await eve.expect(ANY_GREETING);
  await eve.send("eve");
  await readUntil(eve, /^\* Welcome, eve!/);
  await alice.send("/whois eve");
  await hear(alice, "* eve: from 203.0.113.7, TCP, not registered, not an operator");
  await alice.send("/ban 203.0.113.0/24");
  await hear(alice, "* eve was banned by alice");
  assert.deepEqual(await eve.readToEnd(), ["* error: You are banned"]);
  await using again = await proxied();
  assert.deepEqual(await again.readToEnd(), ["* error: You are banned"]);
  // The proxy's own address is not banned: another client through it gets in.
  await using other = await TestClient.connect(port);
  await other.write("PROXY TCP4 198.51.100.1 127.0.0.1 40001 1234\r\n");
  await other.expect(ANY_GREETING);
});

Deno.test("Moderation.addressRefusal holds an IPv6 ban for its /64 and an IPv4 one for IPv4 only", async () => {
  const store = new MemoryModerationStore();
  await using server = startTestServer({ moderation: store });
  const at = Date.now();
  await store.addBan({ target: "2001:db8::/64", kind: "address", by: "alice", at });
  await store.addBan({ target: "198.51.100.0/24", kind: "address", by: "alice", at });
  const moderation = new Moderation({
    store,
    hub: new LocalHub({ moderation: store }),
    members: () => [],
    expel: () => {},
    log: () => {},
    tally: server.tally,
  });
  assert.equal(moderation.addressRefusal("2001:db8::1234"), "You are banned");
  assert.equal(moderation.addressRefusal("2001:DB8:0:0:ffff::1"), "You are banned");
  assert.equal(moderation.addressRefusal("2001:db8:0:1::1"), undefined);
  assert.equal(moderation.addressRefusal("198.51.100.200"), "You are banned");
  assert.equal(moderation.addressRefusal("::ffff:198.51.100.7"), "You are banned");
  assert.equal(moderation.addressRefusal("198.51.101.1"), undefined);
});

Deno.test("moderation: each act is one log line (who, what, whom, why, until when) and counted in the metrics", async () => {
  const events: LogFields[] = [];
  await using server = startTestServer({
    accounts: new FixedAccounts(ACCOUNTS),
    moderation: new MemoryModerationStore(["alice"]),
    floodRate: 0,
    log: (_, fields) => void (fields.event === "moderation" && events.push(fields)),
  });
  const { port } = server.addr;
  await using alice = await loginAs(await TestClient.connect(port), "alice");
  await using _bob = await joinAs(port, "bob");
  await alice.send("/ban mallory 2h spam");
  await hear(alice, /^\* mallory was banned by alice until /);
  await alice.send("/kick bob too loud");
  await hear(alice, "* bob was kicked by alice: too loud");
  await alice.send("/topic hi");
  await hear(alice, "* alice set the topic: hi");
  assert.deepEqual(
    events.map(({ until, ...rest }) => ({ ...rest, hasUntil: until !== undefined })),
    [
      {
        event: "moderation",
        act: "ban",
        by: "alice",
        target: "mallory",
        reason: "spam",
        hasUntil: true,
      },
      {
        event: "moderation",
        act: "kick",
        by: "alice",
        target: "bob",
        reason: "too loud",
        hasUntil: false,
      },
      {
        event: "moderation",
        act: "topic",
        by: "alice",
        target: "the room",
        reason: "hi",
        hasUntil: false,
      },
    ],
  );
  const metrics = formatMetrics(serverFamilies(server.tally, server.census()));
  assert.match(metrics, /^chat_moderation_total\{act="ban"\} 1$/m);
  assert.match(metrics, /^chat_moderation_total\{act="kick"\} 1$/m);
  assert.match(metrics, /^chat_bans 1$/m);
});

Deno.test("moderation: at most 10,000 bans and 10,000 mutes are kept, then one error line; /bans lists the newest 100", async () => {
  const store = new MemoryModerationStore(["alice"]);
  const at = Date.now();
  for (let n = 0; n < 10_000; n++) {
    await store.addMute({ name: `noisy-${n}`, by: "alice", at });
    await store.addBan({ target: `troll-${n}`, kind: "name", by: "alice", at: at - 20_000 + n });
  }
  await using server = startTestServer({
    accounts: new FixedAccounts(ACCOUNTS),
    moderation: store,
    floodRate: 0,
  });
  await using alice = await loginAs(await TestClient.connect(server.addr.port), "alice");
  await alice.send("/ban one-more");
  await hear(alice, "* error: There are 10000 bans already: lift some first");
  await alice.send("/ban 10.0.0.0/8");
  await hear(alice, "* error: There are 10000 bans already: lift some first");
  // A ban made again replaces itself, and counts once.
  await alice.send("/ban troll-0 1h");
  await hear(alice, /^\* troll-0 was banned by alice until /);
  await alice.send("/bans");
  await hear(alice, "* 10000 bans (the newest 100 shown):");
  await hear(alice, /^\* troll-0 by alice until /);
  for (let n = 9999; n > 9900; n--) await hear(alice, `* troll-${n} by alice`);
  await alice.send("/ops");
  await hear(alice, "* 1 operator online: alice");
  await alice.send("/mute one-more");
  await hear(alice, "* error: There are 10000 mutes already: lift some first");
});

Deno.test("moderation: a banned address is refused at every door: TLS, and the page's socket", async () => {
  await using certificate = await Certificate.make();
  const store = new MemoryModerationStore();
  const until = Date.now() + 3_600_000;
  await store.addBan({
    target: "127.0.0.1",
    kind: "address",
    by: "alice",
    at: 0,
    until,
    reason: "x",
  });
  const refusal = `* error: You are banned until ${formatUntil(until)}: x`;
  const logged: LogFields[] = [];
  await using server = startTestServer({
    moderation: store,
    tls: { cert: certificate.pem, key: await certificate.keyPem() },
    log: (_, fields) => void logged.push(fields),
  });
  const tls = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: server.addr.port,
    caCerts: [certificate.pem],
  });
  await using client = new TestClient(tls);
  assert.deepEqual(await client.readToEnd(), [refusal]);
  // Counted in the metrics, and said in the log once a second at most, as other refusals are.
  assert.equal(server.tally.refusals.get("banned"), 1);
  await waitUntil(
    () => logged.some((fields) => fields.reason === "banned" && fields.counts?.connections === 1),
    () => `the refusal in the log: ${JSON.stringify(logged)}`,
  );
  await using site = Site.start({ moderation: store });
  const { conn, frames } = await rawUpgrade(site.web.addr.port);
  try {
    assert.equal(await frames.readLine(), refusal);
    assert.equal((await frames.readFrame())?.opcode, 8, "then the socket is closed");
  } finally {
    conn.close();
  }
});

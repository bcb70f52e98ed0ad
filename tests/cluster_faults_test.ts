/**
 * The cluster under real faults: a Redis that hangs or restarts empty, a network that holds what it
 * carries, a server stopped and resumed, a wrong password, a dead recipient, and newcomers joining
 * while three servers chat. Every fault is real: signals to real `redis-server` and server
 * processes, a TCP proxy that stalls.
 */
import assert from "node:assert/strict";
import { HEAL_NOTICE, PARTITION_NOTICE } from "../cluster/events.ts";
import { joinAs, joinWithHistory, serverChild, TestClient } from "./_helpers.ts";
import {
  clusterServer,
  holdFault,
  joinKnowing,
  joinReadingRoom,
  Proxy,
  readUntil,
  Redis,
} from "./_cluster.ts";

const WHO_PARTITIONED = "* The room is partitioned: only people on this server hear you";
const TAKEN_FIRST = '* error: Someone on another server had the name "alice" first, while the ' +
  "room was partitioned; rejoin with another name";

/** Reads and drops a client's lines until it closes, so that its server never waits for it. */
async function drain(client: TestClient): Promise<void> {
  try {
    while (true) await client.readLine(60_000);
  } catch {
    // Closed: the test is done with it.
  }
}

/** Per sender, the line numbers a newcomer got in its history and then live, in that order. */
function numbersBySender(lines: string[]): Map<string, number[]> {
  const bySender = new Map<string, number[]>();
  for (const line of lines) {
    const match = /\[(s\d)\] n (\d+)$/.exec(line);
    if (!match) continue;
    const numbers = bySender.get(match[1]!) ?? [];
    numbers.push(Number(match[2]));
    bySender.set(match[1]!, numbers);
  }
  return bySender;
}

Deno.test("cluster: every newcomer gets each line once, in its history or live, while three servers chat", async () => {
  await using redis = await new Redis().start();
  const flags = ["--flood-rate", "0", "--join-rate", "0"]; // 80 newcomers from one address
  const servers = await Promise.all([0, 1, 2].map(() => clusterServer(redis, flags)));
  await using _s0 = servers[0]!.child;
  await using _s1 = servers[1]!.child;
  await using _s2 = servers[2]!.child;
  const ports = servers.map((server) => server.port);
  const senders = await Promise.all(ports.map((port, i) => joinAs(port, `s${i}`)));
  const draining = senders.map(drain);
  // Three senders, one on each server, each about 100 lines a second (the pace is the load, not
  // a wait for anything).
  let isSending = true;
  const sending = senders.map(async (sender) => {
    for (let n = 1; isSending; n++) {
      await sender.send(`n ${n}`);
      await holdFault(10);
    }
  });
  try {
    // Newcomers come once every sender is in the history a newcomer gets.
    const [watcher] = await joinWithHistory(ports[0]!, "watcher");
    await using _watcher = watcher;
    const started = new Set<string>();
    while (started.size < 3) {
      const match = /^\[(s\d)\] n (\d\d)$/.exec(await watcher.readLine());
      if (match) started.add(match[1]!);
    }
    // A fourth server starts while the lines flow: it reads the history from Redis once, and
    // keeps it in step with the channel from there.
    const late = await clusterServer(redis, flags);
    await using _s3 = late.child;
    ports.push(late.port);
    const failures: string[] = [];
    for (let round = 0; round < 10; round++) {
      await Promise.all(
        [0, 1, 2, 3, 0, 1, 2, 3].map(async (server, i) => {
          const name = `new${round}x${i}`;
          const [newcomer, history] = await joinWithHistory(ports[server]!, name);
          await using _newcomer = newcomer;
          // Live lines until each sender is heard twice: the seam is then behind us.
          const live: string[] = [];
          const heard = () => [...numbersBySender(live).values()].filter((n) => n.length >= 2);
          while (heard().length < 3) live.push(await newcomer.readLine());
          for (const [sender, numbers] of numbersBySender([...history, ...live])) {
            const isSeamless = numbers.every((n, j) => j === 0 || n === numbers[j - 1]! + 1);
            if (!isSeamless) failures.push(`${name} on server ${server}, ${sender}: ${numbers}`);
          }
        }),
      );
    }
    assert.deepEqual(failures, [], "a line was lost or doubled between history and live chat");
  } finally {
    isSending = false;
    await Promise.all(sending);
    for (const sender of senders) sender.close();
    await Promise.all(draining);
  }
});

Deno.test("cluster: leaves and renames made in a partition are told both ways on healing, and add up to /who", async () => {
  await using redis = await new Redis().start();
  const [a, b] = await Promise.all([clusterServer(redis), clusterServer(redis)]);
  await using _a = a.child;
  await using _b = b.child;
  // Each joins once every server has shown it knows the others, so that all rooms are the same.
  await using bob = await joinAs(b.port, "bob");
  await using alice = await joinKnowing(a.port, "alice", ["bob"]);
  await bob.expect("* alice has entered the room");
  await using carol = await joinKnowing(a.port, "carol", ["alice", "bob"]);
  for (const client of [alice, bob]) await client.expect("* carol has entered the room");
  await using erin = await joinKnowing(b.port, "erin", ["alice", "bob", "carol"]);
  for (const client of [alice, bob, carol]) await client.expect("* erin has entered the room");

  await redis.stop();
  for (const client of [alice, carol, bob, erin]) await client.expect(PARTITION_NOTICE);
  await carol.send("/quit bye");
  await alice.expect("* carol has left the room: bye");
  await alice.send("/nick alice2");
  await alice.expect("* alice is now known as alice2");
  await erin.send("/nick erin2");
  await erin.expect("* erin is now known as erin2");
  await bob.expect("* erin is now known as erin2");

  await redis.start();
  // Each side hears what changed on the other, after its own server healed.
  for (const client of [bob, erin]) {
    await client.expect(HEAL_NOTICE, 15_000);
    const changes = [await client.readLine(), await client.readLine()];
    assert.deepEqual(changes.toSorted(), [
      "* alice is now known as alice2",
      "* carol has left the room (during a partition)",
    ]);
  }
  await alice.expect(HEAL_NOTICE, 15_000);
  await alice.expect("* erin is now known as erin2");
  // What the notices said is what /who says, on both sides; nothing more came.
  for (const client of [alice, bob, erin]) {
    await client.send("/who");
    await client.expect("* 3 online: alice2, bob, erin2");
  }
  await erin.send("all here");
  await alice.expect("[erin2] all here");
  await bob.expect("[erin2] all here");
});

Deno.test("cluster: a Redis that hangs is a partition: told at once, nothing late, nobody lost, the same heal", async () => {
  await using redis = await new Redis().start();
  // Claims live 2 s, and the hang is longer: nobody may be counted gone for it.
  const flags = ["--claim-ttl", "2"];
  const [a, b] = await Promise.all([clusterServer(redis, flags), clusterServer(redis, flags)]);
  await using server = a.child;
  await using _b = b.child;
  await using alice = await joinAs(a.port, "alice");
  await using bob = await joinKnowing(b.port, "bob", ["alice"]);
  await alice.expect("* bob has entered the room");

  redis.pause();
  await alice.send("said as Redis froze"); // sent before anyone noticed: it must never arrive
  for (const client of [alice, bob]) await client.expect(PARTITION_NOTICE);
  await server.stdout.readUntil(/redis: lost .*\(Redis did not answer within 2 s\); serving/);
  // While Redis is still frozen, /who and a join answer at once, from what this server knows.
  await alice.send("/who");
  await alice.expect("* 2 online: alice, bob");
  await alice.expect(WHO_PARTITIONED);
  const [dave, room] = await joinReadingRoom(a.port, "dave");
  await using _dave = dave;
  assert.equal(room, "* The room contains: alice, bob");
  await dave.expect(PARTITION_NOTICE);
  await alice.expect("* dave has entered the room");
  await alice.send("said in the partition");
  await dave.expect("[alice] said in the partition");
  await holdFault(2500); // the hang outlasts every claim's lifetime

  redis.resume();
  for (const client of [alice, dave]) await client.expect(HEAL_NOTICE, 15_000);
  // bob hears that dave came, and nothing else: no late line, nobody lost and back.
  assert.deepEqual(await readUntil(bob, "* dave has entered the room", 15_000), [
    HEAL_NOTICE,
    "* dave has entered the room",
  ]);
  await alice.send("after the hang");
  await bob.expect("[alice] after the hang");
  await bob.send("/who");
  await bob.expect("* 3 online: alice, bob, dave");
});

Deno.test("cluster: a network black hole between a server and Redis is a partition, and what it held never arrives", async () => {
  await using redis = await new Redis().start();
  await using proxy = new Proxy(redis.port);
  const flags = ["--claim-ttl", "2"];
  const a = await clusterServer(proxy, flags);
  await using _a = a.child;
  const b = await clusterServer(redis, flags);
  await using _b = b.child;
  await using alice = await joinAs(a.port, "alice");
  await using bob = await joinKnowing(b.port, "bob", ["alice"]);
  await alice.expect("* bob has entered the room");

  proxy.stall();
  await alice.send("said into the hole"); // held by the network, to be let through late
  await alice.expect(PARTITION_NOTICE);
  await alice.send("said in the partition");
  proxy.resume();
  await alice.expect(HEAL_NOTICE, 15_000);
  await alice.send("after the hole");
  // bob may have been told alice was lost (her claim outlived by the hole) and back; that is all.
  const seen = await readUntil(bob, "[alice] after the hole", 15_000);
  const allowed = [
    ["[alice] after the hole"],
    [
      "* alice has left the room (server lost)",
      "* alice has entered the room",
      "[alice] after the hole",
    ],
  ];
  assert.ok(allowed.some((lines) => lines.join("\n") === seen.join("\n")), JSON.stringify(seen));
});

Deno.test("cluster: a server stopped past its claims' lifetime heals on resuming, before relaying anything", async () => {
  await using redis = await new Redis().start();
  const flags = ["--claim-ttl", "2"];
  const [a, b] = await Promise.all([clusterServer(redis, flags), clusterServer(redis, flags)]);
  await using server = a.child;
  await using _b = b.child;
  await using alice = await joinAs(a.port, "alice");
  await using carol = await joinAs(a.port, "carol");
  await alice.expect("* carol has entered the room");
  await using bob = await joinKnowing(b.port, "bob", ["alice", "carol"]);
  for (const client of [alice, carol]) await client.expect("* bob has entered the room");

  server.process.kill("SIGSTOP");
  await bob.expect("* alice has left the room (server lost)", 15_000);
  await bob.expect("* carol has left the room (server lost)");
  // The name is free for anyone now, and taken.
  const [newAlice] = await joinReadingRoom(b.port, "alice");
  await using _newAlice = newAlice;
  await bob.expect("* alice has entered the room");
  await carol.send("said while her server was stopped"); // read by the server when it resumes

  server.process.kill("SIGCONT");
  // Its members hear it was partitioned, and healed; never that bob left.
  assert.deepEqual(await readUntil(alice, HEAL_NOTICE, 15_000), [
    PARTITION_NOTICE,
    "[carol] said while her server was stopped",
    HEAL_NOTICE,
  ]);
  assert.deepEqual(await readUntil(carol, HEAL_NOTICE), [PARTITION_NOTICE, HEAL_NOTICE]);
  // alice was there first: the newcomer who took her name goes, and bob hears who is back.
  assert.deepEqual(await newAlice.readToEnd(), [TAKEN_FIRST]);
  assert.deepEqual(await readUntil(bob, "* carol has entered the room"), [
    "* alice has left the room (name taken during a partition)",
    "* alice has entered the room",
    "* carol has entered the room",
  ]);
  await carol.send("back");
  await bob.expect("[carol] back");
  await alice.expect("[carol] back");
  await alice.send("/who");
  await alice.expect("* 3 online: alice, bob, carol");
});

Deno.test("cluster: a member there before a partition keeps the name over a newcomer who took it during it", async () => {
  await using redis = await new Redis().start();
  // Server A reaches Redis through a proxy, so that it heals only when the test lets it.
  await using proxy = new Proxy(redis.port);
  const flags = ["--claim-ttl", "2"];
  const a = await clusterServer(proxy, flags);
  await using _a = a.child;
  const b = await clusterServer(redis, flags);
  await using _b = b.child;
  await using alice = await joinAs(a.port, "alice");
  await using bob = await joinKnowing(b.port, "bob", ["alice"]);
  await alice.expect("* bob has entered the room");

  proxy.stall();
  await redis.stop();
  for (const client of [alice, bob]) await client.expect(PARTITION_NOTICE);
  await redis.start(); // empty: every claim is gone
  await bob.expect(HEAL_NOTICE, 15_000);
  // A stays silent longer than its claims live: B counts alice gone, and a newcomer takes her name.
  await bob.expect("* alice has left the room (server lost)");
  const [newAlice] = await joinReadingRoom(b.port, "alice");
  await using _newAlice = newAlice;
  await bob.expect("* alice has entered the room");

  proxy.resume();
  await alice.expect(HEAL_NOTICE, 15_000);
  assert.deepEqual(await newAlice.readToEnd(), [TAKEN_FIRST]);
  assert.deepEqual(await readUntil(bob, "* alice has entered the room"), [
    "* alice has left the room (name taken during a partition)",
    "* alice has entered the room",
  ]);
  await alice.send("still alice");
  await bob.expect("[alice] still alice");
});

Deno.test("cluster: a name taken on both sides of a partition stays with whoever took it first", async () => {
  await using redis = await new Redis().start();
  const [a, b] = await Promise.all([clusterServer(redis), clusterServer(redis)]);
  await using _a = a.child;
  await using _b = b.child;
  await using alice = await joinAs(a.port, "alice");
  await using bob = await joinKnowing(b.port, "bob", ["alice"]);
  await alice.expect("* bob has entered the room");

  await redis.stop();
  for (const client of [alice, bob]) await client.expect(PARTITION_NOTICE);
  // Neither server can ask the other, so each lets the name in: first on A, then on B (in
  // another case: it is one name). B's comes later by more than the servers' readings of Redis's
  // clock, by which they tell who came first, can differ (50 ms each at most).
  const [zed] = await joinReadingRoom(a.port, "zed");
  await using _zed = zed;
  await zed.expect(PARTITION_NOTICE);
  await alice.expect("* zed has entered the room");
  await holdFault(300);
  const [late] = await joinReadingRoom(b.port, "Zed");
  await using _late = late;
  await late.expect(PARTITION_NOTICE);
  await bob.expect("* Zed has entered the room");

  await redis.start();
  // Whichever server heals first, the later one goes, told why, and B's room hears it; A's room
  // hears nothing of it.
  const end = await late.readToEnd(15_000);
  assert.equal(
    end.at(-1),
    '* error: Someone on another server had the name "Zed" first, while the room was ' +
      "partitioned; rejoin with another name",
  );
  assert.ok(end.slice(0, -1).every((line) => line === HEAL_NOTICE), JSON.stringify(end));
  const seen = await readUntil(bob, "* zed has entered the room", 15_000);
  assert.deepEqual(seen.filter((line) => line !== HEAL_NOTICE), [
    "* Zed has left the room (name taken during a partition)",
    "* zed has entered the room",
  ]);
  assert.equal(seen.filter((line) => line === HEAL_NOTICE).length, 1, JSON.stringify(seen));
  await alice.expect(HEAL_NOTICE, 15_000);
  await zed.expect(HEAL_NOTICE);
  await zed.send("still zed");
  await alice.expect("[zed] still zed");
  await bob.expect("[zed] still zed");
  for (const client of [alice, bob]) {
    await client.send("/who");
    await client.expect("* 3 online: alice, bob, zed");
  }
});

Deno.test("cluster: a Redis that refuses the password stops the server at startup, in one line", async () => {
  await using redis = await new Redis().start(["--requirepass", "right"]);
  const host = `127.0.0.1:${redis.port}`;
  const redisPermissions = [
    `--allow-net=127.0.0.1:0,${host}`,
    "--allow-env=CHAT_REDIS_URL,REDIS_DEBUG_MAINTENANCE,REDIS_EMIT_DIAGNOSTICS",
  ];
  const cases = [
    [`redis://:wrong@${host}`, /refused this server: wrong user or password \(WRONGPASS /],
    [`redis://${host}`, /refused this server: wrong user or password \(NOAUTH /],
    [`redis://:right@${host}/99`, /refused this server: ERR DB index is out of range/],
  ] as const;
  for (const [url, cause] of cases) {
    await using server = serverChild(["--redis", url], redisPermissions);
    const { code, stdout, stderr } = await server.finish();
    assert.equal(code, 1, url);
    assert.equal(stdout, "", url);
    assert.match(stderr, /^error: Redis at redis:\/\/\S+ refused this server: [^\n]*\n$/, url);
    assert.match(stderr, cause, url);
    assert.ok(
      !stderr.includes("wrong@") && !stderr.includes("right@"),
      "the password is not shown",
    );
  }
});

Deno.test("cluster: a Redis user with exactly the README's permissions runs the room; one without a permission is named at startup", async () => {
  await using redis = await new Redis().start();
  // The README's list: these commands on the chat:* keys and channel, and for the scripts these.
  const commands = [
    "subscribe",
    "ping",
    "time",
    "scan",
    "mget",
    "lrange",
    "script|load",
    "evalsha",
  ];
  const inScripts = ["get", "set", "del", "rpush", "ltrim", "publish"];
  const rules = [
    ...["on", "resetkeys", "~chat:*", "resetchannels", "&chat:*", "-@all"],
    ...[...commands, ...inScripts].map((command) => `+${command}`),
  ];
  await redis.cli("ACL", "SETUSER", "chat", ">secret", ...rules);
  const chat = { port: redis.port, url: `redis://chat:secret@127.0.0.1:${redis.port}` };
  const [a, b] = await Promise.all([clusterServer(chat, ["--history", "5"]), clusterServer(chat)]);
  await using _a = a.child;
  await using _b = b.child;
  await using alice = await joinAs(a.port, "alice");
  await using bob = await joinKnowing(b.port, "bob", ["alice"]);
  await alice.expect("* bob has entered the room");
  await alice.send("hello across");
  await bob.expect("[alice] hello across");
  await bob.send("/msg alice psst");
  await alice.expect("* private from bob: psst");
  await bob.expect("* private to alice: psst");
  const [carol, , history] = await joinReadingRoom(a.port, "carol");
  await using _carol = carol;
  assert.equal(history.length, 1);
  await alice.expect("* carol has entered the room");
  await bob.expect("* carol has entered the room");
  await bob.send("/quit");
  await alice.expect("* bob has left the room");

  // A user without one of them is refused at startup, in one line that gives Redis's reason: a
  // command of the chat's own (TIME), or one its publishing script calls (PUBLISH), which Redis
  // reports in other words.
  const host = `127.0.0.1:${redis.port}`;
  const redisPermissions = [
    `--allow-net=127.0.0.1:0,${host}`,
    "--allow-env=CHAT_REDIS_URL,REDIS_DEBUG_MAINTENANCE,REDIS_EMIT_DIAGNOSTICS",
  ];
  const cases = [
    ["+time", /refused this server: the Redis user lacks a permission \(NOPERM [^\n]*time/i],
    ["+publish", /refused this server: ERR The user executing the script can't run this command/],
  ] as const;
  for (const [missing, reason] of cases) {
    const user = `without${missing.slice(1)}`;
    await redis.cli("ACL", "SETUSER", user, ">secret", ...rules.filter((rule) => rule !== missing));
    await using server = serverChild(
      ["--redis", `redis://${user}:secret@${host}`],
      redisPermissions,
    );
    const { code, stdout, stderr } = await server.finish();
    assert.equal(code, 1, user);
    assert.equal(stdout, "", user);
    assert.match(
      stderr,
      /^error: Redis at redis:\/\/\w+:\*\*\*@\S+ refused this server: [^\n]*\n$/,
    );
    assert.match(stderr, reason);
  }
});

Deno.test("cluster: a running server says once why Redis refuses it, serves alone, and joins once let in", async () => {
  await using redis = new Redis(); // not started yet
  const url = `redis://:secret@127.0.0.1:${redis.port}`;
  const s = await clusterServer({ port: redis.port, url });
  await using server = s.child;
  const [alice] = await joinReadingRoom(s.port, "alice");
  await using _alice = alice;
  await alice.expect(PARTITION_NOTICE);

  await redis.start(["--requirepass", "other"]);
  await server.stdout.readUntil(
    /redis: .* refused this server: wrong user or password \(WRONGPASS /,
  );
  await alice.send("/who");
  await alice.expect("* 1 online: alice");
  await alice.expect(WHO_PARTITIONED);
  await redis.cli("-a", "other", "--no-auth-warning", "CONFIG", "SET", "requirepass", "secret");
  await alice.expect(HEAL_NOTICE, 15_000);
  // Said once, however many times the server tried meanwhile.
  const refusals = server.stdout.seen.filter((line) => line.includes("refused this server"));
  assert.equal(refusals.length, 1, JSON.stringify(server.stdout.seen));
});

Deno.test("cluster: /msg is confirmed only when the recipient's server took it, and nothing reaches a stopped server late", async () => {
  await using redis = await new Redis().start();
  // Carol's server counts itself stopped only after 10 s (half its claim lifetime): stopped for
  // less, it must still drop what waited for it longer than any event may take (4 s).
  const [a, b] = await Promise.all([
    clusterServer(redis),
    clusterServer(redis, ["--claim-ttl", "20"]),
  ]);
  await using _a = a.child;
  await using carolServer = b.child;
  await using alice = await joinAs(a.port, "alice");
  await using carol = await joinKnowing(b.port, "carol", ["alice"]);
  await alice.expect("* carol has entered the room");
  const unconfirmed =
    /^\* error: The server of "carol" did not confirm the message within 2 seconds; it may not have arrived$/;

  // Stopped for a moment: no confirmation in time, and the message is not delivered late either.
  carolServer.process.kill("SIGSTOP");
  await alice.send("/msg carol hello?");
  await holdFault(1500);
  carolServer.process.kill("SIGCONT");
  await alice.expect(unconfirmed);
  await alice.send("/msg carol here?");
  await alice.expect("* private to carol: here?");
  await carol.expect("* private from alice: here?");

  // Stopped for longer than any event may take.
  carolServer.process.kill("SIGSTOP");
  await alice.send("said while her server was stopped");
  await alice.send("/msg carol are you there?");
  await alice.expect(unconfirmed);
  await holdFault(2500); // carol's server stays stopped for longer than any event may take
  carolServer.process.kill("SIGCONT");
  // What waited for it is late: it heals instead of delivering it, the private message too.
  assert.deepEqual(await readUntil(carol, HEAL_NOTICE, 15_000), [PARTITION_NOTICE, HEAL_NOTICE]);
  await alice.send("/msg carol now?");
  await alice.expect("* private to carol: now?");
  await carol.expect("* private from alice: now?");

  // Killed: its members are in the room until their claims expire, but nobody answers.
  carolServer.process.kill("SIGKILL");
  await carolServer.process.status;
  await alice.send("/msg carol are you alive?");
  await alice.expect(unconfirmed);
});

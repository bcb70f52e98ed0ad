/**
 * One room across several server processes on one Redis: real `redis-server` processes (one per
 * test, on a free port, so a test can stop and restart it), real server processes, raw clients.
 */
import assert from "node:assert/strict";
import { HEAL_NOTICE, parseEvent, PARTITION_NOTICE } from "../cluster/events.ts";
import { ProtocolError } from "../protocol.ts";
import { Child, joinAs, joinWithHistory, serverChild, TestClient } from "./_helpers.ts";
import { clusterServer, joinKnowing, joinReadingRoom, readUntil, Redis } from "./_cluster.ts";

Deno.test("cluster: three servers form one room: relay in order, joins, /who, names, /msg, history, leaves", async () => {
  await using redis = await new Redis().start();
  const servers = await Promise.all([
    // Flood control off: alice sends 200 lines at once.
    clusterServer(redis, ["--flood-rate", "0"]),
    clusterServer(redis, ["--flood-rate", "0"]),
    clusterServer(redis, ["--flood-rate", "0"]),
  ]);
  await using _s1 = servers[0].child;
  await using _s2 = servers[1].child;
  await using _s3 = servers[2].child;
  const [p1, p2, p3] = servers.map((server) => server.port) as [number, number, number];

  await using alice = await joinAs(p1, "alice");
  await using bob = await joinKnowing(p2, "bob", ["alice"]);
  await alice.expect("* bob has entered the room");
  await using carol = await joinKnowing(p3, "carol", ["alice", "bob"]);
  await alice.expect("* carol has entered the room");
  await bob.expect("* carol has entered the room");

  // Every line reaches the other servers' clients once, in order, and never comes back.
  for (let i = 0; i < 200; i++) await alice.send(`line ${i}`);
  for (const client of [bob, carol]) {
    for (let i = 0; i < 200; i++) await client.expect(`[alice] line ${i}`);
  }
  await carol.send("/me waves");
  await alice.expect("* [carol] waves");
  await bob.expect("* [carol] waves");

  await carol.send("/who");
  await carol.expect("* 3 online: alice, bob, carol");

  // Names are unique across the cluster, regardless of case.
  await using impostor = await TestClient.connect(p3);
  await impostor.expect(/^\* Welcome to chat/);
  await impostor.send("ALICE");
  assert.deepEqual(await impostor.readToEnd(), [
    '* error: Cannot accept name "ALICE": name is taken',
  ]);

  await carol.send("/msg BOB psst");
  await carol.expect("* private to bob: psst");
  await bob.expect("* private from carol: psst");
  await carol.send("/msg nobody hello");
  await carol.expect(/^\* error: No user named "nobody" is online/);

  await bob.send("/nick robert");
  for (const client of [alice, bob, carol]) await client.expect("* bob is now known as robert");
  // The old name is free again on every server.
  await using newBob = await joinAs(p1, "bob");
  for (const client of [alice, bob, carol]) await client.expect("* bob has entered the room");

  // A newcomer anywhere sees the room's history: the last 50 lines, from every server.
  const [eve, history] = await joinWithHistory(p2, "eve");
  await using _eve = eve;
  assert.equal(history.length, 50);
  assert.match(history.at(-2)!, /^\* history \S+Z \[alice\] line 199$/);
  assert.match(history.at(-1)!, /^\* history \S+Z \* \[carol\] waves$/);
  assert.ok(!history.some((line) => line.includes("psst")), "private lines stay out of history");

  for (const client of [alice, bob, newBob]) await client.expect("* eve has entered the room");
  await carol.send("/quit bye");
  for (const client of [alice, bob, newBob, eve]) {
    await client.expect("* carol has left the room: bye");
  }
  // Read in full, alice's lines show no echo of her own and no private message of others'.
  await alice.send("/who");
  await alice.expect("* 4 online: alice, bob, eve, robert");

  // A server that shuts down says goodbye for its members, to the whole room.
  servers[1].child.process.kill("SIGTERM");
  assert.equal((await servers[1].child.process.status).code, 0);
  await alice.expect("* robert has left the room (server shut down)");
  await alice.expect("* eve has left the room (server shut down)");
  await alice.send("/who");
  await alice.expect("* 2 online: alice, bob");
});

Deno.test("cluster: a killed server's users are said to leave, and leave /who, once their claims expire", async () => {
  await using redis = await new Redis().start();
  const [s1, s2] = await Promise.all([
    clusterServer(redis, ["--claim-ttl", "2"]),
    clusterServer(redis, ["--claim-ttl", "2"]),
  ]);
  await using _server1 = s1.child;
  await using server2 = s2.child;
  await using alice = await joinAs(s1.port, "alice");
  await using _bob = await joinAs(s2.port, "bob");
  await alice.expect("* bob has entered the room");
  await alice.send("/who");
  await alice.expect("* 2 online: alice, bob");

  server2.process.kill("SIGKILL");
  await server2.process.status;
  // Its server falls silent: once bob's claim has run out, alice hears that bob is gone.
  await alice.expect("* bob has left the room (server lost)");
  await alice.send("/who");
  await alice.expect("* 1 online: alice");
  // The name is free for anyone, on any server.
  await using _bobAgain = await joinAs(s1.port, "bob");
  await alice.expect("* bob has entered the room");
});

Deno.test("cluster: Redis stops and starts: partition and heal notices, local chat throughout, no duplicates", async () => {
  await using redis = await new Redis().start();
  const [s1, s2] = await Promise.all([clusterServer(redis), clusterServer(redis)]);
  await using server1 = s1.child;
  await using _server2 = s2.child;
  await using a1 = await joinAs(s1.port, "a1");
  await using a2 = await joinAs(s1.port, "a2");
  await a1.expect("* a2 has entered the room");
  await using b = await joinKnowing(s2.port, "b", ["a1", "a2"]);
  await a1.expect("* b has entered the room");
  await a2.expect("* b has entered the room");

  await redis.stop();
  for (const client of [a1, a2, b]) await client.expect(PARTITION_NOTICE);
  await server1.stdout.readUntil(/redis: lost redis:\/\/127\.0\.0\.1:\d+\/? .*retrying/);

  // The server's own members go on chatting as a room of their own.
  await a1.send("said in the partition");
  await a2.expect("[a1] said in the partition");
  // The room is still who the notices said, b too, but only this server's members hear a1.
  await a1.send("/who");
  await a1.expect("* 3 online: a1, a2, b");
  await a1.expect("* The room is partitioned: only people on this server hear you");
  // A private message to someone on the other side is refused at once, saying why.
  await a1.send("/msg b are you there?");
  await a1.expect('* error: Cannot reach "b" on another server: the room is partitioned');
  const [newbie, room, history] = await joinReadingRoom(s1.port, "newbie");
  await using _newbie = newbie;
  assert.equal(room, "* The room contains: a1, a2, b");
  // Its history is what this server's room heard, the partition's line too.
  assert.match(history.at(-1)!, /^\* history \S+Z \[a1\] said in the partition$/);
  await newbie.expect(PARTITION_NOTICE);
  await a1.expect("* newbie has entered the room");
  await a2.expect("* newbie has entered the room");

  await redis.start();
  for (const client of [a1, a2, newbie]) await client.expect(HEAL_NOTICE, 15_000);
  await server1.stdout.readUntil(/redis: connected to redis:\/\/127\.0\.0\.1:\d+\/? again/);

  // Whole again: one room, every name claimed again, nothing from the partition replayed. b hears
  // once that newbie joined, after its own server healed, whichever server was back first.
  assert.equal(await b.readLine(15_000), HEAL_NOTICE);
  await b.expect("* newbie has entered the room", 15_000);
  await b.send("/who");
  await b.expect("* 4 online: a1, a2, b, newbie");
  await a1.send("after the partition");
  await a2.expect("[a1] after the partition");
  await newbie.expect("[a1] after the partition");
  await b.expect("[a1] after the partition");
  await b.send("back");
  for (const client of [a1, a2, newbie]) await client.expect("[b] back");
});

const SERVER = crypto.randomUUID();

Deno.test("cluster: an event from Redis is checked like a client's line", () => {
  const event = parseEvent(
    JSON.stringify({ o: SERVER, d: 5, k: "say", n: "alice", t: "hi\u001b[2Jthere", i: 7 }),
    4096,
  );
  assert.deepEqual(event, { o: SERVER, d: 5, k: "say", n: "alice", t: "hithere", i: 7 });
  const roster = { o: SERVER, d: 5, k: "roster", n: "", l: [["1", "alice", 3]], r: true };
  assert.deepEqual(parseEvent(JSON.stringify(roster), 4096), roster);
  const d = 5;
  const bad = [
    { o: SERVER, d, k: "say", n: "* server", t: "forged", i: 1 },
    { o: SERVER, d, k: "say", n: "ali]ce", t: "forged", i: 1 },
    { o: SERVER, d, k: "say", n: " alice", t: "padded", i: 1 },
    { o: SERVER, d, k: "shout", n: "alice", t: "unknown kind" },
    { d, k: "say", n: "alice", t: "no origin", i: 1 },
    { o: "x", d, k: "say", n: "alice", t: "origin not a server id", i: 1 },
    { o: SERVER, k: "say", n: "alice", t: "no deadline", i: 1 },
    { o: SERVER, d: -1, k: "say", n: "alice", t: "negative deadline", i: 1 },
    { o: SERVER, d, k: "say", n: "alice", t: "no line number" },
    { o: SERVER, d, k: "msg", n: "alice", to: "bob", t: "no recipient server", i: 1 },
    { o: SERVER, d, k: "beat", t: "Infinity" },
    { o: SERVER, d, k: "say", n: "alice", t: "x".repeat(5000), i: 1 },
    { o: SERVER, d, k: "rename", n: "alice", to: "bad name", m: "1", c: 1 },
    { o: SERVER, d, k: "join", n: "alice", c: 1 },
    { o: SERVER, d, k: "join", n: "alice", m: "no spaces", c: 1 },
    { o: SERVER, d, k: "join", n: "alice", m: "1", c: 1.5 },
    { o: SERVER, d, k: "msg", n: "alice", t: 42 },
    { o: SERVER, d, k: "roster", n: "", l: [["1", "bad name", 1]] },
    { o: SERVER, d, k: "roster", n: "", l: [["1", "alice"]] },
    { o: SERVER, d, k: "roster", n: "", l: "alice" },
  ];
  for (const message of bad) {
    assert.throws(
      () => parseEvent(JSON.stringify(message), 4096),
      ProtocolError,
      JSON.stringify(message),
    );
  }
  assert.throws(() => parseEvent("not json", 4096));
});

Deno.test("cluster: without network permission for Redis, the server says how to run it, in one line", async () => {
  await using server = serverChild(["--redis", "redis://127.0.0.1:6399"], [
    "--allow-net=127.0.0.1:0",
    "--allow-env=CHAT_REDIS_URL",
  ]);
  const { code, stdout, stderr } = await server.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.match(
    stderr,
    /^error: No permission to reach Redis at 127\.0\.0\.1:6399 \(deno task cluster allows Redis on 127\.0\.0\.1:6379\); run: deno run --allow-net=127\.0\.0\.1:0,127\.0\.0\.1:6399 --allow-env=CHAT_REDIS_URL,REDIS_DEBUG_MAINTENANCE,REDIS_EMIT_DIAGNOSTICS --v8-flags=\S+ main\.ts server --host 127\.0\.0\.1 --port 0 --redis redis:\/\/127\.0\.0\.1:6399\n$/,
  );
});

Deno.test("cluster: a server started while Redis is down serves alone, then joins the room", async () => {
  await using redis = new Redis(); // not started yet
  const s1 = await clusterServer(redis);
  await using server1 = s1.child;
  assert.match(
    server1.stdout.seen.join("\n"),
    /redis: cannot reach redis:\/\/127\.0\.0\.1:\d+\/? yet/,
  );
  const [alice, room] = await joinReadingRoom(s1.port, "alice");
  await using _alice = alice;
  assert.equal(room, "* The room contains:");
  await alice.expect(PARTITION_NOTICE);

  await redis.start();
  await alice.expect(HEAL_NOTICE, 15_000);
  const s2 = await clusterServer(redis);
  await using _server2 = s2.child;
  await using bob = await joinAs(s2.port, "bob");
  await alice.expect("* bob has entered the room");
  // A change of case only keeps the claim: the name stays taken, by the same member.
  await alice.send("/nick ALICE");
  await alice.expect("* alice is now known as ALICE");
  await bob.expect("* alice is now known as ALICE");
  await bob.send("/who");
  await bob.expect("* 2 online: ALICE, bob");
});

Deno.test("cluster: a forged event in Redis cannot speak for anyone here or forge a notice", async () => {
  await using redis = await new Redis().start();
  const s1 = await clusterServer(redis);
  await using _server1 = s1.child;
  await using alice = await joinAs(s1.port, "alice");
  await using bob = await joinAs(s1.port, "bob");
  await alice.expect("* bob has entered the room");
  const publish = async (event: Record<string, unknown>) => {
    const cli = new Child("redis-cli", [
      "-p",
      String(redis.port),
      "PUBLISH",
      "chat:room",
      JSON.stringify(event),
    ]);
    await using _cli = cli;
    assert.equal((await cli.finish()).code, 0);
  };
  const other = crypto.randomUUID();
  // Well formed but for what each tests: a deadline a minute away, a line number.
  const d = Date.now() + 60_000;
  await publish({ o: other, d, i: 1, k: "say", n: "bob", t: "I am not bob" }); // bob is here
  await publish({ o: other, d, i: 2, k: "say", n: "* server", t: "forged notice" });
  await publish({ o: "not-a-server", d, i: 3, k: "say", n: "mallory", t: "no server id" });
  await publish({ o: other, d, i: 4, k: "say", n: "mallory", t: "line one\n* forged notice" });
  // The only line that gets through is mallory's own, cleaned, after the ignored ones.
  await alice.expect("[mallory] line one* forged notice");
  await bob.send("still here");
  await alice.expect("[bob] still here");
});

Deno.test("cluster: with --resume-grace 0, /resume NAME just joins, with no token, and a drop is a leave at once", async () => {
  await using redis = await new Redis().start();
  const server = await clusterServer(redis, ["--resume-grace", "0"]);
  await using _server = server.child;
  await using bob = await joinAs(server.port, "bob");
  {
    await using alice = await TestClient.connect(server.port);
    await alice.expect(/^\* Welcome to chat/);
    await alice.send("/resume alice");
    await readUntil(alice, "* Welcome, alice! 2 users online; /help lists the commands");
    await alice.send("/who");
    await alice.expect("* 2 online: alice, bob"); // no token line came before it
    await bob.expect("* alice has entered the room");
  }
  await bob.expect("* alice has left the room");
});

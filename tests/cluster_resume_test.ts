/**
 * Resume tokens in a cluster: real `redis-server`, two real server processes, raw sockets. A place
 * kept on one server holds its name's claim, is heard of by nobody on any server, and is taken back
 * on its own server or on another one; one not taken back leaves on every server.
 */
import assert from "node:assert/strict";
import { ANY_GREETING, joinAs, joinWithToken, TestClient } from "./_helpers.ts";
import { clusterServer, joinKnowing, Redis } from "./_cluster.ts";
import { formatResume, parseResumeToken, ProtocolError } from "../protocol.ts";
import { parseEvent } from "../cluster/events.ts";
import { accountJson } from "../cluster/events.ts";
import { setOperatorInRedis } from "../cluster/redis_admin.ts";
import { takeIn } from "../cluster/intake.ts";
import { hashToken } from "../server/resume.ts";
import { hashPassword } from "../server/passwords.ts";

/** Redis and two servers, A and B, each with `extra` arguments. */
async function twoServers(redis: Redis, extra: string[] = []) {
  const [a, b] = await Promise.all([clusterServer(redis, extra), clusterServer(redis, extra)]);
  return { a, b };
}

/** What `listener` hears next after `speaker` says `text` (a leave or a join would come first). */
async function nextAfter(listener: TestClient, speaker: TestClient, text: string): Promise<string> {
  await speaker.send(text);
  return await listener.readLine();
}

Deno.test("cluster resume: a place kept on A is taken back on A; nobody on A or B hears a thing", async () => {
  await using redis = await new Redis().start();
  const { a, b } = await twoServers(redis);
  await using _a = a.child;
  await using _b = b.child;
  await using bob = await joinAs(b.port, "bob");
  await using carol = await joinKnowing(a.port, "carol", ["bob"]);
  await bob.expect("* carol has entered the room");
  const first = await joinWithToken(a.port, "/resume alice");
  await using _first = first.client;
  await bob.expect("* alice has entered the room");
  await carol.expect("* alice has entered the room");
  first.client.close(); // a reload, a phone asleep

  // Kept: still listed on B, and its name is still claimed cluster-wide.
  await bob.send("/who");
  await bob.expect(/^\* 3 online: alice, bob, carol$/);
  await using impostor = await TestClient.connect(b.port);
  await impostor.expect(ANY_GREETING);
  await impostor.send("alice");
  assert.deepEqual(await impostor.readToEnd(), [
    '* error: Cannot accept name "alice": name is taken',
  ]);

  const back = await joinWithToken(a.port, formatResume("alice", first.token));
  await using again = back.client;
  assert.ok(
    back.lines.some((line) => line.startsWith("* Resumed: the room did not see you leave")),
    back.lines.join("\n"),
  );
  assert.ok(back.lines.includes("* The room contains: bob, carol"), back.lines.join("\n"));
  // Nobody heard a leave or a join: alice's next line is the next thing each hears.
  assert.equal(await nextAfter(bob, again, "hi again"), "[alice] hi again");
  assert.equal(await carol.readLine(), "[alice] hi again");
  await bob.send("/msg alice still here");
  await again.expect("* private from bob: still here");
});

Deno.test("cluster resume: a place not taken back leaves on every server at the grace's end, and its name is free", async () => {
  await using redis = await new Redis().start();
  const { a, b } = await twoServers(redis, ["--resume-grace", "1"]);
  await using _a = a.child;
  await using _b = b.child;
  await using bob = await joinAs(b.port, "bob");
  await using carol = await joinKnowing(a.port, "carol", ["bob"]);
  await bob.expect("* carol has entered the room");
  const first = await joinWithToken(a.port, "/resume alice");
  assert.match(first.lines.at(-1)!, /kept 1 s/);
  await bob.expect("* alice has entered the room");
  await carol.expect("* alice has entered the room");
  first.client.close();
  await bob.expect("* alice has left the room");
  await carol.expect("* alice has left the room");
  // The claim was given up with the place: the name is free on B now.
  await using _newAlice = await joinKnowing(b.port, "alice", ["bob", "carol"]);
  await carol.expect("* alice has entered the room");
});

Deno.test("cluster resume: a place kept on A is taken back on B; A gives it up, nobody hears a thing", async () => {
  await using redis = await new Redis().start();
  const { a, b } = await twoServers(redis);
  await using _a = a.child;
  await using _b = b.child;
  await using bob = await joinAs(b.port, "bob");
  await using carol = await joinKnowing(a.port, "carol", ["bob"]);
  await bob.expect("* carol has entered the room");
  const first = await joinWithToken(a.port, "/resume alice");
  await using _first = first.client;
  await bob.expect("* alice has entered the room");
  await carol.expect("* alice has entered the room");
  first.client.close();

  // A token that is not the place's takes nothing: the place on A stays, the name is taken.
  await using thief = await TestClient.connect(b.port);
  await thief.expect(ANY_GREETING);
  await thief.send(formatResume("alice", "A".repeat(24)));
  assert.deepEqual(await thief.readToEnd(), [
    "* Could not resume alice: that place is no longer kept; joining anew",
    '* error: Cannot accept name "alice": name is taken',
  ]);

  const back = await joinWithToken(b.port, formatResume("alice", first.token));
  await using again = back.client;
  assert.ok(
    back.lines.some((line) => line.startsWith("* Resumed: the room did not see you leave")),
    back.lines.join("\n"),
  );
  assert.ok(back.lines.includes("* The room contains: bob, carol"), back.lines.join("\n"));
  // Neither server's members heard a leave or a join.
  assert.equal(await nextAfter(bob, again, "hi from B"), "[alice] hi from B");
  assert.equal(await carol.readLine(), "[alice] hi from B");
  // No ghost on A: one alice in the room, on B; private lines reach her there.
  await carol.send("/who");
  await carol.expect("* 3 online: alice, bob, carol");
  await carol.send("/msg alice found you");
  await again.expect("* private from carol: found you");
  await carol.expect("* private to alice: found you");
  // The old token died with the place A gave up.
  await using late = await TestClient.connect(a.port);
  await late.expect(ANY_GREETING);
  await late.send(formatResume("alice", first.token));
  await late.expect("* Could not resume alice: that place is no longer kept; joining anew");
  await late.expect('* error: Cannot accept name "alice": name is taken');
  // The new token keeps her place on B as it would on A.
  again.close();
  const third = await joinWithToken(a.port, formatResume("alice", back.token));
  await using _third = third.client;
  assert.equal(await nextAfter(carol, third.client, "and back on A"), "[alice] and back on A");
  assert.equal(await bob.readLine(), "[alice] and back on A");
});

Deno.test("cluster resume: a place request carries a token hash, and a join is silent only with an empty notice", () => {
  const o = crypto.randomUUID();
  const s = crypto.randomUUID();
  const hash = "h".repeat(43);
  const place = { o, d: 5, k: "place", n: "alice", s, t: hash, i: 1 };
  assert.deepEqual(parseEvent(JSON.stringify(place), 4096), place);
  const join = { o, d: 5, k: "join", n: "alice", m: "1", c: 1, x: "" };
  assert.deepEqual(parseEvent(JSON.stringify(join), 4096), join);
  const bad = [
    { ...place, t: "not a hash" },
    { ...place, t: undefined },
    { ...place, s: undefined },
    { ...place, i: undefined },
    { ...join, x: "* alice was kicked by bob" },
  ];
  for (const message of bad) {
    assert.throws(() => parseEvent(JSON.stringify(message), 4096), ProtocolError);
  }
});

Deno.test("cluster resume: a place kept on A and kicked from B is gone: its token takes nothing, on A or B", async () => {
  await using redis = await new Redis().start();
  const account = await hashPassword("olga", "correct horse");
  await redis.cli("SET", "chat:account:olga", accountJson(account));
  assert.equal((await setOperatorInRedis(redis.url, "olga", true)).status, "done");
  const { a, b } = await twoServers(redis);
  await using _a = a.child;
  await using _b = b.child;
  await using olga = await TestClient.connect(b.port);
  await olga.expect(ANY_GREETING);
  await olga.send("olga");
  await olga.expect("* olga is registered: send its password");
  await olga.send("correct horse");
  while (!(await olga.readLine()).startsWith("* You are an operator"));
  const first = { client: await TestClient.connect(a.port), token: "" };
  await first.client.expect(ANY_GREETING); // registered names: the greeting says so
  await first.client.send("/resume alice");
  while (!first.token) first.token = parseResumeToken(await first.client.readLine()) ?? "";
  await olga.expect("* alice has entered the room");
  first.client.close();
  await olga.send("/kick alice gone too long");
  await olga.expect("* alice was kicked by olga: gone too long");
  for (const port of [a.port, b.port]) {
    await using late = await TestClient.connect(port);
    await late.expect(ANY_GREETING);
    await late.send(formatResume("alice", first.token));
    await late.expect("* Could not resume alice: that place is no longer kept; joining anew");
    await late.expect(/^\* The room contains: @?olga$/);
    await olga.expect("* alice has entered the room");
    await late.send("/quit");
    await olga.expect(/^\* alice has left the room/);
  }
});

Deno.test("cluster resume: a connection on A not yet seen lost gives way to its token used on B, with no leave", async () => {
  await using redis = await new Redis().start();
  const { a, b } = await twoServers(redis);
  await using _a = a.child;
  await using _b = b.child;
  await using bob = await joinAs(b.port, "bob");
  await using carol = await joinKnowing(a.port, "carol", ["bob"]);
  await bob.expect("* carol has entered the room");
  const first = await joinWithToken(a.port, "/resume alice"); // a phone asleep: still open
  await using old = first.client;
  await bob.expect("* alice has entered the room");
  await carol.expect("* alice has entered the room");
  const back = await joinWithToken(b.port, formatResume("alice", first.token));
  await using again = back.client;
  assert.deepEqual(await old.readToEnd(), ["* You resumed this place on another connection"]);
  assert.equal(await nextAfter(carol, again, "awake"), "[alice] awake");
  assert.equal(await bob.readLine(), "[alice] awake");
});

Deno.test("cluster resume: a request for a place that comes after its deadline is dropped, never given up unasked", () => {
  const [here, there] = [crypto.randomUUID(), crypto.randomUUID()];
  const at = (now: number) => ({
    id: here,
    now,
    maxLineBytes: 4096,
    log: () => {},
    holds: () => false,
  });
  // The asker waits twice the request's budget: one that comes later than its deadline would be
  // given up after the asker stopped waiting, the member vanishing without a leave.
  const request = { o: there, d: 1000, k: "place", n: "alice", s: here, t: hashToken("x"), i: 1 };
  assert.equal(takeIn(JSON.stringify(request), at(1000)).event?.k, "place");
  assert.equal(takeIn(JSON.stringify(request), at(1001)).event, undefined);
});

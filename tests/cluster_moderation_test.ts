/**
 * Moderation in a cluster, end to end: server processes on a real redis-server, members from raw
 * sockets. An operator on one server kicks and bans a member on another; a ban holds across
 * restarts of every server, and on a server cut off from Redis when it was made (from the heal);
 * a timed ban ends on every server; `chat admin --redis` is seen by every server at once.
 */
import assert from "node:assert/strict";
import {
  ANY_GREETING,
  type Child,
  denoChild,
  TestClient,
  unusedPort,
  waitUntil,
} from "./_helpers.ts";
import { clusterServer, Proxy, Redis } from "./_cluster.ts";
import { hashPassword } from "../server/passwords.ts";
import { accountJson } from "../cluster/events.ts";
import { setOperatorInRedis } from "../cluster/redis_admin.ts";
import { HEAL_NOTICE, PARTITION_NOTICE } from "../cluster/events.ts";
import { OPERATOR_WELCOME } from "../protocol.ts";

const PASSWORD = "correct horse";
const UNTIL = "\\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC";
const CUT_OFF = "* error: The server cannot save it now (the room is partitioned): try again later";

/** Registers `names` straight in Redis, as a server would have. */
async function register(redis: Redis, ...names: string[]): Promise<void> {
  for (const name of names) {
    const account = await hashPassword(name, PASSWORD);
    await redis.cli("SET", `chat:account:${name.toLowerCase()}`, accountJson(account));
  }
}

/** Makes `name` an operator, as chat admin --redis does. */
async function op(redis: Redis, name: string): Promise<void> {
  assert.equal((await setOperatorInRedis(redis.url, name, true)).status, "done");
}

/** Joins as `name` (with its password if registered), reading up to the welcome. */
async function join(port: number, name: string, isRegistered = false): Promise<TestClient> {
  const client = await TestClient.connect(port);
  await client.expect(ANY_GREETING);
  await client.send(name);
  if (isRegistered) {
    await client.expect(`* ${name} is registered: send its password`);
    await client.send(PASSWORD);
  }
  await readUntil(client, new RegExp(`^\\* Welcome, ${name}!`));
  return client;
}

/** Tries to join as `name`: the line that answers the name (a refusal, or the room list). */
async function tryJoin(port: number, name: string): Promise<string> {
  await using client = await TestClient.connect(port);
  await client.expect(ANY_GREETING);
  await client.send(name);
  return await client.readLine();
}

/** Reads lines until one matches, returning it. */
async function readUntil(client: TestClient, expected: string | RegExp, ms?: number) {
  for (;;) {
    const line = await client.readLine(ms);
    if (typeof expected === "string" ? line === expected : expected.test(line)) return line;
  }
}

/** The next line but joins and leaves of others, which these tests are not about. */
async function hear(client: TestClient, ms?: number): Promise<string> {
  let line = await client.readLine(ms);
  // An operator's welcome says so after it (the clients' moderation work): not what these hear for.
  while (/^\* [\w-]+ has (entered|left) the room/.test(line) || line === OPERATOR_WELCOME) {
    line = await client.readLine(ms);
  }
  return line;
}

/** Two servers on `redis` (server b through `bUrl`, a proxy, if given). */
async function twoServers(
  redis: Redis,
  b: { port: number; url: string } = redis,
  extra: string[] = [],
) {
  const flags = ["--flood-rate", "0", ...extra];
  const [one, two] = await Promise.all([clusterServer(redis, flags), clusterServer(b, flags)]);
  return { a: one, b: two };
}

async function stop(child: Child): Promise<void> {
  child.process.kill("SIGTERM");
  await child.process.status;
  await child[Symbol.asyncDispose]();
}

Deno.test("cluster moderation: an operator on one server kicks and bans a member on another; the ban holds on every server, across restarts of them all", async () => {
  await using redis = await new Redis().start();
  await register(redis, "bob", "eve");
  await op(redis, "bob");
  await op(redis, "eve");
  let { a, b } = await twoServers(redis);
  try {
    await using bob = await join(a.port, "bob", true);
    await using dave = await join(a.port, "dave");
    await using carol = await join(b.port, "carol");
    {
      await using alice = await join(b.port, "alice");
      await readUntil(bob, "* alice has entered the room"); // her server told bob's
      await bob.send("/kick alice spamming");
      assert.deepEqual(await alice.readToEnd(), ["* error: You were kicked by bob: spamming"]);
    }
    for (const client of [bob, dave, carol]) {
      assert.equal(await hear(client), "* alice was kicked by bob: spamming");
    }
    // No leave line after it, and no second notice.
    await bob.send("next");
    for (const client of [dave, carol]) assert.equal(await hear(client), "[bob] next");

    {
      await using alice = await join(b.port, "alice");
      await readUntil(bob, "* alice has entered the room");
      await bob.send("/ban alice trolling");
      assert.deepEqual(await alice.readToEnd(), ["* error: You are banned: trolling"]);
    }
    for (const client of [bob, dave, carol]) {
      assert.equal(await hear(client), "* alice was banned by bob: trolling");
    }
    await bob.send("after the ban");
    for (const client of [dave, carol]) assert.equal(await hear(client), "[bob] after the ban");
    // An operator cannot be put out, not even by one on another server.
    await using _eve = await join(b.port, "eve", true);
    await bob.send("/kick eve");
    assert.equal(
      await readUntil(bob, /^\* error: /),
      '* error: Cannot kick "eve": an operator cannot kick an operator',
    );

    for (const port of [a.port, b.port]) {
      assert.equal(await tryJoin(port, "ALICE"), "* error: You are banned: trolling");
    }
  } finally {
    await Promise.all([stop(a.child), stop(b.child)]);
  }
  ({ a, b } = await twoServers(redis));
  try {
    for (const port of [a.port, b.port]) {
      assert.equal(await tryJoin(port, "alice"), "* error: You are banned: trolling");
    }
  } finally {
    await Promise.all([stop(a.child), stop(b.child)]);
  }
});

Deno.test("cluster moderation: a ban made while a server was cut off from Redis holds there from the heal: its member is put out, and refused at rejoin", async () => {
  await using redis = await new Redis().start();
  await using proxy = new Proxy(redis.port);
  await register(redis, "bob", "eve");
  await op(redis, "bob");
  await op(redis, "eve");
  const { a, b } = await twoServers(redis, proxy);
  await using _a = a.child;
  await using _b = b.child;
  await using bob = await join(a.port, "bob", true);
  await using eve = await join(b.port, "eve", true);
  await using alice = await join(b.port, "alice");
  await using carol = await join(b.port, "carol");
  await readUntil(bob, "* carol has entered the room");

  proxy.stall();
  for (const client of [alice, carol]) await readUntil(client, PARTITION_NOTICE, 15_000);
  // Cut off, the server refuses every act, in one line.
  for (const act of ["/ban mallory", "/kick carol", "/topic Hello", "/mute carol"]) {
    await eve.send(act);
    assert.equal(await readUntil(eve, /^\* error: /), CUT_OFF, act);
  }
  // A kick needs the member's server: cut off, it cannot confirm it, and the kicker is told.
  await bob.send("/kick carol");
  assert.equal(
    await readUntil(bob, /^\* error: /, 15_000),
    '* error: The server of "carol" did not confirm the kick within 2 seconds; it may not have arrived',
  );
  await bob.send("/ban alice 1h made meanwhile");
  const notice = new RegExp(`^\\* alice was banned by bob until ${UNTIL}: made meanwhile$`);
  assert.match(await readUntil(bob, /^\* alice was banned/, 15_000), notice);
  // The cut-off server has not heard: alice chats on there.
  await alice.send("still here");
  assert.equal(await hear(carol), "[alice] still here");

  proxy.resume();
  const lines = await alice.readToEnd(20_000);
  assert.match(
    lines.at(-1)!,
    new RegExp(`^\\* error: You are banned until ${UNTIL}: made meanwhile$`),
  );
  assert.match(await readUntil(carol, /^\* alice was banned/), notice);
  await readUntil(carol, HEAL_NOTICE);
  assert.match(await tryJoin(b.port, "alice"), /^\* error: You are banned until /);
});

Deno.test("cluster moderation: a mute, the topic and the operators online, made and seen across servers", async () => {
  await using redis = await new Redis().start();
  await register(redis, "bob");
  await op(redis, "bob");
  const { a, b } = await twoServers(redis);
  await using _a = a.child;
  await using _b = b.child;
  await using bob = await join(a.port, "bob", true);
  await using carol = await join(b.port, "carol");
  await readUntil(bob, "* carol has entered the room");
  await carol.send("/ops");
  assert.equal(await hear(carol), "* 1 operator online: bob");

  await bob.send("/mute carol 1h shouting");
  const muted = new RegExp(`^\\* carol was muted by bob until ${UNTIL}: shouting$`);
  for (const client of [bob, carol]) assert.match(await hear(client), muted);
  await carol.send("LOUD");
  assert.match(await hear(carol), /^\* error: You are muted until .*: your line was not sent$/);
  await bob.send("/unmute carol");
  for (const client of [bob, carol]) assert.equal(await hear(client), "* carol was unmuted by bob");
  await carol.send("quiet now");
  assert.equal(await hear(bob), "[carol] quiet now");

  await bob.send("/topic Be kind");
  for (const client of [bob, carol]) {
    assert.equal(await hear(client), "* bob set the topic: Be kind");
  }
  await using dave = await TestClient.connect(b.port);
  await dave.expect(ANY_GREETING);
  await dave.send("dave");
  await readUntil(dave, /^\* Welcome, dave!/);
  assert.equal(await dave.readLine(), "* Topic: Be kind");
});

Deno.test("cluster moderation: a timed ban ends on every server by itself", async () => {
  await using redis = await new Redis().start();
  await register(redis, "bob");
  await op(redis, "bob");
  const { a, b } = await twoServers(redis);
  await using _a = a.child;
  await using _b = b.child;
  await using bob = await join(a.port, "bob", true);
  {
    await using alice = await join(b.port, "alice");
    await readUntil(bob, "* alice has entered the room");
    await bob.send("/ban alice 2s");
    assert.match(
      (await alice.readToEnd())[0]!,
      new RegExp(`^\\* error: You are banned until ${UNTIL}$`),
    );
  }
  for (const port of [a.port, b.port]) {
    assert.match(await tryJoin(port, "alice"), /^\* error: You are banned until /);
  }
  // Waited for by trying, as a person would: it ends on its own, with no word from anyone.
  for (const port of [a.port, b.port]) {
    await waitUntil(
      async () => (await tryJoin(port, "alice")).startsWith("* The room contains:"),
      `the ban to end on port ${port}`,
    );
  }
  assert.equal((await redis.cli("KEYS", "chat:mod:*")).trim(), "chat:mod:op:bob");
});

Deno.test("cluster moderation: a Redis restarted empty gets the operators and bans back from the server that knew them", async () => {
  await using redis = await new Redis().start();
  await register(redis, "bob");
  await op(redis, "bob");
  const { child, port } = await clusterServer(redis, ["--flood-rate", "0"]);
  await using _server = child;
  {
    await using bob = await join(port, "bob", true);
    await bob.send("/ban mallory 1h spam");
    await bob.expect("* You are an operator: /help lists your commands");
    assert.match(await hear(bob), /^\* mallory was banned by bob until /);
  }
  await redis.stop();
  await child.stdout.readUntil(/redis: lost /);
  await redis.start(); // with nothing saved: empty
  await child.stdout.readUntil(/redis: connected to .* again/);
  assert.match(await redis.cli("GET", "chat:mod:op:bob"), /^bob$/m);
  const ttl = Number(await redis.cli("PTTL", "chat:mod:ban:n:mallory"));
  assert.ok(ttl > 3_500_000 && ttl <= 3_600_000, `PTTL ${ttl}`);
  // A server that never knew them holds them too.
  const fresh = await clusterServer(redis);
  await using _fresh = fresh.child;
  assert.match(await tryJoin(fresh.port, "mallory"), /^\* error: You are banned until .*: spam$/);
});

/** `chat admin --redis URL ARGS`, with the permissions it asks for: its exit code and output. */
async function admin(redis: Redis, args: string[]) {
  await using child = denoChild([
    "run",
    "-q",
    `--allow-net=127.0.0.1:${redis.port}`,
    "--allow-env=REDIS_DEBUG_MAINTENANCE,REDIS_EMIT_DIAGNOSTICS",
    "main.ts",
    "admin",
    "--redis",
    redis.url,
    ...args,
  ]);
  const { code, stdout, stderr } = await child.finish();
  return { code, stdout, stderr };
}

Deno.test("cluster moderation: an operator made or unmade by chat admin --redis is seen by every server at once", async () => {
  await using redis = await new Redis().start();
  await register(redis, "bob");
  const { a, b } = await twoServers(redis);
  await using _a = a.child;
  await using _b = b.child;
  await using bob = await join(a.port, "bob", true);
  await using carol = await join(b.port, "carol");
  await readUntil(bob, "* carol has entered the room");
  assert.deepEqual(await admin(redis, ["op", "carol"]), {
    code: 1,
    stdout: "",
    stderr: `error: Cannot make carol an operator: the name is not registered in ${redis.url} ` +
      "(its owner registers it in the room with /register)\n",
  });
  assert.deepEqual(await admin(redis, ["op", "BOB"]), {
    code: 0,
    stdout: "bob is now an operator\n",
    stderr: "",
  });
  for (const client of [bob, carol]) {
    assert.equal(await hear(client), "* bob is now an operator (by the server)");
    await client.send("/who");
    assert.equal(await readUntil(client, /^\* 2 online: /), "* 2 online: @bob, carol");
  }
  assert.deepEqual(await admin(redis, ["list"]), { code: 0, stdout: "bob\n", stderr: "" });
  await bob.send("/topic Be kind");
  for (const client of [bob, carol]) {
    assert.equal(await hear(client), "* bob set the topic: Be kind");
  }
  assert.equal((await admin(redis, ["deop", "bob"])).stdout, "bob is no longer an operator\n");
  for (const client of [bob, carol]) {
    assert.equal(await hear(client), "* bob is no longer an operator (by the server)");
  }
  await bob.send("/topic Be rude");
  assert.equal(await readUntil(bob, /^\* error: /), "* error: /topic is for operators only");
  assert.equal((await admin(redis, ["list"])).stdout, `No operators in ${redis.url}\n`);
});

Deno.test("chat admin --redis: without the permission for Redis it says how to run it; an unreachable Redis is said in one line", async () => {
  const port = unusedPort();
  await using denied = denoChild([
    "run",
    "-q",
    "main.ts",
    "admin",
    "--redis",
    `redis://127.0.0.1:${port}`,
    "list",
  ]);
  const refused = await denied.finish();
  assert.equal(refused.code, 1);
  assert.match(
    refused.stderr,
    new RegExp(
      `^error: No permission to reach Redis at 127\\.0\\.0\\.1:${port} .*run: deno run --allow-net=127\\.0\\.0\\.1:${port} --allow-env=\\S+ main\\.ts admin --redis redis://127\\.0\\.0\\.1:${port} list\\n$`,
    ),
  );
  const down = await admin({ port, url: `redis://127.0.0.1:${port}` } as Redis, ["op", "bob"]);
  assert.equal(down.code, 1);
  assert.match(
    down.stderr,
    /^error: Cannot change the operators in Redis at redis:\/\/127\.0\.0\.1:\d+: [^\n]+\n$/,
  );
});

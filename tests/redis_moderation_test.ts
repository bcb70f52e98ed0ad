/**
 * The cluster's moderation store against a real redis-server: two servers' copies, each on its own
 * link, kept current by the events each change publishes with it, re-read at a heal.
 */
import assert from "node:assert/strict";
import { waitUntil } from "./_helpers.ts";
import { Redis } from "./_cluster.ts";
import { Link } from "../cluster/redis_link.ts";
import { parseEvent } from "../cluster/events.ts";
import { RedisModeration } from "../cluster/redis_moderation.ts";
import { operatorsInRedis, setOperatorInRedis } from "../cluster/redis_admin.ts";
import { accountJson } from "../cluster/events.ts";
import { hashPassword } from "../server/passwords.ts";

/** An account as Redis keeps it (a cheap hash: only its name matters here). */
async function accountOf(name: string): Promise<string> {
  return accountJson(await hashPassword(name, "correct horse"));
}
import type { ModerationChange } from "../server/moderation_store.ts";
import { StoreError } from "../server/hub.ts";
import { ProtocolError } from "../protocol.ts";

/** One server's copy: its link (none while cut off) and what it was told. */
class Copy implements AsyncDisposable {
  readonly origin = crypto.randomUUID();
  readonly told: ModerationChange[] = [];
  readonly store: RedisModeration;
  link: Link | undefined;
  #url: string;

  constructor(url: string) {
    this.#url = url;
    this.store = new RedisModeration({
      link: () => this.link,
      now: () => Date.now(),
      origin: this.origin,
    });
    this.store.onChange = (change) => this.told.push(change);
  }

  /** Links to Redis and heals, as the hub does; the channel's events are applied from then on. */
  async connect(): Promise<this> {
    const link = new Link(this.#url, {
      onMessage: (message) => {
        const event = parseEvent(message, 4000);
        if (event.k === "mod" && event.o !== this.origin) {
          this.store.changed(event.t!, event.v, event.b);
        }
      },
      onBreak: () => {},
      historySize: 0,
    });
    await link.open();
    link.pending = undefined;
    await this.store.heal(link);
    this.link = link;
    return this;
  }

  /** Cut off from Redis: changes are refused, and the channel goes unheard. */
  async cut(): Promise<void> {
    const link = this.link;
    this.link = undefined;
    await link?.close(1000);
  }

  async waitTold(count: number): Promise<ModerationChange[]> {
    await waitUntil(() => this.told.length >= count, () => `${count} changes: ${this.json()}`);
    return this.told.splice(0);
  }

  json(): string {
    return JSON.stringify(this.told);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.cut();
  }
}

const PARTITIONED = "The server cannot save it now (the room is partitioned): try again later";

Deno.test("cluster moderation: an operator must be registered; a change made on one server is told to the other at once", async () => {
  await using redis = await new Redis().start();
  await using a = await new Copy(redis.url).connect();
  await using b = await new Copy(redis.url).connect();
  await assert.rejects(
    a.store.setOperator("Alice", true),
    new StoreError("Alice is not registered: only a registered name can be an operator"),
  );
  assert.equal((await redis.cli("KEYS", "chat:mod:*")).trim(), "");
  await redis.cli("SET", "chat:account:alice", await accountOf("Alice"));
  await a.store.setOperator("Alice", true);
  assert.ok(a.store.isOperator("alice"));
  assert.deepEqual(await b.waitTold(1), [
    { kind: "operator", name: "Alice", isOperator: true, by: "" },
  ]);
  assert.ok(b.store.isOperator("ALICE"));
  assert.deepEqual(b.store.operators(), ["Alice"]);

  const at = Date.now();
  const ban = { target: "Mallory", kind: "name", by: "Alice", at, reason: "spam" } as const;
  const net = { target: "10.0.0.0/8", kind: "address", by: "Alice", at } as const;
  const mute = { name: "carol", by: "Alice", at, until: at + 3_600_000 };
  const topic = { text: "Be kind", by: "Alice", at };
  await a.store.addBan(ban);
  await a.store.addBan(net);
  await a.store.addMute(mute);
  await a.store.setTopic(topic);
  assert.deepEqual(await b.waitTold(4), [
    { kind: "ban", ban },
    { kind: "ban", ban: net },
    { kind: "mute", mute },
    { kind: "topic", topic },
  ]);
  assert.deepEqual(b.store.bans(), [ban, net]);
  assert.deepEqual(b.store.mutes(), [mute]);
  assert.deepEqual(b.store.topic(), topic);
  // Nothing was told to the server that made the changes: it acts on them itself.
  assert.deepEqual(a.told, []);

  // A ban by name is one ban for every case of it.
  assert.equal(await a.store.removeBan("MALLORY", "Alice"), true);
  assert.equal(await a.store.removeBan("mallory"), false);
  assert.equal(await a.store.removeMute("Carol"), true);
  await a.store.setTopic(undefined);
  await a.store.setOperator("alice", false);
  assert.deepEqual(await b.waitTold(4), [
    { kind: "unban", target: "Mallory", by: "Alice" },
    { kind: "unmute", name: "carol", by: "" },
    { kind: "topic", topic: undefined },
    { kind: "operator", name: "Alice", isOperator: false, by: "" },
  ]);
  assert.deepEqual(b.store.bans(), [net]);
  assert.deepEqual([a.store.operators(), b.store.operators()], [[], []]);
});

Deno.test("cluster moderation: a timed ban expires in Redis and in every copy, untold", async () => {
  await using redis = await new Redis().start();
  await using a = await new Copy(redis.url).connect();
  await using b = await new Copy(redis.url).connect();
  const at = Date.now();
  const ban = {
    target: "203.0.113.7",
    kind: "address",
    by: "alice",
    at,
    until: at + 1500,
  } as const;
  await a.store.addBan(ban);
  const ttl = Number(await redis.cli("PTTL", "chat:mod:ban:a:203.0.113.7"));
  assert.ok(ttl > 0 && ttl <= 1500, `PTTL ${ttl}`);
  await b.waitTold(1);
  assert.deepEqual(b.store.bans(), [ban]);
  await waitUntil(() => a.store.bans().length === 0 && b.store.bans().length === 0, "the end");
  assert.ok(Date.now() >= ban.until);
  assert.equal((await redis.cli("EXISTS", "chat:mod:ban:a:203.0.113.7")).trim(), "0");
  // A server that heals after the end reads nothing of it, and tells nothing.
  await b.cut();
  await b.connect();
  assert.deepEqual([b.store.bans(), b.told], [[], []]);
});

Deno.test("cluster moderation: cut off from Redis, a change is refused in one line; at the heal a server reads what changed meanwhile", async () => {
  await using redis = await new Redis().start();
  await redis.cli("SET", "chat:account:dave", "{}");
  await using a = await new Copy(redis.url).connect();
  await using b = await new Copy(redis.url).connect();
  const at = Date.now();
  const old = { target: "old", kind: "name", by: "alice", at } as const;
  await a.store.addBan(old);
  await b.waitTold(1);

  await b.cut();
  const ban = { target: "carol", kind: "name", by: "alice", at, reason: "made meanwhile" } as const;
  await assert.rejects(b.store.addBan(ban), new StoreError(PARTITIONED));
  await assert.rejects(b.store.setTopic({ text: "x", by: "bob", at }), new StoreError(PARTITIONED));
  await a.store.addBan(ban);
  assert.equal(await a.store.removeBan("old"), true);
  await a.store.setOperator("dave", true);
  // Written straight into Redis: not ours, so skipped.
  await redis.cli("SET", "chat:mod:ban:n:eve", "not json");
  await redis.cli("SET", "chat:mod:op:frank", "Someone-else");
  assert.deepEqual(b.told, []);

  await b.connect();
  // One word for all of it: the server applies every ban again.
  assert.deepEqual(b.told, [{ kind: "reload" }]);
  assert.deepEqual(b.store.bans(), [ban]);
  assert.deepEqual(b.store.operators(), ["dave"]);
  // A heal that finds nothing changed says nothing.
  await b.cut();
  b.told.length = 0;
  await b.connect();
  assert.deepEqual(b.told, []);
});

Deno.test("cluster moderation: a change that Redis, frozen, takes too late is not made", async () => {
  await using redis = await new Redis().start();
  await using a = await new Copy(redis.url).connect();
  redis.pause();
  try {
    const ban = { target: "carol", kind: "name", by: "alice", at: Date.now() } as const;
    await assert.rejects(a.store.addBan(ban), (error: Error) => {
      assert.ok(error instanceof StoreError);
      assert.match(error.message, /^The server cannot save it now \(.*\): try again later$/);
      return true;
    });
  } finally {
    redis.resume();
  }
  assert.equal((await redis.cli("EXISTS", "chat:mod:ban:n:carol")).trim(), "0");
  assert.deepEqual(a.store.bans(), []);
});

Deno.test("cluster moderation: chat admin's op, deop and list in Redis, seen by a running server at once as the server's doing", async () => {
  await using redis = await new Redis().start();
  await using b = await new Copy(redis.url).connect();
  assert.deepEqual(await setOperatorInRedis(redis.url, "Alice", true), {
    status: "unregistered",
    name: "Alice",
  });
  await redis.cli("SET", "chat:account:alice", await accountOf("Alice"));
  await redis.cli("SET", "chat:account:bob", await accountOf("bob"));
  // The name as registered, whatever the case it is given in.
  assert.deepEqual(await setOperatorInRedis(redis.url, "alice", true), {
    status: "done",
    name: "Alice",
  });
  assert.deepEqual(await setOperatorInRedis(redis.url, "ALICE", true), {
    status: "already",
    name: "Alice",
  });
  await setOperatorInRedis(redis.url, "bob", true);
  assert.deepEqual(await b.waitTold(2), [
    { kind: "operator", name: "Alice", isOperator: true },
    { kind: "operator", name: "bob", isOperator: true },
  ]);
  assert.deepEqual(await operatorsInRedis(redis.url), ["Alice", "bob"]);
  assert.deepEqual(await setOperatorInRedis(redis.url, "ALICE", false), {
    status: "done",
    name: "Alice",
  });
  assert.deepEqual(await b.waitTold(1), [{ kind: "operator", name: "Alice", isOperator: false }]);
  assert.deepEqual(await setOperatorInRedis(redis.url, "alice", false), {
    status: "already",
    name: "Alice",
  });
  assert.deepEqual(await operatorsInRedis(redis.url), ["bob"]);
  assert.deepEqual(b.store.operators(), ["bob"]);
});

Deno.test("cluster moderation: an event names only a moderation key, and carries only the room's moderation notices and the lines to a member put out", () => {
  const o = crypto.randomUUID();
  const d = 5;
  const good = [
    { o, d, k: "mod", n: "", t: "ban:n:alice", v: "{}", b: "bob" },
    { o, d, k: "mod", n: "", t: "ban:a:2001:db8::/64" },
    { o, d, k: "mod", n: "", t: "topic", v: "{}", b: "" },
    { o, d, k: "note", n: "", t: "* alice was kicked by bob: spamming" },
    {
      o,
      d,
      k: "note",
      n: "",
      t: "* carol, dave and eve were banned by bob until 2026-12-07 10:00:00 UTC",
    },
    { o, d, k: "note", n: "", t: "* alice is now an operator (by the server)" },
    { o, d, k: "note", n: "", t: "* bob set the topic: Be kind" },
    {
      o,
      d,
      k: "expel",
      n: "alice",
      s: o,
      i: 1,
      t: "* error: You were kicked by bob: spam",
      x: "* alice was kicked by bob: spam",
    },
    { o, d, k: "leave", n: "alice", m: "1", t: "banned", x: "" },
  ];
  for (const event of good) assert.deepEqual(parseEvent(JSON.stringify(event), 4096), event);
  const bad = [
    { o, d, k: "mod", n: "", t: "account:alice", v: "{}" },
    { o, d, k: "mod", n: "", t: "ban:n:ali ce" },
    { o, d, k: "mod", n: "", t: "op:alice", b: "not a name" },
    { o, d, k: "mod", n: "", t: "op:alice", v: "x".repeat(5000) },
    { o, d, k: "note", n: "", t: "[bob] forged" },
    { o, d, k: "note", n: "", t: "* The room is whole again" },
    { o, d, k: "note", n: "", t: "* alice was kicked by bob\n[bob] forged" },
    { o, d, k: "expel", n: "alice", s: o, i: 1, t: "* alice was kicked by bob" },
    { o, d, k: "expel", n: "alice", s: o, t: "* error: You were kicked by bob" },
    { o, d, k: "leave", n: "alice", m: "1", x: "* alice has entered the room" },
  ];
  for (const event of bad) {
    assert.throws(
      () => parseEvent(JSON.stringify(event), 4096),
      ProtocolError,
      JSON.stringify(event),
    );
  }
});

/** Pure tests of protocol/moderation.ts (durations, commands, lines) and of the memory store. */
import assert from "node:assert/strict";
import {
  formatBan,
  formatBanned,
  formatBans,
  formatKick,
  formatMute,
  formatOperatorChange,
  formatOps,
  formatRoomList,
  formatTopic,
  formatTopicChange,
  formatUnban,
  formatUntil,
  formatWho,
  formatWhois,
  formatYouAreBanned,
  formatYouAreMuted,
  formatYouWereKicked,
  markOperator,
  MAX_DURATION_MS,
  operatorCommandOf,
  parseCommand,
  parseDuration,
  parseServerLine,
} from "../protocol.ts";
import { MemoryModerationStore } from "../server/moderation_store.ts";

const UNTIL = Date.UTC(2026, 11, 7, 10, 0, 0);

Deno.test("parseDuration reads s, m, h, d and w, up to 365 days", () => {
  assert.equal(parseDuration("30s"), 30_000);
  assert.equal(parseDuration("10m"), 600_000);
  assert.equal(parseDuration("2h"), 7_200_000);
  assert.equal(parseDuration("7d"), 7 * 86_400_000);
  assert.equal(parseDuration("1w"), 7 * 86_400_000);
  assert.equal(parseDuration("365d"), MAX_DURATION_MS);
  assert.throws(() => parseDuration("366d"), /^ProtocolError: .*"366d": the longest is 365d$/);
  assert.throws(() => parseDuration("53w"), /the longest is 365d/);
  assert.throws(() => parseDuration("0m"), /must be over 0/);
  for (const word of ["10", "m", "10x", "1.5h", "-1d", "spamming", "10 m", "10M"]) {
    assert.equal(parseDuration(word), undefined, word);
  }
});

Deno.test("formatUntil writes UTC to the second", () => {
  assert.equal(formatUntil(UNTIL), "2026-12-07 10:00:00 UTC");
  assert.equal(formatUntil(UNTIL + 1500), "2026-12-07 10:00:01 UTC");
});

Deno.test("parseCommand reads every moderation command", () => {
  assert.deepEqual(parseCommand("/kick bob"), { name: "kick", target: "bob" });
  assert.deepEqual(parseCommand("/KICK bob  too loud "), {
    name: "kick",
    target: "bob",
    reason: "too loud",
  });
  assert.deepEqual(parseCommand("/ban bob"), { name: "ban", target: "bob", kind: "name" });
  assert.deepEqual(parseCommand("/ban bob 10m"), {
    name: "ban",
    target: "bob",
    kind: "name",
    durationMs: 600_000,
  });
  assert.deepEqual(parseCommand("/ban bob 2h spam and worse"), {
    name: "ban",
    target: "bob",
    kind: "name",
    durationMs: 7_200_000,
    reason: "spam and worse",
  });
  // A second word that is no duration starts the reason.
  assert.deepEqual(parseCommand("/ban bob spamming 10m"), {
    name: "ban",
    target: "bob",
    kind: "name",
    reason: "spamming 10m",
  });
  for (const target of ["203.0.113.7", "2001:db8::1", "10.0.0.0/8", "::ffff:1.2.3.4"]) {
    assert.deepEqual(parseCommand(`/ban ${target} 1s`), {
      name: "ban",
      target,
      kind: "address",
      durationMs: 1000,
    });
  }
  assert.deepEqual(parseCommand("/unban 10.0.0.0/8"), { name: "unban", target: "10.0.0.0/8" });
  assert.deepEqual(parseCommand("/unban Bob"), { name: "unban", target: "Bob" });
  assert.deepEqual(parseCommand("/bans"), { name: "bans" });
  assert.deepEqual(parseCommand("/mute bob 30s shush"), {
    name: "mute",
    target: "bob",
    durationMs: 30_000,
    reason: "shush",
  });
  assert.deepEqual(parseCommand("/unmute bob"), { name: "unmute", target: "bob" });
  assert.deepEqual(parseCommand("/topic"), { name: "topic" });
  assert.deepEqual(parseCommand("/topic -"), { name: "topic", text: "" });
  assert.deepEqual(parseCommand("/topic Be kind - always"), {
    name: "topic",
    text: "Be kind - always",
  });
  for (const name of ["op", "deop", "whois"] as const) {
    assert.deepEqual(parseCommand(`/${name} alice`), { name, target: "alice" });
  }
  assert.deepEqual(parseCommand("/ops"), { name: "ops" });
});

Deno.test("parseCommand refuses bad moderation arguments with one clear line", () => {
  assert.throws(() => parseCommand("/kick"), /^ProtocolError: Usage: \/kick NAME \[REASON\]$/);
  assert.throws(() => parseCommand("/ban"), /Usage: \/ban NAME\|ADDRESS\|CIDR/);
  assert.throws(() => parseCommand("/kick b@d"), /Cannot accept name "b@d"/);
  assert.throws(
    () => parseCommand("/ban 1.2.3.x"),
    /Cannot ban "1.2.3.x": give a name, an address/,
  );
  assert.throws(() => parseCommand("/ban bob 400d"), /the longest is 365d/);
  assert.throws(() => parseCommand(`/ban bob ${"x".repeat(201)}`), /Reason too long: at most 200/);
  assert.deepEqual(parseCommand(`/kick bob ${"x".repeat(200)}`), {
    name: "kick",
    target: "bob",
    reason: "x".repeat(200),
  });
  assert.throws(() => parseCommand(`/topic ${"t".repeat(301)}`), /Topic too long: at most 300/);
  assert.equal(parseCommand(`/topic ${"t".repeat(300)}`).name, "topic");
  assert.throws(() => parseCommand("/bans all"), /Usage: \/bans$/);
  assert.throws(() => parseCommand("/ops x"), /Usage: \/ops$/);
  assert.throws(() => parseCommand("/op a b"), /Usage: \/op NAME$/);
  assert.throws(() => parseCommand("/unmute"), /Usage: \/unmute NAME$/);
});

Deno.test("operatorCommandOf names the commands for operators only, bare /topic excepted", () => {
  for (const line of ["/kick", "/KICK bob", "/ban 1.2.3.4", "/unban x", "/bans", "/mute a"]) {
    assert.ok(operatorCommandOf(line), line);
  }
  for (const line of ["/unmute a", "/op a", "/deop a", "/whois a", "/topic hi", "/topic -"]) {
    assert.ok(operatorCommandOf(line), line);
  }
  for (const line of ["/topic", "/topic  ", "/ops", "/who", "hello", "//kick", "/kickx"]) {
    assert.equal(operatorCommandOf(line), undefined, line);
  }
});

Deno.test("the moderation lines read as the contract writes them", () => {
  assert.equal(formatTopic("Be kind"), "* Topic: Be kind");
  assert.equal(formatTopicChange("bob", "Be kind"), "* bob set the topic: Be kind");
  assert.equal(formatTopicChange("bob", undefined), "* bob cleared the topic");
  assert.equal(formatKick("alice", "bob", "spamming"), "* alice was kicked by bob: spamming");
  assert.equal(formatKick("alice", "bob"), "* alice was kicked by bob");
  assert.equal(formatYouWereKicked("bob"), "* error: You were kicked by bob");
  assert.equal(
    formatBan(["alice"], "bob", { until: UNTIL, reason: "spam" }),
    "* alice was banned by bob until 2026-12-07 10:00:00 UTC: spam",
  );
  assert.equal(formatBan(["carol", "dave"], "bob"), "* carol and dave were banned by bob");
  assert.equal(formatBan(["a", "b", "c"], "bob"), "* a, b and c were banned by bob");
  assert.equal(formatYouAreBanned(), "* error: You are banned");
  assert.equal(
    formatYouAreBanned(UNTIL, "spam"),
    "* error: You are banned until 2026-12-07 10:00:00 UTC: spam",
  );
  assert.equal(
    formatBanned("10.0.0.0/8", UNTIL),
    "* Banned 10.0.0.0/8 until 2026-12-07 10:00:00 UTC",
  );
  assert.equal(formatUnban("alice", "bob"), "* alice was unbanned by bob");
  assert.deepEqual(formatBans([]), ["* No bans"]);
  assert.deepEqual(
    formatBans([{ target: "alice", by: "bob" }, {
      target: "2001:db8::/64",
      by: "bob",
      until: UNTIL,
      reason: "x",
    }]),
    [
      "* 2 bans:",
      "* alice by bob",
      "* 2001:db8::/64 by bob until 2026-12-07 10:00:00 UTC: x",
    ],
  );
  assert.equal(
    formatMute("alice", "bob", { until: UNTIL }),
    "* alice was muted by bob until 2026-12-07 10:00:00 UTC",
  );
  assert.equal(formatYouAreMuted(), "* error: You are muted: your line was not sent");
  assert.equal(formatOperatorChange("alice", true, "bob"), "* alice is now an operator (by bob)");
  assert.equal(
    formatOperatorChange("alice", false),
    "* alice is no longer an operator (by the server)",
  );
  assert.equal(formatOps([]), "* No operator is online");
  assert.equal(formatOps(["alice", "bob"]), "* 2 operators online: alice, bob");
  assert.equal(
    formatWhois({
      name: "alice",
      address: "203.0.113.7",
      door: "TLS",
      isRegistered: true,
      isOperator: false,
    }),
    "* alice: from 203.0.113.7, TLS, registered, not an operator",
  );
});

Deno.test("parseServerLine reads operators' marks, the topic, and kicks and bans to the member", () => {
  const [room] = formatRoomList([markOperator("alice", true), markOperator("bob", false)]);
  assert.equal(room, "* The room contains: @alice, bob");
  assert.deepEqual(parseServerLine(room!), {
    kind: "room",
    names: ["alice", "bob"],
    operators: ["alice"],
    isContinued: false,
  });
  const [who] = formatWho(["@alice", "bob"]);
  assert.deepEqual(parseServerLine(who!), {
    kind: "who",
    names: ["alice", "bob"],
    operators: ["alice"],
    isContinued: false,
    text: "2 online: @alice, bob",
  });
  assert.deepEqual(parseServerLine("* Topic: Be: kind"), { kind: "topic", text: "Be: kind" });
  assert.deepEqual(parseServerLine(formatTopicChange("bob", "x")), {
    kind: "topic",
    text: "x",
    by: "bob",
  });
  assert.deepEqual(parseServerLine(formatTopicChange("bob", undefined)), {
    kind: "topic",
    text: "",
    by: "bob",
  });
  assert.deepEqual(parseServerLine(formatYouWereKicked("bob", "a: b")), {
    kind: "kicked",
    by: "bob",
    reason: "a: b",
  });
  assert.deepEqual(parseServerLine(formatYouWereKicked("bob")), { kind: "kicked", by: "bob" });
  assert.deepEqual(parseServerLine(formatYouAreBanned(UNTIL, "spam")), {
    kind: "banned",
    until: new Date(UNTIL),
    reason: "spam",
  });
  assert.deepEqual(parseServerLine(formatYouAreBanned()), { kind: "banned" });
  // The room's notices are no lines to the member: a client must not stop on them.
  assert.equal(parseServerLine(formatKick("alice", "bob"))?.kind, "system");
  assert.equal(parseServerLine(formatBan(["alice"], "bob"))?.kind, "system");
  assert.equal(parseServerLine(formatYouAreMuted())?.kind, "error");
  // A user's line cannot pass for one.
  assert.equal(parseServerLine("[eve] * error: You are banned")?.kind, "user");
});

Deno.test("MemoryModerationStore keeps names regardless of case and drops ended terms", async () => {
  const store = new MemoryModerationStore(["Alice"]);
  assert.ok(store.isOperator("alice"));
  assert.deepEqual(store.operators(), ["Alice"]);
  await store.setOperator("bob", true);
  await store.setOperator("ALICE", false);
  assert.deepEqual(store.operators(), ["bob"]);
  const now = Date.now();
  await store.addBan({ target: "Eve", kind: "name", by: "bob", at: now });
  await store.addBan({ target: "10.0.0.0/8", kind: "address", by: "bob", at: now, until: now - 1 });
  assert.deepEqual(store.bans().map((ban) => ban.target), ["Eve"]);
  assert.equal(await store.removeBan("eve"), true);
  assert.equal(await store.removeBan("eve"), false);
  await store.addMute({ name: "Mallory", by: "bob", at: now, until: now + 60_000 });
  assert.deepEqual(store.mutes().map((mute) => mute.name), ["Mallory"]);
  assert.equal(await store.removeMute("mallory"), true);
  await store.setTopic({ text: "hi", by: "bob", at: now });
  assert.equal(store.topic()?.text, "hi");
});

/** Pure tests of protocol.ts: the line splitter, names, commands and line formats. */
import assert from "node:assert/strict";
import {
  backoffDelay,
  cleanText,
  encodeLine,
  firstNewLine,
  formatAction,
  formatHistory,
  formatJoin,
  formatLeave,
  formatLimits,
  formatPrivateFrom,
  formatPrivateTo,
  formatQuit,
  formatRename,
  formatRoomList,
  formatUserLine,
  formatWho,
  HELP_LINES,
  isKeptLine,
  LineSplitter,
  type LineSplitterOptions,
  LineTooLongError,
  MAX_LIST_LINE_BYTES,
  nameKey,
  parseCommand,
  parseName,
  parseServerLine,
  ProtocolError,
  utf8Length,
} from "../protocol.ts";

const encoder = new TextEncoder();

async function split(chunks: (string | number[])[], options: LineSplitterOptions = {}) {
  const bytes = chunks.map((c) => typeof c === "string" ? encoder.encode(c) : new Uint8Array(c));
  const out = await Array.fromAsync(
    ReadableStream.from(bytes).pipeThrough(new LineSplitter(options)),
  );
  return out.flat().map((item) => item instanceof LineTooLongError ? "<too long>" : item);
}

Deno.test("LineSplitter splits at LF and CRLF", async () => {
  assert.deepEqual(await split(["a\nb\r\nc\n"]), ["a", "b", "c"]);
});

Deno.test("LineSplitter joins a CRLF split across chunks", async () => {
  assert.deepEqual(await split(["one\r", "\ntwo\n"]), ["one", "two"]);
});

Deno.test("LineSplitter keeps a lone CR inside a line", async () => {
  assert.deepEqual(await split(["a\rb\n"]), ["a\rb"]);
});

Deno.test("LineSplitter decodes multibyte UTF-8 split across chunks", async () => {
  const euro = [...encoder.encode("€")]; // 3 bytes
  assert.deepEqual(await split([[0x61, euro[0]!], [euro[1]!], [euro[2]!, 0x0a]]), ["a€"]);
});

Deno.test("LineSplitter replaces invalid UTF-8 with U+FFFD", async () => {
  assert.deepEqual(await split([[0xff, 0x61, 0xc3, 0x0a]]), ["\ufffda\ufffd"]);
});

Deno.test("LineSplitter emits empty lines", async () => {
  assert.deepEqual(await split(["\n\r\nx\n"]), ["", "", "x"]);
});

Deno.test("LineSplitter drops a last line with no line end", async () => {
  assert.deepEqual(await split(["a\nhalf"]), ["a"]);
});

Deno.test("LineSplitter keeps a last line with no line end when asked", async () => {
  assert.deepEqual(await split(["a\nhalf"], { keepPartialLine: true }), ["a", "half"]);
});

Deno.test("LineSplitter accepts a line exactly at the limit and rejects one byte over", async () => {
  const max = 1000;
  const at = "x".repeat(max);
  assert.deepEqual(await split([`${at}\n${at}x\nok\n`], { maxLineBytes: max }), [
    at,
    "<too long>",
    "ok",
  ]);
});

Deno.test("LineSplitter does not count the CR of a CRLF against the limit", async () => {
  const at = "x".repeat(1000);
  assert.deepEqual(await split([`${at}\r`, "\n"], { maxLineBytes: 1000 }), [at]);
});

Deno.test("LineSplitter counts the limit in bytes, not characters", async () => {
  const euros = "€".repeat(334); // 1002 bytes
  assert.deepEqual(await split([`${euros}\n`], { maxLineBytes: 1000 }), ["<too long>"]);
});

Deno.test("LineSplitter reports a long line before its end arrives and discards the rest", async () => {
  const chunks = ["x".repeat(600), "x".repeat(600), "x".repeat(5000), "tail\nnext\n"];
  const stream = ReadableStream.from(chunks.map((c) => encoder.encode(c))).pipeThrough(
    new LineSplitter({ maxLineBytes: 1000 }),
  );
  const reader = stream.getReader();
  const first = await reader.read(); // arrives although the line has no end yet
  assert.ok(first.value?.[0] instanceof LineTooLongError);
  assert.equal(first.value[0].maxLineBytes, 1000);
  assert.deepEqual(await reader.read(), { value: ["next"], done: false });
  assert.deepEqual(await reader.read(), { value: undefined, done: true });
});

Deno.test("LineSplitter reports a long line without an end once, however long", async () => {
  const chunks = Array.from({ length: 100 }, () => "y".repeat(10_000));
  assert.deepEqual(await split(chunks, { maxLineBytes: 1000 }), ["<too long>"]);
});

Deno.test("cleanText removes ANSI and OSC escapes and control characters", () => {
  assert.equal(cleanText("\x1b[31mred\x1b[0m"), "red");
  assert.equal(cleanText("a\x1b]0;title\x07b"), "ab");
  assert.equal(cleanText("a\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"), "alink");
  assert.equal(cleanText("nul\x00 bell\x07 cr\r del\x7f c1\x9b"), "nul bell cr del c1");
  assert.equal(cleanText("tab\there"), "tab here");
  assert.equal(cleanText("bidi\u202eevil\u2066"), "bidievil");
  assert.equal(cleanText("héllo wörld 😀"), "héllo wörld 😀");
});

Deno.test("parseName accepts letters, digits, _ and - up to 32 characters", () => {
  assert.equal(parseName("Emil"), "Emil");
  assert.equal(parseName("a_b-9"), "a_b-9");
  assert.equal(parseName("x".repeat(32)), "x".repeat(32));
  assert.equal(parseName("  bob  "), "bob");
});

Deno.test("parseName rejects empty, long and unsafe names with a reason", () => {
  assert.throws(() => parseName(""), ProtocolError);
  assert.throws(() => parseName("   "), /empty name/);
  assert.throws(() => parseName("x".repeat(33)), /at most 32 characters/);
  for (const bad of ["a b", "[bob]", "* bob", "bob]", "émil", "a.b", "a:b"]) {
    assert.throws(() => parseName(bad), /use only ASCII letters, digits/, bad);
  }
});

Deno.test("parseName strips escapes before checking, so none reach the error", () => {
  assert.throws(
    () => parseName("\x1b[31mbob bob"),
    (error: Error) => !error.message.includes("\x1b"),
  );
});

Deno.test("nameKey ignores case", () => {
  assert.equal(nameKey("Emil"), nameKey("eMIL"));
});

Deno.test("formatters produce the Budget Chat lines", () => {
  assert.equal(formatUserLine("alice", "hi"), "[alice] hi");
  assert.equal(formatJoin("alice"), "* alice has entered the room");
  assert.equal(formatLeave("alice"), "* alice has left the room");
  assert.equal(
    formatLeave("alice", "stopped reading"),
    "* alice has left the room (stopped reading)",
  );
  assert.deepEqual(formatRoomList(["a", "b"]), ["* The room contains: a, b"]);
  assert.deepEqual(formatRoomList([]), ["* The room contains:"]);
  assert.deepEqual(formatWho(["a", "b"]), ["* 2 online: a, b"]);
});

Deno.test("formatRoomList and formatWho split a big room into lines within the limit", () => {
  const names = Array.from({ length: 3000 }, (_, i) => `member-${i}-${"x".repeat(i % 25)}`);
  for (
    const [lines, first, more] of [
      [formatRoomList(names), "* The room contains: ", "* The room also contains: "],
      [formatWho(names), "* 3000 online: ", "* also online: "],
    ] as const
  ) {
    assert.ok(lines.length > 10, `only ${lines.length} lines`);
    assert.ok(lines[0]!.startsWith(first));
    for (const line of lines.slice(1)) assert.ok(line.startsWith(more), line);
    for (const line of lines) {
      assert.ok(utf8Length(line) <= MAX_LIST_LINE_BYTES, `${utf8Length(line)} bytes`);
    }
    // Every name once, in order, and a parser sees each line as a list.
    const listed = lines.flatMap((line, i) =>
      line.slice(i === 0 ? first.length : more.length).split(", ")
    );
    assert.deepEqual(listed, names);
  }
  const parsed = formatRoomList(names).map(parseServerLine);
  assert.deepEqual(parsed.map((line) => line?.kind === "room" && line.isContinued), [
    false,
    ...Array(parsed.length - 1).fill(true),
  ]);
  assert.deepEqual(parsed.flatMap((line) => line?.kind === "room" ? line.names : []), names);
});

Deno.test("formatLimits states the limits so that parseServerLine gives them back", () => {
  const line = formatLimits({ maxLineBytes: 4096, floodBurst: 10, floodRate: 5 });
  assert.equal(line, "* Limits: lines of up to 4096 bytes, 10 at once, then 5 a second");
  assert.deepEqual(parseServerLine(line), {
    kind: "limits",
    limits: { maxLineBytes: 4096, floodBurst: 10, floodRate: 5 },
  });
  const off = formatLimits({ maxLineBytes: 8000, floodBurst: 10, floodRate: 0 });
  assert.equal(off, "* Limits: lines of up to 8000 bytes");
  assert.deepEqual(parseServerLine(off), { kind: "limits", limits: { maxLineBytes: 8000 } });
  assert.deepEqual(
    parseServerLine(formatLimits({ maxLineBytes: 4000, floodBurst: 3, floodRate: 0.5 })),
    { kind: "limits", limits: { maxLineBytes: 4000, floodBurst: 3, floodRate: 0.5 } },
  );
});

Deno.test("parseServerLine reads user and system lines and nothing else", () => {
  assert.deepEqual(parseServerLine("[bob] hi [x] * y"), {
    kind: "user",
    name: "bob",
    text: "hi [x] * y",
  });
  assert.deepEqual(parseServerLine("* Server is shutting down, goodbye"), {
    kind: "system",
    text: "Server is shutting down, goodbye",
  });
  assert.equal(parseServerLine("bob: hi"), undefined);
  assert.equal(parseServerLine("[a b] hi"), undefined);
});

Deno.test("parseServerLine reads joins, leaves and /who answers, for name completion", () => {
  assert.deepEqual(parseServerLine(formatJoin("bob")), {
    kind: "join",
    name: "bob",
    text: "bob has entered the room",
  });
  for (const line of [formatLeave("bob"), formatLeave("bob", "idle"), formatQuit("bob", "later")]) {
    assert.deepEqual(parseServerLine(line), { kind: "leave", name: "bob", text: line.slice(2) });
  }
  // A leave notice is exact: a longer word or a forged tail is not one.
  assert.equal(parseServerLine("* bob has left the roomy")?.kind, "system");
  const names = Array.from({ length: 400 }, (_, i) => `member-${i}-${"x".repeat(20)}`);
  const who = formatWho(names).map(parseServerLine);
  assert.ok(who.length > 1);
  assert.deepEqual(who.map((line) => line?.kind === "who" && line.isContinued), [
    false,
    ...Array(who.length - 1).fill(true),
  ]);
  assert.deepEqual(who.flatMap((line) => line?.kind === "who" ? line.names : []), names);
  assert.deepEqual(parseServerLine("* 1 online: bob"), {
    kind: "who",
    names: ["bob"],
    operators: [],
    isContinued: false,
    text: "1 online: bob",
  });
});

Deno.test("encodeLine appends one LF", () => {
  assert.deepEqual(encodeLine("hé"), new Uint8Array([0x68, 0xc3, 0xa9, 0x0a]));
});

Deno.test("parseCommand reads text, // escapes and every command", () => {
  assert.deepEqual(parseCommand("hello /there"), { name: "say", text: "hello /there" });
  assert.deepEqual(parseCommand("//etc/hosts"), { name: "say", text: "/etc/hosts" });
  assert.deepEqual(parseCommand("/help"), { name: "help" });
  assert.deepEqual(parseCommand("/WHO"), { name: "who" });
  assert.deepEqual(parseCommand("/nick  Emil "), { name: "nick", newName: "Emil" });
  assert.deepEqual(parseCommand("/me waves  at you"), { name: "me", text: "waves  at you" });
  assert.deepEqual(parseCommand("/msg bob  hi there"), {
    name: "msg",
    to: "bob",
    text: "hi there",
  });
  assert.deepEqual(parseCommand("/quit"), { name: "quit", reason: "" });
  assert.deepEqual(parseCommand("/quit gone fishing"), { name: "quit", reason: "gone fishing" });
});

Deno.test("parseCommand rejects unknown commands and bad arguments with a hint", () => {
  assert.throws(
    () => parseCommand("/dance"),
    /^ProtocolError: Unknown command "\/dance": \/help lists the commands$/,
  );
  assert.throws(() => parseCommand("/who me"), /Usage: \/who$/);
  assert.throws(() => parseCommand("/nick"), /Usage: \/nick NEW$/);
  // A name with a space breaks the name rule, which says what a name may hold.
  assert.throws(
    () => parseCommand("/nick a b"),
    /Cannot accept name "a b": use only ASCII letters/,
  );
  assert.throws(() => parseCommand("/nick a*b"), /Cannot accept name "a\*b"/);
  assert.throws(() => parseCommand("/me"), /Usage: \/me TEXT$/);
  assert.throws(() => parseCommand("/msg bob"), /Usage: \/msg NAME TEXT$/);
  assert.throws(() => parseCommand("/msg"), /Usage: \/msg NAME TEXT$/);
});

Deno.test("parseServerLine tells actions, private messages, renames, history and errors apart", () => {
  assert.deepEqual(parseServerLine(formatAction("Emil", "waves")), {
    kind: "action",
    name: "Emil",
    text: "waves",
  });
  assert.deepEqual(parseServerLine(formatPrivateFrom("bob", "hi: there")), {
    kind: "private",
    direction: "from",
    name: "bob",
    text: "hi: there",
  });
  assert.deepEqual(parseServerLine(formatPrivateTo("bob", "x")), {
    kind: "private",
    direction: "to",
    name: "bob",
    text: "x",
  });
  assert.deepEqual(parseServerLine(formatRename("a", "b")), {
    kind: "rename",
    oldName: "a",
    newName: "b",
  });
  assert.deepEqual(parseServerLine("* error: Nope"), { kind: "error", text: "Nope" });
  const time = new Date("2026-01-02T03:04:05.678Z");
  assert.deepEqual(parseServerLine(formatHistory(time, formatUserLine("bob", "hi"))), {
    kind: "history",
    time: new Date("2026-01-02T03:04:05Z"),
    line: { kind: "user", name: "bob", text: "hi" },
  });
});

Deno.test("an action never reads as a server notice", () => {
  for (
    const text of ["has left the room", "has entered the room", "is now known as x", "error: x"]
  ) {
    assert.equal(parseServerLine(formatAction("bob", text))?.kind, "action");
  }
});

Deno.test("HELP_LINES are system lines, one per command", () => {
  assert.ok(HELP_LINES.every((line) => line.startsWith("* /")));
  for (const command of ["/who", "/nick", "/me", "/msg", "/quit", "//", "/help"]) {
    assert.ok(HELP_LINES.some((line) => line.startsWith(`* ${command}`)), command);
  }
});

Deno.test("LineSplitter holds the limit for the decoded line when invalid bytes grow into U+FFFD", async () => {
  const invalid = Array.from({ length: 1400 }, () => 0xff); // 1400 bytes, 4200 once decoded
  assert.deepEqual(await split([[...invalid, 0x0a]], { maxLineBytes: 4000 }), ["<too long>"]);
  assert.deepEqual(await split([[...invalid.slice(0, 1333), 0x0a]], { maxLineBytes: 4000 }), [
    "\ufffd".repeat(1333),
  ]);
});

Deno.test("isKeptLine takes chat lines and actions from valid names, and nothing a store could forge", () => {
  for (const line of [formatUserLine("alice", "hi there"), formatAction("bob", "waves")]) {
    assert.equal(isKeptLine(line), true, line);
  }
  for (
    const line of [
      "* Server is shutting down, goodbye",
      "[eve] hi\n* Server is shutting down, goodbye",
      "[eve] \x1b]0;owned\x07",
      "[eve] tab\there",
      "[eve] \u202eevil",
      "[not a name!] hello",
      `[${"a".repeat(33)}] too long a name`,
      "[eve]no space",
      `[eve] ${"x".repeat(2 ** 24 + 256)}`,
    ]
  ) {
    assert.equal(isKeptLine(line), false, JSON.stringify(line.slice(0, 60)));
  }
});

// The client's and the page's (seenCount and firstNewLine were one function written twice).
Deno.test("firstNewLine finds where the history goes past what was seen", () => {
  const seen = ["[a] 1", "[b] 2", "[a] 3"];
  assert.equal(firstNewLine(seen, ["[b] 2", "[a] 3", "[c] new"]), 2);
  assert.equal(firstNewLine(seen, ["[x] 0", "[a] 1", "[b] 2", "[a] 3"]), 4);
  assert.equal(firstNewLine(seen, ["[c] all new"]), 0); // a restarted server: nothing in common
  assert.equal(firstNewLine([], ["[c] new"]), 0);
  // A repeated line is matched with what came before it, not taken for the last one seen.
  assert.equal(firstNewLine(["[a] ok", "[b] hm"], ["[a] ok", "[b] hm", "[a] ok"]), 2);
  assert.equal(firstNewLine(["[a] 1", "[a] 2"], ["[a] 1", "[a] 2", "[b] 3"]), 2);
  assert.equal(firstNewLine(["[x] 0", "[a] 1", "[a] 2"], ["[a] 1", "[a] 2"]), 2);
  assert.equal(firstNewLine(["[a] 1"], ["[b] 9", "[a] 1", "[b] 4", "[b] 5"]), 2);
  assert.equal(firstNewLine(["[z] gone"], ["[a] 1", "[a] 2"]), 0);
});

Deno.test("backoffDelay doubles from the first wait up to the most, spread by its jitter", () => {
  const client = { firstMs: 500, mostMs: 15_000, jitter: [0.75, 1.25] } as const;
  assert.equal(backoffDelay(0, client, 0.5), 500);
  assert.equal(backoffDelay(3, client, 0.5), 4000);
  assert.equal(backoffDelay(10, client, 0.5), 15_000);
  assert.equal(backoffDelay(1, client, 0), 750);
  assert.equal(backoffDelay(1, client, 1), 1250);
  // The cluster's: a server refused for good waits the most, never longer.
  const cluster = { firstMs: 100, mostMs: 5000, jitter: [0.5, 1] } as const;
  assert.equal(backoffDelay(Infinity, cluster, 1), 5000);
  assert.equal(backoffDelay(0, cluster, 0), 50);
});

/** The IRC door's shared translations of the room log (server/irc_log.ts), through real IrcConns. */
import assert from "node:assert/strict";
import { TestClient } from "./_helpers.ts";
import { IrcConn } from "../server/irc_conn.ts";
import { IrcLog } from "../server/irc_log.ts";
import { RoomLog } from "../server/room_log.ts";

const encoder = new TextEncoder();

/** An IrcConn over a real loopback socket, its session joined as `nick`, and the client's end. */
async function joinedConn(translations: IrcLog, nick: string): Promise<[IrcConn, TestClient]> {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [client, server] = await Promise.all([
    TestClient.connect(listener.addr.port),
    listener.accept(),
  ]);
  const conn = new IrcConn(server, { channel: "#chat", version: "1", motd: [], translations });
  const { session } = conn;
  session.fromClient(`NICK ${nick}`);
  session.fromClient(`USER ${nick} 0 * :${nick}`);
  session.fromRoom("* Welcome to chat! What shall I call you?");
  session.fromRoom("* The room contains: ");
  session.fromRoom(`* Welcome, ${nick}! 1 user online; /help lists the commands`);
  assert.ok(session.isJoined);
  session.replies = [];
  return [conn, client];
}

/** Appends `lines` to `log` and returns where each starts, and the head after them. */
function append(log: RoomLog, lines: readonly string[]): number[] {
  const at = lines.map((line) => log.append(encoder.encode(`${line}\n`)));
  return [...at, log.head];
}

/** Writes the log's bytes from `start` to `end` to `conn`, as a member's writer does. */
function writeLog(conn: IrcConn, log: RoomLog, start: number, end: number): Promise<number> {
  return conn.write(log.bytes(start, end), start, log);
}

Deno.test("IrcConn.write gives each IRC member the room log's lines from one shared translation, its own nick followed", async () => {
  const log = new RoomLog(64 * 1024);
  const translations = new IrcLog("#chat");
  const [me, meClient] = await joinedConn(translations, "me");
  const [you, youClient] = await joinedConn(translations, "you");
  try {
    const at = append(log, [
      "[bob] one",
      "* [bob] waves",
      "* carol has entered the room",
      "* me is now known as mine",
      "[mine] hi you",
      "* dave has left the room: bye",
    ]);
    const expected = [
      ":bob!bob@chat PRIVMSG #chat :one",
      ":bob!bob@chat PRIVMSG #chat :\x01ACTION waves\x01",
      ":carol!carol@chat JOIN #chat",
      ":me!me@chat NICK mine",
      ":mine!mine@chat PRIVMSG #chat :hi you",
      ":dave!dave@chat QUIT :bye",
    ];
    await writeLog(me, log, at[0]!, at[6]!);
    for (const line of expected) await meClient.expect(line);
    assert.equal(me.session.me, "mine", "its rename reached its session");
    // The other member: the lines before the rename in one write, the rest gathered around a
    // line it skips (as a writer skips its member's own lines).
    await writeLog(you, log, at[0]!, at[3]!);
    await you.write(log.bytes(at[3]!, at[6]!), [at[3]!, at[4]!, at[5]!, at[6]!], log);
    for (const line of expected.filter((_, i) => i !== 4)) await youClient.expect(line);
    assert.equal(you.session.me, "you", "another's rename leaves its nick alone");
    // Shared: both are views of the same bytes, translated once.
    const [first] = translations.span(log, at[0]!, at[3]!)!;
    const [again] = translations.span(log, at[1]!, at[2]!)!;
    assert.ok(first instanceof Uint8Array && again instanceof Uint8Array);
    assert.equal(first.buffer, again.buffer);
  } finally {
    for (const conn of [me, you]) conn.close();
    meClient.close();
    youClient.close();
  }
});

Deno.test("IrcConn.write gives a member far behind its lines through its session once the translations dropped them", async () => {
  const log = new RoomLog(128 * 1024);
  const translations = new IrcLog("#chat");
  const [behind, client] = await joinedConn(translations, "behind");
  try {
    // Short lines: their IRC translations are five times longer, more than the door keeps.
    const lines = Array.from({ length: 20_000 }, (_, i) => `[b] ${i % 10}`);
    const at = append(log, lines);
    // Members ahead read them all (a writer asks for its lines as these calls do).
    for (let i = 0; i < lines.length; i += 1000) {
      assert.ok(translations.span(log, at[i]!, at[Math.min(i + 1000, lines.length)]!));
    }
    assert.equal(translations.span(log, at[0]!, at[1]!), undefined, "the oldest are dropped");
    await writeLog(behind, log, at[0]!, at[3]!);
    for (const digit of [0, 1, 2]) await client.expect(`:b!b@chat PRIVMSG #chat :${digit}`);
    // The newest lines are still kept, and right.
    await writeLog(behind, log, at[19_990]!, at[20_000]!);
    for (let i = 0; i < 10; i++) await client.expect(`:b!b@chat PRIVMSG #chat :${i}`);
  } finally {
    behind.close();
    client.close();
  }
});

Deno.test("IrcLog.span gives the right lines after a lap of the room log that no IRC member read", async () => {
  const log = new RoomLog(4096);
  const translations = new IrcLog("#chat");
  const [conn, client] = await joinedConn(translations, "me");
  try {
    let at = append(log, ["[bob] before"]);
    await writeLog(conn, log, at[0]!, at[1]!);
    await client.expect(":bob!bob@chat PRIVMSG #chat :before");
    // More than the log holds, read by nobody on IRC (its IRC member's own lines, say).
    append(log, Array.from({ length: 200 }, (_, i) => `[me] ${"x".repeat(40)} ${i}`));
    at = append(log, ["[carol] after", "[dave] later"]);
    await writeLog(conn, log, at[0]!, at[2]!);
    await client.expect(":carol!carol@chat PRIVMSG #chat :after");
    await client.expect(":dave!dave@chat PRIVMSG #chat :later");
  } finally {
    conn.close();
    client.close();
  }
});

Deno.test("IrcLog.span shares the lines at the end of a lap of the room log once the next lap is translated", () => {
  const log = new RoomLog(200);
  const translations = new IrcLog("#chat");
  // Six lines of 30 bytes, then one that does not fit the lap: the lap ends at 180, the next
  // starts at 200.
  const line = (i: number) => `[bob] ${String(i).padStart(23, "0")}`;
  const at = append(log, Array.from({ length: 6 }, (_, i) => line(i)));
  assert.ok(translations.span(log, at[1]!, at[6]!)); // a member reads them
  const next = append(log, [line(6)]);
  assert.deepEqual([at[6], next[0]], [180, 200]);
  assert.ok(translations.span(log, next[0]!, next[1]!)); // and the next lap's first line
  // Another member, behind, reads to the lap's end: the same bytes, shared.
  const span = translations.span(log, at[5]!, at[6]!);
  assert.ok(span?.length === 1 && span[0] instanceof Uint8Array);
  const text = new TextDecoder().decode(span[0]);
  assert.equal(text, `:bob!bob@chat PRIVMSG #chat :${"5".padStart(23, "0")}\r\n`);
});

Deno.test("IrcLog keeps no more renames than the room log holds, and a span has only those in its range", () => {
  const log = new RoomLog(4096);
  const translations = new IrcLog("#chat");
  // A room of renames only: they add no IRC bytes, so no segment is ever dropped.
  let previous = log.head;
  for (let i = 0; i < 5000; i++) {
    const [at, head] = append(log, [`* ${i % 2 ? "b" : "a"} is now known as ${i % 2 ? "a" : "b"}`]);
    assert.deepEqual(translations.span(log, at!, head!), [
      `* ${i % 2 ? "b" : "a"} is now known as ${i % 2 ? "a" : "b"}`,
    ]);
    previous = at!;
  }
  // Lines of 21 bytes: at most 4096 / 21 of them are still in the room log.
  const most = Math.ceil(4096 / 21);
  assert.ok(translations.sessionLineCount <= most, `${translations.sessionLineCount} kept`);
  assert.ok(translations.size <= most, `${translations.size} places kept`);
  // A member behind by two lines gets both, in order, and only them.
  const at = append(log, ["[bob] hi", "* a is now known as c", "[bob] there"]);
  const span = translations.span(log, previous, at[3]!)!;
  const text = span.map((part) => typeof part === "string" ? part : new TextDecoder().decode(part));
  assert.deepEqual(text, [
    "* b is now known as a",
    ":bob!bob@chat PRIVMSG #chat :hi\r\n",
    "* a is now known as c",
    ":bob!bob@chat PRIVMSG #chat :there\r\n",
  ]);
});

Deno.test("IrcLog.span translates from the reader's position, not from the last line it translated, after lines no IRC member read", () => {
  const log = new RoomLog(64 * 1024);
  const translations = new IrcLog("#chat");
  const at = append(log, ["[bob] read"]);
  assert.ok(translations.span(log, at[0]!, at[1]!));
  // Lines no IRC member reads (the last one left), less than a lap of them.
  append(log, Array.from({ length: 1000 }, (_, i) => `[carol] ${i}`));
  const later = append(log, ["[dave] one", "[dave] two"]);
  const span = translations.span(log, later[0]!, later[2]!)!;
  const text = span.map((part) => typeof part === "string" ? part : new TextDecoder().decode(part));
  assert.equal(
    text.join(""),
    ":dave!dave@chat PRIVMSG #chat :one\r\n:dave!dave@chat PRIVMSG #chat :two\r\n",
  );
  assert.equal(translations.size, 2, "only the lines from the reader's position are translated");
});

/** The IRC door's language without I/O: messages parsed and formatted, room lines told as IRC. */
import assert from "node:assert/strict";
import {
  formatIrc,
  parseIrcLine,
  readRoomLine,
  roomLineToIrc,
  sayLine,
  splitTrailing,
} from "../server/irc.ts";

const encoder = new TextEncoder();

Deno.test("parseIrcLine reads tags, source, command and parameters", () => {
  assert.deepEqual(parseIrcLine("@time=x :nick!u@h privmsg #chat :hello there"), {
    tags: "time=x",
    source: "nick!u@h",
    command: "PRIVMSG",
    params: ["#chat", "hello there"],
  });
  assert.deepEqual(parseIrcLine("NICK  alice"), { command: "NICK", params: ["alice"] });
  assert.deepEqual(parseIrcLine("PRIVMSG #chat ::)"), {
    command: "PRIVMSG",
    params: ["#chat", ":)"],
  });
  assert.deepEqual(parseIrcLine("USER a 0 * :"), { command: "USER", params: ["a", "0", "*", ""] });
});

Deno.test("parseIrcLine refuses what is not a message, and a line over 512 bytes", () => {
  assert.equal(parseIrcLine(""), "empty");
  assert.equal(parseIrcLine("   "), "empty");
  for (const line of [":source", "@tags", "!!! x", "12 x", "@a :b", `A ${"x ".repeat(16)}`]) {
    assert.equal(parseIrcLine(line), "malformed", line);
  }
  // "PRIVMSG #chat :" is 15 bytes: 495 more make 510, and the CRLF 512.
  assert.equal(parseIrcLine(`PRIVMSG #chat :${"x".repeat(496)}`), "too long");
  assert.notEqual(parseIrcLine(`PRIVMSG #chat :${"x".repeat(495)}`), "too long");
  assert.notEqual(parseIrcLine(`@${"t".repeat(8000)} PING x`), "too long");
  assert.equal(parseIrcLine(`@${"t".repeat(8190)} PING x`), "too long");
});

Deno.test("formatIrc puts a colon before a last parameter that needs one", () => {
  assert.equal(formatIrc("chat", "PONG", ["chat", "x"]), ":chat PONG chat x");
  assert.equal(formatIrc("chat", "PONG", ["chat", "x"], true), ":chat PONG chat :x");
  assert.equal(formatIrc("a", "QUIT", ["two words"]), ":a QUIT :two words");
  assert.equal(formatIrc("a", "QUIT", [""]), ":a QUIT :");
  assert.equal(formatIrc("a", "QUIT", [":)"]), ":a QUIT ::)");
});

Deno.test("splitTrailing cuts text into lines of at most 512 bytes at character boundaries", () => {
  const head = ":bob!bob@chat PRIVMSG #chat";
  for (const text of ["x".repeat(2000), "é".repeat(700), "😀".repeat(300), "word ".repeat(300)]) {
    const lines = splitTrailing(head, text);
    assert.ok(lines.length > 1);
    for (const line of lines) assert.ok(encoder.encode(line).length + 2 <= 512, line);
    assert.equal(lines.map((line) => line.slice(head.length + 2)).join(""), text);
  }
  assert.deepEqual(splitTrailing(head, "hi"), [`${head} :hi`]);
});

Deno.test("roomLineToIrc tells what others say, joins, leaves and renames as IRC", () => {
  const irc = (line: string) => roomLineToIrc(readRoomLine(line), "#chat");
  assert.deepEqual(irc("[bob] hi"), [":bob!bob@chat PRIVMSG #chat :hi"]);
  assert.deepEqual(irc("* [bob] waves"), [":bob!bob@chat PRIVMSG #chat :\x01ACTION waves\x01"]);
  assert.deepEqual(irc("* bob has entered the room"), [":bob!bob@chat JOIN #chat"]);
  assert.deepEqual(irc("* bob has left the room"), [":bob!bob@chat QUIT :Left the room"]);
  assert.deepEqual(irc("* bob has left the room: bye"), [":bob!bob@chat QUIT :bye"]);
  assert.deepEqual(irc("* bob has left the room (idle)"), [":bob!bob@chat QUIT :idle"]);
  assert.deepEqual(irc("* bob is now known as rob"), [":bob!bob@chat NICK rob"]);
  assert.deepEqual(irc("* Server is shutting down, goodbye"), [
    ":chat NOTICE #chat :Server is shutting down, goodbye",
  ]);
  // Moderation's lines (issue 27): the topic set by an operator, a kick.
  assert.deepEqual(irc("* bob set the topic: be nice"), [":bob!bob@chat TOPIC #chat :be nice"]);
  assert.deepEqual(irc("* eve was kicked by bob: spam"), [":bob!bob@chat KICK #chat eve :spam"]);
});

Deno.test("sayLine makes a CTCP ACTION /me and escapes a leading slash", () => {
  assert.equal(sayLine("\x01ACTION waves\x01"), "/me waves");
  assert.equal(sayLine("/quit"), "//quit");
  assert.equal(sayLine("hello"), "hello");
});

/** Tests of the server over real loopback sockets: the Budget Chat flow, name rules, hostile lines. */
import assert from "node:assert/strict";
import {
  connectFrom,
  joinAs,
  joinWithHistory,
  startTestServer,
  TestClient,
  type TestConn,
  withDeadline,
} from "./_helpers.ts";

/** A write timeout no test's stall comes near (an hour), for tests of the other limits. */
const WRITE_TIMEOUT_OUT_OF_REACH = 3_600_000;

Deno.test("server greets, then gives the newcomer the room list even when the room is empty", async () => {
  await using server = startTestServer();
  await using client = await TestClient.connect(server.addr.port);
  assert.match(await client.readLine(), /^\* .*call you\?$/);
  await client.send("alice");
  await client.expect("* The room contains:");
  await client.expect("* Limits: lines of up to 4096 bytes, 10 at once, then 5 a second");
  await client.expect("* Welcome, alice! 1 user online; /help lists the commands");
  await using _bob = await joinAs(server.addr.port, "bob");
  await using carol = await TestClient.connect(server.addr.port);
  await carol.readLine();
  await carol.send("carol");
  await carol.expect("* The room contains: alice, bob");
  await carol.expect(/^\* Limits: /);
  await carol.expect("* Welcome, carol! 3 users online; /help lists the commands");
});

Deno.test("server announces a join to the others and not to the newcomer", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  await alice.send("first");
  await bob.expect("[alice] first"); // bob's next line is alice's, not his own join
});

Deno.test("hub.say relays a line to every other member and never back to the sender", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await using carol = await joinAs(server.addr.port, "carol");
  await alice.expect("* bob has entered the room");
  await alice.expect("* carol has entered the room");
  await bob.expect("* carol has entered the room");
  await alice.send("hello everyone");
  await bob.expect("[alice] hello everyone");
  await carol.expect("[alice] hello everyone");
  await bob.send("fence");
  // Alice's next line is bob's, so her own line did not come back to her.
  await alice.expect("[bob] fence");
});

Deno.test("hub.say keeps each sender's order across many lines", async () => {
  await using server = startTestServer({ floodRate: 0 }); // flood control has tests of its own
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  const lines = Array.from({ length: 2000 }, (_, i) => `message ${i}`);
  await bob.write(lines.map((line) => `${line}\n`).join(""));
  for (const line of lines) await alice.expect(`[bob] ${line}`);
});

Deno.test("server sends nothing from the room to a connection that has not joined", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await using lurker = await TestClient.connect(server.addr.port);
  await lurker.readLine(); // greeting
  await alice.send("not for lurkers");
  await bob.expect("[alice] not for lurkers"); // relayed before the lurker joins
  await lurker.send("late");
  await lurker.expect("* The room contains: alice, bob");
  await lurker.expect(/^\* history .* \[alice\] not for lurkers$/); // the history, not live
  await lurker.expect(/^\* Limits: /);
  await lurker.expect(/^\* Welcome, late!/);
  await alice.send("now you see it");
  await lurker.expect("[alice] now you see it");
});

Deno.test("server announces a leave when a member closes its connection", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  const bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  bob.close();
  await alice.expect("* bob has left the room");
});

Deno.test("server announces a leave when a member's connection is reset", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  const bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  await alice.send("unread");
  // Closing with unread input makes the kernel send a reset instead of a FIN. Wait until the line
  // has arrived (readable without blocking) so the reset is certain.
  const chunk = new Uint8Array(1);
  assert.equal(await bob.conn.read(chunk), 1);
  bob.close();
  await alice.expect("* bob has left the room");
  await using _bob2 = await joinAs(server.addr.port, "bob"); // the name is free again
  await alice.expect("* bob has entered the room");
});

Deno.test("server drops the half line of a member that leaves", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  const bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  await bob.write("half a line");
  bob.close();
  await alice.expect("* bob has left the room");
});

Deno.test("server answers an invalid name with one error line, closes, and tells nobody", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  for (const bad of ["", "bad name", "* bob", "[bob]", "x".repeat(33), "b\u00f6b"]) {
    await using client = await TestClient.connect(server.addr.port);
    await client.readLine();
    await client.send(bad);
    const rest = await client.readToEnd();
    assert.equal(rest.length, 1, `one line for ${JSON.stringify(bad)}: ${JSON.stringify(rest)}`);
    assert.match(rest[0]!, /^\* error: Cannot accept (an empty )?name/);
  }
  await using _bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room"); // and nothing about the rejected ones before it
});

Deno.test("server ignores what follows a rejected name in the same packet", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using client = await TestClient.connect(server.addr.port);
  await client.readLine();
  await client.write("bad name\nmallory\nhello\n");
  assert.deepEqual(await client.readToEnd(), [
    '* error: Cannot accept name "bad name": use only ASCII letters, digits, "_" and "-"',
  ]);
  await using _bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room"); // mallory never joined
});

Deno.test("server tells a browser at the chat's port, in one line, that it speaks no HTTP", async () => {
  await using server = startTestServer();
  await using browser = await TestClient.connect(server.addr.port);
  await browser.readLine();
  await browser.write("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n");
  assert.deepEqual(await browser.readToEnd(), [
    "* error: This port speaks chat lines, not HTTP, and this server has no web page (see --web): use nc or the client",
  ]);
});

Deno.test("server refuses a taken name regardless of case", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "Alice");
  await using impostor = await TestClient.connect(server.addr.port);
  await impostor.readLine();
  await impostor.send("aLICE");
  assert.deepEqual(await impostor.readToEnd(), [
    '* error: Cannot accept name "aLICE": name is taken',
  ]);
  await using _bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
});

Deno.test("server answers a line over the limit with an error to its sender only", async () => {
  await using server = startTestServer({ maxLineBytes: 4000 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  await bob.send("y".repeat(4001));
  await bob.expect("* error: Line too long: the limit is 4000 bytes");
  await bob.send("x".repeat(4000));
  await alice.expect(`[bob] ${"x".repeat(4000)}`); // the long line never reached alice
});

Deno.test("server refuses a line far over the limit before it ends", async () => {
  await using server = startTestServer({ maxLineBytes: 4000 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  await bob.write("z".repeat(100_000)); // no line end yet
  await bob.expect("* error: Line too long: the limit is 4000 bytes");
  await bob.write("z".repeat(100_000) + "\nafter\n");
  await alice.expect("[bob] after");
});

Deno.test("server refuses a name line over the limit and closes", async () => {
  await using server = startTestServer({ maxLineBytes: 4000 });
  await using client = await TestClient.connect(server.addr.port);
  await client.readLine();
  await client.send("n".repeat(5000));
  assert.deepEqual(await client.readToEnd(), ["* error: Line too long: the limit is 4000 bytes"]);
});

Deno.test("server accepts both CRLF and LF as line ends", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await TestClient.connect(server.addr.port);
  await bob.readLine();
  await bob.write("bob\r\none\r\ntwo\n");
  await bob.expect("* The room contains: alice");
  await bob.expect(/^\* Limits: /);
  await bob.expect(/^\* Welcome, bob!/);
  await alice.expect("* bob has entered the room");
  await alice.expect("[bob] one");
  await alice.expect("[bob] two");
});

Deno.test("server turns invalid UTF-8 into U+FFFD and nothing breaks", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  await bob.write(new Uint8Array([0xff, 0x68, 0x69, 0xc3, 0x0a]));
  await alice.expect("[bob] \ufffdhi\ufffd");
  await bob.send("still here");
  await alice.expect("[bob] still here");
});

Deno.test("server removes escapes and control characters, so no line can be forged", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  await bob.send("\x1b[2J\x1b[31mred\x1b[0m \x1b]0;pwned\x07bell\x07 nul\x00");
  await alice.expect("[bob] red bell nul");
  await bob.send("hi\r* carol has left the room");
  await alice.expect("[bob] hi* carol has left the room");
  await bob.write("hi\n[carol] fake\n* fake notice\n");
  await alice.expect("[bob] hi");
  await alice.expect("[bob] [carol] fake");
  await alice.expect("[bob] * fake notice");
});

Deno.test("server does not relay empty and blank lines", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  await bob.write("\n   \n\x1b[0m\nreal\n");
  await alice.expect("[bob] real");
});

Deno.test("server drops a member that stops reading and the others lose nothing", async () => {
  // The log size alone: a room log far smaller than the traffic, and the write timeout out of
  // reach (an hour, on, so that it is not what cuts slow): only the log can drop it.
  const logs: string[] = [];
  await using server = startTestServer({
    logSize: 256 * 1024,
    floodRate: 0,
    writeTimeoutMs: WRITE_TIMEOUT_OUT_OF_REACH,
    log: (line) => logs.push(line),
  });
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await using _slow = await joinAs(server.addr.port, "slow"); // never reads from here on
  await alice.expect("* bob has entered the room");
  await alice.expect("* slow has entered the room");
  await bob.expect("* slow has entered the room");

  // Alice talks in windows of 8 lines that bob reads before the next window (a healthy reader keeps
  // up), until slow is dropped. Bob must receive every line, in order, around the notice.
  const text = "m".repeat(4000);
  let sent = 0;
  let received = 0;
  let isDropped = false;
  while (!isDropped || received < sent) {
    for (const end = sent + 8; sent < end;) await alice.send(`${sent++} ${text}`);
    while (received < sent) {
      const line = await bob.readLine();
      if (line === "* slow has left the room (stopped reading)") isDropped = true;
      else assert.equal(line, `[alice] ${received++} ${text}`);
    }
    // About 1,100 lines here: what the kernel buffers for slow (about 4 MiB), then the log.
    assert.ok(sent < 8_000, "slow was never dropped: 32 MB went past it");
  }
  await alice.expect("* slow has left the room (stopped reading)");
  // The server's log says which limit it met; the room hears only that it stopped reading.
  assert.ok(
    logs.some((line) =>
      /^slow \(.+\) left \(stopped reading: the room log overtook it\)$/.test(line)
    ),
    logs.join("\n"),
  );
});

Deno.test("server drops a member whose own lines pile up unread past maxBacklogBytes", async () => {
  // The limit on lines for one member alone (replies, errors, private messages) alone: the room
  // log (nothing is said in the room) and the write timeout out of reach. greedy sends private
  // messages to alice and never reads their confirmations; alice reads each before the next.
  const logs: string[] = [];
  await using server = startTestServer({
    maxBacklogBytes: 64 * 1024,
    floodRate: 0,
    writeTimeoutMs: WRITE_TIMEOUT_OUT_OF_REACH,
    log: (line) => logs.push(line),
  });
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await using greedy = await joinAs(server.addr.port, "greedy");
  await alice.expect("* bob has entered the room");
  await alice.expect("* greedy has entered the room");
  await bob.expect("* greedy has entered the room");
  const notice = "* greedy has left the room (stopped reading)";
  const text = "p".repeat(4000);
  let sent = 0;
  let received = 0;
  let isDropped = false;
  while (!isDropped) {
    try {
      for (const end = sent + 8; sent < end;) await greedy.send(`/msg alice ${sent++} ${text}`);
    } catch {
      // The server has closed greedy's socket: the notice is on its way.
    }
    while (received < sent && !isDropped) {
      const line = await alice.readLine();
      if (line === notice) isDropped = true;
      else assert.equal(line, `* private from greedy: ${received++} ${text}`);
    }
    // About 1,100 here: what the kernel buffers for greedy (about 4 MiB), then the limit.
    assert.ok(sent < 8_000, "greedy was never dropped: 32 MB of its own lines went unread");
  }
  // The others lost nothing and chat on.
  await bob.expect(notice);
  await alice.send("after");
  await bob.expect("[alice] after");
  const detail = "stopped reading: over 65536 bytes of its own lines";
  assert.ok(logs.some((line) => line.endsWith(`left (${detail})`)), logs.join("\n"));
});

/**
 * A member that reads everything as fast as it can and checks it: each sender's lines arrive in
 * order, once, and never its own. Counts lines by LF over raw bytes, for bursts of millions.
 */
class Reader {
  readonly done: Promise<void>;
  received = 0;
  #next = new Map<string, number>();
  #isCut = false;

  constructor(readonly client: TestClient<TestConn>, readonly name: string, expected: number) {
    this.done = this.#read(expected);
  }

  async #read(expected: number): Promise<void> {
    while (this.received < expected) {
      const line = await this.client.readLine(30_000);
      const match = /^\[(\S+)\] (\d+)/.exec(line);
      if (!match) {
        if (line.includes(`${this.name} has left`) || line.startsWith("* error:")) {
          this.#isCut = true;
        }
        assert.ok(!this.#isCut, `${this.name} was cut: ${line}`);
        continue; // a join or leave notice
      }
      const [, from, n] = match;
      assert.notEqual(from, this.name, "a line came back to its sender");
      assert.equal(Number(n), this.#next.get(from!) ?? 0, `out of order from ${from}`);
      this.#next.set(from!, Number(n) + 1);
      this.received++;
    }
  }
}

/** `count` members from 127.0.0.2 to 127.0.0.9 who have all seen each other join. */
async function crowd(port: number, count: number): Promise<TestClient<TestConn>[]> {
  const members: TestClient<TestConn>[] = [];
  for (let i = 0; i < count; i++) {
    const member = await connectFrom(port, `127.0.0.${2 + i % 8}`);
    await member.expect(/^\* Welcome to chat/);
    await member.send(`m${i}`);
    let line = await member.readLine();
    while (!line.startsWith(`* Welcome, m${i}!`)) line = await member.readLine();
    members.push(member);
  }
  for (const [i, member] of members.entries()) {
    for (let j = i + 1; j < count; j++) await member.expect(`* m${j} has entered the room`);
  }
  return members;
}

Deno.test("server: 100 members each write 200 lines at once, everyone reads, nobody is cut", async () => {
  // With an outbox of 1 MiB per member, 42 of these 100 readers were cut and half the lines lost.
  await using server = startTestServer({ floodRate: 0, maxPerAddress: 0, joinRate: 0 });
  const members = await crowd(server.addr.port, 100);
  try {
    const readers = members.map((member, i) => new Reader(member, `m${i}`, 99 * 200));
    const text = "x".repeat(70);
    await Promise.all(
      members.map((member, i) =>
        member.write(Array.from({ length: 200 }, (_, n) => `${n} ${text} m${i}\n`).join(""))
      ),
    );
    await withDeadline(Promise.all(readers.map((reader) => reader.done)), "every line", 60_000);
  } finally {
    for (const member of members) member.close();
  }
});

Deno.test("server: 50 members each paste 10 lines of 4,000 bytes at once, nobody is cut", async () => {
  // 2 MB for each reader at once: over the 1 MiB outbox that cut every reader before the room log.
  await using server = startTestServer({ floodRate: 0, maxPerAddress: 0, joinRate: 0 });
  const members = await crowd(server.addr.port, 50);
  try {
    const readers = members.map((member, i) => new Reader(member, `m${i}`, 49 * 10));
    const text = "p".repeat(3990);
    await Promise.all(
      members.map((member) =>
        member.write(Array.from({ length: 10 }, (_, n) => `${n} ${text}\n`).join(""))
      ),
    );
    await withDeadline(Promise.all(readers.map((reader) => reader.done)), "every line", 60_000);
  } finally {
    for (const member of members) member.close();
  }
});

Deno.test("server: a join reply longer than every queue limit still reaches the newcomer", async () => {
  // 300 lines of 4,000 bytes of history is 1.2 MB, over the 1 MiB limit on private lines.
  await using server = startTestServer({ historySize: 300, floodRate: 0 });
  await using alice = await joinAs(server.addr.port, "alice");
  const text = "h".repeat(4000);
  for (let i = 0; i < 300; i++) await alice.send(`${i} ${text}`);
  await alice.send("/who");
  await alice.expect("* 1 online: alice"); // so all 300 lines are in the history
  const [carol, history] = await joinWithHistory(server.addr.port, "carol");
  await using _carol = carol;
  assert.equal(history.length, 300);
  history.forEach((line, i) =>
    assert.match(line, new RegExp(`^\\* history \\S+ \\[alice\\] ${i} h{4000}$`))
  );
  await alice.expect("* carol has entered the room");
  await alice.send("live");
  await carol.expect("[alice] live");
});

Deno.test("close tells every client, closes every socket and settles finished", async () => {
  const server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await using lurker = await TestClient.connect(server.addr.port);
  await lurker.readLine();
  await alice.expect("* bob has entered the room");
  const rests = [alice, bob, lurker].map((client) => client.readToEnd());
  await withDeadline(server.close(), "the server to close");
  await withDeadline(server.finished, "finished");
  for (const rest of await Promise.all(rests)) {
    assert.deepEqual(rest, ["* Server is shutting down, goodbye"]);
  }
  await server.close(); // idempotent
  await assert.rejects(TestClient.connect(server.addr.port), Deno.errors.ConnectionRefused);
});

Deno.test("close closes a connection that never reads nor closes after a short while", async () => {
  const server = startTestServer({ maxBacklogBytes: 64 * 1024 });
  await using stuck = await joinAs(server.addr.port, "stuck"); // keeps its socket open, reads nothing
  await withDeadline(server.close(), "close despite a stuck client");
  assert.deepEqual(await stuck.readToEnd(), ["* Server is shutting down, goodbye"]);
});

/** Tests of the room: every command and the history, over real sockets, and LocalHub itself. */
import assert from "node:assert/strict";
import { LocalHub, type Member } from "../server/hub.ts";
import type { RoomLog } from "../server/room_log.ts";
import { HELP_LINES } from "../protocol.ts";
import { joinAs, joinWithHistory, startTestServer, TestClient, waitUntil } from "./_helpers.ts";

/** Three members who have seen each other join. */
async function room(port: number) {
  const alice = await joinAs(port, "alice");
  const bob = await joinAs(port, "bob");
  const carol = await joinAs(port, "carol");
  await alice.expect("* bob has entered the room");
  await alice.expect("* carol has entered the room");
  await bob.expect("* carol has entered the room");
  const clients = [alice, bob, carol];
  return {
    alice,
    bob,
    carol,
    [Symbol.asyncDispose]() {
      for (const client of clients) client.close();
      return Promise.resolve();
    },
  };
}

/** Proves `client` received nothing since its last read: the next line it gets is `from`'s fence. */
async function expectNothingMore(client: TestClient, from: TestClient, fromName: string) {
  await from.send("fence");
  await client.expect(`[${fromName}] fence`);
}

Deno.test("/help lists the commands to the sender only", async () => {
  await using server = startTestServer();
  await using r = await room(server.addr.port);
  await r.alice.send("/help");
  for (const line of HELP_LINES) await r.alice.expect(line);
  await expectNothingMore(r.bob, r.carol, "carol");
});

Deno.test("/who tells the sender how many are online and who", async () => {
  await using server = startTestServer();
  await using r = await room(server.addr.port);
  await r.bob.send("/who");
  await r.bob.expect("* 3 online: alice, bob, carol");
  await r.bob.send("/WHO");
  await r.bob.expect("* 3 online: alice, bob, carol");
  await r.bob.send("/who is there");
  await r.bob.expect("* error: Usage: /who");
  await expectNothingMore(r.alice, r.carol, "carol");
});

Deno.test("/nick renames under the join rules and everyone is told", async () => {
  await using server = startTestServer();
  await using r = await room(server.addr.port);
  await r.alice.send("/nick Alicia");
  for (const client of [r.alice, r.bob, r.carol]) {
    await client.expect("* alice is now known as Alicia");
  }
  await r.alice.send("hi");
  await r.bob.expect("[Alicia] hi");
  await r.carol.expect("[Alicia] hi");
  await r.bob.send("/who");
  await r.bob.expect("* 3 online: Alicia, bob, carol");
  await using _newAlice = await joinAs(server.addr.port, "alice"); // the old name is free
  await r.bob.expect("* alice has entered the room");
  await r.carol.expect("* alice has entered the room");

  await r.carol.send("/nick BOB");
  await r.carol.expect('* error: Cannot accept name "BOB": name is taken');
  await r.carol.send("/nick no way");
  await r.carol.expect(/^\* error: Cannot accept name "no way": use only/);
  await r.carol.send("/nick");
  await r.carol.expect("* error: Usage: /nick NEW");
  await r.carol.send("/nick [carol]");
  await r.carol.expect(/^\* error: Cannot accept name "\[carol\]": use only/);
  await r.carol.send("/nick carol");
  await r.carol.expect('* error: Your name is already "carol"');
  await r.carol.send("/nick Carol"); // only the case changes: allowed
  await r.bob.expect("* carol is now known as Carol");
});

Deno.test("/me sends an action that cannot pass for a server notice", async () => {
  await using server = startTestServer();
  await using r = await room(server.addr.port);
  await r.alice.send("/me waves");
  await r.bob.expect("* [alice] waves");
  await r.carol.expect("* [alice] waves");
  await r.alice.send("/me has left the room");
  await r.bob.expect("* [alice] has left the room"); // not "* alice has left the room"
  await r.alice.send("/me");
  await r.alice.expect("* error: Usage: /me TEXT");
  await expectNothingMore(r.alice, r.bob, "bob"); // the sender does not get its actions back
});

Deno.test("/msg reaches the named member only, marked private on both sides", async () => {
  await using server = startTestServer();
  await using r = await room(server.addr.port);
  await r.alice.send("/msg BOB psst, a secret");
  await r.bob.expect("* private from alice: psst, a secret");
  await r.alice.expect("* private to bob: psst, a secret");
  await expectNothingMore(r.carol, r.bob, "bob");
  await r.alice.expect("[bob] fence");
  await r.alice.send("/msg dave hello");
  await r.alice.expect('* error: No user named "dave" is online: /who lists who is');
  await r.alice.send("/msg bob");
  await r.alice.expect("* error: Usage: /msg NAME TEXT");
});

Deno.test("/quit leaves with the reason in the leave notice", async () => {
  await using server = startTestServer();
  await using r = await room(server.addr.port);
  await r.alice.send("/quit off to lunch");
  assert.deepEqual(await r.alice.readToEnd(), ["* Goodbye!"]);
  await r.bob.expect("* alice has left the room: off to lunch");
  await r.carol.expect("* alice has left the room: off to lunch");
  await r.bob.send("/quit");
  assert.deepEqual(await r.bob.readToEnd(), ["* Goodbye!"]);
  await r.carol.expect("* bob has left the room");
});

Deno.test("an unknown command gets an error with a hint, and // sends a leading slash", async () => {
  await using server = startTestServer();
  await using r = await room(server.addr.port);
  await r.alice.send("/dance now");
  await r.alice.expect('* error: Unknown command "/dance": /help lists the commands');
  await r.alice.send("/");
  await r.alice.expect('* error: Unknown command "/": /help lists the commands');
  await r.alice.send("//dance is not a command");
  await r.bob.expect("[alice] /dance is not a command");
  await expectNothingMore(r.bob, r.carol, "carol"); // errors went to alice only
});

Deno.test("a newcomer gets the last messages marked as history, without private messages", async () => {
  await using server = startTestServer({ historySize: 3 });
  await using r = await room(server.addr.port);
  await r.alice.send("one");
  await r.alice.send("two");
  await r.alice.send("/msg bob private");
  await r.bob.expect("[alice] one");
  await r.bob.expect("[alice] two");
  await r.bob.expect("* private from alice: private");
  await r.bob.send("three");
  await r.carol.send("/me four");
  await r.alice.expect("* private to bob: private");
  await r.alice.expect("[bob] three");
  await r.alice.expect("* [carol] four");
  const [dave, history] = await joinWithHistory(server.addr.port, "dave");
  await using _dave = dave;
  const time = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`;
  assert.equal(history.length, 3, JSON.stringify(history));
  assert.match(history[0]!, new RegExp(`^\\* history ${time} \\[alice\\] two$`));
  assert.match(history[1]!, new RegExp(`^\\* history ${time} \\[bob\\] three$`));
  assert.match(history[2]!, new RegExp(`^\\* history ${time} \\* \\[carol\\] four$`));
});

Deno.test("a newcomer gets no history when it is turned off", async () => {
  await using server = startTestServer({ historySize: 0 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using carol = await joinAs(server.addr.port, "carol");
  await alice.expect("* carol has entered the room");
  await alice.send("said before");
  await carol.expect("[alice] said before"); // said, and relayed, before bob joins
  const [bob, history] = await joinWithHistory(server.addr.port, "bob");
  await using _bob = bob;
  assert.deepEqual(history, []);
});

/**
 * A member that takes what it is given at once, as if its socket never blocked: it reads the room
 * log up to the head whenever woken, skipping its own lines. For testing the hub alone.
 */
class Recorder implements Member {
  cursor = 0;
  log: RoomLog | undefined;
  stopAt = Infinity;
  readonly isSendingLog = false;
  text = "";
  #own: number[] = [];
  constructor(public name: string) {}
  send(bytes: Uint8Array): void {
    this.text += new TextDecoder().decode(bytes);
  }
  welcome(lines: readonly Uint8Array[]): void {
    for (const bytes of lines) this.send(bytes);
  }
  end(): void {}
  wakes = 0;
  wake(): void {
    this.wakes++;
    const log = this.log!;
    for (let at = log.position(this.cursor); at < log.head; at = log.position(at)) {
      if (this.#own[0] === at) {
        at = this.#own[1]!;
        this.#own.splice(0, 2);
        continue;
      }
      const end = Math.min(log.end(at), this.#own[0] ?? Infinity);
      this.send(log.bytes(at, end));
      at = this.cursor = end;
    }
    this.cursor = log.head;
    log.wait(this);
  }
  overtake(): void {}
  skip(start: number, end: number): void {
    this.#own.push(start, end);
  }
}

Deno.test("LocalHub appends each line once to the room log, for every member but its sender", () => {
  const hub = new LocalHub();
  const [a, b, c] = [new Recorder("a"), new Recorder("b"), new Recorder("c")];
  for (const member of [a, b, c]) hub.join(member);
  hub.say(c, "now"); // a line wakes the members at once, with the join notices before it
  for (const member of [a, b, c]) member.text = "";
  const head = a.log!.head;
  hub.say(a, "hi");
  assert.equal(a.log!.head - head, "[a] hi\n".length); // encoded and stored once
  assert.equal(a.text, "");
  assert.equal(b.text, "[a] hi\n");
  assert.equal(c.text, "[a] hi\n");
  hub.close();
});

Deno.test("LocalHub wakes the members for joins and leaves a turn later, all of them together", async () => {
  const hub = new LocalHub();
  const lurker = new Recorder("lurker");
  hub.join(lurker);
  lurker.text = ""; // its join reply
  const newcomers = ["a", "b", "c"].map((name) => new Recorder(name));
  for (const member of newcomers) hub.join(member);
  hub.leave(newcomers[0]!);
  assert.equal(lurker.text, "", "woken at once by a notice");
  const notices = "* a has entered the room\n* b has entered the room\n" +
    "* c has entered the room\n* a has left the room\n";
  await waitUntil(() => lurker.text === notices, () => `the notices, got ${lurker.text}`);
  assert.equal(lurker.wakes, 1, "one write for all four notices");
  hub.say(newcomers[1]!, "at once");
  assert.equal(lurker.text, notices + "[b] at once\n", "a line waits for nothing");
  hub.close();
});

Deno.test("LocalHub keeps at most historySize lines", () => {
  const hub = new LocalHub({ historySize: 2 });
  const speaker = new Recorder("a");
  hub.join(speaker);
  for (let i = 0; i < 1000; i++) hub.say(speaker, `line ${i}`);
  const newcomer = new Recorder("b");
  hub.join(newcomer);
  const history = newcomer.text.split("\n").filter((line) => line.startsWith("* history"));
  assert.equal(history.length, 2);
  assert.match(history[1]!, /\[a\] line 999$/);
  hub.close();
});

/** Tests of the protections: flood control, connection limits and time limits, over real sockets. */
import assert from "node:assert/strict";
import { TokenBucket } from "../limits.ts";
import { Child, joinAs, startTestServer, TestClient } from "./_helpers.ts";

Deno.test("TokenBucket allows a burst, then one token per 1/rate, and refills while idle", () => {
  const bucket = new TokenBucket({ burst: 3, perSecond: 2, now: 0 });
  assert.ok(bucket.isFull(0));
  assert.deepEqual([bucket.take(0), bucket.take(0), bucket.take(0)], [0, 0, 0]);
  assert.equal(bucket.take(0), 500); // the next token in half a second
  assert.equal(bucket.take(250), 250);
  assert.equal(bucket.take(500), 0);
  assert.ok(!bucket.isFull(1000));
  assert.ok(bucket.isFull(2000));
});

Deno.test("flood control delays a burst over the limit, warns once and loses nothing", async () => {
  await using server = startTestServer({ floodBurst: 3, floodRate: 50, floodLimit: 100 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using flooder = await joinAs(server.addr.port, "flooder");
  await alice.expect("* flooder has entered the room");
  await flooder.write(Array.from({ length: 20 }, (_, i) => `line ${i}\n`).join(""));
  for (let i = 0; i < 20; i++) await alice.expect(`[flooder] line ${i}`);
  await flooder.expect(
    "* error: Slow down: at most 50 lines a second; your lines are being delayed",
  );
  await flooder.send("/who");
  await flooder.expect("* 2 online: alice, flooder"); // one warning only, then the answer
});

Deno.test("flood control stops reading only from the flooder: the others chat on at once", async () => {
  await using server = startTestServer({ floodBurst: 1, floodRate: 0.1, floodLimit: 100 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await using flooder = await joinAs(server.addr.port, "flooder");
  await alice.expect("* bob has entered the room");
  await alice.expect("* flooder has entered the room");
  await flooder.write("one\ntwo\nthree\n"); // "two" must wait ten seconds for its token
  await alice.expect("[flooder] one");
  await flooder.expect(/^\* error: Slow down/);
  await bob.send("not held up");
  await alice.expect("[bob] not held up"); // before "[flooder] two"
});

Deno.test("flood control disconnects a client that keeps flooding, and the others are told", async () => {
  await using server = startTestServer({ floodBurst: 2, floodRate: 100, floodLimit: 5 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using flooder = await joinAs(server.addr.port, "flooder");
  await alice.expect("* flooder has entered the room");
  await flooder.write(Array.from({ length: 50 }, (_, i) => `line ${i}\n`).join(""));
  // Two lines at once, five delayed, and the eighth is one strike too many.
  for (let i = 0; i < 7; i++) await alice.expect(`[flooder] line ${i}`);
  await alice.expect("* flooder has left the room (flooding)");
  assert.deepEqual(await flooder.readToEnd(), [
    "* error: Slow down: at most 100 lines a second; your lines are being delayed",
    "* error: Disconnected for flooding",
  ]);
});

Deno.test("maxConnections refuses one more connection with a reason and disturbs nobody", async () => {
  await using server = startTestServer({ maxConnections: 2 });
  await using alice = await joinAs(server.addr.port, "alice");
  const bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room");
  await using third = await TestClient.connect(server.addr.port);
  assert.deepEqual(await third.readToEnd(), [
    "* error: Server is full: at most 2 connections; try again later",
  ]);
  await bob.send("still here");
  await alice.expect("[bob] still here");
  bob.close();
  await alice.expect("* bob has left the room");
  await using _carol = await joinAs(server.addr.port, "carol"); // a slot is free again
  await alice.expect("* carol has entered the room");
});

/** A raw client connecting from another loopback address, as `nc` on another host would. */
function socatFrom(bindAddress: string, port: number): Child {
  return new Child("socat", ["-", `TCP:127.0.0.1:${port},bind=${bindAddress}`], { stdin: true });
}

Deno.test("maxPerAddress refuses a third connection from one address, not from another", async () => {
  await using server = startTestServer({ maxPerAddress: 2 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using _second = await TestClient.connect(server.addr.port);
  await using third = await TestClient.connect(server.addr.port);
  assert.deepEqual(await third.readToEnd(), [
    "* error: Too many connections from 127.0.0.1: at most 2",
  ]);

  await using other = socatFrom("127.0.0.2", server.addr.port);
  assert.equal(await other.stdout.readLine(), "* Welcome to chat! What shall I call you?");
  await other.write("remote\n");
  await alice.expect("* remote has entered the room");
  await using again = socatFrom("127.0.0.2", server.addr.port);
  assert.equal(await again.stdout.readLine(), "* Welcome to chat! What shall I call you?");
  await using refused = socatFrom("127.0.0.2", server.addr.port);
  assert.equal(
    await refused.stdout.readLine(),
    "* error: Too many connections from 127.0.0.2: at most 2",
  );
});

Deno.test("nameTimeout closes a connection that sends no valid name in time, with a reason", async () => {
  await using server = startTestServer({ nameTimeoutMs: 200 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using silent = await TestClient.connect(server.addr.port);
  await using slowloris = await TestClient.connect(server.addr.port);
  await slowloris.write("a"); // a name that never ends
  assert.deepEqual(await silent.readToEnd(), [
    "* Welcome to chat! What shall I call you?",
    "* error: No valid name within 0.2 seconds",
  ]);
  assert.equal((await slowloris.readToEnd()).at(-1), "* error: No valid name within 0.2 seconds");
  await using _bob = await joinAs(server.addr.port, "bob");
  await alice.expect("* bob has entered the room"); // alice, joined, was not timed out
});

Deno.test("idleTimeout closes a silent member with a notice, and the others are told", async () => {
  await using server = startTestServer({ idleTimeoutMs: 300 });
  await using alice = await joinAs(server.addr.port, "alice");
  await using sleepy = await joinAs(server.addr.port, "sleepy");
  // Both stay silent; alice joined first, so she idles out first and sleepy hears of it.
  assert.deepEqual(await sleepy.readToEnd(), [
    "* alice has left the room (idle)",
    "* error: Closed after 0.3 seconds without a line",
  ]);
  assert.deepEqual(await alice.readToEnd(), [
    "* sleepy has entered the room",
    "* error: Closed after 0.3 seconds without a line",
  ]);
});

Deno.test("writeTimeout drops a member whose writes stall, and the others lose nothing", async () => {
  await using server = startTestServer({
    writeTimeoutMs: 200,
    maxBacklogBytes: 256 * 1024 * 1024,
    floodRate: 0,
  });
  await using alice = await joinAs(server.addr.port, "alice");
  await using bob = await joinAs(server.addr.port, "bob");
  await using _stuck = await joinAs(server.addr.port, "stuck"); // never reads from here on
  await alice.expect("* bob has entered the room");
  await alice.expect("* stuck has entered the room");
  await bob.expect("* stuck has entered the room");
  const text = "w".repeat(4000);
  let sent = 0;
  let received = 0;
  let isDropped = false;
  while (!isDropped) {
    for (const end = sent + 8; sent < end;) await alice.send(`${sent++} ${text}`);
    while (received < sent && !isDropped) {
      const line = await bob.readLine();
      if (line === "* stuck has left the room (stopped reading)") isDropped = true;
      else assert.equal(line, `[alice] ${received++} ${text}`);
    }
  }
  while (received < sent) assert.equal(await bob.readLine(), `[alice] ${received++} ${text}`);
});

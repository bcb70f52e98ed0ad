/** Fault test: many clients chatting while a third of them die abruptly at random moments. */
import assert from "node:assert/strict";
import { DEADLINE_MS, joinAs, startTestServer, type TestClient, withDeadline } from "./_helpers.ts";

const CLIENTS = 200;
const MESSAGES = 5;

/** A small seeded generator (mulberry32), so that a failing run can be replayed from its seed. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What one client has seen: per sender the next message number expected, and who left. */
class Inbox {
  next = new Map<string, number>();
  left = new Set<string>();
  failure: Error | undefined;
  #changed = Promise.withResolvers<void>();

  constructor(readonly name: string, readonly client: TestClient) {}

  /** Reads until the connection ends, checking that each sender's messages come in order. */
  async read(): Promise<void> {
    try {
      while (true) this.#take(await this.client.readLine(DEADLINE_MS * 3));
    } catch (error) {
      if (
        !(error instanceof Deno.errors.BadResource) && !String(error).includes("Connection closed")
      ) {
        this.failure ??= error as Error; // a check failed; a closed socket is the normal end
      }
    } finally {
      this.#changed.resolve();
    }
  }

  #take(line: string): void {
    const message = /^\[(c\d+)\] m(\d+)$/.exec(line);
    if (message) {
      const [, from, number] = message;
      const expected = this.next.get(from!) ?? 0;
      assert.equal(
        Number(number),
        expected,
        `${this.name} got ${from} m${number} after m${expected - 1}`,
      );
      this.next.set(from!, expected + 1);
    } else {
      const leave = /^\* (c\d+) has left the room$/.exec(line);
      if (leave) this.left.add(leave[1]!);
      else {assert.match(
          line,
          /^\* c\d+ has entered the room$/,
          `${this.name} got ${JSON.stringify(line)}`,
        );}
    }
    this.#changed.resolve();
    this.#changed = Promise.withResolvers<void>();
  }

  /** Waits until `isDone` holds for what was read; fails if a check failed. */
  async until(isDone: () => boolean): Promise<void> {
    while (!isDone()) {
      if (this.failure) throw this.failure;
      await this.#changed.promise;
    }
  }
}

Deno.test("fault: survivors get every message in order while a third of the clients die", async () => {
  const seed = Date.now() % 100_000;
  const next = random(seed);
  await using server = startTestServer({ maxPerAddress: 0 });
  const names = Array.from({ length: CLIENTS }, (_, i) => `c${i}`);
  const clients = new Map<string, TestClient>();
  for (const name of names) clients.set(name, await joinAs(server.addr.port, name));
  const inboxes = names.map((name) => new Inbox(name, clients.get(name)!));
  const reading = inboxes.map((inbox) => inbox.read());
  try {
    // A third die, each after sending a random number of its messages (maybe in the middle of one).
    const victims = new Set(names.filter(() => next() < 1 / 3));
    const diesAfter = new Map(
      [...victims].map((name) => [name, Math.floor(next() * (MESSAGES + 1))]),
    );
    await Promise.all(names.map(async (name) => {
      const client = clients.get(name)!;
      for (let i = 0; i < MESSAGES; i++) {
        if (diesAfter.get(name) === i) {
          if (next() < 0.5) await client.write(`m${i} but half`); // never ends
          return client.close();
        }
        await client.send(`m${i}`);
      }
      if (diesAfter.get(name) === MESSAGES) client.close();
    }));

    const survivors = inboxes.filter((inbox) => !victims.has(inbox.name));
    const isComplete = (inbox: Inbox) =>
      survivors.every((other) => other === inbox || inbox.next.get(other.name) === MESSAGES) &&
      [...victims].every((victim) => inbox.left.has(victim));
    await withDeadline(
      Promise.all(survivors.map((inbox) => inbox.until(() => isComplete(inbox)))),
      `every survivor to get every message (seed ${seed})`,
      DEADLINE_MS * 3,
    );
    // What each survivor got from a victim is a prefix of what it sent (checked in order above).
    for (const inbox of survivors) {
      for (const victim of victims) {
        assert.ok((inbox.next.get(victim) ?? 0) <= diesAfter.get(victim)!);
      }
    }
    assert.equal(server.connectionCount, survivors.length, "the server holds no dead connection");
    await using checker = await joinAs(server.addr.port, `c${CLIENTS}`);
    await checker.send("/who");
    const who = /^\* (\d+) online: (.*)$/.exec(await checker.readLine());
    assert.deepEqual(
      new Set(who![2]!.split(", ")),
      new Set([...survivors.map((inbox) => inbox.name), `c${CLIENTS}`]),
    );
  } finally {
    for (const client of clients.values()) client.close();
    await Promise.all(reading);
  }
});

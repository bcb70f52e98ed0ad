/** Fault test: many clients chatting while a third of them die abruptly at random moments. */
import assert from "node:assert/strict";
import {
  DEADLINE_MS,
  joinAs,
  startTestServer,
  type TestClient,
  waitUntil,
  withDeadline,
} from "./_helpers.ts";

const CLIENTS = 200;
const MESSAGES = 5;
/** Set to the seed a failure printed to replay that run. */
const REPLAY_SEED: number | undefined = undefined;

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

  #isClosed = false;

  /** Reads until the connection ends, checking that each sender's messages come in order. */
  async read(): Promise<void> {
    try {
      while (true) this.#take(await this.client.readLine(DEADLINE_MS * 3));
    } catch (error) {
      // Once the test has closed the client, its pending read fails: that is the normal end.
      if (!this.#isClosed) this.failure ??= error as Error;
    } finally {
      this.#changed.resolve();
    }
  }

  /** Closes the client: it dies (a victim), or the test is over. */
  close(): void {
    this.#isClosed = true;
    this.client.close();
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
  const seed = REPLAY_SEED ?? Date.now() % 100_000;
  try {
    await survive(seed);
  } catch (error) {
    // Whatever failed, the seed replays the run (set REPLAY_SEED).
    const message = error instanceof Error ? error.message : String(error);
    throw new Error(`With seed ${seed}: ${message}`, { cause: error });
  }
});

async function survive(seed: number): Promise<void> {
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
    await Promise.all(inboxes.map(async (inbox) => {
      const { client, name } = inbox;
      for (let i = 0; i < MESSAGES; i++) {
        if (diesAfter.get(name) === i) {
          if (next() < 0.5) await client.write(`m${i} but half`); // never ends
          return inbox.close();
        }
        await client.send(`m${i}`);
      }
      if (diesAfter.get(name) === MESSAGES) inbox.close();
    }));

    const survivors = inboxes.filter((inbox) => !victims.has(inbox.name));
    const isComplete = (inbox: Inbox) =>
      survivors.every((other) => other === inbox || inbox.next.get(other.name) === MESSAGES) &&
      [...victims].every((victim) => inbox.left.has(victim));
    await withDeadline(
      Promise.all(survivors.map((inbox) => inbox.until(() => isComplete(inbox)))),
      "every survivor to get every message",
      DEADLINE_MS * 3,
    );
    // What each survivor got from a victim is a prefix of what it sent (checked in order above).
    for (const inbox of survivors) {
      for (const victim of victims) {
        assert.ok((inbox.next.get(victim) ?? 0) <= diesAfter.get(victim)!);
      }
    }
    // The leave notice goes out before the server has let go of the connection: wait for that.
    await waitUntil(
      () => server.connectionCount === survivors.length,
      () => `${survivors.length} connections left, not ${server.connectionCount}`,
    );
    await using checker = await joinAs(server.addr.port, `c${CLIENTS}`);
    await checker.send("/who");
    const who = /^\* (\d+) online: (.*)$/.exec(await checker.readLine());
    assert.deepEqual(
      new Set(who![2]!.split(", ")),
      new Set([...survivors.map((inbox) => inbox.name), `c${CLIENTS}`]),
    );
  } finally {
    for (const inbox of inboxes) inbox.close();
    await Promise.all(reading);
  }
  // A check that failed after its inbox was complete, or in a victim's inbox before it died, counts.
  const failures = inboxes.filter((inbox) => inbox.failure);
  assert.deepEqual(failures.map((inbox) => `${inbox.name}: ${inbox.failure!.message}`), []);
}

/**
 * The bad-input suite. In every case, alice and bob chat (ping-pong, each line checked) while an
 * offender misbehaves; the case states what the offender gets, then checks that alice and bob lost
 * nothing, saw no line they should not (nothing forged), and that the server's memory stayed bounded.
 */
import assert from "node:assert/strict";
import type { ServerOptions } from "../server.ts";
import { Child, joinAs, startTestServer, TestClient, withDeadline } from "./_helpers.ts";

/** How much the heap may grow over a case: far below the 10 MiB an unbounded buffer would hold. */
const MAX_GROWTH_BYTES = 4 * 1024 * 1024;

interface Case {
  /** Server options for the case (limits made small so the case is quick). */
  options?: ServerOptions;
  /** Lines about the offender that alice and bob may see, besides each other's. */
  expected?: RegExp;
  /** Does the harm, checking what the offender gets, and that the room works meanwhile. */
  offend(attack: Attack): Promise<void>;
}

/** What an offence gets to work with. */
interface Attack {
  port: number;
  /**
   * Resolves once alice and bob have traded a whole round of chat that started after the call:
   * proof that the room works while the attack goes on. Every case calls it at least once.
   */
  chatted(): Promise<void>;
  /** Checks the server's heap growth now, at the peak of the attack, against the bound. */
  checkHeap(): void;
}

function heapBytes(): number {
  const gc = (globalThis as { gc?: (options: object) => void }).gc;
  if (!gc) throw new Error("Run the tests with --v8-flags=--expose-gc (deno task test does)");
  // The thorough kind, which also frees the memory behind dead ArrayBuffers at once.
  gc({ type: "major", execution: "sync", flavor: "last-resort" });
  const { heapUsed, external } = Deno.memoryUsage();
  return heapUsed + external;
}

/**
 * Rounds of chat played freely while the offence goes on; after that, only the rounds a case
 * waits for. It keeps alice and bob at a pace that flood control allows.
 */
const MAX_ROUNDS = 100;

/**
 * Reads one chatter's lines as they come (so it never falls behind) and hands over the numbers
 * its partner says. Any line that is neither the partner's next number nor `expected` fails.
 */
class Chatter {
  #numbers: number[] = [];
  #waiting: PromiseWithResolvers<number> | undefined;
  #failure: Error | undefined;
  readonly done: Promise<void>;

  constructor(readonly client: TestClient, partner: string, expected: RegExp | undefined) {
    this.done = (async () => {
      try {
        for (let next = 0;;) {
          const line = await client.readLine();
          if (line === `[${partner}] ${next}`) this.#deliver(next++);
          else if (!expected?.test(line)) {
            throw new Error(`Unexpected line: ${JSON.stringify(line)}`);
          }
        }
      } catch (error) {
        this.#failure = error as Error;
        this.#waiting?.reject(error);
      }
    })();
  }

  #deliver(number: number): void {
    if (this.#waiting) {
      this.#waiting.resolve(number);
      this.#waiting = undefined;
    } else this.#numbers.push(number);
  }

  /** The partner's next number. */
  next(): Promise<number> {
    if (this.#numbers.length > 0) return Promise.resolve(this.#numbers.shift()!);
    if (this.#failure) return Promise.reject(this.#failure);
    this.#waiting = Promise.withResolvers<number>();
    return this.#waiting.promise;
  }
}

interface Waiter {
  round: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * Alice and bob trade numbered lines, each checked, while the offence goes on, then two more
 * rounds after it: nothing was lost in between.
 */
class Chat {
  rounds = 0;
  #waiters: Waiter[] = [];
  #wake = Promise.withResolvers<void>();
  #isStopped = false;

  constructor(readonly alice: Chatter, readonly bob: Chatter) {}

  /** See {@linkcode Attack.chatted}. */
  chatted = (): Promise<void> => {
    if (this.#isStopped) return Promise.reject(new Error("Alice and bob have stopped chatting"));
    // The round in progress may have started before the call: the one after it counts.
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#waiters.push({ round: this.rounds + 2, resolve, reject });
    this.#wake.resolve();
    return promise;
  };

  /** Plays until `offence` settles, and two rounds more. */
  async play(offence: Promise<void>): Promise<void> {
    let isOver = false;
    const over = offence.then(() => void (isOver = true), () => void (isOver = true));
    try {
      while (!isOver) {
        if (this.rounds < MAX_ROUNDS || this.#waiters.length > 0) await this.#round();
        else await Promise.race([over, this.#wake.promise]);
      }
      for (const last = this.rounds + 2; this.rounds < last;) await this.#round();
    } finally {
      this.#isStopped = true;
      const error = new Error(`Alice and bob stopped chatting after ${this.rounds} rounds`);
      for (const waiter of this.#waiters) waiter.reject(error);
    }
  }

  async #round(): Promise<void> {
    const round = this.rounds;
    await this.alice.client.send(String(round));
    assert.equal(await this.bob.next(), round);
    await this.bob.client.send(String(round));
    assert.equal(await this.alice.next(), round);
    this.rounds++;
    this.#wake = Promise.withResolvers<void>();
    this.#waiters = this.#waiters.filter((waiter) => {
      if (waiter.round > this.rounds) return true;
      waiter.resolve();
      return false;
    });
  }
}

function hostileCase(name: string, test: Case): void {
  Deno.test(`hostile input: ${name}`, async () => {
    await using server = startTestServer({ floodRate: 0, ...test.options });
    await using alice = await joinAs(server.addr.port, "alice");
    await using bob = await joinAs(server.addr.port, "bob");
    await alice.expect("* bob has entered the room");
    const before = heapBytes();
    const checkHeap = () => {
      const growth = heapBytes() - before;
      assert.ok(growth < MAX_GROWTH_BYTES, `the heap grew by ${growth} bytes`);
    };
    const chat = new Chat(
      new Chatter(alice, "bob", test.expected),
      new Chatter(bob, "alice", test.expected),
    );
    let chattedDuring = 0;
    const chatted = () => chat.chatted().then(() => void chattedDuring++);
    const offence = withDeadline(
      test.offend({ port: server.addr.port, chatted, checkHeap }),
      "the offence",
    );
    await chat.play(offence);
    await offence;
    assert.ok(
      chattedDuring > 0,
      "the case never checked that alice and bob chat during the attack",
    );
    checkHeap();
  });
}

/** Alice and bob's lines, which every offender in the room receives too. */
const CHATTER = /^(\* history \S+ )?\[(alice|bob)\] \d+$/;

/** Reads past alice and bob's chat to the line expected next. */
async function expectPast(client: TestClient, expected: string): Promise<void> {
  while (true) {
    const line = await client.readLine();
    if (line === expected) return;
    if (!CHATTER.test(line)) {
      throw new Error(`Expected ${JSON.stringify(expected)}, got ${JSON.stringify(line)}`);
    }
  }
}

/** What the server sends a client until it closes, but for alice and bob's chat. */
async function restPast(client: TestClient): Promise<string[]> {
  return (await client.readToEnd()).filter((line) => !CHATTER.test(line));
}

/** Joins as `name` and returns the client. */
async function offender(port: number, name = "mallory"): Promise<TestClient> {
  return await joinAs(port, name);
}

const AROUND_MALLORY = /^\* mallory has (entered|left) the room/;

hostileCase("a 10 MiB line without a line end gets one error and is never buffered", {
  expected: AROUND_MALLORY,
  async offend({ port, chatted, checkHeap }) {
    await using mallory = await offender(port);
    const mebibyte = "x".repeat(1024 * 1024);
    for (let i = 0; i < 10; i++) await mallory.write(mebibyte);
    await expectPast(mallory, "* error: Line too long: the limit is 4096 bytes");
    await chatted();
    checkHeap(); // the line is still open
    await mallory.send(" tail of the long line");
    await mallory.send("/who"); // the long line is gone, and mallory is still a member
    await expectPast(mallory, "* 3 online: alice, bob, mallory");
  },
});

hostileCase("a 64 MiB line is dropped as it arrives: the heap stays bounded while it is open", {
  expected: AROUND_MALLORY,
  async offend({ port, chatted, checkHeap }) {
    await using mallory = await offender(port);
    const mebibyte = new Uint8Array(1024 * 1024).fill(0x78);
    for (let i = 0; i < 64; i++) await mallory.write(mebibyte);
    // The kernel buffers a few MiB at most: the server has read nearly all of the line by now, and
    // holding it would show as tens of MiB.
    await expectPast(mallory, "* error: Line too long: the limit is 4096 bytes");
    await chatted();
    checkHeap();
    await mallory.send(" tail of the long line");
    await mallory.send("/who");
    await expectPast(mallory, "* 3 online: alice, bob, mallory");
  },
});

hostileCase("a line just over the limit is refused, one just under it is relayed", {
  expected: new RegExp(`${AROUND_MALLORY.source}|^\\[mallory\\] y{4096}$`),
  async offend({ port, chatted }) {
    await using mallory = await offender(port);
    await mallory.send("z".repeat(4097));
    await expectPast(mallory, "* error: Line too long: the limit is 4096 bytes");
    await chatted();
    await mallory.send("y".repeat(4096));
    await mallory.send("/who");
    await expectPast(mallory, "* 3 online: alice, bob, mallory");
  },
});

hostileCase("invalid UTF-8, NUL bytes and a lone CR are cleaned, and no line is forged", {
  expected: new RegExp(
    `${AROUND_MALLORY.source}|^\\[mallory\\] (\ufffdbad\ufffd|nulls|hi\\* bob has left the room)$`,
  ),
  async offend({ port, chatted }) {
    await using mallory = await offender(port);
    await mallory.write(new Uint8Array([0xff, 0x62, 0x61, 0x64, 0xc3, 0x0a]));
    await mallory.write("nu\x00ll\x00s\n");
    await chatted();
    await mallory.write("hi\r* bob has left the room\n");
    await mallory.send("/who");
    await expectPast(mallory, "* 3 online: alice, bob, mallory");
  },
});

hostileCase("ANSI and OSC escapes are removed from names and text", {
  expected: new RegExp(`${AROUND_MALLORY.source}|^\\[mallory\\] red title clear$`),
  async offend({ port, chatted }) {
    await using mallory = await TestClient.connect(port);
    await mallory.readLine();
    await mallory.send("\x1b[31mmal\x1b]0;x\x07lory\x1b[0m"); // joins as "mallory"
    await mallory.expect("* The room contains: alice, bob");
    await mallory.send("\x1b[31mred\x1b[0m \x1b]0;title\x07title \x1b]52;c;aGk=\x07\x1b[2Jclear");
    await chatted();
    await mallory.send("/who");
    await expectPast(mallory, "* Limits: lines of up to 4096 bytes"); // flood control is off here
    await expectPast(mallory, "* Welcome, mallory! 3 users online; /help lists the commands");
    await expectPast(mallory, "* 3 online: alice, bob, mallory");
  },
});

hostileCase("a name that imitates a system notice is refused, and nobody hears of it", {
  async offend({ port, chatted }) {
    for (const name of ["* alice has left the room", "[alice]", "alice has left the room", "*"]) {
      await using mallory = await TestClient.connect(port);
      await mallory.readLine();
      await mallory.send(name);
      const [line, ...rest] = await restPast(mallory);
      assert.match(line!, /^\* error: Cannot accept name/);
      assert.deepEqual(rest, []);
      await chatted();
    }
  },
});

hostileCase("a name that differs only in case is refused as taken", {
  async offend({ port, chatted }) {
    await using mallory = await TestClient.connect(port);
    await mallory.readLine();
    await mallory.send("ALICE");
    assert.deepEqual(await mallory.readToEnd(), [
      '* error: Cannot accept name "ALICE": name is taken',
    ]);
    await chatted();
  },
});

hostileCase("thousands of lines in one packet are slowed, then the flooder is cut off", {
  options: { floodBurst: 2 * MAX_ROUNDS + 10, floodRate: 200, floodLimit: 50 }, // alice and bob stay within it
  expected: new RegExp(`${AROUND_MALLORY.source}|^\\[mallory\\] flood \\d+$`),
  async offend({ port, chatted, checkHeap }) {
    await using mallory = await offender(port);
    await mallory.write(Array.from({ length: 5000 }, (_, i) => `flood ${i}\n`).join(""));
    const rest = restPast(mallory);
    await chatted();
    checkHeap(); // with thousands of lines waiting, unread, in the kernel
    assert.deepEqual(await rest, [
      "* error: Slow down: at most 200 lines a second; your lines are being delayed",
      "* error: Disconnected for flooding",
    ]);
  },
});

hostileCase("a client that sends half a line and is killed leaves, and the half line is dropped", {
  expected: /^\* (mallory|watcher) has (entered|left) the room/,
  async offend({ port, chatted }) {
    await using watcher = await joinAs(port, "watcher");
    await using nc = new Child("ncat", ["127.0.0.1", String(port)], { stdin: true });
    await nc.stdout.readLine();
    await nc.write("mallory\nhalf a li");
    await expectPast(watcher, "* mallory has entered the room");
    await chatted();
    nc.process.kill("SIGKILL");
    await nc.process.status;
    await expectPast(watcher, "* mallory has left the room"); // and no "[mallory] half a li"
    await watcher.send("/who");
    await expectPast(watcher, "* 3 online: alice, bob, watcher");
  },
});

hostileCase("a client that never reads is cut off while the others keep everything", {
  options: { logSize: 256 * 1024 }, // the room's queued output: the sloth is cut past it
  expected: new RegExp(
    `${AROUND_MALLORY.source}|^\\* (hose|sloth|watch) has (entered|left) the room|^\\[hose\\] \\d+ h+$`,
  ),
  async offend({ port, chatted, checkHeap }) {
    await using _sloth = await offender(port, "sloth"); // never reads
    await using hose = await offender(port, "hose");
    await using watch = await offender(port, "watch");
    const text = "h".repeat(4000);
    let sent = 0;
    let received = 0;
    let isCutOff = false;
    while (!isCutOff || received < sent) {
      if (!isCutOff) {
        for (const end = sent + 8; sent < end;) await hose.send(`${sent++} ${text}`);
      }
      while (received < sent) {
        const line = await watch.readLine();
        if (line === "* sloth has left the room (stopped reading)") isCutOff = true;
        else if (line.startsWith("[hose] ")) assert.equal(line, `[hose] ${received++} ${text}`);
      }
      if (sent === 64) {
        await chatted(); // 256 KiB in: the kernel's buffers for the sloth are filling
        checkHeap();
      }
    }
  },
});

hostileCase("a connection that never sends a name is closed with a reason", {
  options: { nameTimeoutMs: 300 },
  async offend({ port, chatted }) {
    await using mute = await TestClient.connect(port);
    const rest = restPast(mute);
    await chatted();
    assert.deepEqual(await rest, [
      "* Welcome to chat! What shall I call you?",
      "* error: No valid name within 0.3 seconds",
    ]);
  },
});

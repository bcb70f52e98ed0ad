/**
 * Tests of the room log alone and of a peer's writer reading it: appends, laps, cursors, the
 * sender's skip, private lines in their place among room lines, cuts, and that no write in flight
 * is ever overwritten, over random interleavings (fast-check).
 *
 * The writer's connection here is a scripted one: a test must decide when each write completes and
 * how much of it the kernel takes, which a real socket does not let it choose. Everything else is
 * the real thing: the log, the peer, its writer.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { AddressState } from "../server/limits.ts";
import { Peer } from "../server/peer.ts";
import type { ChatConn } from "../server/conn.ts";
import { type LogReader, noticeDelayMs, RoomLog } from "../server/room_log.ts";
import { waitUntil } from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A reader that takes everything at once when woken, skipping its own lines. */
class FastReader implements LogReader {
  cursor = 0;
  log: RoomLog | undefined;
  stopAt = Infinity;
  readonly isSendingLog = false;
  text = "";
  isOvertaken = false;
  #own: number[] = [];
  wake(): void {
    const log = this.log!;
    let at = log.position(this.cursor);
    while (at < log.head) {
      if (this.#own[0] === at) {
        at = log.position(this.#own[1]!);
        this.#own.splice(0, 2);
        continue;
      }
      const end = Math.min(log.end(at), this.#own[0] ?? Infinity);
      // A log that gives a reader nothing to send below its head would keep it here for ever.
      assert.ok(end > at, `stuck at ${at} of ${log.head}`);
      this.text += decoder.decode(log.bytes(at, end));
      at = log.position(end);
    }
    this.cursor = at;
    log.wait(this);
  }
  overtake(): void {
    this.isOvertaken = true;
  }
  skip(start: number, end: number): void {
    this.#own.push(start, end);
  }
}

/** A reader that never reads. */
class StuckReader implements LogReader {
  cursor = 0;
  log: RoomLog | undefined;
  stopAt = Infinity;
  readonly isSendingLog = false;
  isOvertaken = false;
  wake(): void {}
  overtake(): void {
    this.isOvertaken = true;
  }
  skip(): void {}
}

function line(text: string): Uint8Array {
  return encoder.encode(`${text}\n`);
}

Deno.test("RoomLog gives a reader every line appended after it joined, but its own", () => {
  const log = new RoomLog(1024);
  const early = new FastReader();
  log.add(early);
  log.append(line("one"));
  const late = new FastReader();
  log.add(late);
  log.append(line("two"), early);
  log.append(line("three"), late);
  assert.equal(early.text, "one\nthree\n");
  assert.equal(late.text, "two\n");
});

Deno.test("RoomLog lets go at once of a reader removed with nothing left to send", () => {
  const log = new RoomLog(1024);
  const [early, late] = [new FastReader(), new FastReader()];
  log.add(early);
  log.add(late);
  log.append(line("one"));
  log.remove(early);
  assert.equal(log.readerCount, 1, "a reader with nothing to send was kept");
  assert.equal(early.log, undefined);
  log.append(line("two"));
  assert.equal(early.text, "one\n");
  assert.equal(late.text, "one\ntwo\n");
  log.close();
});

Deno.test("RoomLog laps its ring without a line straddling the end, for readers that keep up", () => {
  const log = new RoomLog(64);
  const reader = new FastReader();
  log.add(reader);
  let expected = "";
  for (let i = 0; i < 500; i++) {
    const text = `${i}:${"x".repeat(i % 23)}`;
    const start = log.append(line(text));
    assert.ok(start % 64 + text.length + 1 <= 64, `line ${i} straddles the end`);
    expected += `${text}\n`;
  }
  assert.equal(reader.text, expected);
  assert.ok(!reader.isOvertaken);
});

Deno.test("RoomLog cuts a reader exactly when an append would overwrite what it has not sent", () => {
  const log = new RoomLog(100);
  const stuck = new StuckReader();
  log.add(stuck);
  for (let i = 0; i < 10; i++) log.append(line("123456789")); // ten lines of 10 bytes: full
  assert.ok(!stuck.isOvertaken, "a reader may lag by the whole log");
  log.append(line("x"));
  assert.ok(stuck.isOvertaken);
  assert.equal(stuck.log, undefined);
  log.append(line("y")); // and it is not cut twice
});

/** A dummy address for peers that are not behind a server. */
const ADDRESS: AddressState = {
  isExempt: false,
  key: "test",
  connections: 1,
  lines: undefined,
  joins: undefined,
  registrations: undefined,
};

interface PendingWrite {
  view: Uint8Array;
  snapshot: Uint8Array;
  resolve: (count: number) => void;
  reject: (error: Error) => void;
}

/** A connection whose writes complete only when the test says, taking as many bytes as it says. */
class ScriptedConn implements ChatConn {
  readonly remoteAddr: Deno.NetAddr = { transport: "tcp", hostname: "127.0.0.1", port: 1 };
  pending: PendingWrite | undefined;
  received = "";
  isClosed = false;
  /** Writes whose bytes changed between the call and their completion. */
  torn = 0;
  read(): Promise<number | null> {
    return new Promise(() => {});
  }
  write(bytes: Uint8Array): Promise<number> {
    assert.equal(this.pending, undefined, "two writes in flight at once");
    return new Promise((resolve, reject) => {
      this.pending = { view: bytes, snapshot: bytes.slice(), resolve, reject };
    });
  }
  /** The kernel takes up to `count` bytes of the write in flight. */
  take(count: number): void {
    const write = this.pending;
    if (!write || this.isClosed) return;
    this.pending = undefined;
    const taken = Math.max(1, Math.min(count, write.view.length));
    if (!write.view.subarray(0, taken).every((byte, i) => byte === write.snapshot[i])) this.torn++;
    this.received += decoder.decode(write.view.subarray(0, taken));
    write.resolve(taken);
  }
  isWriteClosed = false;
  closeWrite(): Promise<void> {
    assert.equal(this.pending, undefined, "the write side closed with a write in flight");
    this.isWriteClosed = true;
    return Promise.resolve();
  }
  close(): void {
    if (this.isClosed) throw new Deno.errors.BadResource("closed");
    this.isClosed = true;
    this.pending?.reject(new Deno.errors.Interrupted("closed")); // as Deno's close does
    this.pending = undefined;
  }
}

/** A peer on a scripted connection, reading `log` from its head. */
function scriptedPeer(log: RoomLog, maxBacklogBytes = 1 << 20): { conn: ScriptedConn; peer: Peer } {
  const conn = new ScriptedConn();
  const peer = new Peer(conn, { maxBacklogBytes, address: ADDRESS });
  log.add(peer);
  return { conn, peer };
}

/** Lets the writers' completion callbacks run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) await Promise.resolve();
}

Deno.test("notices that come while a write is out wait for the wake, and go in one write with those after them", async () => {
  const log = new RoomLog(4096);
  const { conn, peer } = scriptedPeer(log);
  log.append(line("[a] hello"));
  assert.equal(writing(conn), "[a] hello\n", "a line is written at once");
  log.append(line("* b has entered the room"), undefined, true);
  conn.take(Infinity);
  await settle();
  // Only a notice since: no write of it alone right after the last one.
  assert.equal(writing(conn), "", "a notice was written on its own after a write");
  log.append(line("* c has entered the room"), undefined, true);
  await waitUntil(() => writing(conn) !== "", "the wake");
  assert.equal(
    writing(conn),
    "* b has entered the room\n* c has entered the room\n",
    "the notices in one write",
  );
  conn.take(Infinity);
  await settle();
  // A line does not wait: the notices around it go with it, right after the write out.
  log.append(line("[x] one"));
  assert.equal(writing(conn), "[x] one\n");
  log.append(line("* d has entered the room"), undefined, true);
  log.append(line("[e] now"));
  log.append(line("* f has left the room"), undefined, true);
  conn.take(Infinity);
  await settle();
  assert.equal(
    writing(conn),
    "* d has entered the room\n[e] now\n* f has left the room\n",
    "a line waited for the wake",
  );
  conn.take(Infinity);
  log.close();
  peer.close();
});

Deno.test("a member that ends while notices wait for the wake sends them before it closes", async () => {
  const log = new RoomLog(4096);
  const { conn, peer } = scriptedPeer(log);
  log.append(line("[a] hello"));
  log.append(line("* b has entered the room"), undefined, true);
  conn.take(Infinity);
  await settle();
  assert.equal(writing(conn), "", "the notice did not wait for the wake");
  peer.end();
  assert.equal(writing(conn), "* b has entered the room\n", "ending dropped the notice");
  assert.ok(!conn.isWriteClosed);
  conn.take(Infinity);
  await settle();
  assert.ok(conn.isWriteClosed, "the write side stayed open after the last line");
  assert.equal(conn.received, "[a] hello\n* b has entered the room\n");
  log.close();
  peer.close();
});

Deno.test("noticeDelayMs: a turn for a small room, longer for a large one, at most 100 ms", () => {
  assert.equal(noticeDelayMs(1), 0);
  assert.equal(noticeDelayMs(99), 0);
  assert.equal(noticeDelayMs(1000), 10);
  assert.equal(noticeDelayMs(10_000), 100);
  assert.equal(noticeDelayMs(100_000), 100);
});

/** The bytes of the write in flight, as text ("" if none). */
function writing(conn: ScriptedConn): string {
  return conn.pending ? decoder.decode(conn.pending.view) : "";
}

interface Member {
  conn: ScriptedConn;
  peer: Peer;
  expected: string;
  isIn: boolean;
  isFast: boolean;
}

type Step =
  | { kind: "say"; from: number; size: number }
  | { kind: "notice"; size: number }
  | { kind: "private"; to: number; size: number }
  | { kind: "take"; who: number; count: number }
  | { kind: "leave"; who: number };

const MEMBERS = 5;
const step: fc.Arbitrary<Step> = fc.oneof(
  fc.record({
    kind: fc.constant("say" as const),
    from: fc.nat(MEMBERS - 1),
    size: fc.integer({ min: 1, max: 40 }),
  }),
  fc.record({ kind: fc.constant("notice" as const), size: fc.integer({ min: 1, max: 40 }) }),
  fc.record({
    kind: fc.constant("private" as const),
    to: fc.nat(MEMBERS - 1),
    size: fc.integer({ min: 1, max: 40 }),
  }),
  fc.record({
    kind: fc.constant("take" as const),
    who: fc.nat(MEMBERS - 1),
    count: fc.integer({ min: 1, max: 120 }),
  }),
  fc.record({ kind: fc.constant("leave" as const), who: fc.nat(MEMBERS - 1) }),
);

Deno.test("a peer's writer sends the room and its private lines in order, never torn, cut only when overtaken", async () => {
  let serial = 0;
  const text = (size: number) => {
    const id = `${serial++}:`;
    return `${id}${"abcdefghijklmnopqrstuvwxyz".repeat(2).slice(0, Math.max(0, size - id.length))}`;
  };
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 128, max: 512 }),
      fc.array(step, { minLength: 20, maxLength: 400 }),
      async (size, steps) => {
        const log = new RoomLog(size);
        const members: Member[] = [];
        for (let i = 0; i < MEMBERS; i++) {
          const { conn, peer } = scriptedPeer(log, 1 << 30);
          members.push({ conn, peer, expected: "", isIn: true, isFast: i < 2 });
        }
        for (const s of steps) {
          if (s.kind === "say" || s.kind === "notice") {
            const bytes = line(text(s.size));
            const from = s.kind === "say" ? members[s.from]! : undefined;
            if (from && !from.isIn) continue;
            log.append(bytes, from?.peer, s.kind === "notice");
            for (const member of members) {
              if (member.isIn && member !== from) member.expected += decoder.decode(bytes);
            }
          } else if (s.kind === "private") {
            const member = members[s.to]!;
            if (!member.isIn) continue; // after a leave, what it is sent is not of the room's order
            const bytes = line(`private ${text(s.size)}`);
            member.peer.send(bytes);
            member.expected += decoder.decode(bytes);
          } else if (s.kind === "take") {
            members[s.who]!.conn.take(s.count);
          } else if (s.kind === "leave" && !members[s.who]!.isFast) {
            members[s.who]!.isIn = false;
            log.remove(members[s.who]!.peer);
          }
          await settle();
          // The fast members' kernels take everything at once, after every step.
          for (const member of members.filter((m) => m.isFast)) {
            while (member.conn.pending) {
              member.conn.take(Infinity);
              await settle();
            }
          }
          for (const member of members) {
            if (member.conn.isClosed) member.isIn = false;
          }
        }
        // Then everything is taken, and the notices that wait for the wake go out once it comes.
        for (let turn = 0;; turn++) {
          for (const member of members) {
            while (member.conn.pending) {
              member.conn.take(Infinity);
              await settle();
            }
          }
          if (!log.isWakeDue) break;
          assert.ok(turn < 1000, "the wake never came");
          await new Promise((resolve) => setTimeout(resolve, noticeDelayMs(MEMBERS)));
        }
        for (const [i, member] of members.entries()) {
          assert.equal(member.conn.torn, 0, `member ${i} was sent bytes overwritten in flight`);
          if (member.isFast) {
            assert.ok(!member.conn.isClosed, `fast member ${i} was cut`);
            assert.equal(member.conn.received, member.expected, `member ${i}`);
          } else if (member.conn.isClosed) {
            // Cut: it got the start of what it was due, in order.
            assert.ok(member.expected.startsWith(member.conn.received), `member ${i}`);
          } else {
            // Whether it left or not, it got all that was said before it left.
            assert.equal(member.conn.received, member.expected, `member ${i}`);
          }
        }
        // The log lets go of every member that left and sent its part, or was cut or closed.
        const staying = members.filter((member) => member.isIn && !member.conn.isClosed);
        assert.equal(log.readerCount, staying.length, "the log's readers are not the members in");
      },
    ),
    { numRuns: 300 },
  );
});

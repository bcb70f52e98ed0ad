/**
 * One thread of the join storm's generator (bench/storm.ts): it connects and joins members whose
 * numbers it takes from a counter shared with the other threads, keeps their sockets and reads
 * them, and on request sends the one line to all, or counts what its members received.
 *
 * Why threads: one Deno event loop reading 14,000 sockets that never run dry saw its connects
 * complete 31.5 to 33.6 s late, while the kernel had connected them at once (no socket in
 * SYN-SENT); the server's name deadline had passed by then, and 9 of 30 storms of 19,000 failed.
 * Each thread has an event loop of its own, with a share of the sockets: on two threads, 10 of 10
 * were clean.
 */
import { closeAll, settle } from "./harness.ts";
import { Client, connect, Run } from "./load.ts";
import { OURS } from "./servers.ts";

/** What the storm asks of a thread. */
export type StormRequest =
  | {
    kind: "join";
    port: number;
    size: number;
    /** Joins in flight at once on this thread. */
    inFlight: number;
    isNameFirst: boolean;
    /** Int32 [next member number, failed (1)], shared by the threads. */
    counter: SharedArrayBuffer;
  }
  /** Count afresh, for the line to come (the join notices are not what it counts). */
  | { kind: "reset" }
  /** Member 0 is here: send the line. */
  | { kind: "send" }
  /** Count what the members here received, once the line had reached them or they fell idle. */
  | { kind: "count"; expected: number }
  | { kind: "close" };

/** What a thread answers to a request. */
export type StormReply =
  | {
    kind: "joined";
    /** Members joined here, and whether member 0 is one of them. */
    members: number;
    hasFirst: boolean;
    /** When the last welcome came, on the wall clock (ms since the epoch). */
    lastWelcomeAt: number;
    slowestConnectMs: number;
    failure?: string;
  }
  | { kind: "reset" }
  | { kind: "sent"; sentAt: number }
  | { kind: "counted"; received: number; notices: number; cut: number; lastAt: number }
  | { kind: "closed" };

/** A request's answer, under the request's number: its reply, or why it failed. */
export type StormAnswer = { id: number } & ({ reply: StormReply } | { error: string });

/** The start of the server's first line, which asks for a name. */
const GREETING = "* Welcome to chat!";

const clients: Client[] = [];
/** Set by the close: a connect that completes after it is closed at once. */
let isClosing = false;
let run = new Run({ senders: 1, window: 1 });

const wallClock = (at: number) => performance.timeOrigin + at;

async function join(request: Extract<StormRequest, { kind: "join" }>): Promise<StormReply> {
  const shared = new Int32Array(request.counter);
  let lastWelcomeAt = performance.now();
  let slowestConnectMs = 0;
  let failure: string | undefined;
  const joinInTurn = async () => {
    while (Atomics.load(shared, 1) === 0) {
      const id = Atomics.add(shared, 0, 1);
      if (id >= request.size) return;
      const connectAt = performance.now();
      const conn = await connect(request.port);
      if (isClosing) return conn.close();
      slowestConnectMs = Math.max(slowestConnectMs, performance.now() - connectAt);
      const client = new Client(id, conn, run, 4096);
      clients.push(client);
      if (!request.isNameFirst) await client.waitFor(GREETING);
      await OURS.dialect.join(client, `c${id}`);
      lastWelcomeAt = performance.now();
    }
  };
  try {
    await Promise.all(Array.from({ length: request.inFlight }, joinInTurn));
  } catch (error) {
    Atomics.store(shared, 1, 1); // the other threads stop joining too
    failure = `joins failed: ${error instanceof Error ? error.message : error}`;
  }
  return {
    kind: "joined",
    members: clients.length,
    hasFirst: clients.some((client) => client.id === 0),
    lastWelcomeAt: wallClock(lastWelcomeAt),
    slowestConnectMs,
    ...(failure ? { failure } : {}),
  };
}

async function answer(request: StormRequest): Promise<StormReply> {
  switch (request.kind) {
    case "join":
      return await join(request);
    case "reset":
      run = new Run({ senders: 1, window: 1 });
      for (const client of clients) client.reset(run);
      run.sentBy[0] = 1;
      return { kind: "reset" };
    case "send": {
      const sentAt = performance.now();
      await clients.find((client) => client.id === 0)!.send(0, 0, 1);
      return { kind: "sent", sentAt: wallClock(sentAt) };
    }
    case "count": {
      await settle(run, () => run.tally.received >= request.expected, 10_000);
      return {
        kind: "counted",
        received: run.tally.received,
        notices: clients.reduce((sum, client) => sum + client.notices, 0),
        cut: clients.filter((client) => client.endedAt > 0).length,
        lastAt: wallClock(run.tally.lastAt),
      };
    }
    case "close":
      isClosing = true;
      await closeAll(clients);
      return { kind: "closed" };
  }
}

const scope = self as unknown as {
  onmessage: (event: MessageEvent<{ id: number; request: StormRequest }>) => void;
  postMessage: (answer: StormAnswer) => void;
};
// A request that fails is answered with why, rather than left to end the benchmark.
scope.onmessage = async ({ data: { id, request } }) => {
  try {
    scope.postMessage({ id, reply: await answer(request) });
  } catch (error) {
    scope.postMessage({ id, error: error instanceof Error ? error.message : String(error) });
  }
};

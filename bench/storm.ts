/**
 * The join storm (issue 13): members join as fast as the server lets them in, a bounded number of
 * joins in flight, every join announced to all; then one line must reach every member. Measures
 * the storm's duration, the server's peak memory, and its memory per member once idle.
 * Run by bench/main.ts (`--scenarios storm`).
 */
import { measured, type Sample } from "./harness.ts";
import type { Contender } from "./servers.ts";
import type { StormAnswer, StormReply, StormRequest } from "./storm_worker.ts";

/** Options for {@linkcode storm}. */
export interface StormOptions {
  /**
   * Joins in flight at once, from connect to welcome. Deno listens with a backlog of 511 that it
   * does not let us raise: far more connects at once and the kernel drops some, which is a
   * property of the load, not of the server.
   */
  inFlight: number;
  /** Give up on the storm after this long. */
  timeoutMs: number;
  /**
   * Whether each member sends its name as soon as it is connected, as our client does (and so a
   * storm of reconnections after a restart), or only once the server's greeting has arrived, as a
   * client that waits for the prompt does.
   */
  isNameFirst: boolean;
  /**
   * Threads of the generator, each with its share of the joins in flight and of the sockets (see
   * bench/storm_worker.ts for why more than one are needed from about 14,000 members on).
   */
  threads: number;
}

/** A generator thread: each request is answered, or fails, on its own (by its number). */
class StormThread {
  readonly #worker = new Worker(new URL("./storm_worker.ts", import.meta.url), { type: "module" });
  readonly #waiting = new Map<number, PromiseWithResolvers<StormReply>>();
  #lastId = 0;

  constructor() {
    this.#worker.onmessage = ({ data }: MessageEvent<StormAnswer>) => {
      const waiting = this.#waiting.get(data.id);
      this.#waiting.delete(data.id);
      if ("reply" in data) waiting?.resolve(data.reply);
      else waiting?.reject(new Error(`a generator thread failed: ${data.error}`));
    };
    // Not expected (the thread answers its errors), but then nothing waits forever.
    this.#worker.onerror = (event) => {
      event.preventDefault();
      for (const waiting of this.#waiting.values()) {
        waiting.reject(new Error(`a generator thread failed: ${event.message}`));
      }
      this.#waiting.clear();
    };
  }

  ask<K extends StormReply["kind"]>(
    request: StormRequest,
  ): Promise<Extract<StormReply, { kind: K }>> {
    const id = ++this.#lastId;
    const waiting = Promise.withResolvers<StormReply>();
    this.#waiting.set(id, waiting);
    this.#worker.postMessage({ id, request });
    return waiting.promise as Promise<Extract<StormReply, { kind: K }>>;
  }

  terminate(): void {
    this.#worker.terminate();
  }
}

/**
 * Runs one storm of `size` members. The figure is the server's resident memory per member beyond
 * its idle self, read 2.5 s after the line reached all (idle peers give back their buffers on a
 * sweep); beside it the storm's duration from the first connect to the last welcome, the peak
 * memory, and the join notices that did not arrive (each member must hear every later join).
 * Members join as our server's clients do: the storm is for servers of the room log, ours and its
 * baselines.
 */
export async function storm(
  contender: Contender,
  size: number,
  options: StormOptions,
): Promise<Sample> {
  await using server = await contender.start({ maxClients: size });
  const idleRssKiB = await server.rssKiB();
  const threads = Array.from({ length: options.threads }, () => new StormThread());
  const counter = new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT);
  let isClosing = false;
  try {
    let failure: string | undefined;
    let joined: Extract<StormReply, { kind: "joined" }>[] = [];
    const sample = await measured(server, async () => {
      const startedAt = performance.timeOrigin + performance.now();
      const joins = Promise.all(threads.map((thread, i) =>
        thread.ask<"joined">({
          kind: "join",
          port: server.port,
          size,
          // The joins in flight, shared out: the first threads take one more if they do not divide.
          inFlight: Math.floor(options.inFlight / threads.length) +
            (i < options.inFlight % threads.length ? 1 : 0),
          isNameFirst: options.isNameFirst,
          counter,
        })
      ));
      // Past the deadline nothing waits for the joins: a thread's failure then is not an error.
      joins.catch(() => {});
      let timer: ReturnType<typeof setTimeout> | undefined;
      const tooLong = new Promise<"too long">((resolve) => {
        timer = setTimeout(() => resolve("too long"), options.timeoutMs);
      });
      const outcome = await Promise.race([joins, tooLong]);
      clearTimeout(timer);
      if (outcome === "too long") {
        Atomics.store(new Int32Array(counter), 1, 1); // stop joining
        const started = Math.min(size, Atomics.load(new Int32Array(counter), 0));
        failure = `not over in ${options.timeoutMs / 1000} s (${started} of ${size} joins started)`;
        return { value: NaN };
      }
      joined = outcome;
      failure = joined.find((reply) => reply.failure)?.failure;
      return { value: Math.max(...joined.map((reply) => reply.lastWelcomeAt)) - startedAt };
    });
    const stormMs = sample.value;
    const slowestConnectMs = Math.max(0, ...joined.map((reply) => reply.slowestConnectMs));
    const cuts = () => server.cutSummary() && `; the server's log: ${server.cutSummary()}`;
    const connects = () =>
      slowestConnectMs > 1000
        ? `; the generator's slowest connect took ${(slowestConnectMs / 1000).toFixed(1)} s`
        : "";
    if (failure) return { ...sample, value: NaN, note: failure + cuts() + connects() };
    // One line to all: lines reach a member in order, so once it has it, every join notice
    // before it has been delivered, and the server holds nothing in flight.
    await Promise.all(threads.map((thread) => thread.ask<"reset">({ kind: "reset" })));
    const sender = threads[joined.findIndex((reply) => reply.hasFirst)]!;
    const { sentAt } = await sender.ask<"sent">({ kind: "send" });
    const counts = await Promise.all(threads.map((thread, i) =>
      thread.ask<"counted">({
        kind: "count",
        expected: joined[i]!.members - (joined[i]!.hasFirst ? 1 : 0),
      })
    ));
    await new Promise((resolve) => setTimeout(resolve, 2500)); // two sweeps of idle peers
    const fullRssKiB = await server.rssKiB();
    const sum = (key: "received" | "notices" | "cut") =>
      counts.reduce((total, count) => total + count[key], 0);
    const [received, cut] = [sum("received"), sum("cut")];
    isClosing = true;
    await Promise.all(threads.map((thread) => thread.ask<"closed">({ kind: "close" })));
    return {
      ...sample,
      value: (fullRssKiB - idleRssKiB) / size,
      ...(received >= size - 1 && cut === 0 ? {} : {
        note: `reached ${received} of ${size - 1}, ${cut} cut${cuts()}${connects()}`,
      }),
      extra: {
        stormMs,
        peakRssKiB: await server.rssKiB("VmHWM"),
        idleRssKiB,
        fullRssKiB,
        reached: received,
        reachMs: Math.max(...counts.map((count) => count.lastAt)) - sentAt,
        noticesLost: (size * (size - 1)) / 2 - sum("notices"),
        cut,
        slowestConnectMs,
      },
    };
  } finally {
    if (!isClosing) {
      // A failed storm: ask the threads to close their sockets, but not for longer than a while.
      const closed = Promise.all(threads.map((thread) => thread.ask<"closed">({ kind: "close" })));
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 5000))]);
    }
    for (const thread of threads) thread.terminate();
  }
}

/**
 * The join storm (issue 13): members join as fast as the server lets them in, a bounded number of
 * joins in flight, every join announced to all; then one line must reach every member. Measures
 * the storm's duration, the server's peak memory, and its memory per member once idle.
 * Run by bench/main.ts (`--scenarios storm`).
 */
import { closeAll, measured, type Sample, settle } from "./harness.ts";
import { Client, connect, Run } from "./load.ts";
import type { Contender } from "./servers.ts";

/** The start of the server's first line, which asks for a name. */
const GREETING = "* Welcome to chat!";

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
}

/**
 * Runs one storm of `size` members. The figure is the server's resident memory per member beyond
 * its idle self, read 2.5 s after the line reached all (idle peers give back their buffers on a
 * sweep); beside it the storm's duration from the first connect to the last welcome, the peak
 * memory, and the join notices that did not arrive (each member must hear every later join).
 */
export async function storm(
  contender: Contender,
  size: number,
  options: StormOptions,
): Promise<Sample> {
  await using server = await contender.start({ maxClients: size });
  const idleRssKiB = await server.rssKiB();
  const clients: Client[] = [];
  try {
    let failure: string | undefined;
    // How long the generator took to see its slowest connect complete. In a storm of 19,000 it
    // took 31.5 to 33.6 s in the runs that failed, while the kernel had connected at once (no
    // socket in SYN-SENT): Deno, busy reading 14,000 sockets, saw it late, past the name deadline.
    let slowestConnectMs = 0;
    const sample = await measured(server, async () => {
      const joinRun = new Run({ senders: 1, window: 1 });
      const startedAt = performance.now();
      let lastWelcomeAt = startedAt;
      let next = 0;
      const joinInTurn = async () => {
        while (next < size && !failure) {
          const id = next++;
          const connectAt = performance.now();
          const conn = await connect(server.port);
          slowestConnectMs = Math.max(slowestConnectMs, performance.now() - connectAt);
          const client = new Client(id, conn, joinRun, 4096);
          clients[id] = client;
          if (!options.isNameFirst) await client.waitFor(GREETING);
          await contender.dialect.join(client, `c${id}`);
          lastWelcomeAt = performance.now();
        }
      };
      const joins = Promise.all(Array.from({ length: options.inFlight }, joinInTurn));
      let timer: ReturnType<typeof setTimeout> | undefined;
      const tooLong = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          failure = `${clients.length} of ${size} connected in ${options.timeoutMs / 1000} s`;
          resolve();
        }, options.timeoutMs);
      });
      try {
        await Promise.race([joins, tooLong]);
      } catch (error) {
        failure = `joins failed: ${error instanceof Error ? error.message : error}`;
      } finally {
        clearTimeout(timer);
      }
      return { value: lastWelcomeAt - startedAt };
    });
    const stormMs = sample.value;
    const cuts = () => server.cutSummary() && `; the server's log: ${server.cutSummary()}`;
    const connects = () =>
      slowestConnectMs > 1000
        ? `; the generator's slowest connect took ${(slowestConnectMs / 1000).toFixed(1)} s`
        : "";
    if (failure) return { ...sample, value: NaN, note: failure + cuts() + connects() };
    // One line to all: lines reach a member in order, so once it has it, every join notice
    // before it has been delivered, and the server holds nothing in flight.
    const run = new Run({ senders: 1, window: 1 });
    for (const client of clients) client.reset(run);
    const sentAt = performance.now();
    run.sentBy[0] = 1;
    await clients[0]!.send(0, 0, 1);
    const reachedAll = await settle(run, () => run.tally.received >= size - 1, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 2500)); // two sweeps of idle peers
    const fullRssKiB = await server.rssKiB();
    const notices = clients.reduce((sum, client) => sum + client.notices, 0);
    const cut = clients.filter((client) => client.endedAt > 0).length;
    return {
      ...sample,
      value: (fullRssKiB - idleRssKiB) / size,
      ...(reachedAll && cut === 0 ? {} : {
        note: `reached ${run.tally.received} of ${size - 1}, ${cut} cut${cuts()}${connects()}`,
      }),
      extra: {
        stormMs,
        peakRssKiB: await server.rssKiB("VmHWM"),
        idleRssKiB,
        fullRssKiB,
        reached: run.tally.received,
        reachMs: run.tally.lastAt - sentAt,
        noticesLost: (size * (size - 1)) / 2 - notices,
        cut,
        slowestConnectMs,
      },
    };
  } finally {
    await closeAll(clients.filter(Boolean));
  }
}

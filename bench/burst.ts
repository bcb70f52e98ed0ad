/**
 * Unwindowed bursts (issue 13): every member writes all of its lines at once, nothing held back,
 * while every member reads as fast as it can. What a bound on queued output does to healthy
 * readers: members cut, deliveries lost, the burst's duration and the server's peak memory over it.
 * Run by bench/main.ts (`--scenarios burst`).
 */
import { closeAll, joinClients, measured, type Sample, settle } from "./harness.ts";
import { payload, Run } from "./load.ts";
import type { Contender } from "./servers.ts";

/** A burst: `members` each send `lines` lines of `bytes` bytes (before the LF). */
export interface Burst {
  members: number;
  lines: number;
  bytes: number;
}

/**
 * The three: 100 and 500 members sending 200 and 8 short lines each (80 bytes, as in the
 * prototype's measurements), and 100 members each pasting 10 lines of 4,000 bytes.
 */
export const BURSTS: readonly Burst[] = [
  { members: 100, lines: 200, bytes: 80 },
  { members: 500, lines: 8, bytes: 80 },
  { members: 100, lines: 10, bytes: 4000 },
];

/** How a burst reads in a table: "100 × 200 × 80 B". */
export function burstLabel({ members, lines, bytes }: Burst): string {
  return `${members} × ${lines} × ${bytes} B`;
}

/** A line of `bytes` bytes and its LF: filler first, since receivers find the payload anywhere. */
function burstLine(sender: number, sequence: number, bytes: number): string {
  const line = payload(sender, sequence);
  return "x".repeat(Math.max(0, bytes + 1 - line.length)) + line;
}

/**
 * Runs one burst. The figure is its duration, from the first write to the last delivery; a member
 * counts as cut when the server closed its connection during the burst, and every delivery that
 * did not arrive, for a member cut or not, as lost.
 */
export async function burst(contender: Contender, shape: Burst): Promise<Sample> {
  const { members, lines, bytes } = shape;
  await using server = await contender.start({ maxClients: members });
  const joinRun = new Run({ senders: members, window: 1 });
  const clients = await joinClients(contender, server, members, joinRun);
  try {
    return await measured(server, async () => {
      // Window 1: nothing waits for deliveries here, the slots only count.
      const run = new Run({ senders: members, window: 1 });
      for (const client of clients) client.reset(run);
      // Every member's lines in one buffer, all made before the first is written.
      const encoder = new TextEncoder();
      const chunks = clients.map((_, sender) => {
        const text = Array.from({ length: lines }, (_, k) => burstLine(sender, k, bytes));
        return encoder.encode(text.join(""));
      });
      await server.resetPeak();
      const startedAt = performance.now();
      for (let sender = 0; sender < members; sender++) {
        run.sentBy[sender] = lines;
        clients[sender]!.write(chunks[sender]!).catch(() => {}); // a member cut: counted below
      }
      const expected = members * lines * (members - 1);
      const isComplete = await settle(run, () => run.tally.received >= expected);
      const cut = clients.filter((client) => client.endedAt > 0).length;
      const { tally } = run;
      return {
        // An incomplete burst has no duration to compare: its cut and lost counts tell the story.
        value: isComplete ? tally.lastAt - startedAt : NaN,
        ...(isComplete ? {} : { note: "incomplete" }),
        extra: {
          cut,
          lost: expected - tally.received,
          expected,
          received: tally.received,
          duplicated: tally.duplicated,
          corrupted: tally.corrupted,
          peakRssKiB: await server.rssKiB("VmHWM"),
        },
      };
    });
  } finally {
    await closeAll(clients);
  }
}

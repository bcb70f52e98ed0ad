/**
 * Flood control for one connection (ergo's `fakelag`): a line budget and a byte budget, each a
 * token bucket, shared with the connection's address. The read loop asks it about each line and
 * each read; it answers at once ("go", "wait so long", "flooding") and never calls back, so the
 * loop alone decides what to do: handle the line, pause the reading, or disconnect. `throttle` and
 * `throttleBytes` are that pause, answering the loop in the same three words.
 */
import type { AddressState } from "./limits.ts";
import { TokenBucket } from "./limits.ts";
import type { Peer } from "./peer.ts";
import { pause } from "./conn.ts";

/** The limits flood control keeps to (see the server's `DEFAULT_LIMITS`). */
export interface FloodLimits {
  maxLineBytes: number;
  floodBurst: number;
  floodRate: number;
  floodLimit: number;
  maxPerAddress: number;
}

/** What to do with a line the budgets could not take at once. */
export type LineDelay =
  | { kind: "flooding" }
  | { kind: "wait"; ms: number; warning: string | undefined };

/** One connection's flood control; none when flood control is off (`floodRate` 0). */
export class FloodControl {
  #limits: FloodLimits;
  #address: AddressState;
  #lines: TokenBucket;
  #bytes: TokenBucket;
  /** Lines that had to wait for the line bucket since it was last full. */
  #strikes = 0;
  /** Since when the connection has been over its byte budget without a pause that refilled it. */
  #overBudgetSince: number | undefined;

  /** Flood control for a new connection from `address`, or `undefined` when it is off. */
  static for(limits: FloodLimits, address: AddressState, now?: number): FloodControl | undefined {
    return limits.floodRate > 0 ? new FloodControl(limits, address, now) : undefined;
  }

  /** Full budgets, as of `now` (default `Date.now()`). */
  constructor(limits: FloodLimits, address: AddressState, now = Date.now()) {
    const { floodBurst, floodRate, maxLineBytes } = limits;
    const burst = Math.max(1, floodBurst);
    this.#limits = limits;
    this.#address = address;
    this.#lines = new TokenBucket({ burst, perSecond: floodRate, now });
    this.#bytes = new TokenBucket({
      burst: burst * maxLineBytes,
      perSecond: floodRate * maxLineBytes,
      now,
    });
  }

  /**
   * Takes a line's tokens when both buckets have them, without a wait: most lines, so that they
   * are handled in the turn they were read in, together (a promise per line cost throughput).
   */
  admit(now: number): boolean {
    const shared = this.#address.lines;
    if (this.#lines.isFull(now)) this.#strikes = 0; // a pause that refilled it forgives
    // take() takes only when it needs no wait; the address's bucket is asked first, so that a line
    // refused for it takes nothing from the connection's.
    if ((shared?.wait(now) ?? 0) > 0 || this.#lines.take(now) > 0) return false;
    shared?.take(now);
    return true;
  }

  /**
   * For a line that {@linkcode admit} could not take: counts it as delayed, and answers that the
   * connection is flooding (one delayed line too many), or how long to stop reading until both
   * buckets have a token, with the warning to send the first time.
   */
  delay(now: number): LineDelay {
    const ms = this.wait(now);
    if (ms === 0) return { kind: "wait", ms, warning: undefined };
    if (++this.#strikes > this.#limits.floodLimit) return { kind: "flooding" };
    return { kind: "wait", ms, warning: this.#strikes === 1 ? this.#slowDown(now) : undefined };
  }

  /** How long until both buckets have a token for the line, in ms (0: take it now). */
  wait(now: number): number {
    return Math.max(this.#lines.wait(now), this.#address.lines?.wait(now) ?? 0);
  }

  /** Takes the tokens of a line that waited for them. */
  take(now: number): void {
    this.#lines.take(now);
    this.#address.lines?.take(now);
  }

  /**
   * The byte budget: the read loop read `count` bytes. Answers how long to stop reading until the
   * budget has paid for them (0: go on), so that a stream of bytes costs its sender time, not the
   * server a core; or that the connection is flooding, over its budget for too long.
   */
  spend(now: number, count: number): number | "flooding" {
    if (this.#bytes.isFull(now)) this.#overBudgetSince = undefined;
    const wait = this.#bytes.spend(now, count);
    if (wait === 0) return 0;
    this.#overBudgetSince ??= now;
    const { floodLimit, floodRate } = this.#limits;
    return now + wait - this.#overBudgetSince > 2000 * floodLimit / floodRate ? "flooding" : wait;
  }

  /** The warning for a member whose lines are being delayed, naming the limit it hit. */
  #slowDown(now: number): string {
    const { floodRate, maxPerAddress } = this.#limits;
    return this.#lines.wait(now) > 0
      ? `Slow down: at most ${floodRate} lines a second; your lines are being delayed`
      : `Slow down: at most ${floodRate * maxPerAddress} lines a second from ` +
        `${this.#address.key}; your lines are being delayed`;
  }
}

/**
 * A line flood control could not take at once: stops reading from this peer (which slows the
 * client through TCP) until both buckets have a token, warning it once. Answers "go" (handle the
 * line), "skip" (the peer ended meanwhile) or "flooding" (it keeps flooding: disconnect it).
 */
export async function throttle(
  peer: Peer,
  flood: FloodControl,
): Promise<"go" | "skip" | "flooding"> {
  let now = peer.lastLineAt;
  const delay = flood.delay(now);
  if (delay.kind === "flooding") return "flooding";
  if (delay.warning) peer.sendError(delay.warning);
  let wait = delay.ms;
  while (wait > 0 && !peer.signal.aborted && !peer.isEnding) {
    await pause(wait, peer.signal);
    now = Date.now();
    wait = flood.wait(now);
  }
  if (wait > 0 || peer.isEnding) return "skip";
  flood.take(now);
  return "go";
}

/** The byte budget after a read of `count` bytes: a pause in the reading, or "flooding". */
export async function throttleBytes(
  peer: Peer,
  flood: FloodControl,
  count: number,
): Promise<"go" | "flooding"> {
  const wait = flood.spend(Date.now(), count);
  if (wait === 0 || peer.isEnding) return "go";
  if (wait === "flooding") return "flooding";
  await pause(wait, peer.signal);
  return "go";
}

/**
 * Admission (ergo's connection limits): who may open a connection and who may join, per address
 * and for the whole server. It keeps the addresses' states and budgets, the connections the web
 * page holds before they are members, and the counts of what it refused for the periodic log
 * line. The server asks it about each new connection and each join; it answers at once (a refusal
 * to tell, or none) and never calls back, so the server alone decides what to do.
 */
import { Tally } from "./metrics.ts";
import type { Log } from "./log.ts";
import type { AddressSet } from "./cidr.ts";
import { type AddressState, AddressTable, type TokenBucket } from "./limits.ts";

/** The limits admission keeps to (see the server's `DEFAULT_LIMITS`). */
export interface AdmissionLimits {
  maxConnections: number;
  maxPerAddress: number;
  joinRate: number;
  registerRate: number;
  floodBurst: number;
  floodRate: number;
}

/** The connection limits and the join rate, and what they refused. */
export class Admission {
  #limits: AdmissionLimits;
  #addresses: AddressTable;
  #tally: Tally;
  #log: Log;
  /** Connections counted by {@linkcode hold}: the web page's, before they are members. */
  #held = 0;
  /** Connections and joins refused since the last log line about them: a flood of them cannot
   * flood the log. */
  #refusals = 0;
  #refusedJoins = 0;

  constructor(
    limits: AdmissionLimits,
    options: { exempt: AddressSet; tally: Tally; log: Log },
  ) {
    const { floodBurst, floodRate, maxPerAddress, joinRate, registerRate } = limits;
    this.#limits = limits;
    this.#tally = options.tally;
    this.#log = options.log;
    // Per address: what maxPerAddress members could send, and joinRate joins a minute.
    this.#addresses = new AddressTable({
      lineBurst: Math.max(1, floodBurst) * maxPerAddress,
      linesPerSecond: floodRate * maxPerAddress,
      joinBurst: joinRate,
      joinsPerSecond: maxPerAddress > 0 ? joinRate / 60 : 0,
      registrationBurst: registerRate,
      registrationsPerSecond: maxPerAddress > 0 ? registerRate / 3600 : 0,
    }, { exempt: options.exempt });
  }

  /** The state of `hostname`'s address, remembered from now on. */
  address(hostname: string): AddressState {
    return this.#addresses.get(hostname);
  }

  /** Forgets the addresses that carry no information as of `now`. */
  prune(now: number): void {
    this.#addresses.prune(now);
  }

  /**
   * Why a new connection from `address` (unknown yet, if none) cannot be served, if it cannot,
   * while `members` connections are served.
   */
  refusal(address: AddressState | undefined, members: number): string | undefined {
    const { maxConnections, maxPerAddress } = this.#limits;
    if (maxConnections > 0 && members + this.#held >= maxConnections) {
      return `Server is full: at most ${maxConnections} connections; try again later`;
    }
    const isCounted = address !== undefined && !address.isExempt;
    if (maxPerAddress > 0 && isCounted && address.connections >= maxPerAddress) {
      return `Too many connections from ${address.key}: at most ${maxPerAddress}`;
    }
  }

  /** Counts a connection refused over a limit, for the log line and the metrics. */
  refused(refusal: string): void {
    this.#refusals++;
    Tally.bump(this.#tally.refusals, refusal.startsWith("Server is full") ? "full" : "per address");
  }

  /** Takes a join of `hostname`'s join rate now; the refusal to tell when there is none left. */
  takeJoin(hostname: string): string | undefined {
    const address = this.#addresses.get(hostname);
    const wait = address.joins?.take(Date.now()) ?? 0;
    if (wait === 0) return;
    this.#refusedJoins++;
    Tally.bump(this.#tally.refusals, "join rate");
    return this.#tooManyJoins(address, wait);
  }

  /**
   * Why a join from `address` must wait for `joins` (none: its connection took its join when it
   * opened), counted, if it must; the join takes from `joins` once it is done.
   */
  joinRefusal(address: AddressState, joins: TokenBucket | undefined): string | undefined {
    const wait = joins?.wait(Date.now()) ?? 0;
    if (wait > 0) {
      this.#refusedJoins++;
      Tally.bump(this.#tally.refusals, "join rate");
      return this.#tooManyJoins(address, wait);
    }
  }

  #tooManyJoins(address: AddressState, wait: number): string {
    return `Too many joins from ${address.key}: at most ${this.#limits.joinRate} a minute; ` +
      `try again in ${Math.ceil(wait / 1000)} s`;
  }

  /**
   * Counts a connection that is not a member yet against the limits (the address's, if it is
   * known), while `members` connections are served: the refusal to tell, or how to give it back.
   */
  hold(hostname: string | undefined, members: number): string | { release(): void } {
    const address = hostname === undefined ? undefined : this.#addresses.get(hostname);
    const refusal = this.refusal(address, members);
    if (refusal) {
      this.refused(refusal);
      return refusal;
    }
    if (address) address.connections++;
    this.#held++;
    let isHeld = true;
    return {
      release: () => {
        if (!isHeld) return;
        isHeld = false;
        if (address) address.connections--;
        this.#held--;
      },
    };
  }

  /** Logs what was refused since the last call, if anything was; returns whether it logged. */
  logCounts(): boolean {
    if (this.#refusals === 0 && this.#refusedJoins === 0) return false;
    const joins = this.#refusedJoins > 0 ? ` and ${this.#refusedJoins} join(s)` : "";
    this.#log(`refused ${this.#refusals} connection(s)${joins} over the connection limits`, {
      event: "refused",
      level: "warn",
      reason: "connection limits",
      counts: { connections: this.#refusals, joins: this.#refusedJoins },
    });
    this.#refusals = this.#refusedJoins = 0;
    return true;
  }
}

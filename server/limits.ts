/**
 * The server's limits and budgets: every limit with its default and its checks, token buckets, and
 * what it remembers of each client address across connections (open connections, and the line and
 * join buckets that outlive a connection, so that reconnecting buys nothing), in a table of
 * bounded size.
 */
import { DEFAULT_LOG_BYTES } from "./hub.ts";
import { AddressSet } from "./cidr.ts";
import {
  DEFAULT_MAX_LINE_BYTES,
  MAX_LINE_OVERHEAD_BYTES,
  MIN_MAX_LINE_BYTES,
} from "../protocol.ts";

/**
 * A token bucket: `burst` tokens at once, then `perSecond` a second. `take` answers how long the
 * caller must wait for its tokens (0 when they were there, and taken); `spend` takes them anyway,
 * into debt, and answers how long until the debt is paid.
 */
export class TokenBucket {
  readonly burst: number;
  readonly perSecond: number;
  #tokens: number;
  #updatedAt: number;

  /** A full bucket, as of `now` (default `Date.now()`). */
  constructor(options: { burst: number; perSecond: number; now?: number }) {
    this.burst = options.burst;
    this.perSecond = options.perSecond;
    this.#tokens = options.burst;
    this.#updatedAt = options.now ?? Date.now();
  }

  /** Whether the bucket has refilled completely: the client paused long enough. */
  isFull(now: number): boolean {
    this.#refill(now);
    return this.#tokens >= this.burst;
  }

  /** How long until `count` tokens are there, in ms; takes nothing. */
  wait(now: number, count = 1): number {
    this.#refill(now);
    const missing = Math.min(count, this.burst) - this.#tokens;
    return missing <= 0 ? 0 : Math.ceil(missing * 1000 / this.perSecond);
  }

  /** Takes `count` tokens now, or answers in how many ms they will be there (and takes nothing). */
  take(now: number, count = 1): number {
    const wait = this.wait(now, count);
    if (wait === 0) this.#tokens -= count;
    return wait;
  }

  /** Takes `count` tokens even if that runs into debt; answers how long until the debt is paid. */
  spend(now: number, count: number): number {
    this.#refill(now);
    this.#tokens -= count;
    return this.#tokens >= 0 ? 0 : Math.ceil(-this.#tokens * 1000 / this.perSecond);
  }

  #refill(now: number): void {
    const elapsed = Math.max(0, now - this.#updatedAt);
    this.#tokens = Math.min(this.burst, this.#tokens + elapsed * this.perSecond / 1000);
    this.#updatedAt = Math.max(now, this.#updatedAt);
  }
}

/** What the server knows of one client address. */
export interface AddressState {
  /** The address as the limits count it (see {@linkcode addressKey}). */
  readonly key: string;
  /**
   * Whether it is exempt from the per-address limits (`--exempt`): it then has none of the buckets
   * below, and its connections are counted but never refused for their number.
   */
  readonly isExempt: boolean;
  /** Connections open from it now. */
  connections: number;
  /** Lines from all its connections together, when there is a per-address limit. */
  readonly lines: TokenBucket | undefined;
  /** Joins from it, when there is a join limit. */
  readonly joins: TokenBucket | undefined;
  /** Registrations and new passwords from it, when there is a limit: each costs a hash and a row. */
  readonly registrations: TokenBucket | undefined;
}

/** The budgets of one address; a rate of 0 means no such budget. */
export interface AddressBudgets {
  lineBurst: number;
  linesPerSecond: number;
  joinBurst: number;
  joinsPerSecond: number;
  registrationBurst: number;
  registrationsPerSecond: number;
}

const NO_BUDGETS: AddressBudgets = {
  lineBurst: 0,
  linesPerSecond: 0,
  joinBurst: 0,
  joinsPerSecond: 0,
  registrationBurst: 0,
  registrationsPerSecond: 0,
};

/** Addresses remembered at most, beside those with a connection open (evicted oldest first). */
export const MAX_REMEMBERED_ADDRESSES = 65_536;

/**
 * Addresses with a connection open, or whose buckets have not refilled since they last spoke. An
 * address with nothing open and full buckets carries no information and is forgotten; beyond
 * `maxRemembered` of those that still do, the oldest is forgotten first, so that a flood of source
 * addresses costs bounded memory (and at worst gives some of them a fresh bucket).
 */
export class AddressTable {
  #states = new Map<string, AddressState>();
  #budgets: AddressBudgets;
  #exempt: AddressSet;
  #maxRemembered: number;

  /**
   * An empty table; `exempt`: the addresses free of the budgets (none by default);
   * `maxRemembered` defaults to {@linkcode MAX_REMEMBERED_ADDRESSES}.
   */
  constructor(
    budgets: AddressBudgets,
    options: { exempt?: AddressSet; maxRemembered?: number } = {},
  ) {
    this.#budgets = budgets;
    this.#exempt = options.exempt ?? new AddressSet();
    this.#maxRemembered = options.maxRemembered ?? MAX_REMEMBERED_ADDRESSES;
  }

  /** How many addresses are remembered. */
  get size(): number {
    return this.#states.size;
  }

  /** The state of `hostname`'s address, without creating it. */
  peek(hostname: string): AddressState | undefined {
    return this.#states.get(this.#keyOf(hostname));
  }

  /**
   * Where `hostname`'s state is kept: under its key, apart for an exempt one, so that an exempt
   * host (::1) does not exempt the rest of its /64, nor the other way round.
   */
  #keyOf(hostname: string): string {
    const key = addressKey(hostname);
    return this.#exempt.has(hostname) ? `exempt ${key}` : key;
  }

  /** The state of `hostname`'s address, remembered from now on (most recent last). */
  get(hostname: string, now = Date.now()): AddressState {
    const at = this.#keyOf(hostname);
    let state = this.#states.get(at);
    if (state) {
      this.#states.delete(at); // moved to the end: the most recently used
    } else {
      const key = addressKey(hostname);
      const isExempt = at !== key;
      // An exempt address has no budgets at all, as if every rate were 0.
      const budgets = isExempt ? NO_BUDGETS : this.#budgets;
      const { lineBurst, linesPerSecond, joinBurst, joinsPerSecond } = budgets;
      const { registrationBurst: burst, registrationsPerSecond: perSecond } = budgets;
      state = {
        key,
        isExempt,
        connections: 0,
        lines: linesPerSecond > 0
          ? new TokenBucket({ burst: lineBurst, perSecond: linesPerSecond, now })
          : undefined,
        joins: joinsPerSecond > 0
          ? new TokenBucket({ burst: joinBurst, perSecond: joinsPerSecond, now })
          : undefined,
        registrations: perSecond > 0 ? new TokenBucket({ burst, perSecond, now }) : undefined,
      };
      if (this.#states.size >= this.#maxRemembered) this.#evict(now);
    }
    this.#states.set(at, state);
    return state;
  }

  /** Forgets the addresses that carry no information any more. */
  prune(now: number): void {
    for (const [key, state] of this.#states) {
      if (isIdle(state, now)) this.#states.delete(key);
    }
  }

  /** Makes room: forgets idle addresses, else the oldest one with nothing open. */
  #evict(now: number): void {
    this.prune(now);
    if (this.#states.size < this.#maxRemembered) return;
    for (const [key, state] of this.#states) {
      if (state.connections === 0) return void this.#states.delete(key);
    }
  }
}

function isIdle(state: AddressState, now: number): boolean {
  return state.connections === 0 && (state.lines?.isFull(now) ?? true) &&
    (state.joins?.isFull(now) ?? true) && (state.registrations?.isFull(now) ?? true);
}

/**
 * The address that per-address limits count: an IPv4 address as it is (also when it comes mapped
 * into IPv6), an IPv6 address by its /64 network, since one host or home is given a whole /64 and
 * could otherwise take a new address for every connection.
 */
export function addressKey(hostname: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(hostname);
  if (mapped) return mapped[1]!;
  if (!hostname.includes(":")) return hostname;
  const [head = "", tail] = hostname.split("%")[0]!.toLowerCase().split("::");
  const groups = head === "" ? [] : head.split(":");
  if (tail !== undefined) {
    const rest = tail === "" ? [] : tail.split(":");
    groups.push(...Array(Math.max(0, 8 - groups.length - rest.length)).fill("0"), ...rest);
  }
  return `${groups.slice(0, 4).map((group) => group.replace(/^0+(?=.)/, "")).join(":")}::/64`;
}

/** Every limit the server enforces, with its default. Each is a flag of `chat server`. */
export const DEFAULT_LIMITS = {
  /** Longest accepted line in bytes (a line of 1000 characters of any script fits). */
  maxLineBytes: DEFAULT_MAX_LINE_BYTES,
  /**
   * Bytes of the room log: the room's queued output, whatever the number of members; a member that
   * falls further behind than this has stopped reading and is dropped. At least 16 times the
   * longest line unless set.
   */
  logSize: DEFAULT_LOG_BYTES,
  /**
   * Lines meant for one member alone (replies, errors, private messages) queued before it counts
   * as not reading and is dropped; its join reply never counts.
   */
  maxBacklogBytes: 1024 * 1024,
  /** Connections at once (0: no limit); each costs memory and a file descriptor. */
  maxConnections: 10_000,
  /**
   * Connections at once from one address (0: no limit), so one host cannot take every slot. The
   * address's lines together may also be no more than this many members could send (flood burst
   * and rate times this), however often it reconnects.
   */
  maxPerAddress: 20,
  /** Joins a minute from one address, in a burst or spread out (0: no limit): reconnecting in a
   * loop cannot flood the room with join and leave notices. */
  joinRate: 20,
  /** Registrations and new passwords an hour from one address (0: no limit), and at most 3 of
   * them on one connection: each costs a hash, and a row kept for good. */
  registerRate: 10,
  /** Time for a TLS client to finish its handshake before the connection is closed; 0: none. */
  handshakeTimeoutMs: 10_000,
  /** Time to send a valid name before the connection is closed (slowloris); 0 turns it off. */
  nameTimeoutMs: 30_000,
  /** Time without a line before a member is closed; 0 (the default) turns it off. */
  idleTimeoutMs: 0,
  /**
   * How long a member whose client asked for a resume token keeps its place after its connection
   * ends without `/quit` (a reload, a phone asleep, a lost network): back within it, the room
   * hears no leave. 0 gives no tokens. Places held count as their address's connections, and are
   * at most `maxConnections`.
   */
  resumeGraceMs: 30_000,
  /** Time one write may wait for the client to take anything before it is dropped; 0: off. */
  writeTimeoutMs: 30_000,
  /** Lines a client may send at once before flood control slows it down. */
  floodBurst: 10,
  /** Lines a second a client may send on average; 0 turns flood control off. */
  floodRate: 5,
  /**
   * Lines delayed by flood control, without a pause that refills the bucket, before disconnection.
   * The bytes a connection sends are budgeted too (flood burst and rate times the line limit), and
   * one over that budget for twice as long as this many delayed lines take is disconnected.
   */
  floodLimit: 50,
};

/** The limits, each of which can be set. */
export type Limits = typeof DEFAULT_LIMITS;

/**
 * The limits `options` ask for, the others at their defaults, checked: throws a `RangeError` for
 * one out of range or a combination that cannot work. The room log is at least 16 times the
 * longest line unless its size is given, and must hold at least 4 of them.
 */
export function resolveLimits(options: Partial<Limits>): Limits {
  const limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(limits) as (keyof Limits)[]) {
    const value = options[key] ?? limits[key];
    if (!(Number.isFinite(value) && value >= 0)) throw new RangeError(`Cannot use ${key} ${value}`);
    limits[key] = value;
  }
  const { maxLineBytes, maxBacklogBytes } = limits;
  if (maxLineBytes < MIN_MAX_LINE_BYTES) {
    throw new RangeError(
      `Cannot use line limit ${maxLineBytes}: it must be at least ${MIN_MAX_LINE_BYTES} bytes`,
    );
  }
  if (maxBacklogBytes < maxLineBytes) {
    throw new RangeError(
      `Cannot use backlog limit ${maxBacklogBytes}: it must be at least the line limit`,
    );
  }
  const longest = maxLineBytes + MAX_LINE_OVERHEAD_BYTES + 1;
  limits.logSize = options.logSize ?? Math.max(DEFAULT_LOG_BYTES, 16 * longest);
  if (limits.logSize < 4 * longest) {
    throw new RangeError(
      `Cannot use log size ${limits.logSize}: it must hold at least 4 of the longest lines ` +
        `(${4 * longest} bytes with a line limit of ${maxLineBytes})`,
    );
  }
  return limits;
}

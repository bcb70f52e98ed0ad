/**
 * The seam of moderation's storage (operators, bans, mutes, the topic), implemented by the SQLite
 * store, by the cluster's Redis and, here, in memory for a server that keeps nothing.
 */
import { MAX_BANS, MAX_MUTES, nameKey } from "../protocol.ts";
import { StoreError } from "./hub.ts";

/** A ban: by name (held for every case of it) or by address (an IPv4 address, an IPv6 /64, or a CIDR). */
export interface Ban {
  /** As `/bans` shows it: "alice" (the name as typed), "203.0.113.7", "2001:db8::/64", "10.0.0.0/8". */
  target: string;
  kind: "name" | "address";
  /** The operator's name. */
  by: string;
  /** When it was made, in ms since the epoch. */
  at: number;
  /** When it ends, in ms since the epoch; none: until lifted. */
  until?: number;
  reason?: string;
}

/** A mute: the member's lines are refused; it still reads. */
export interface Mute {
  name: string;
  by: string;
  at: number;
  until?: number;
  reason?: string;
}

/** The room's topic, who set it and when. */
export interface Topic {
  text: string;
  by: string;
  at: number;
}

/**
 * A change to the moderation state made from outside this server (`chat admin` on the store file,
 * another server of a cluster), which the server then applies to its members. `by` is the
 * operator who made it, none for `chat admin`. `reload`: anything may have changed (after a heal).
 */
export type ModerationChange =
  | { kind: "operator"; name: string; isOperator: boolean; by?: string }
  | { kind: "ban"; ban: Ban }
  | { kind: "unban"; target: string; by?: string }
  | { kind: "mute"; mute: Mute }
  | { kind: "unmute"; name: string; by?: string }
  | { kind: "topic"; topic: Topic | undefined }
  | { kind: "reload" };

/**
 * Where operators, bans, mutes and the topic are kept: SQLite, Redis, or memory. Reads answer from
 * memory (the copy loaded at start, kept current); each change resolves once kept, or rejects with
 * a {@linkcode StoreError} whose message the member is shown.
 */
export interface ModerationStore {
  /** Whether `name` (any case) is an operator. */
  isOperator(name: string): boolean;
  /** The operators' names, as registered. */
  operators(): string[];
  /** The bans in force (none that has expired). */
  bans(): Ban[];
  /** The mutes in force. */
  mutes(): Mute[];
  topic(): Topic | undefined;
  /**
   * `by`: the operator who made the change, for another server's `onChange` (none: `chat admin`,
   * or a name given up); likewise for `removeBan` and `removeMute`.
   */
  setOperator(name: string, isOperator: boolean, by?: string): Promise<void>;
  /** Adds a ban, or replaces the one with the same target. */
  addBan(ban: Ban): Promise<void>;
  /** Lifts the ban on `target` (a name in any case, or an address as listed); false if none. */
  removeBan(target: string, by?: string): Promise<boolean>;
  /** Adds a mute, or replaces the one of the same name. */
  addMute(mute: Mute): Promise<void>;
  removeMute(name: string, by?: string): Promise<boolean>;
  setTopic(topic: Topic | undefined): Promise<void>;
  /**
   * Set by the server: told when the copy changed from outside (`chat admin`, another server), so
   * that the server applies it (kicks whom a new ban matches, updates the @ marks).
   */
  onChange?: ((change: ModerationChange) => void) | undefined;
}

/** Everything a moderation store holds, as it is loaded (from SQLite, from Redis). */
export interface ModerationState {
  operators: string[];
  bans: Ban[];
  mutes: Mute[];
  topic?: Topic;
}

/**
 * The changes that take `before` to `after`, one per operator, ban, mute or topic that differs: what
 * a store that reloaded its copy tells the server (`onChange`).
 */
export function diffModeration(
  before: ModerationState,
  after: ModerationState,
): ModerationChange[] {
  const changes: ModerationChange[] = [];
  const keys = (names: readonly string[]) => new Set(names.map(nameKey));
  const [was, is] = [keys(before.operators), keys(after.operators)];
  for (const name of after.operators) {
    if (!was.has(nameKey(name))) changes.push({ kind: "operator", name, isOperator: true });
  }
  for (const name of before.operators) {
    if (!is.has(nameKey(name))) changes.push({ kind: "operator", name, isOperator: false });
  }
  const bans = new Map(before.bans.map((ban) => [banKey(ban.target), ban]));
  for (const ban of after.bans) {
    const old = bans.get(banKey(ban.target));
    bans.delete(banKey(ban.target));
    if (!old || old.at !== ban.at || old.until !== ban.until) changes.push({ kind: "ban", ban });
  }
  for (const ban of bans.values()) changes.push({ kind: "unban", target: ban.target });
  const mutes = new Map(before.mutes.map((mute) => [nameKey(mute.name), mute]));
  for (const mute of after.mutes) {
    const old = mutes.get(nameKey(mute.name));
    mutes.delete(nameKey(mute.name));
    if (!old || old.at !== mute.at || old.until !== mute.until) {
      changes.push({ kind: "mute", mute });
    }
  }
  for (const mute of mutes.values()) changes.push({ kind: "unmute", name: mute.name });
  if (before.topic?.at !== after.topic?.at || before.topic?.text !== after.topic?.text) {
    changes.push({ kind: "topic", topic: after.topic });
  }
  return changes;
}

/** Whether a ban or a mute has ended by `now`. */
export function hasEnded(term: { until?: number }, now: number = Date.now()): boolean {
  return term.until !== undefined && term.until <= now;
}

/** The key a ban is kept under: a name's key regardless of case, an address as given. */
export function banKey(target: string): string {
  return /[.:]/.test(target) ? target.toLowerCase() : nameKey(target);
}

/**
 * The moderation state in memory: what a server without `--store` or `--redis` keeps, lost at
 * exit; its operators are those of `--operators-file`. The SQLite store keeps its copy in one too.
 */
export class MemoryModerationStore implements ModerationStore {
  #operators = new Map<string, string>();
  #bans = new Map<string, Ban>();
  #mutes = new Map<string, Mute>();
  #topic: Topic | undefined;
  onChange: ((change: ModerationChange) => void) | undefined;

  /** A store holding `operators` (names) and nothing else yet. */
  constructor(operators: Iterable<string> = []) {
    for (const name of operators) this.#operators.set(nameKey(name), name);
  }

  /** A store holding `state`, as loaded (bounds not checked: it was kept under them). */
  static from(state: ModerationState): MemoryModerationStore {
    const store = new MemoryModerationStore(state.operators);
    for (const ban of state.bans) store.#bans.set(banKey(ban.target), ban);
    for (const mute of state.mutes) store.#mutes.set(nameKey(mute.name), mute);
    store.#topic = state.topic;
    return store;
  }

  /** Everything it holds now (ended bans and mutes left out). */
  state(): ModerationState {
    const topic = this.#topic;
    return {
      operators: this.operators(),
      bans: this.bans(),
      mutes: this.mutes(),
      ...topic ? { topic } : {},
    };
  }

  /** Throws a {@linkcode StoreError} if a new ban (or mute) of `target` would pass the bound. */
  checkRoom(kind: "ban" | "mute", target: string): void {
    const [terms, most] = kind === "ban" ? [this.#bans, MAX_BANS] : [this.#mutes, MAX_MUTES];
    if (!terms.has(banKey(target)) && this.#count(terms) >= most) {
      throw new StoreError(`There are ${most} ${kind}s already: lift some first`);
    }
  }

  isOperator(name: string): boolean {
    return this.#operators.has(nameKey(name));
  }

  operators(): string[] {
    return [...this.#operators.values()];
  }

  bans(): Ban[] {
    return [...this.#bans.values()].filter((ban) => !hasEnded(ban));
  }

  mutes(): Mute[] {
    return [...this.#mutes.values()].filter((mute) => !hasEnded(mute));
  }

  topic(): Topic | undefined {
    return this.#topic;
  }

  setOperator(name: string, isOperator: boolean): Promise<void> {
    if (isOperator) this.#operators.set(nameKey(name), name);
    else this.#operators.delete(nameKey(name));
    return Promise.resolve();
  }

  addBan(ban: Ban): Promise<void> {
    try {
      this.checkRoom("ban", ban.target);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#bans.set(banKey(ban.target), ban);
    return Promise.resolve();
  }

  removeBan(target: string): Promise<boolean> {
    return Promise.resolve(this.#bans.delete(banKey(target)));
  }

  addMute(mute: Mute): Promise<void> {
    try {
      this.checkRoom("mute", mute.name);
    } catch (error) {
      return Promise.reject(error);
    }
    this.#mutes.set(nameKey(mute.name), mute);
    return Promise.resolve();
  }

  removeMute(name: string): Promise<boolean> {
    return Promise.resolve(this.#mutes.delete(nameKey(name)));
  }

  setTopic(topic: Topic | undefined): Promise<void> {
    this.#topic = topic;
    return Promise.resolve();
  }

  /** How many of `terms` are in force, the ended ones dropped first: they never count to a bound. */
  #count(terms: Map<string, { until?: number }>): number {
    const now = Date.now();
    for (const [key, term] of terms) if (hasEnded(term, now)) terms.delete(key);
    return terms.size;
  }
}

/**
 * Operators, bans, mutes and the topic of the cluster, in Redis (see moderation_values.ts), with
 * this server's copy of them: read whole at every heal, kept current by the events that each
 * change publishes in the same step as it is made, and what answers at once (and while the room
 * is partitioned). A change is made in Redis first, only while the room is whole, and then in the
 * copy, so that what an operator is told holds on every server. A timed ban or mute expires in
 * Redis by itself, and every copy drops it at its end.
 */
import { StoreError } from "../server/hub.ts";
import { describe, nameKey } from "../protocol.ts";
import type { StoreHooks } from "./redis_accounts.ts";
import {
  type Link,
  moderate,
  MODERATION_PREFIX,
  readModeration,
  REDIS_TIMEOUT_MS,
} from "./redis_link.ts";
import {
  banJson,
  banKey,
  banKeyOf,
  muteJson,
  muteKey,
  operatorKey,
  parseValue,
  TOPIC_KEY,
  topicJson,
  type Value,
} from "./moderation_values.ts";
import {
  type Ban,
  hasEnded,
  type ModerationChange,
  type ModerationStore,
  type Mute,
  type Topic,
} from "../server/moderation_store.ts";

/** The most values read from Redis: the bans and mutes the contract bounds, the operators, the
 * topic. */
const MOST_VALUES = 25_000;

/** The moderation of the cluster as this server knows it. */
export class RedisModeration implements ModerationStore {
  #hooks: Omit<StoreHooks, "changed">;
  /** Every value as Redis holds it, by key: what a heal compares with. */
  #raw = new Map<string, string>();
  #operators = new Map<string, string>();
  #bans = new Map<string, Ban>();
  #mutes = new Map<string, Mute>();
  #topic: Topic | undefined;
  onChange?: (change: ModerationChange) => void;

  constructor(hooks: Omit<StoreHooks, "changed">) {
    this.#hooks = hooks;
  }

  isOperator(name: string): boolean {
    return this.#operators.has(nameKey(name));
  }

  operators(): string[] {
    return [...this.#operators.values()];
  }

  bans(): Ban[] {
    return this.#current(this.#bans);
  }

  mutes(): Mute[] {
    return this.#current(this.#mutes);
  }

  topic(): Topic | undefined {
    return this.#topic;
  }

  /** `by`: the operator who did it, for the other servers (none: `chat admin`). */
  async setOperator(name: string, isOperator: boolean, by?: string): Promise<void> {
    const key = operatorKey(name);
    const done = await this.#write(key, isOperator ? name : "", { registered: isOperator, by });
    if (!done && isOperator) {
      throw new StoreError(`${name} is not registered: only a registered name can be an operator`);
    }
  }

  async addBan(ban: Ban): Promise<void> {
    await this.#write(banKey(ban), banJson(ban), { until: ban.until });
  }

  removeBan(target: string, by?: string): Promise<boolean> {
    return this.#write(banKeyOf(target), "", { by });
  }

  async addMute(mute: Mute): Promise<void> {
    await this.#write(muteKey(mute.name), muteJson(mute), { until: mute.until });
  }

  removeMute(name: string, by?: string): Promise<boolean> {
    return this.#write(muteKey(name), "", { by });
  }

  async setTopic(topic: Topic | undefined): Promise<void> {
    await this.#write(TOPIC_KEY, topic ? topicJson(topic) : "");
  }

  /**
   * A new link healed: reads every value again, and if any changed meanwhile (a ban made while
   * this server was cut off), tells the server to apply them all again (it sends away whom such a
   * ban matches). Into a Redis that lost the chat's data, it first writes back what it knew.
   */
  async heal(link: Link, wasLost = false): Promise<void> {
    if (wasLost) await this.#restore(link);
    const read = await link.within(readModeration(link.redis, MOST_VALUES));
    let isChanged = false;
    for (const key of [...this.#raw.keys()]) {
      if (!read.has(key)) isChanged = this.#apply(key, undefined, false) || isChanged;
    }
    for (const [key, value] of read) isChanged = this.#apply(key, value, false) || isChanged;
    if (isChanged) this.onChange?.({ kind: "reload" });
  }

  /**
   * Another server (or `chat admin`) changed a value: announced on the channel, with the operator
   * who did it (`by`; none from `chat admin`, "" if that server did not say).
   */
  changed(key: string, value: string | undefined, by?: string): void {
    this.#apply(key, value, true, by);
  }

  /**
   * Writes back every value this server knew, unless Redis holds that key again already: without
   * them, every ban would be lifted and every operator unmade by Redis's loss.
   */
  async #restore(link: Link): Promise<void> {
    const now = this.#hooks.now();
    await link.within(Promise.all([...this.#raw].map(([key, raw]) => {
      const value = parseValue(key, raw);
      const until = value?.kind === "ban"
        ? value.ban.until
        : value?.kind === "mute"
        ? value.mute.until
        : undefined;
      if (until !== undefined && until <= now) return;
      const expiry = until === undefined
        ? {}
        : { expiration: { type: "PXAT" as const, value: until } };
      return link.redis.set(MODERATION_PREFIX + key, raw, { condition: "NX" as const, ...expiry });
    })));
  }

  /** Those not expired; the expired ones are dropped from the copy (Redis dropped them too). */
  #current<T extends { until?: number }>(values: Map<string, T>): T[] {
    const now = this.#hooks.now();
    const current: T[] = [];
    for (const [key, value] of values) {
      if (value.until === undefined || value.until > now) current.push(value);
      else this.#forget(key);
    }
    return current;
  }

  /**
   * Makes a change in Redis, announced to the other servers in the same step, and then in the
   * copy: true if done, false if there was nothing to remove (or no such account). Redis must
   * make it within half the time this server waits for the answer, by its own clock, so that a
   * change reported as failed does not happen later.
   */
  async #write(
    key: string,
    value: string,
    options: { until?: number | undefined; registered?: boolean; by?: string | undefined } = {},
  ): Promise<boolean> {
    const link = this.#hooks.link();
    if (!link) throw cannotSave("the room is partitioned");
    const now = this.#hooks.now();
    const message = JSON.stringify({
      o: this.#hooks.origin,
      d: now + REDIS_TIMEOUT_MS,
      k: "mod",
      n: "",
      t: key,
      b: options.by ?? "",
      ...value ? { v: value } : {},
    });
    let done: number;
    try {
      done = await link.within(moderate(link.redis, {
        key,
        value,
        until: options.until,
        message,
        deadline: now + REDIS_TIMEOUT_MS / 2,
        registered: options.registered ? value : undefined,
      }));
    } catch (error) {
      throw cannotSave(describe(error));
    }
    if (done < 0) throw cannotSave("Redis took too long; nothing was changed");
    if (done > 0) this.#apply(key, value || undefined, false);
    return done > 0;
  }

  /** Takes a value into the copy, telling of the change unless it is this server's own: whether
   * the copy changed. */
  #apply(key: string, value: string | undefined, isTold: boolean, by?: string): boolean {
    if (this.#raw.get(key) === value) return false;
    const parsed = value === undefined ? undefined : parseValue(key, value);
    const before = this.#forget(key);
    if (parsed && value !== undefined) {
      this.#raw.set(key, value);
      this.#keep(key, parsed);
    }
    const change = changeOf(before, parsed, { now: this.#hooks.now(), by });
    if (change && isTold) this.onChange?.(change);
    return change !== undefined;
  }

  #keep(key: string, value: Value): void {
    if (value.kind === "operator") this.#operators.set(key.slice(3), value.name);
    else if (value.kind === "ban") this.#bans.set(key, value.ban);
    else if (value.kind === "mute") this.#mutes.set(key, value.mute);
    else this.#topic = value.topic;
  }

  /** Drops a value from the copy, answering what it was. */
  #forget(key: string): Value | undefined {
    const raw = this.#raw.get(key);
    if (raw === undefined) return;
    this.#raw.delete(key);
    const value = parseValue(key, raw);
    if (value?.kind === "operator") this.#operators.delete(key.slice(3));
    else if (value?.kind === "ban") this.#bans.delete(key);
    else if (value?.kind === "mute") this.#mutes.delete(key);
    else if (value?.kind === "topic") this.#topic = undefined;
    return value;
  }
}

/** What a server is told of a change from `before` to `after`; nothing when a timed value ran out
 * (it ended by itself, everywhere at once). */
function changeOf(
  before: Value | undefined,
  after: Value | undefined,
  { now, by }: { now: number; by: string | undefined },
): ModerationChange | undefined {
  const byWhom = by === undefined ? {} : { by };
  if (after?.kind === "operator") {
    return { kind: "operator", name: after.name, isOperator: true, ...byWhom };
  }
  if (after?.kind === "ban") return { kind: "ban", ban: after.ban };
  if (after?.kind === "mute") return { kind: "mute", mute: after.mute };
  if (after?.kind === "topic") return { kind: "topic", topic: after.topic };
  if (before?.kind === "operator") {
    return { kind: "operator", name: before.name, isOperator: false, ...byWhom };
  }
  if (before?.kind === "topic") return { kind: "topic", topic: undefined };
  if (before?.kind === "ban" && !hasEnded(before.ban, now)) {
    return { kind: "unban", target: before.ban.target, ...byWhom };
  }
  if (before?.kind === "mute" && !hasEnded(before.mute, now)) {
    return { kind: "unmute", name: before.mute.name, ...byWhom };
  }
}

/** A change that could not be made: what the operator is told. */
function cannotSave(why: string): StoreError {
  return new StoreError(`The server cannot save it now (${why}): try again later`);
}

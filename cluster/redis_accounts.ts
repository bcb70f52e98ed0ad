/**
 * The registered names of the cluster, in Redis (`chat:account:KEY`, the scrypt hash as JSON,
 * never a password), with this server's copy of them: read at every heal, kept current by the
 * other servers' events, and what answers while the room is partitioned. A change is made in Redis
 * first, only while the room is whole, and then in the copy, so that what a member is told holds.
 * The hub owns the link, and decides when it may be used (see {@linkcode StoreHooks}).
 */
import type { Log } from "../server/log.ts";
import type { Account } from "../server/passwords.ts";
import { type Accounts, StoreError } from "../server/hub.ts";
import { describe, nameKey } from "../protocol.ts";
import { accountJson, parseStoredAccount } from "./events.ts";
import { ACCOUNT_PREFIX, EPOCH_KEY, type Link, redact, REDIS_TIMEOUT_MS } from "./redis_link.ts";

/** What a store in Redis needs of the hub. */
export interface StoreHooks {
  /** The link to change Redis through: none while the room is partitioned. */
  link(): Link | undefined;
  /** Redis's clock, as this server estimates it (ms). */
  now(): number;
  /** This server's id, carried by the events it publishes. */
  origin: string;
  /** Tells the other servers that a registered name changed. */
  changed(name: string): void;
}

/** The registered names this server knows, and the Redis they come from. */
export class RedisAccounts implements Accounts {
  #url: string;
  #log: Log;
  #hooks: StoreHooks;
  #accounts = new Map<string, Account>();
  #areAccountsRead = false;
  /** Redis's mark of its data (see {@linkcode EPOCH_KEY}) as this server first found it. */
  #epoch: string | undefined;

  /** The accounts of the Redis at `url` (for the log, without its password). */
  constructor(url: string, log: Log, hooks: StoreHooks) {
    this.#url = url;
    this.#log = log;
    this.#hooks = hooks;
  }

  /** Whether the last heal found that Redis had lost the chat's data (see {@linkcode EPOCH_KEY}). */
  wasLost = false;

  /** The account of a registered name, as this server knows it. */
  get(name: string): Account | undefined {
    return this.#accounts.get(nameKey(name));
  }

  get size(): number {
    return this.#accounts.size;
  }

  /**
   * A new link healed: writes back every name this server knew if Redis lost them, then reads
   * them all. Answers, the first time only, the names now known to be registered: a member here
   * under one of them joined before this server could know (it started while Redis was out of
   * reach), so without its password.
   */
  async heal(link: Link): Promise<Set<string>> {
    this.wasLost = await this.#checkEpoch(link);
    if (this.wasLost) await this.#restoreAccounts(link);
    await this.#readAccounts(link);
    if (this.#areAccountsRead) return new Set();
    this.#areAccountsRead = true;
    return new Set(this.#accounts.keys());
  }

  /** Reads one registered name again, after another server changed it. */
  refresh(link: Link, name: string): void {
    link.within(link.redis.get(ACCOUNT_PREFIX + nameKey(name))).then((value) => {
      const account = parseStoredAccount(value);
      if (account) this.#accounts.set(nameKey(name), account);
      else this.#accounts.delete(nameKey(name));
    }, () => {}); // the link broke: the next heal reads every name again
  }

  /** Registers a name, or replaces `previous`'s password, in Redis and then here. */
  async save(account: Account, previous?: Account): Promise<void> {
    const done = await this.#change({
      name: account.name,
      previous,
      value: accountJson(account),
    });
    if (done === 0) {
      throw new StoreError(
        previous ? "The password changed meanwhile: try again" : "That name is registered already",
      );
    }
    this.#accounts.set(nameKey(account.name), account);
    this.#hooks.changed(account.name);
  }

  /** Gives up a name's password, in Redis and then here. */
  async remove(account: Account): Promise<void> {
    await this.#change({ name: account.name, previous: account, value: "" });
    this.#accounts.delete(nameKey(account.name));
    this.#hooks.changed(account.name);
  }

  /**
   * Reads Redis's mark of its data, setting it if there is none: true if it is not the one this
   * server found before, so Redis lost what it held (said in one log line).
   */
  async #checkEpoch(link: Link): Promise<boolean> {
    const epoch = await link.within((async () => {
      await link.redis.set(EPOCH_KEY, crypto.randomUUID(), { NX: true });
      return await link.redis.get(EPOCH_KEY);
    })());
    const wasLost = this.#epoch !== undefined && epoch !== this.#epoch;
    this.#epoch = epoch ?? undefined;
    if (wasLost) {
      this.#log(
        `redis: error: ${redact(this.#url)} lost the chat's data (restarted without ` +
          "saving, or flushed): its history is gone, and the " +
          `${this.#accounts.size} registered name(s) this server knew are written back from its ` +
          "own copy; keep Redis' data with appendonly yes or save (see the README)",
        { event: "redis data lost", level: "error", counts: { names: this.#accounts.size } },
      );
    }
    return wasLost;
  }

  /**
   * Writes back every registered name this server knew to a Redis that lost them, unless it holds
   * that name again already: without them, anyone could join as any of them without a password.
   */
  async #restoreAccounts(link: Link): Promise<void> {
    await link.within(Promise.all(
      [...this.#accounts.values()].map((account) =>
        link.redis.set(ACCOUNT_PREFIX + nameKey(account.name), accountJson(account), { NX: true })
      ),
    ));
  }

  /** Reads every registered name from Redis. */
  async #readAccounts(link: Link): Promise<void> {
    const keys: string[] = [];
    const scan = link.redis.scanIterator({ MATCH: `${ACCOUNT_PREFIX}*`, COUNT: 1000 });
    await link.within((async () => {
      for await (const batch of scan) keys.push(...batch);
    })());
    const values = keys.length > 0 ? await link.within(link.redis.mGet(keys)) : [];
    this.#accounts.clear();
    for (const value of values) {
      const account = parseStoredAccount(value);
      if (account) this.#accounts.set(nameKey(account.name), account);
    }
  }

  /**
   * Changes an account in Redis (see the link's `CHANGE_ACCOUNT`): 1 if done, 0 if its value was
   * not `previous`; a StoreError if it could not be done. Redis must run it within half the time
   * this server waits for the answer, by Redis's own clock, so that a change reported as failed
   * does not happen later: what the member is told is what happened.
   */
  async #change(
    change: { name: string; previous: Account | undefined; value: string },
  ): Promise<number> {
    const link = this.#hooks.link();
    if (!link) {
      throw new StoreError(
        "The room is partitioned: registered names cannot change until it is whole again",
      );
    }
    const deadline = String(Math.floor(this.#hooks.now() + REDIS_TIMEOUT_MS / 2));
    const key = ACCOUNT_PREFIX + nameKey(change.name);
    const args = [deadline, change.previous ? accountJson(change.previous) : "", change.value];
    let done: number;
    try {
      done = await link.within(link.redis.changeAccount(key, args));
    } catch (error) {
      throw new StoreError(`Redis did not take it (${describe(error)}): try again later`);
    }
    if (done < 0) {
      throw new StoreError("Redis took too long: nothing was changed; try again later");
    }
    return done;
  }
}

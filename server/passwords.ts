/**
 * Registered names: passwords hashed with scrypt (a salt per name, the parameters kept beside each
 * hash), checked in constant time, never more than a few at once, and the backoff that slows
 * guessing, per name and per address.
 */
import { randomBytes, scrypt, timingSafeEqual } from "node:crypto";
import { nameKey, ProtocolError } from "../protocol.ts";

/** A registered name, as the store keeps it: never the password, only its scrypt hash. */
export interface Account {
  /** The name as registered (its key, regardless of case, is what is unique). */
  name: string;
  /** The salt and the hash, base64. */
  salt: string;
  hash: string;
  /** scrypt's parameters for this hash: cost (N), block size (r), parallelism (p). */
  cost: number;
  blockSize: number;
  parallelism: number;
}

/**
 * scrypt's parameters for new hashes: one of OWASP's equivalent settings (N = 2^14, r = 8, p = 5),
 * which takes 16 MiB and about 0.1 to 0.4 s of one core per hash. Older hashes keep their own
 * parameters and are hashed again with these at the next good login.
 */
export const SCRYPT_PARAMETERS = { cost: 2 ** 14, blockSize: 8, parallelism: 5 } as const;
const KEY_BYTES = 32;
const SALT_BYTES = 16;
/** Hashes computed at once: each takes a core and 16 MiB, and a flood of logins must not take all. */
const MAX_HASHING = 2;
/** Checks waiting for a turn; beyond this a login is refused at once, as a busy server. */
const MAX_WAITING = 64;
/** New hashes (registrations, new passwords) waiting for a turn, behind every check. */
const MAX_WAITING_NEW = 16;

let hashing = 0;
/** Password checks (logins, /nick, the current password) waiting: served first, so that owners
 * get in while a flood of registrations waits. */
const waiting: (() => void)[] = [];
/** New hashes waiting: served when no check waits. */
const waitingNew: (() => void)[] = [];

/** Runs scrypt off the event loop (node:crypto's async scrypt), a few at a time, checks first. */
async function derive(
  password: string,
  salt: Uint8Array,
  parameters: { cost: number; blockSize: number; parallelism: number },
  isCheck: boolean,
): Promise<Uint8Array> {
  if (hashing >= MAX_HASHING) {
    const queue = isCheck ? waiting : waitingNew;
    if (queue.length >= (isCheck ? MAX_WAITING : MAX_WAITING_NEW)) {
      throw new ProtocolError("The server is busy checking passwords: try again in a moment");
    }
    // Woken with the slot of the hash that ended: handed over, so nobody can take it meanwhile.
    await new Promise<void>((resolve) => queue.push(resolve));
  } else hashing++;
  try {
    const { cost: N, blockSize: r, parallelism: p } = parameters;
    // scrypt needs 128 * N * r bytes; node's default ceiling (32 MiB) is lifted just enough.
    const maxmem = 128 * N * r + 1024 * 1024;
    return await new Promise<Uint8Array>((resolve, reject) =>
      scrypt(
        password,
        salt,
        KEY_BYTES,
        { N, r, p, maxmem },
        (error, key) => error ? reject(error) : resolve(new Uint8Array(key)),
      )
    );
  } finally {
    const next = waiting.shift() ?? waitingNew.shift();
    if (next) next();
    else hashing--;
  }
}

/** A new account for `name` with `password`, salted afresh; hashed after every check waiting. */
export async function hashPassword(name: string, password: string): Promise<Account> {
  const salt = new Uint8Array(randomBytes(SALT_BYTES));
  const key = await derive(password, salt, SCRYPT_PARAMETERS, false);
  return { name, salt: toBase64(salt), hash: toBase64(key), ...SCRYPT_PARAMETERS };
}

/** Whether `password` is the account's, compared in constant time. */
export async function verifyPassword(account: Account, password: string): Promise<boolean> {
  const expected = fromBase64(account.hash);
  const key = await derive(password, fromBase64(account.salt), account, true);
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/** Whether an account's hash was made with other parameters than today's. */
export function isOutdated(account: Account): boolean {
  return account.cost !== SCRYPT_PARAMETERS.cost ||
    account.blockSize !== SCRYPT_PARAMETERS.blockSize ||
    account.parallelism !== SCRYPT_PARAMETERS.parallelism;
}

/** An account read from a store, checked field by field; undefined if it is not one we wrote. */
export function parseAccount(value: unknown): Account | undefined {
  if (typeof value !== "object" || value === null) return;
  const { name, salt, hash, cost, blockSize, parallelism } = value as Record<string, unknown>;
  const isBase64 = (text: unknown) => typeof text === "string" && /^[A-Za-z0-9+/]+=*$/.test(text);
  const isWhole = (n: unknown, max: number) => Number.isSafeInteger(n) && +n! >= 1 && +n! <= max;
  if (typeof name !== "string" || !/^[A-Za-z0-9_-]{1,32}$/.test(name)) return;
  if (!isBase64(salt) || !isBase64(hash)) return;
  // Bounds that keep a forged entry from asking for more memory or time than today's settings.
  if (!isWhole(cost, 2 ** 20) || !isWhole(blockSize, 16) || !isWhole(parallelism, 16)) return;
  return {
    name,
    salt: salt as string,
    hash: hash as string,
    cost: cost as number,
    blockSize: blockSize as number,
    parallelism: parallelism as number,
  };
}

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

function fromBase64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
}

/**
 * Wrong passwords allowed before any wait: typing mistakes. After that each one doubles the wait,
 * from 1 s up to {@linkcode MAX_GUESS_WAIT_MS}.
 */
export const FREE_GUESSES = 3;
export const MAX_GUESS_WAIT_MS = 60_000;
/** Names and addresses with failures remembered at most (the oldest is forgotten first). */
const MAX_REMEMBERED = 65_536;

interface Failures {
  count: number;
  /** When the next attempt may be made (ms since the epoch). */
  until: number;
  /** When the last one was: after twice the longest wait without one, the slate is clean. */
  at: number;
}

/**
 * Exponential backoff of wrong passwords, per name and per address: each failure past the free
 * ones doubles how long the next attempt must wait. Guessing one name from many addresses, or many
 * names from one, is slowed alike. A good password clears its name's count, not its address's (an
 * attacker with an account of its own could otherwise clear its address between guesses).
 *
 * An attempt is reserved ({@linkcode GuessBackoff.admit}) before its password is hashed and settled
 * after: guesses sent together cannot all pass the check before the first of them is counted. Only
 * as many attempts as free guesses are left may be checked at once for a name or an address, and
 * one at a time past them.
 */
export class GuessBackoff {
  #names = new Map<string, Failures>();
  #addresses = new Map<string, Failures>();
  /** Attempts being checked now, per name key and per address: each may yet be a failure. */
  #pendingNames = new Map<string, number>();
  #pendingAddresses = new Map<string, number>();

  /**
   * How long an attempt on `name` from `address` must wait, in ms (0: it may go ahead). An
   * `address` of `undefined` (one exempt from per-address limits) counts for the name alone.
   */
  wait(name: string, address: string | undefined, now = Date.now()): number {
    const waitOf = (failures: Failures | undefined) =>
      failures ? Math.max(0, failures.until - now) : 0;
    return Math.max(
      waitOf(this.#current(this.#names, nameKey(name), now)),
      waitOf(address === undefined ? undefined : this.#current(this.#addresses, address, now)),
    );
  }

  /**
   * Reserves an attempt on `name` from `address` before its password is checked: 0 when it may go
   * ahead (then {@linkcode settle} must follow), else how long to wait, in ms. An attempt over the
   * number that may be checked at once waits a second, about as long as one check takes.
   */
  admit(name: string, address: string | undefined, now = Date.now()): number {
    const wait = this.wait(name, address, now);
    if (wait > 0) return wait;
    const keys = this.#keys(name, address);
    for (const [table, pending, key] of keys) {
      const left = FREE_GUESSES - (this.#current(table, key, now)?.count ?? 0);
      if ((pending.get(key) ?? 0) >= Math.max(1, left)) return 1000;
    }
    for (const [, pending, key] of keys) pending.set(key, (pending.get(key) ?? 0) + 1);
    return 0;
  }

  /** Ends an attempt that {@linkcode admit} let through: right, wrong, or not checked at all. */
  settle(
    name: string,
    address: string | undefined,
    isRight: boolean | undefined,
    now = Date.now(),
  ): void {
    for (const [, pending, key] of this.#keys(name, address)) {
      const count = (pending.get(key) ?? 0) - 1;
      if (count > 0) pending.set(key, count);
      else pending.delete(key);
    }
    if (isRight === true) this.succeed(name);
    else if (isRight === false) this.fail(name, address, now);
  }

  #keys(name: string, address: string | undefined) {
    const keys = [[this.#names, this.#pendingNames, nameKey(name)] as const];
    if (address !== undefined) keys.push([this.#addresses, this.#pendingAddresses, address]);
    return keys;
  }

  /** A wrong password for `name` from `address`. */
  fail(name: string, address: string | undefined, now = Date.now()): void {
    for (const [table, , key] of this.#keys(name, address)) {
      const failures = this.#current(table, key, now) ?? { count: 0, until: 0, at: now };
      failures.count++;
      failures.at = now;
      const over = failures.count - FREE_GUESSES;
      failures.until = over > 0 ? now + Math.min(MAX_GUESS_WAIT_MS, 1000 * 2 ** (over - 1)) : 0;
      table.delete(key); // moved to the end: the most recent
      table.set(key, failures);
      if (table.size > MAX_REMEMBERED) table.delete(table.keys().next().value!);
    }
  }

  /** The right password for `name`: its count starts again. */
  succeed(name: string): void {
    this.#names.delete(nameKey(name));
  }

  /** Forgets what carries no information any more. */
  prune(now = Date.now()): void {
    for (const table of [this.#names, this.#addresses]) {
      for (const [key] of table) this.#current(table, key, now);
    }
  }

  #current(table: Map<string, Failures>, key: string, now: number): Failures | undefined {
    const failures = table.get(key);
    if (failures && now - failures.at > 2 * MAX_GUESS_WAIT_MS) {
      table.delete(key);
      return;
    }
    return failures;
  }
}

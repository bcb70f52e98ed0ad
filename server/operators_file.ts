/**
 * `--operators-file FILE`, for a server with no `--store` and no `--redis`: one `NAME:HASH` a line
 * (the hash made by `chat admin hash`), each name registered with that password and an operator.
 * The file is only read: no other name can be registered, and these cannot be changed in the room.
 */
import { type Account, parseAccount } from "./passwords.ts";
import { type Accounts, StoreError } from "./hub.ts";
import { nameKey } from "../protocol.ts";

/** A password's scrypt hash as one word (PHC's string format): `$scrypt$ln=14,r=8,p=5$SALT$HASH`. */
export function formatHash(account: Account): string {
  const { cost, blockSize, parallelism, salt, hash } = account;
  return `$scrypt$ln=${Math.log2(cost)},r=${blockSize},p=${parallelism}$${salt}$${hash}`;
}

const HASH =
  /^\$scrypt\$ln=(\d{1,2}),r=(\d{1,2}),p=(\d{1,2})\$([A-Za-z0-9+/]+=*)\$([A-Za-z0-9+/]+=*)$/;

/**
 * The accounts of an operators file's text; a `TypeError` naming the line for one that is not
 * `NAME:HASH`. Blank lines and lines starting with `#` are skipped.
 */
export function parseOperatorsFile(text: string): Account[] {
  const accounts: Account[] = [];
  for (const [index, raw] of text.split("\n").entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    const match = HASH.exec(line.slice(colon + 1));
    const account = match && parseAccount({
      name: line.slice(0, colon),
      cost: 2 ** Number(match[1]),
      blockSize: Number(match[2]),
      parallelism: Number(match[3]),
      salt: match[4],
      hash: match[5],
    });
    if (colon === -1 || !account) {
      throw new TypeError(
        `line ${index + 1} is not NAME:HASH (a name, then a hash that chat admin hash printed)`,
      );
    }
    accounts.push(account);
  }
  return accounts;
}

/** The registered names of an operators file: read from memory, never changed. */
export class FixedAccounts implements Accounts {
  #accounts = new Map<string, Account>();

  constructor(accounts: readonly Account[]) {
    for (const account of accounts) this.#accounts.set(nameKey(account.name), account);
  }

  /** The names, as written. */
  get names(): string[] {
    return [...this.#accounts.values()].map((account) => account.name);
  }

  get(name: string): Account | undefined {
    return this.#accounts.get(nameKey(name));
  }

  get size(): number {
    return this.#accounts.size;
  }

  save(): Promise<void> {
    return Promise.reject(
      new StoreError(
        "This server keeps no registered names but its operators': its operator can start it " +
          "with --store FILE",
      ),
    );
  }

  remove(): Promise<void> {
    return this.save();
  }
}

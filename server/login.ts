/**
 * The login and account flow (ergo's nickserv, apart from the account store and the hashing in
 * passwords.ts): the server's password, a registered name's password at login and for `/nick`,
 * and `/register`, `/password` and `/unregister` with the secrets they ask for on the next line.
 * One small state machine per connection, written in the order its steps run. The read loop hands
 * it a connection's name, its account commands and the line after each prompt, and acts on what
 * it answers (let the peer in, rename it); it never calls back into the server.
 */
import type { Tally } from "./metrics.ts";
import { type Log, peerFields } from "./log.ts";
import { createHash, timingSafeEqual } from "node:crypto";
import { type Hub, StoreError } from "./hub.ts";
import type { Peer } from "./peer.ts";
import { replyTo } from "./peer.ts";
import { TokenBucket } from "./limits.ts";
import {
  type Account,
  GuessBackoff,
  hashPassword,
  isOutdated,
  verifyPassword,
} from "./passwords.ts";
import {
  encodeLine,
  formatCurrentPasswordPrompt,
  formatLoginPrompt,
  formatNewPasswordPrompt,
  formatSystemLine,
  GREETING,
  NAME_PROMPT,
  nameKey,
  normalizePassword,
  parseNewPassword,
  PRIVATE_GREETING,
  ProtocolError,
  quote,
  REGISTERED_GREETING,
} from "../protocol.ts";

/**
 * What the next line of a connection is, when it is a secret rather than a name or a chat line:
 * the server's password, a registered name's password at login or for `/nick`, or the current or
 * new password of `/register`, `/password` and `/unregister`. Such a line is never logged,
 * relayed, kept or echoed.
 */
type Awaiting =
  | { kind: "server" }
  | { kind: "login"; name: string; account: Account }
  | { kind: "nick"; name: string; account: Account }
  | { kind: "current"; account: Account; then: "password" | "unregister" }
  | { kind: "new"; previous?: Account };

/**
 * What the server does after a secret: nothing more, let the peer in under its registered name
 * (connections that hold the name give way: its owner logged in), or rename it (`/nick`).
 */
export type LoginOutcome =
  | void
  | { kind: "enter"; name: string }
  | { kind: "rename"; name: string };

/** Options for {@linkcode Login}. */
export interface LoginOptions {
  /** The room, whose accounts (if it keeps any) hold the registered names. */
  hub: Hub;
  /** The SHA-256 digest of the server's password, if it is private (see {@linkcode digest}). */
  serverPassword?: Uint8Array | undefined;
  /** Registrations and new passwords an hour from one address (0: no limit). */
  registerRate: number;
  log: Log;
  /** Where password checks and backoffs are counted for the metrics. */
  tally?: Tally;
}

/** Registrations and new passwords one connection may make in an hour, at most. */
const REGISTRATIONS_PER_CONNECTION = 3;

/** The key under which the server's password is backed off: no name can be it. */
const SERVER_PASSWORD_KEY = " server";

const GREETING_LINE = encodeLine(GREETING);
const REGISTERED_GREETING_LINE = encodeLine(REGISTERED_GREETING);
const PRIVATE_GREETING_LINE = encodeLine(PRIVATE_GREETING);
const NAME_PROMPT_LINE = encodeLine(NAME_PROMPT);

/** The login and account flow of every connection of one server. */
export class Login {
  #hub: Hub;
  #serverPassword: Uint8Array | undefined;
  #registerRate: number;
  #log: Log;
  #tally: Tally | undefined;
  /** Connections whose next line is a secret, and which one. */
  #awaiting = new Map<Peer, Awaiting>();
  #guesses = new GuessBackoff();
  /** Registrations and new passwords each connection has left (see `registerRate`). */
  #registrations = new WeakMap<Peer, TokenBucket>();
  /** Wrong passwords, and attempts refused while backing off, since the last log line about them;
   * with the names and addresses they came from. */
  #wrongPasswords = 0;
  #backedOff = 0;
  #guessNames = new Set<string>();
  #guessAddresses = new Set<string>();

  constructor(options: LoginOptions) {
    this.#hub = options.hub;
    this.#serverPassword = options.serverPassword;
    this.#registerRate = options.registerRate;
    this.#log = options.log;
    this.#tally = options.tally;
  }

  /** A renewed server password (its digest), asked of connections from now on. */
  changeServerPassword(digest: Uint8Array): void {
    this.#serverPassword = digest;
  }

  /**
   * A new connection: its greeting, which on a private server asks for the password first, and
   * otherwise says whether any name here is registered (the page then shows its password field).
   */
  greet(peer: Peer): Uint8Array {
    if (!this.#serverPassword) {
      return (this.#hub.accounts?.size ?? 0) > 0 ? REGISTERED_GREETING_LINE : GREETING_LINE;
    }
    this.#awaiting.set(peer, { kind: "server" });
    return PRIVATE_GREETING_LINE;
  }

  /** Whether the peer's next line is a secret (most lines are chat: then not even looked up). */
  isAwaiting(peer: Peer): boolean {
    return this.#awaiting.size > 0 && this.#awaiting.has(peer);
  }

  /** The peer's next line is not a secret after all (it was too long), or the peer is gone. */
  forget(peer: Peer): void {
    this.#awaiting.delete(peer);
  }

  /**
   * A name given at joining (`kind` "login") or to `/nick`: true when it is registered, and its
   * password is asked for on the next line, under the same deadline; a ProtocolError while its
   * name or address is backing off from wrong ones.
   */
  asksPassword(peer: Peer, name: string, kind: "login" | "nick" = "login"): boolean {
    const account = this.#hub.accounts?.get(name);
    if (!account) return false;
    this.#checkBackoff(peer, name);
    this.#awaiting.set(peer, { kind, name, account });
    peer.send(encodeLine(formatLoginPrompt(name)));
    return true;
  }

  /**
   * The line after a prompt: a secret. Whatever happens, the line itself goes nowhere: not to the
   * room, the log, the history, or back to the peer. A wrong one is told (and a peer not in the
   * room yet closed); a right one answers what the server does next.
   */
  async answer(peer: Peer, line: string): Promise<LoginOutcome> {
    const awaiting = this.#awaiting.get(peer)!;
    this.#awaiting.delete(peer);
    try {
      switch (awaiting.kind) {
        case "server":
          if (!await this.#isRight(peer, SERVER_PASSWORD_KEY, line)) {
            throw new ProtocolError("Wrong server password");
          }
          return peer.send(NAME_PROMPT_LINE);
        case "login":
          if (!await this.#isRight(peer, awaiting.name, line, awaiting.account)) {
            throw new ProtocolError(`Wrong password for ${quote(awaiting.name)}`);
          }
          if (peer.isEnding) return;
          return { kind: "enter", name: awaiting.name };
        default:
          return await this.#answerCommand(peer, line, awaiting);
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      peer.sendError(error.message);
      if (!peer.isJoined) peer.end();
    }
  }

  /** `/register`, `/password` and `/unregister`: each asks for what it needs on the next line. */
  runAccountCommand(
    peer: Peer,
    command: "register" | "password" | "unregister",
    password?: string,
  ): void | Promise<void> {
    const accounts = this.#hub.accounts;
    if (!accounts) {
      throw new ProtocolError(
        "This server keeps no registered names: its operator can start it with --store FILE",
      );
    }
    const account = accounts.get(peer.name);
    if (command === "register") {
      if (account) {
        throw new ProtocolError(
          `${account.name} is registered already: /password changes its password`,
        );
      }
      if (password !== undefined) return replyTo(peer, () => this.#register(peer, password));
      this.#awaiting.set(peer, { kind: "new" });
      return peer.send(encodeLine(formatNewPasswordPrompt(peer.name)));
    }
    if (!account) throw new ProtocolError(`${peer.name} is not registered: /register does it`);
    this.#awaiting.set(peer, { kind: "current", account, then: command });
    peer.send(encodeLine(formatCurrentPasswordPrompt(account.name)));
  }

  /** Forgets the backoff of names and addresses that have waited it out. */
  prune(now: number): void {
    this.#guesses.prune(now);
  }

  /** One log line for the wrong passwords since the last one, if there were any; then counts anew. */
  takeCounts(): { message: string; counts: Record<string, number> } | undefined {
    if (this.#wrongPasswords === 0 && this.#backedOff === 0) return;
    const counts = {
      wrongPasswords: this.#wrongPasswords,
      backedOff: this.#backedOff,
      names: this.#guessNames.size,
      addresses: this.#guessAddresses.size,
    };
    const refused = this.#backedOff > 0
      ? `, ${this.#backedOff} attempt(s) refused while backing off`
      : "";
    const line = `${this.#wrongPasswords} wrong password(s)${refused}, for ` +
      `${this.#guessNames.size} name(s) from ${this.#guessAddresses.size} address(es)`;
    this.#wrongPasswords = this.#backedOff = 0;
    this.#guessNames.clear();
    this.#guessAddresses.clear();
    return { message: line, counts };
  }

  /** The secrets of /register, /password, /unregister and /nick to a registered name. */
  async #answerCommand(peer: Peer, line: string, awaiting: Awaiting): Promise<LoginOutcome> {
    const accounts = this.#hub.accounts!;
    const isCancel = line === "" && awaiting.kind !== "nick";
    if (isCancel) return peer.send(encodeLine(formatSystemLine("Cancelled")));
    switch (awaiting.kind) {
      case "nick":
        if (!await this.#isRight(peer, awaiting.name, line, awaiting.account)) {
          throw new ProtocolError(`Wrong password for ${quote(awaiting.name)}`);
        }
        return { kind: "rename", name: awaiting.name };
      case "current":
        if (!await this.#isRight(peer, awaiting.account.name, line, awaiting.account)) {
          throw new ProtocolError(`Wrong password for ${quote(awaiting.account.name)}`);
        }
        if (awaiting.then === "password") {
          this.#awaiting.set(peer, { kind: "new", previous: awaiting.account });
          return peer.send(encodeLine(formatNewPasswordPrompt(peer.name)));
        }
        await this.#store(() => accounts.remove(awaiting.account));
        await this.#dropOperator(awaiting.account.name);
        this.#log(`${peer.label} gave up the name's password`, {
          event: "unregistered",
          ...peerFields(peer),
        });
        return peer.send(encodeLine(formatSystemLine(
          `${awaiting.account.name} is no longer registered: anyone may take it once you leave it`,
        )));
      case "new":
        return await this.#register(peer, line, awaiting.previous);
    }
  }

  /** Registers the peer's name with `password`, or replaces `previous`'s password. */
  async #register(peer: Peer, password: string, previous?: Account): Promise<void> {
    const accounts = this.#hub.accounts!;
    const name = peer.name;
    const fresh = parseNewPassword(password);
    this.#takeRegistration(peer);
    const account = await hashPassword(name, fresh);
    if (nameKey(peer.name) !== nameKey(name) || !peer.isJoined) {
      throw new ProtocolError("Your name changed meanwhile: nothing was registered");
    }
    await this.#store(() => accounts.save(account, previous));
    this.#log(`${peer.label} ${previous ? "changed the name's password" : "registered"}`, {
      event: previous ? "password changed" : "registered",
      ...peerFields(peer),
    });
    peer.send(encodeLine(formatSystemLine(
      previous
        ? `The password for ${name} is changed`
        : `${name} is registered: joining as ${name} now asks for its password`,
    )));
  }

  /**
   * Refuses an attempt at a password while its name or address is backing off from wrong ones:
   * the attempt is not even hashed.
   */
  #checkBackoff(peer: Peer, name: string, wait = this.#guesses.wait(name, guessKey(peer))): void {
    if (wait === 0) return;
    this.#backedOff++;
    if (this.#tally) this.#tally.backoffs++;
    this.#guessNames.add(nameKey(name));
    this.#guessAddresses.add(peer.address.key);
    const what = name === SERVER_PASSWORD_KEY ? "the server" : quote(name);
    throw new ProtocolError(
      `Too many wrong passwords for ${what}: try again in ${Math.ceil(wait / 1000)} s`,
    );
  }

  /**
   * Checks a password against an account (or the server's), counting a wrong one. The attempt is
   * reserved before it is hashed, so guesses sent together are counted as they come, not after.
   */
  async #isRight(peer: Peer, name: string, password: string, account?: Account): Promise<boolean> {
    this.#checkBackoff(peer, name, this.#guesses.admit(name, guessKey(peer)));
    const expected = this.#serverPassword;
    let isRight: boolean | undefined;
    try {
      isRight = account
        ? await verifyPassword(account, normalizePassword(password))
        : expected !== undefined && timingSafeEqual(digest(normalizePassword(password)), expected);
    } finally {
      this.#guesses.settle(name, guessKey(peer), isRight);
    }
    if (this.#tally) this.#tally.passwordChecks++;
    if (isRight) {
      if (account && isOutdated(account)) this.#rehash(account, password);
      return true;
    }
    this.#wrongPasswords++;
    if (this.#tally) this.#tally.wrongPasswords++;
    this.#guessNames.add(nameKey(name));
    this.#guessAddresses.add(peer.address.key);
    return false;
  }

  /** Hashes a password again with today's parameters after a good login (best effort). */
  #rehash(account: Account, password: string): void {
    const accounts = this.#hub.accounts;
    hashPassword(account.name, normalizePassword(password))
      .then((fresh) => accounts?.save(fresh, account))
      .catch(() => {}); // kept as it was: the next good login tries again
  }

  /**
   * Counts a registration or a new password against the connection's budget and its address's,
   * before it is hashed; a ProtocolError when either is spent. Each costs a hash, and a
   * registration a row kept for good.
   */
  #takeRegistration(peer: Peer): void {
    const rate = this.#registerRate;
    if (rate === 0) return;
    const now = Date.now();
    let mine = this.#registrations.get(peer);
    if (!mine) {
      const burst = Math.min(REGISTRATIONS_PER_CONNECTION, rate);
      mine = new TokenBucket({ burst, perSecond: rate / 3600, now });
      this.#registrations.set(peer, mine);
    }
    const address = peer.address.registrations;
    const [byConnection, byAddress] = [mine.wait(now), address?.wait(now) ?? 0];
    if (byConnection === 0 && byAddress === 0) {
      mine.take(now);
      address?.take(now);
      return;
    }
    const [where, most, wait] = byConnection > 0
      ? ["on this connection", mine.burst, byConnection]
      : [`from ${peer.address.key}`, rate, byAddress];
    throw new ProtocolError(
      `Too many registrations ${where}: at most ${most} an hour; try again in ` +
        `${Math.ceil(wait / 60_000)} min`,
    );
  }

  /** A name given up is no operator any more: operators are registered names. */
  async #dropOperator(name: string): Promise<void> {
    const moderation = this.#hub.moderation;
    if (!moderation?.isOperator(name)) return;
    // By the name itself, an act of its own: no server tells its room of it (as here).
    await this.#store(() => moderation.setOperator(name, false, name));
    this.#hub.operatorsChanged?.();
  }

  /** Runs a change of the store, turning its failure into an error line for the member. */
  async #store(change: () => Promise<void>): Promise<void> {
    try {
      await change();
    } catch (error) {
      if (error instanceof StoreError) throw new ProtocolError(error.message);
      throw error;
    }
  }
}

/** SHA-256 of a password, so that two of any lengths compare in constant time. */
export function digest(password: string): Uint8Array {
  return new Uint8Array(createHash("sha256").update(password).digest());
}

/** The address a peer's wrong passwords count against: none if it is exempt from those limits. */
function guessKey(peer: Peer): string | undefined {
  return peer.address.isExempt ? undefined : peer.address.key;
}

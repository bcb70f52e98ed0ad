/**
 * Resume tokens and the places they keep (the policy behind `--resume-grace`): a member whose
 * client asked for a token (`/resume NAME` as its first line) keeps its place for a grace period
 * when its connection ends without `/quit`, and comes back to it with `/resume NAME TOKEN`, the room
 * hearing neither a leave nor a join. A token is random, bound to one name, and good once: each
 * resume gives a new one. It dies with the grace period, at `/quit`, a kick, a ban, a take-over or
 * a rename (which gives a new one). It never calls back into the server.
 *
 * Tokens are held by their SHA-256 hash, never as given: so a store may keep them across a planned
 * restart (see {@linkcode PlaceRecord}) without keeping what would let anyone take the places.
 */
import { createHash } from "node:crypto";
import type { Member } from "./hub.ts";
import type { AddressState } from "./limits.ts";
import type { ConnKind, Peer } from "./peer.ts";
import { encodeResumeToken, isResumeToken, nameKey, RESUME_TOKEN_BYTES } from "../protocol.ts";

/**
 * Bytes of private lines (private messages, replies) a held place keeps for its member; more are
 * dropped, and the member is told how many lines it got. Room lines are never kept: the history a
 * resume shows has them.
 */
const KEPT_BYTES = 64 * 1024;

/**
 * A member's place while its connection is lost: still in the room (listed, and `/msg` reaches it),
 * reading no room log. It counts as a connection of its address until it expires or is resumed.
 */
export class HeldPlace implements Member {
  name: string;
  /** The lost connection's client address: an address ban on it holds for the place too. */
  readonly hostname: string;
  readonly address: AddressState;
  /** How the lost connection came (for `/whois`). */
  readonly kind: ConnKind;
  /** When the grace period ends (`Date.now()` time). */
  readonly expiresAt: number;
  /** Private lines sent to it meanwhile, at most {@linkcode KEPT_BYTES}. */
  readonly kept: Uint8Array[] = [];
  #keptBytes = 0;
  cursor = 0;
  log = undefined;
  stopAt = Infinity;
  readonly isSendingLog = false;
  /** Whether the room put it out itself (see {@linkcode end}). */
  isEnded = false;

  constructor(peer: Pick<Peer, "name" | "hostname" | "address" | "kind">, expiresAt: number) {
    this.name = peer.name;
    this.hostname = peer.hostname;
    this.address = peer.address;
    this.kind = peer.kind;
    this.expiresAt = expiresAt;
  }

  send(bytes: Uint8Array): void {
    if (this.#keptBytes + bytes.length > KEPT_BYTES) return;
    this.kept.push(bytes);
    this.#keptBytes += bytes.length;
  }

  welcome(): void {}
  /** The room put it out itself (in a cluster, a kick from another server): its token is dead. */
  end(): void {
    this.isEnded = true;
  }
  wake(): void {}
  overtake(): void {}
  skip(): void {}
}

/** Who a token stands for now: a member still connected, or its held place. */
export type Holder = Peer | HeldPlace;

/**
 * Why a token took no place: it is none the server gave or still holds (used, revoked, its member
 * gone), it is another name's, or its place's grace is over.
 */
export type ResumeRefusal = "unknown token" | "other name" | "past grace";

/**
 * A place as a store keeps it across a planned restart: a member's name, its token's hash, where it
 * came from, and until when (`Date.now()` time) it may be taken back.
 */
export interface PlaceRecord {
  name: string;
  /** The SHA-256 of the token, base64url (see {@linkcode hashToken}). */
  tokenHash: string;
  hostname: string;
  kind: ConnKind;
  until: number;
}

/** Where places are kept across a planned restart (the SQLite store). */
export interface PlaceStore {
  /** The places the last graceful shutdown kept, as the store read (and forgot) them at open. */
  readonly keptPlaces: readonly PlaceRecord[];
  /** Keeps `places` for the next start, in place of any kept before. */
  keepPlaces(places: readonly PlaceRecord[]): Promise<void>;
}

/** A token's hash as it is held and kept: SHA-256, base64url. */
export function hashToken(token: string): string {
  return createHash("sha256").update(token).digest("base64url");
}

/** Options for {@linkcode Resume}. */
export interface ResumeOptions {
  /** How long a place is kept after its connection ends, in ms (0: no tokens at all). */
  graceMs: number;
  /** Places held at once, at most (each holds a name and its kept lines); more are not kept. */
  maxHeld: number;
  /** Where the tokens' random bytes come from (crypto by default). */
  random?: (bytes: Uint8Array) => Uint8Array;
}

/** Every token of one server and the places they keep. */
export class Resume {
  readonly graceMs: number;
  #maxHeld: number;
  #random: (bytes: Uint8Array) => Uint8Array;
  /**
   * Tokens (their hashes) and who they stand for: a token is good for its holder's name alone (a
   * rename moves it).
   */
  #tokens = new Map<string, { holder: Holder }>();
  #tokenOf = new Map<Holder, string>();
  #held = new Set<HeldPlace>();
  /** The held places by name key: a restore of 10,000 places asks once per place. */
  #heldByName = new Map<string, HeldPlace>();

  constructor(options: ResumeOptions) {
    this.graceMs = options.graceMs;
    this.#maxHeld = options.maxHeld;
    this.#random = options.random ?? ((bytes) => crypto.getRandomValues(bytes));
  }

  /** Places held now: they count toward the connection limits. */
  get heldCount(): number {
    return this.#held.size;
  }

  /** Tokens alive now (for the tests' bound on memory). */
  get tokenCount(): number {
    return this.#tokens.size;
  }

  /** A new token for a member, under its current name; whatever token it had dies. */
  issue(peer: Peer): string | undefined {
    if (this.graceMs === 0) return undefined;
    this.revoke(peer);
    const token = encodeResumeToken(this.#random(new Uint8Array(RESUME_TOKEN_BYTES)));
    const hash = hashToken(token);
    this.#tokens.set(hash, { holder: peer });
    this.#tokenOf.set(peer, hash);
    return token;
  }

  /** The holder's token dies (it quit, was put out, was taken over): its place is not kept. */
  revoke(holder: Holder): void {
    const token = this.#tokenOf.get(holder);
    if (token === undefined) return;
    this.#tokenOf.delete(holder);
    this.#tokens.delete(token);
    if (holder instanceof HeldPlace) this.#release(holder);
  }

  /**
   * A member's connection ended without `/quit`: its place, kept for the grace period under the
   * same token, or undefined when it has no token or too many places are held (it leaves).
   */
  hold(peer: Peer, now: number): HeldPlace | undefined {
    const token = this.#tokenOf.get(peer);
    if (token === undefined) return undefined;
    this.#tokenOf.delete(peer);
    if (this.#held.size >= this.#maxHeld) {
      this.#tokens.delete(token);
      return undefined;
    }
    return this.#keep(new HeldPlace(peer, now + this.graceMs), token);
  }

  /**
   * A place kept by the server's last run (see {@linkcode PlaceRecord}), kept again until its
   * deadline (at most this run's grace from now) under the same token; undefined when its grace is
   * over, its name or token is held already, or too many places are held.
   */
  restore(record: PlaceRecord, address: AddressState, now: number): HeldPlace | undefined {
    if (this.graceMs === 0 || now >= record.until || this.#held.size >= this.#maxHeld) return;
    if (this.#tokens.has(record.tokenHash) || this.heldPlace(record.name)) return;
    const { name, hostname, kind } = record;
    // Never past this run's grace: a row edited by hand, or a grace shortened since, holds no longer.
    const until = Math.min(record.until, now + this.graceMs);
    return this.#keep(new HeldPlace({ name, hostname, address, kind }, until), record.tokenHash);
  }

  /**
   * What a store keeps at a planned shutdown: every place held, until its own deadline, and every
   * member holding a token, until `now` and the grace (they are about to lose their connection).
   */
  records(now: number): PlaceRecord[] {
    const records: PlaceRecord[] = [];
    for (const [tokenHash, { holder }] of this.#tokens) {
      const isHeld = holder instanceof HeldPlace;
      if (!isHeld && !holder.isJoined) continue;
      const until = isHeld ? holder.expiresAt : now + this.graceMs;
      const { name, hostname, kind } = holder;
      records.push({ name, tokenHash, hostname, kind, until });
    }
    return records;
  }

  #keep(place: HeldPlace, tokenHash: string): HeldPlace {
    this.#tokens.set(tokenHash, { holder: place });
    this.#tokenOf.set(place, tokenHash);
    this.#held.add(place);
    this.#heldByName.set(nameKey(place.name), place);
    place.address.connections++;
    return place;
  }

  /**
   * Uses a token for `name`: who holds the place (a held place, or a connection not yet seen to be
   * lost), or why the token holds none for that name. Good once: a token that takes its place, or
   * whose place is gone (put out, or its connection no longer joined), dies; one given with another
   * name, or for a place past its grace (the next sweep forgets it), is left as it was.
   */
  take(name: string, token: string, now: number): Holder | ResumeRefusal {
    return isResumeToken(token) ? this.takeHash(name, hashToken(token), now) : "unknown token";
  }

  /** {@linkcode take}, for the token whose hash is `hash` (another server asks for its place). */
  takeHash(name: string, hash: string, now: number): Holder | ResumeRefusal {
    const entry = this.#tokens.get(hash);
    if (!entry) return "unknown token";
    if (nameKey(entry.holder.name) !== nameKey(name)) return "other name";
    const holder = entry.holder;
    if (holder instanceof HeldPlace && holder.isEnded) {
      this.revoke(holder);
      return "unknown token";
    }
    // Past its grace, a place is due to leave at the next sweep, which forgets its token.
    if (holder instanceof HeldPlace && now >= holder.expiresAt) return "past grace";
    this.#tokens.delete(hash);
    this.#tokenOf.delete(holder);
    if (holder instanceof HeldPlace) this.#release(holder);
    else if (!holder.isJoined) return "unknown token";
    return holder;
  }

  /** The held place of `name`, if one is kept (a take-over or a ban ends it). */
  heldPlace(name: string): HeldPlace | undefined {
    return this.#heldByName.get(nameKey(name));
  }

  /** Places whose grace period is over: they are forgotten here, and must leave the room. */
  expire(now: number): HeldPlace[] {
    const over: HeldPlace[] = [];
    for (const place of this.#held) {
      if (now < place.expiresAt) continue;
      this.revoke(place);
      this.#release(place);
      over.push(place);
    }
    return over;
  }

  /** Every held place, for shutdown. */
  get held(): HeldPlace[] {
    return [...this.#held];
  }

  #release(place: HeldPlace): void {
    if (!this.#held.delete(place)) return;
    const key = nameKey(place.name);
    if (this.#heldByName.get(key) === place) this.#heldByName.delete(key);
    place.address.connections--;
  }
}

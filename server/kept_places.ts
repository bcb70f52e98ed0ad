/**
 * The server's side of resume (`--resume-grace`): a member whose client asked for a token keeps its
 * place in the room when its connection is lost, comes back to it with `/resume NAME TOKEN` (the
 * room hearing nothing), or leaves with the normal notice once its grace is over. The tokens
 * themselves are server/resume.ts's; this file joins them to the hub, the log and the metrics.
 * It never calls back into the server.
 */
import type { CloseReason, Hub } from "./hub.ts";
import { hashToken, HeldPlace, type PlaceStore, Resume } from "./resume.ts";
import type { AddressState } from "./limits.ts";
import type { Peer } from "./peer.ts";
import { Tally } from "./metrics.ts";
import { type Log, peerFields } from "./log.ts";
import {
  describe,
  encodeLine,
  formatResumed,
  formatResumeFailed,
  formatResumeToken,
  isResumeToken,
  RESUMED_ELSEWHERE,
} from "../protocol.ts";

/** Options for {@linkcode KeptPlaces}. */
export interface KeptPlacesOptions {
  hub: Hub;
  log: Log;
  tally: Tally;
  /** How long a place is kept, in ms; 0 (or a hub that cannot keep places) keeps none. */
  graceMs: number;
  /** Places kept at once, at most. */
  maxHeld: number;
  /** The notice of the server's limits, which a resumed member is told again. */
  limitsNotice: string;
  /** The notices after the welcome (the topic...), for a member who resumed. */
  welcomeNotices(peer: Peer): string[];
  /** Where places outlive a planned restart (`--store`): read now, written at shutdown. */
  store?: PlaceStore;
  /** The state of a client address, for a place restored from the store. */
  addressOf(hostname: string): AddressState;
  /** Whether a ban holds for the name or the address (made while the server was down). */
  isBanned(name: string, hostname: string): boolean;
}

/** Every place kept for a member whose connection was lost, and the tokens that take them back. */
export class KeptPlaces {
  #options: KeptPlacesOptions;
  #resume: Resume;
  /** Members whose client asked for a resume token (`/resume NAME`). */
  #wantsToken = new WeakSet<Peer>();

  constructor(options: KeptPlacesOptions) {
    this.#options = options;
    this.#resume = new Resume({
      graceMs: options.hub.replace ? options.graceMs : 0,
      maxHeld: options.maxHeld,
    });
    this.#restore();
    options.hub.keepPlacesWith?.(this);
  }

  /** Places kept now: each counts as a connection of its address. */
  get heldCount(): number {
    return this.#resume.heldCount;
  }

  /** Every place kept now (moderation may put one out). */
  get held(): HeldPlace[] {
    return this.#resume.held;
  }

  /** The peer's client asked for a token (`/resume NAME` as its first line). */
  wantsToken(peer: Peer): void {
    this.#wantsToken.add(peer);
  }

  /** A new resume token for a member whose client asked for one (the old one dies). */
  sendToken(peer: Peer): void {
    const token = this.#wantsToken.has(peer) ? this.#resume.issue(peer) : undefined;
    if (token) peer.send(encodeLine(formatResumeToken(token, this.#resume.graceMs / 1000)));
  }

  /** A connection ended that was not in the room (or no longer): its token dies with it. */
  forget(peer: Peer): void {
    this.#resume.revoke(peer);
  }

  /**
   * A member's connection was lost: its place is kept if its client holds a token (true: nobody
   * hears anything yet), or not (false: it must leave).
   */
  keep(peer: Peer): boolean {
    const place = this.#resume.hold(peer, Date.now());
    if (!place) return false;
    if (!this.#options.hub.replace!(peer, place)) {
      this.#resume.revoke(place);
      return false;
    }
    peer.isJoined = false; // its place stands for it now (moderation must not see both)
    const why = peer.closeReason ? ` (${peer.closeReason})` : "";
    this.#options.log(`${peer.label} lost its connection${why}: its place is kept`, {
      event: "held",
      ...peerFields(peer),
    });
    return true;
  }

  /**
   * `/resume NAME TOKEN` as a first line: the peer takes the place the token keeps, and the room
   * hears nothing. False (told so) when the token keeps none for that name: the peer joins anew.
   * A kick or a ban puts out a kept place as it does a member (see `members` for moderation), so
   * its token is dead by then.
   */
  async resumeWith(peer: Peer, name: string, token: string): Promise<boolean> {
    const holder = this.#resume.take(name, token, Date.now());
    if (holder === "unknown token" && await this.#resumeElsewhere(peer, name, token)) return true;
    if (typeof holder === "string") {
      Tally.bump(this.#options.tally.resumeRefusals, holder);
      if (this.#resume.graceMs > 0) peer.send(encodeLine(formatResumeFailed(name)));
      return false;
    }
    const kept = holder instanceof HeldPlace ? holder.kept : [];
    const { hub, limitsNotice, tally } = this.#options;
    if (!hub.replace!(holder, peer, [limitsNotice, formatResumed(kept.length)])) {
      // The room no longer has it under its name (put out meanwhile): nothing to take back.
      Tally.bump(tally.resumeRefusals, "unknown token");
      peer.send(encodeLine(formatResumeFailed(name)));
      return false;
    }
    if (!(holder instanceof HeldPlace)) {
      // Its old connection, not yet seen lost (a phone asleep), gives way without a leave.
      holder.isJoined = false;
      holder.send(encodeLine(RESUMED_ELSEWHERE));
      holder.end();
    }
    for (const bytes of kept) peer.send(bytes);
    this.#inAgain(peer, "resumed its place");
    return true;
  }

  /** The member is in its place again: the notices after the welcome and a new token; counted. */
  #inAgain(peer: Peer, how: string): void {
    for (const notice of this.#options.welcomeNotices(peer)) peer.send(encodeLine(notice));
    peer.isJoined = true;
    this.sendToken(peer);
    Tally.bump(this.#options.tally.resumes, "taken");
    this.#options.log(`${peer.label} ${how}`, { event: "resumed", ...peerFields(peer) });
  }

  /**
   * Cluster: the token is another server's, which keeps the place: it gives it up without a word,
   * and the peer joins under the name with nobody hearing it. False if no server kept it.
   */
  async #resumeElsewhere(peer: Peer, name: string, token: string): Promise<boolean> {
    const { hub, limitsNotice } = this.#options;
    if (!hub.takePlace || !isResumeToken(token)) return false;
    if (!await hub.takePlace(name, hashToken(token))) return false;
    peer.name = name;
    await hub.join(peer, [limitsNotice, formatResumed(0)], true);
    this.#inAgain(peer, "resumed its place from another server");
    return true;
  }

  /**
   * Cluster: another server asks for the place of `name` kept here, its member having come back
   * there with the token whose hash is `tokenHash`: given up without a word to the room, true; false
   * if no place is kept here for that token.
   */
  giveUp(name: string, tokenHash: string): boolean {
    const holder = this.#resume.takeHash(name, tokenHash, Date.now());
    if (typeof holder === "string") return false;
    const { hub, log, tally } = this.#options;
    Tally.bump(tally.resumes, "given up");
    if (!(holder instanceof HeldPlace)) {
      holder.isJoined = false; // a connection not yet seen lost gives way
      holder.send(encodeLine(RESUMED_ELSEWHERE));
    }
    hub.leave(holder, { notice: "" });
    holder.end();
    log(`${name} resumed its place on another server`, { event: "resumed elsewhere", name });
    return true;
  }

  /**
   * A planned shutdown: the places kept and the members holding a token are kept in the store (if
   * any) for the next start, so that a restart within the grace is no leave and rejoin.
   */
  async keepForRestart(): Promise<void> {
    const { store, log } = this.#options;
    const records = this.#resume.records(Date.now());
    // None to keep: the store forgot the last run's when it opened.
    if (!store || records.length === 0) return;
    try {
      await store.keepPlaces(records);
      log(`${records.length} place(s) kept for the next start`, {
        event: "places kept",
        counts: { places: records.length },
      });
    } catch (error) {
      log(`cannot keep places for the next start: ${describe(error)}`, {
        event: "places not kept",
        level: "error",
        reason: describe(error),
      });
    }
  }

  /**
   * The places the server's last run kept at its shutdown (`--store`): each is in the room again,
   * unheard, until its deadline, for its member to take back with the same token.
   */
  #restore(): void {
    const { store, addressOf, isBanned } = this.#options;
    const now = Date.now();
    for (const record of store?.keptPlaces ?? []) {
      // An operator may have banned it while the server was down: its place is gone with it.
      if (isBanned(record.name, record.hostname)) continue;
      const place = this.#resume.restore(record, addressOf(record.hostname), now);
      if (!place) continue;
      if (!this.#options.hub.restore?.(place)) {
        this.#resume.revoke(place);
        continue;
      }
      this.#options.log(`${place.name}'s place is kept from before the restart`, {
        event: "held",
        name: place.name,
      });
    }
  }

  /** The owner of a registered name logged in again: the place kept for it, if any, leaves. */
  takeOver(name: string): void {
    const place = this.#resume.heldPlace(name);
    if (place) this.leave(place, "logged in elsewhere");
  }

  /** Places whose grace is over leave the room. */
  expire(now: number): void {
    for (const place of this.#resume.expire(now)) {
      if (place.isEnded) continue; // put out already, and heard of then
      Tally.bump(this.#options.tally.resumes, "expired");
      this.leave(place);
    }
  }

  /**
   * A kept place is given up (its grace is over, a take-over, a kick or a ban): the room hears it
   * left, or `notice` instead (an operator put it out).
   */
  leave(place: HeldPlace, problem?: CloseReason, notice?: string): void {
    this.#resume.revoke(place);
    const { hub, tally, log } = this.#options;
    hub.leave(place, {
      ...problem ? { problem } : {},
      ...notice === undefined ? {} : { notice },
    });
    Tally.bump(tally.leaves, problem ?? "disconnected");
    log(`${place.name} left (${problem ?? "not back in time"})`, {
      event: "leave",
      name: place.name,
      reason: problem ?? "disconnected",
    });
  }
}

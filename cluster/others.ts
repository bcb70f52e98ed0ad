/**
 * This server's view of the other servers of the cluster, from their events: when each last spoke,
 * its claims' lifetime, and its members, who are also found by name. Bookkeeping only: each change
 * answers what the members here are to be told, and the hub tells them.
 */
import { formatJoin, formatLeave, formatQuit, formatRename, nameKey } from "../protocol.ts";
import type { CloseReason } from "../server/hub.ts";
import { isOlder, type RemoteMember } from "./events.ts";

/** What this server knows of another: when it last spoke, its claims' lifetime, its members. */
export interface OtherServer {
  heardAt: number;
  ttl: number;
  members: Map<string, RemoteMember>;
}

/** A line for the members here; a notice (a join, a leave) waits a little to go with the others. */
export interface Told {
  line: string;
  isNotice: boolean;
}

/** Why the room is told someone left who took a name on another side of a partition. */
export const NAME_TAKEN: CloseReason = "name taken during a partition";
const SERVER_LOST: CloseReason = "server lost";

/** The other servers and their members. */
export class OtherServers {
  #servers = new Map<string, OtherServer>();
  /** Their members by name key. */
  #byName = new Map<string, RemoteMember>();
  #claimTtlMs: number;

  /** An empty view; a server is taken to renew its claims every `claimTtlMs` until it says. */
  constructor(claimTtlMs: number) {
    this.#claimTtlMs = claimTtlMs;
  }

  /** The member of another server who holds the name key `key`, if any. */
  holder(key: string): RemoteMember | undefined {
    return this.#byName.get(key);
  }

  /** Every member of the other servers. */
  members(): IterableIterator<RemoteMember> {
    return this.#byName.values();
  }

  /** Notes that another server spoke, and returns what is known of it. */
  heardFrom(origin: string, now = performance.now()): OtherServer {
    let other = this.#servers.get(origin);
    if (!other) {
      other = { heardAt: 0, ttl: this.#claimTtlMs, members: new Map() };
      this.#servers.set(origin, other);
    }
    other.heardAt = now;
    return other;
  }

  /** Counts every server as heard from now (this server healed, and has not heard them yet). */
  heardAll(now: number): void {
    for (const other of this.#servers.values()) other.heardAt = now;
  }

  /**
   * Forgets the servers silent for longer than their claims' lifetime before `confirmedAt` (up to
   * when the channel certainly delivered), and their members: what the members here are told.
   */
  dropSilent(confirmedAt: number): Told[] {
    const told: Told[] = [];
    for (const [origin, other] of this.#servers) {
      if (confirmedAt - other.heardAt <= other.ttl) continue;
      this.#servers.delete(origin);
      for (const member of other.members.values()) {
        told.push(this.forget(member, { problem: SERVER_LOST }));
      }
    }
    return told;
  }

  /** Whether the view has this member under this name already: admitting it changes nothing. */
  has(other: OtherServer, member: RemoteMember): boolean {
    return other.members.get(member.id)?.name === member.name;
  }

  /**
   * Brings another server's member into the view (no member here holds its name): it entered, or
   * was renamed if known. Of two people with one name on other servers (taken on two sides of a
   * partition), the one who has held it longer stays, and the other's server sends it away.
   * A member who took back its place from another server (`isResumed`) is no news.
   */
  admit(other: OtherServer, member: RemoteMember, isResumed = false): Told[] {
    const known = other.members.get(member.id);
    const key = nameKey(member.name);
    const told: Told[] = [];
    const rival = this.#byName.get(key);
    if (rival && rival !== known) {
      if (isOlder(rival, member)) return told;
      told.push(this.forget(rival, { problem: NAME_TAKEN }));
    }
    if (known) this.#byName.delete(nameKey(known.name));
    other.members.set(member.id, member);
    this.#byName.set(key, member);
    const line = known ? formatRename(known.name, member.name) : formatJoin(member.name);
    if (known || !isResumed) told.push({ line, isNotice: !known });
    return told;
  }

  /**
   * Takes another server's member out of the view: why it left, for the members here. `problem`
   * is ours, or the other server's words (its event's text, checked as a client's); `notice` is
   * what the room hears instead of a leave line (a kick's; "" for nothing).
   */
  forget(
    member: RemoteMember,
    why: { problem?: string | undefined; quit?: string | undefined; notice?: string | undefined } =
      {},
  ): Told {
    this.#servers.get(member.server)?.members.delete(member.id);
    if (this.#byName.get(nameKey(member.name)) === member) {
      this.#byName.delete(nameKey(member.name));
    }
    const { problem, quit, notice } = why;
    const line = notice ??
      (quit ? formatQuit(member.name, quit) : formatLeave(member.name, problem));
    return { line, isNotice: true };
  }
}

/** The room: who is in it, what was said lately, and the fan-out of every line to its members. */
import {
  encodeKeptLine,
  encodeLine,
  formatAction,
  formatHistory,
  formatJoin,
  formatLeave,
  formatPrivateFrom,
  formatPrivateTo,
  formatQuit,
  formatRename,
  formatUserLine,
  formatWelcome,
  formatWho,
  markOperator,
  nameKey,
  type NameList,
  nameTaken,
  noSuchUser,
  roomList,
  sameName,
} from "../protocol.ts";
import { type LogReader, RoomLog } from "./room_log.ts";
import type { Account } from "./passwords.ts";
import type { ModerationStore } from "./moderation_store.ts";

/*
 * The seams of the room's storage, implemented by the SQLite store (store.ts) and by the cluster's
 * Redis: the history kept, and the registered names.
 */

/** A line of chat as kept: when it was said (ms since the epoch) and the line as relayed. */
export interface HistoryEntry {
  at: number;
  line: string;
}

/** Where the hub hands each line of chat to be kept; it never blocks and never throws. */
export interface HistoryStore {
  keep(entry: HistoryEntry): void;
}

/**
 * The registered names, the same for SQLite and for Redis. `get` answers from memory; `save` and
 * `remove` resolve once the change is stored, and reject with a {@linkcode StoreError} (whose
 * message can be shown to the member) when it cannot be.
 */
export interface Accounts {
  /** The account of a name, regardless of case, if it is registered. */
  get(name: string): Account | undefined;
  /** How many names are registered (the greeting says whether there are any). */
  readonly size: number;
  /** Registers `account` (when `previous` is undefined) or replaces `previous` with it. */
  save(account: Account, previous?: Account): Promise<void>;
  /** Gives up a registered name. */
  remove(account: Account): Promise<void>;
}

/** A change the store could not make; the message says why, for the member who asked. */
export class StoreError extends Error {
  override name = "StoreError";
}

/** Lines of chat a newcomer is shown by default. */
export const DEFAULT_HISTORY_SIZE = 50;
/**
 * The room log's size by default: any member may lag by this much before it counts as having
 * stopped reading. It is the memory for the room's queued output, whatever the number of members.
 */
export const DEFAULT_LOG_BYTES = 16 * 1024 * 1024;

/**
 * A joined peer as the hub sees it: a name, a reader of the room log, and a way to hand it lines
 * meant for it alone.
 */
export interface Member extends LogReader {
  /** Its name, unique in the room regardless of case; the hub changes it on a rename. */
  name: string;
  /** Queues encoded lines for this member alone, after what the log holds; never blocks or throws. */
  send(bytes: Uint8Array): void;
  /** Queues the join reply, which no limit on queued output may refuse. */
  welcome(lines: readonly Uint8Array[]): void;
  /** Accepts nothing more, and closes once what is queued is out (the hub sends it away). */
  end(): void;
}

/**
 * Why a member was closed, or seen to go, when it did not say why itself: one name per cause, as
 * the room hears it in the leave notice and the log reads it (nats-server's `ClosedState`).
 */
export type CloseReason =
  /** The room log overtook it, its own lines passed their limit, or a write stalled. */
  | "stopped reading"
  /** Over its line or byte budget for too long. */
  | "flooding"
  /** No line within the idle timeout. */
  | "idle"
  /** The owner of its registered name logged in again. */
  | "logged in elsewhere"
  /** Cluster: it joined under a name it then turned out to be registered. */
  | "registered name"
  /** Cluster: someone else held its name longer, across a partition. */
  | "name taken during a partition"
  /** Cluster: another server's roster no longer lists it after a partition. */
  | "during a partition"
  /** Cluster: its server went silent. */
  | "server lost"
  /** Cluster: its server shut down. */
  | "server shut down"
  /** An operator kicked it out. */
  | "kicked"
  /** An operator banned its name or address. */
  | "banned"
  /** A write failed in a way nobody expected: the error, described (`Name: message`). */
  | `${string}: ${string}`;

/** Why a member left: its own words (`/quit REASON`) or a reason the server saw. */
export interface LeaveReason {
  /** The member's reason, from `/quit`. */
  quit?: string;
  /** What the server saw. */
  problem?: CloseReason;
  /**
   * The line the room hears instead of a leave notice (`* alice was kicked by bob`); `""` for no
   * line at all (an address ban names all it put out in one notice).
   */
  notice?: string;
}

/** Who gives up a place kept on this server (its kept places), for a cluster's `keepPlacesWith`. */
export interface PlaceKeeper {
  /**
   * Gives up the place of `name` if it is kept for the token whose hash is `tokenHash` (its member
   * came back on another server), and the room hears nothing: true if so.
   */
  giveUp(name: string, tokenHash: string): boolean;
}

/**
 * The seam between connections and the room. The server hands every member's event to the hub and
 * never touches other members itself, so a hub that spans several server processes can replace
 * the local one. Methods that may need to ask other servers can return a promise; a rejected name,
 * an unknown recipient and the like throw (or reject with) a {@linkcode ProtocolError}.
 */
export interface Hub {
  /**
   * Adds a member: it gets the room list, the history, the server's `notices` (such as its limits)
   * and a welcome; the others hear it joined, unless `isResumed` (a cluster's member taking back
   * a place another server gave up, see `takePlace`).
   */
  join(member: Member, notices?: readonly string[], isResumed?: boolean): void | Promise<void>;
  /** Removes a member and tells the others why. Unknown members are ignored. */
  leave(member: Member, reason?: LeaveReason): void;
  /** Relays `[NAME] text` to every other member. */
  say(member: Member, text: string): void;
  /** Relays an action, `* [NAME] text`, to every other member. */
  act(member: Member, text: string): void;
  /** Renames a member under the join rules; everyone, the member too, is told. */
  rename(member: Member, newName: string): void | Promise<void>;
  /** Sends a private message to the member named `to`, confirming it to the sender. */
  whisper(member: Member, to: string, text: string): void | Promise<void>;
  /** Tells the member who is online. */
  who(member: Member): void | Promise<void>;
  /** Stops all delivery, for shutdown. */
  close(): void | Promise<void>;
  /** The registered names, where the room keeps them (a store or the cluster); none otherwise. */
  readonly accounts?: Accounts | undefined;
  /** Operators, bans, mutes and the topic, where the room keeps them (memory, a store, Redis). */
  readonly moderation?: ModerationStore | undefined;
  /** Tells every member of the room (on every server) a notice from the server. */
  announce?(line: string): void;
  /** The operators changed: the room list and `/who` mark them anew (`@alice`). */
  operatorsChanged?(): void;
  /**
   * Cluster: puts out the member named `name` held by another server, which sends it `line`,
   * closes it, and has the room hear `notice` (see {@linkcode LeaveReason}) instead of a leave.
   * Resolves whether anyone had the name. The local hub has no other server: the server puts out
   * its own members itself.
   */
  expel?(name: string, options: { line: string; notice: string }): Promise<boolean>;
  /**
   * Cluster: why no moderation act can be made now (cut off from Redis: the message for the
   * operator), or undefined when it can.
   */
  canModerate?(): string | undefined;
  /** Cluster: every name in the room, on every server (`/ops` lists the operators among them). */
  names?(): string[];
  /**
   * Puts `next` in the place of `old`, under the same name, and nobody hears of it: a place kept
   * while its connection is lost, or a member back in it (`welcome`: it gets the room list, the
   * history and these notices, and reads the room from here on). False if `old` is not in the room.
   * A cluster does it on this server alone: the name's claim stays held, no server hears of it.
   */
  replace?(old: Member, next: Member, welcome?: readonly string[]): boolean;
  /** Cluster: who gives up a place kept here when another server asks for it for its token. */
  keepPlacesWith?(keeper: PlaceKeeper): void;
  /**
   * Cluster: asks the server that keeps the place of `name` to give it up for the token whose
   * hash is `tokenHash` (the member came back here): true once it did, without a word to the room;
   * the name is then free for a join nobody hears (`join`'s `isResumed`).
   */
  takePlace?(name: string, tokenHash: string): Promise<boolean>;
  /**
   * Puts a place kept by the server's last run in the room, and nobody hears of it (the room heard
   * no leave): it is listed, and reads no room log. False if its name is taken. The local hub only.
   */
  restore?(place: Member): boolean;
}

/** Options for {@linkcode LocalHub}. */
export interface LocalHubOptions {
  /** Lines of chat kept for newcomers (default 50; 0 keeps none). */
  historySize?: number;
  /** Bytes of the room log (default {@linkcode DEFAULT_LOG_BYTES}). */
  logSize?: number;
  /** Where each line of chat is also kept, to outlive the process (`--store`). */
  store?: HistoryStore;
  /** The history to start with, oldest first (what the store kept). */
  history?: readonly HistoryEntry[];
  /** The registered names, if the server keeps any. */
  accounts?: Accounts;
  /** Operators, bans, mutes and the topic; the operators are marked in the room list and `/who`. */
  moderation?: ModerationStore;
}

/**
 * The room of one server process: members by name key, in join order, a bounded history, and the
 * room log that carries every line to the members. What a newcomer is told is kept between joins
 * (the room list's lines, each history line encoded once), so a storm of joins costs a little for
 * each, not a list as long as the room.
 */
export class LocalHub implements Hub {
  #members = new Map<string, Member>();
  #history: Uint8Array[] = [];
  #historySize: number;
  #log: RoomLog;
  /** The room list's lines and their bytes, for the members in join order; undefined when stale. */
  #roomList: { list: NameList; bytes: Uint8Array[] } | undefined;
  #isClosed = false;
  #store: HistoryStore | undefined;
  readonly accounts: Accounts | undefined;
  readonly moderation: ModerationStore | undefined;

  /** Creates an empty room, with the history given, if any. */
  constructor(options: LocalHubOptions = {}) {
    this.#historySize = options.historySize ?? DEFAULT_HISTORY_SIZE;
    this.#log = new RoomLog(options.logSize ?? DEFAULT_LOG_BYTES);
    this.#store = options.store;
    this.accounts = options.accounts;
    this.moderation = options.moderation;
    const kept = this.#historySize > 0 ? (options.history ?? []).slice(-this.#historySize) : [];
    this.#history = kept.map(({ at, line }) => encodeKeptLine(formatHistory(new Date(at), line)));
  }

  join(member: Member, notices: readonly string[] = []): void {
    const key = nameKey(member.name);
    if (this.#members.has(key)) {
      throw nameTaken(member.name);
    }
    const roomList = this.#currentRoomList();
    const last = [...notices, formatWelcome(member.name, this.#members.size + 1)];
    member.welcome([...roomList.bytes, ...this.#history, encodeLine(last.join("\n"))]);
    this.#append(encodeLine(formatJoin(member.name)), undefined, true);
    // The newcomer reads the log from here on: it never sees its own join.
    this.#members.set(key, member);
    this.#log.add(member);
    const changed = roomList.list.add(this.#marked(member.name));
    roomList.bytes[changed] = encodeKeptLine(roomList.list.lines[changed]!);
  }

  leave(member: Member, reason: LeaveReason = {}): void {
    const key = nameKey(member.name);
    if (this.#members.get(key) !== member) return;
    this.#members.delete(key);
    this.#log.remove(member);
    this.#roomList = undefined;
    const line = reason.notice ??
      (reason.quit
        ? formatQuit(member.name, reason.quit)
        : formatLeave(member.name, reason.problem));
    if (line !== "") this.#append(encodeLine(line), undefined, true);
  }

  replace(old: Member, next: Member, welcome?: readonly string[]): boolean {
    const key = nameKey(old.name);
    if (this.#members.get(key) !== old) return false;
    this.#log.remove(old); // a connection not yet seen lost still gets what was said before
    next.name = old.name;
    if (welcome) {
      const lines = [...welcome, formatWelcome(next.name, this.#members.size)];
      next.welcome([
        ...this.#currentRoomList().bytes,
        ...this.#history,
        encodeLine(lines.join("\n")),
      ]);
      this.#log.add(next);
    }
    this.#members.set(key, next);
    return true;
  }

  restore(place: Member): boolean {
    const key = nameKey(place.name);
    if (this.#members.has(key)) return false;
    this.#members.set(key, place);
    this.#roomList = undefined;
    return true;
  }

  say(member: Member, text: string): void {
    this.#relay(member, formatUserLine(member.name, text));
  }

  act(member: Member, text: string): void {
    this.#relay(member, formatAction(member.name, text));
  }

  rename(member: Member, newName: string): void {
    const oldName = member.name;
    if (newName === oldName) throw sameName(newName);
    const oldKey = nameKey(oldName);
    const newKey = nameKey(newName);
    if (newKey !== oldKey && this.#members.has(newKey)) {
      throw nameTaken(newName);
    }
    this.#members.delete(oldKey);
    this.#members.set(newKey, member);
    this.#roomList = undefined;
    member.name = newName;
    this.#append(encodeLine(formatRename(oldName, newName)));
  }

  whisper(member: Member, to: string, text: string): void {
    const recipient = this.#members.get(nameKey(to));
    if (!recipient) throw noSuchUser(to);
    recipient.send(encodeLine(formatPrivateFrom(member.name, text)));
    member.send(encodeLine(formatPrivateTo(recipient.name, text)));
  }

  who(member: Member): void {
    const names = sortNames([...this.#members.values()].map((m) => m.name));
    member.send(encodeLine(formatWho(names.map((name) => this.#marked(name))).join("\n")));
  }

  announce(line: string): void {
    this.#append(encodeLine(line), undefined, true);
  }

  operatorsChanged(): void {
    this.#roomList = undefined;
  }

  close(): void {
    this.#isClosed = true;
    this.#log.close();
  }

  /** The room list as it stands, built again only after a leave or a rename. */
  #currentRoomList(): { list: NameList; bytes: Uint8Array[] } {
    if (!this.#roomList) {
      const list = roomList();
      for (const member of this.#members.values()) list.add(this.#marked(member.name));
      this.#roomList = { list, bytes: list.lines.map(encodeKeptLine) };
    }
    return this.#roomList;
  }

  /** A name as listed: `@alice` for an operator. */
  #marked(name: string): string {
    return markOperator(name, this.moderation?.isOperator(name) ?? false);
  }

  #relay(from: Member, line: string): void {
    if (this.#historySize > 0) {
      const at = Date.now();
      this.#history.push(encodeKeptLine(formatHistory(new Date(at), line)));
      if (this.#history.length > this.#historySize) this.#history.shift();
      this.#store?.keep({ at, line });
    }
    this.#append(encodeLine(line), from);
  }

  /** One append for all the members but `from`: the bytes are never copied per member. */
  #append(bytes: Uint8Array, from?: Member, isNotice = false): void {
    if (!this.#isClosed) this.#log.append(bytes, from, isNotice);
  }
}

/** Names in alphabetical order regardless of case, as people look them up. */
export function sortNames(names: string[]): string[] {
  return names.sort((a, b) => nameKey(a).localeCompare(nameKey(b)));
}

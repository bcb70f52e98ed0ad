/** The room: who is in it, what was said lately, and the fan-out of every line to its members. */
import {
  encodeLine,
  formatAction,
  formatHistory,
  formatJoin,
  formatLeave,
  formatPrivateFrom,
  formatPrivateTo,
  formatQuit,
  formatRename,
  formatRoomList,
  formatUserLine,
  formatWelcome,
  formatWho,
  nameKey,
  ProtocolError,
  quote,
} from "./protocol.ts";

/** Lines of chat a newcomer is shown by default. */
export const DEFAULT_HISTORY_SIZE = 50;

/** A joined peer as the hub sees it: a name and a way to hand it bytes. */
export interface Member {
  /** Its name, unique in the room regardless of case; the hub changes it on a rename. */
  name: string;
  /** Queues encoded lines for the member; never blocks and never throws. */
  send(bytes: Uint8Array): void;
}

/** Why a member left: its own words (`/quit REASON`) or a problem the server saw. */
export interface LeaveReason {
  /** The member's reason, from `/quit`. */
  quit?: string;
  /** What the server saw, such as "stopped reading". */
  problem?: string;
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
   * and a welcome; the others hear it joined.
   */
  join(member: Member, notices?: readonly string[]): void | Promise<void>;
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
}

/** Options for {@linkcode LocalHub}. */
export interface LocalHubOptions {
  /** Lines of chat kept for newcomers (default 50; 0 keeps none). */
  historySize?: number;
}

interface HistoryEntry {
  time: Date;
  line: string;
}

/** The room of one server process: members by name key, in join order, and a bounded history. */
export class LocalHub implements Hub {
  #members = new Map<string, Member>();
  #history: HistoryEntry[] = [];
  #historySize: number;
  #isClosed = false;

  /** Creates an empty room. */
  constructor(options: LocalHubOptions = {}) {
    this.#historySize = options.historySize ?? DEFAULT_HISTORY_SIZE;
  }

  join(member: Member, notices: readonly string[] = []): void {
    const key = nameKey(member.name);
    if (this.#members.has(key)) {
      throw new ProtocolError(`Cannot accept name ${quote(member.name)}: name is taken`);
    }
    const names = [...this.#members.values()].map((m) => m.name);
    // One buffer for everything the newcomer is told, so it arrives in one write.
    const lines = [
      ...formatRoomList(names),
      ...this.#history.map((entry) => formatHistory(entry.time, entry.line)),
      ...notices,
      formatWelcome(member.name, names.length + 1),
    ];
    member.send(encodeLine(lines.join("\n")));
    this.#broadcast(member, encodeLine(formatJoin(member.name)));
    this.#members.set(key, member);
  }

  leave(member: Member, reason: LeaveReason = {}): void {
    const key = nameKey(member.name);
    if (this.#members.get(key) !== member) return;
    this.#members.delete(key);
    const line = reason.quit
      ? formatQuit(member.name, reason.quit)
      : formatLeave(member.name, reason.problem);
    this.#broadcast(member, encodeLine(line));
  }

  say(member: Member, text: string): void {
    this.#relay(member, formatUserLine(member.name, text));
  }

  act(member: Member, text: string): void {
    this.#relay(member, formatAction(member.name, text));
  }

  rename(member: Member, newName: string): void {
    const oldName = member.name;
    if (newName === oldName) throw new ProtocolError(`Your name is already ${quote(newName)}`);
    const oldKey = nameKey(oldName);
    const newKey = nameKey(newName);
    if (newKey !== oldKey && this.#members.has(newKey)) {
      throw new ProtocolError(`Cannot accept name ${quote(newName)}: name is taken`);
    }
    this.#members.delete(oldKey);
    this.#members.set(newKey, member);
    member.name = newName;
    this.#broadcast(undefined, encodeLine(formatRename(oldName, newName)));
  }

  whisper(member: Member, to: string, text: string): void {
    const recipient = this.#members.get(nameKey(to));
    if (!recipient) {
      throw new ProtocolError(`No user named ${quote(to)} is online: /who lists who is`);
    }
    recipient.send(encodeLine(formatPrivateFrom(member.name, text)));
    member.send(encodeLine(formatPrivateTo(recipient.name, text)));
  }

  who(member: Member): void {
    const names = sortNames([...this.#members.values()].map((m) => m.name));
    member.send(encodeLine(formatWho(names).join("\n")));
  }

  close(): void {
    this.#isClosed = true;
  }

  #relay(from: Member, line: string): void {
    if (this.#historySize > 0) {
      this.#history.push({ time: new Date(), line });
      if (this.#history.length > this.#historySize) this.#history.shift();
    }
    this.#broadcast(from, encodeLine(line));
  }

  // One encoded buffer for all recipients: the bytes are never copied per member here.
  #broadcast(from: Member | undefined, bytes: Uint8Array): void {
    if (this.#isClosed) return;
    for (const member of this.#members.values()) {
      if (member !== from) member.send(bytes);
    }
  }
}

/** Names in alphabetical order regardless of case, as people look them up. */
export function sortNames(names: string[]): string[] {
  return names.sort((a, b) => nameKey(a).localeCompare(nameKey(b)));
}

/**
 * Moderation at the IRC door (issue 27), with no I/O: an operator's `KICK` and channel `MODE`
 * (`+b`/`-b`, `+o`/`-o`, the ban list) as the room's operator commands, and the room's moderation
 * lines to one member (its kick or ban, a refusal, a mute, the ban list) as the numerics and
 * messages IRC clients expect. The session (irc_session.ts) hands it these, and sends the results.
 */
import { OPERATOR_WELCOME } from "../protocol.ts";
import { formatIrc, mask, numeric, SERVER_NAME } from "./irc.ts";

/** What a command amounts to: lines for the server's read loop, and replies to send at once. */
export interface IrcAct {
  input: string;
  replies: string[];
}

/** What an error line from the room means to an IRC client, when moderation has a word for it. */
export interface IrcRefusal {
  replies: string[];
  /** The connection ends (the server closes it): why, for the ERROR line. */
  closeReason?: string;
  /** Our side ends it (a banned nick at registration). */
  isOver?: boolean;
}

const KICKED = /^You were kicked by ([\w-]+)(?:: (.*))?$/s;
const BANNED = /^You are banned/;
const MUTED = /^You are muted/;
const OPERATORS_ONLY = /^\/(\w+) is for operators only$/;
/** An act refused: on oneself, on an operator, or of a target that cannot be one. */
const ACT_REFUSED = /^(?:You cannot \w+ yourself|Cannot (?:kick|ban|mute|op|deop) )/;
const BAN_COUNT = /^(\d+) bans?(?: \(the newest (\d+) shown\))?:$/;
const BAN_ENTRY = /^(\S+) by ([\w-]+)/;
/** A ban mask IRC clients send: a nick, `nick!*@*`, `*!*@address`, or an address or CIDR. */
const NICK_MASK = /^([A-Za-z0-9_-]+)(?:!\*@\*)?$/;
const ADDRESS_MASK = /^(?:\*!\*?@|\*@)?([0-9A-Fa-f:.]+(?:\/\d{1,3})?)$/;

/** One IRC member's side of moderation. */
export class IrcModeration {
  /** The nick a NICK asked for while the room has not answered: a ban's refusal is for it. */
  nickAsked: string | undefined;
  #channel: string;
  /** Ban lists asked for (`MODE #chat +b`) whose answer has not come yet. */
  #banListsAsked = 0;
  /** Lines of the ban list being received that are still to come. */
  #banLinesLeft = 0;

  constructor(channel: string) {
    this.#channel = channel;
  }

  /**
   * A moderation command with no IRC equivalent, sent as IRC clients send commands they do not
   * know (`/mute eve 1h spam` in irssi is `MUTE eve 1h spam`): `MUTE`, `UNMUTE`, `OPS`.
   */
  command(command: "MUTE" | "UNMUTE" | "OPS", params: readonly string[]): IrcAct {
    return { input: [`/${command.toLowerCase()}`, ...params].join(" ") + "\n", replies: [] };
  }

  /** `KICK #chat nick[,nick] [:reason]` from `me`: a `/kick` each. */
  kick(me: string, params: readonly string[]): IrcAct {
    const [channel, nicks, reason] = params;
    if (channel === undefined || nicks === undefined) {
      return reply(numeric("461", me, ["KICK", "Not enough parameters"]));
    }
    if (!this.#isOurs(channel)) {
      return reply(
        numeric("403", me, [channel, `No such channel: this server has ${this.#channel}`]),
      );
    }
    const comment = reason?.trim() ? ` ${reason.trim()}` : "";
    const input = nicks.split(",").filter((nick) => nick !== "")
      .map((nick) => `/kick ${nick}${comment}\n`).join("");
    return { input, replies: [] };
  }

  /**
   * `MODE #chat [modes [args]]` from `me`: the channel's modes, its ban list (`b`, `+b` with no
   * mask), a ban or its lifting (`+b`/`-b MASK`), an operator made or unmade (`+o`/`-o NICK`).
   */
  mode(me: string, params: readonly string[]): IrcAct {
    const [channel, modes, ...args] = params;
    if (modes === undefined) return reply(numeric("324", me, [channel!, "+nt"]));
    const act: IrcAct = { input: "", replies: [] };
    let sign = "+";
    for (const char of modes) {
      if (char === "+" || char === "-") sign = char;
      else if (char === "b") this.#ban(me, act, sign, args.shift());
      else if (char === "o") {
        const nick = args.shift();
        if (nick === undefined) {
          act.replies.push(numeric("461", me, ["MODE", "Not enough parameters"]));
        } else act.input += `/${sign === "+" ? "op" : "deop"} ${nick}\n`;
      } else if (char !== "n" && char !== "t") { // always set: nothing to change
        act.replies.push(numeric("472", me, [char, "is unknown mode char to me"]));
      }
    }
    return act;
  }

  /** `b` in a MODE: the list with no mask, else a ban (`+`) or its lifting (`-`). */
  #ban(me: string, act: IrcAct, sign: string, banMask: string | undefined): void {
    if (banMask === undefined) {
      this.#banListsAsked++;
      act.input += "/bans\n";
      return;
    }
    const target = NICK_MASK.exec(banMask)?.[1] ?? ADDRESS_MASK.exec(banMask)?.[1];
    if (target === undefined) {
      const why = "Cannot ban that mask: give a nick, nick!*@*, an address, a CIDR or *!*@address";
      act.replies.push(numeric("696", me, [this.#channel, "b", banMask, why]));
      return;
    }
    act.input += `/${sign === "+" ? "ban" : "unban"} ${target}\n`;
  }

  /**
   * A line the room sent to `me` that moderation tells in IRC's own way: the ban list as 367 and
   * 368, the operator's welcome as `MODE +o`. `undefined` for any other line.
   */
  fromRoom(me: string, text: string): string[] | undefined {
    if (this.#banLinesLeft > 0) {
      this.#banLinesLeft--;
      const [, target, by] = BAN_ENTRY.exec(text) ?? [];
      const lines = target && by
        ? [formatIrc(SERVER_NAME, "367", [me, this.#channel, banMask(target), by])]
        : [];
      if (this.#banLinesLeft > 0) return lines;
      return [...lines, numeric("368", me, [this.#channel, "End of channel ban list"])];
    }
    const count = BAN_COUNT.exec(text);
    if (this.#banListsAsked > 0 && count) {
      this.#banListsAsked--;
      this.#banLinesLeft = Number(count[2] ?? count[1]);
      return [];
    }
    if (this.#banListsAsked > 0 && text === "No bans") {
      this.#banListsAsked--;
      return [numeric("368", me, [this.#channel, "End of channel ban list"])];
    }
    if (`* ${text}` === OPERATOR_WELCOME) {
      return [formatIrc(SERVER_NAME, "MODE", [this.#channel, "+o", me])];
    }
  }

  /**
   * An error line (without `* error: `) to `me`, as IRC has it: a kick or a ban that puts the
   * member out (KICK), a refusal of an operator's command (482), a muted line (404), a banned nick
   * (465 before joining, 432 for a NICK). `undefined` for an error moderation has no word for.
   */
  error(me: string, text: string, isJoined: boolean): IrcRefusal | undefined {
    const kicked = KICKED.exec(text);
    if (kicked) {
      const [, by, reason] = kicked as unknown as [string, string, string | undefined];
      const kick = formatIrc(mask(by), "KICK", [this.#channel, me, reason || by], true);
      return { replies: [kick], closeReason: text };
    }
    if (BANNED.test(text)) return this.#banned(me, text, isJoined);
    if (MUTED.test(text)) return { replies: [numeric("404", me, [this.#channel, text])] };
    const only = OPERATORS_ONLY.exec(text);
    if (only?.[1] === "bans" && this.#banListsAsked > 0) {
      // The ban list is the operators': anyone else's client asked for it as a matter of course.
      this.#banListsAsked--;
      return { replies: [numeric("368", me, [this.#channel, "End of channel ban list"])] };
    }
    if (only || ACT_REFUSED.test(text)) {
      return { replies: [numeric("482", me, [this.#channel, text])] };
    }
  }

  /** A ban's refusal: of a NICK asked for, of the nick at registration, or putting the member out. */
  #banned(me: string, text: string, isJoined: boolean): IrcRefusal {
    if (!isJoined) {
      return { replies: [numeric("465", me, [text])], closeReason: text, isOver: true };
    }
    const nick = this.nickAsked;
    if (nick !== undefined) {
      this.nickAsked = undefined;
      return { replies: [numeric("432", me, [nick, text])] };
    }
    const kick = formatIrc(SERVER_NAME, "KICK", [this.#channel, me, text], true);
    return { replies: [kick], closeReason: text };
  }

  #isOurs(channel: string): boolean {
    return channel.toLowerCase() === this.#channel.toLowerCase();
  }
}

/** A ban's target as an IRC ban mask: `alice!*@*`, `*!*@203.0.113.7`. */
export function banMask(target: string): string {
  return /[.:]/.test(target) ? `*!*@${target}` : `${target}!*@*`;
}

function reply(line: string): IrcAct {
  return { input: "", replies: [line] };
}

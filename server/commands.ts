/**
 * What a joined member's line does: a chat line, an action, or one of the commands (`/who`,
 * `/msg`, `/nick`, the account and moderation commands, `/quit`), each checked against the mute
 * and operator rules and handed to the hub. The read loop calls it; it never calls back.
 */
import type { Hub } from "./hub.ts";
import type { Moderation } from "./moderation.ts";
import type { Login } from "./login.ts";
import { type Peer, replyTo } from "./peer.ts";
import { Tally } from "./metrics.ts";
import { type Log, peerFields } from "./log.ts";
import {
  encodeLine,
  GOODBYE,
  HELP_LINES,
  nameKey,
  OPERATOR_HELP_LINES,
  operatorCommandOf,
  operatorsOnly,
  parseCommand,
  ProtocolError,
} from "../protocol.ts";

const HELP = encodeLine(HELP_LINES.join("\n"));
const OPERATOR_HELP = encodeLine(OPERATOR_HELP_LINES.join("\n"));
const GOODBYE_LINE = encodeLine(GOODBYE);

/** Options for {@linkcode Commands}. */
export interface CommandsOptions {
  hub: Hub;
  moderation: Moderation;
  login: Login;
  tally: Tally;
  log: Log;
}

/** The commands of a joined member. */
export class Commands {
  #options: CommandsOptions;

  constructor(options: CommandsOptions) {
    this.#options = options;
  }

  /** Acts on one line from a joined peer; returns a promise only when the hub must be waited for. */
  handle(peer: Peer, text: string): void | Promise<void> {
    if (text.trim() === "") return;
    const { hub, moderation, login, tally } = this.#options;
    try {
      const word = operatorCommandOf(text);
      if (word && !moderation.isOperator(peer)) throw operatorsOnly(word);
      const command = parseCommand(text);
      switch (command.name) {
        case "say":
          moderation.checkMute(peer);
          tally.linesSaid++;
          return hub.say(peer, command.text);
        case "me":
          moderation.checkMute(peer);
          tally.linesSaid++;
          return hub.act(peer, command.text);
        case "help":
          peer.send(HELP);
          if (moderation.isOperator(peer)) peer.send(OPERATOR_HELP);
          return;
        case "who":
          return replyTo(peer, () => hub.who(peer));
        case "msg":
          if (nameKey(command.to) === nameKey(peer.name)) {
            throw new ProtocolError("That is you: /msg sends to someone else");
          }
          moderation.checkMute(peer);
          return replyTo(peer, () => hub.whisper(peer, command.to, command.text));
        case "nick": {
          moderation.checkMute(peer);
          moderation.checkName(command.newName);
          const isOther = nameKey(command.newName) !== nameKey(peer.name);
          if (isOther && login.asksPassword(peer, command.newName, "nick")) return;
          return this.rename(peer, command.newName);
        }
        case "register":
        case "password":
        case "unregister":
          return login.runAccountCommand(
            peer,
            command.name,
            command.name === "register" ? command.password : undefined,
          );
        case "quit":
          return this.#quit(peer, command.reason);
        default:
          return replyTo(peer, () => moderation.run(peer, command));
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      peer.sendError(error.message);
    }
  }

  /** `/nick` once allowed: the hub renames, and everyone is told. */
  rename(peer: Peer, newName: string): void | Promise<void> {
    const oldName = peer.name;
    const renamed = () =>
      this.#options.log(`${oldName} is now known as ${peer.name}`, {
        event: "rename",
        ...peerFields(peer),
        reason: `was ${oldName}`,
      });
    return replyTo(peer, () => this.#options.hub.rename(peer, newName), renamed);
  }

  /** `/quit [REASON]`: the room hears it, with the reason unless the member is muted. */
  #quit(peer: Peer, reason: string): void {
    if (reason) reason = this.#unmuted(peer, reason);
    this.#options.hub.leave(peer, { quit: reason });
    Tally.bump(this.#options.tally.leaves, "quit");
    this.#options.log(`${peer.label} quit${reason ? `: ${reason}` : ""}`, {
      event: "leave",
      ...peerFields(peer),
      reason: reason ? `quit: ${reason}` : "quit",
    });
    peer.isJoined = false;
    peer.send(GOODBYE_LINE);
    peer.end();
  }

  /** A `/quit` reason, or none from a muted member (who is told; the quit still happens). */
  #unmuted(peer: Peer, reason: string): string {
    try {
      this.#options.moderation.checkMute(peer);
      return reason;
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      peer.sendError(error.message);
      return "";
    }
  }
}

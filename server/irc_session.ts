/**
 * One IRC client's session, with no I/O: its registration (CAP, PASS, NICK, USER), its commands
 * turned into the room's lines, and the room's lines turned into what an IRC client expects
 * (numerics, JOIN, PRIVMSG...). The connection (irc_conn.ts) feeds it both ways and carries the
 * results: `input` for the server's read loop, `replies` for the socket.
 */
import {
  LineTooLongError,
  nameKey,
  parseName,
  ProtocolError,
  SHUTDOWN_NOTICE,
} from "../protocol.ts";
import {
  bareName,
  formatIrc,
  historyToIrc,
  mask,
  messageInput,
  modeReply,
  namesReplies,
  numeric,
  parseIrcLine,
  readRoomLine,
  type RoomLine,
  roomLineToIrc,
  SERVER_NAME,
  splitTrailing,
  welcomeReplies,
  whoisReplies,
  whoReplies,
} from "./irc.ts";
import { IrcNegotiation } from "./irc_negotiation.ts";
import { type IrcAct, IrcModeration } from "./irc_moderation.ts";

/** Options for {@linkcode IrcSession}. */
export interface IrcSessionOptions {
  /** The room's channel, `#chat` by default. */
  channel: string;
  /** The server's version, for 002 and 004. */
  version: string;
  /** Lines of the message of the day (none: 422). */
  motd: readonly string[];
  /** Whether a name is registered, so that its password is needed (none: no name is). */
  isRegistered?: (name: string) => boolean;
  /** Whether a name is an operator, so that its JOIN comes with its +o (none: nobody is). */
  isOperator?: (name: string) => boolean;
}

/**
 * Commands a client may send before it has registered: a client that sends more is not an IRC
 * client finding its feet. The name deadline bounds the time; this bounds the work.
 */
export const MAX_UNREGISTERED_COMMANDS = 64;
/** Lines that may wait for CAP END after a SASL login: a client sends it at once after 903. */
const MAX_HELD_LINES = 10_000;

/** A reply the room owes to a command sent on: what to make of the next `/who` answer. */
type Pending =
  | { kind: "who"; mask: string }
  | { kind: "names" }
  | { kind: "whois"; nick: string };

/** A `/who` answer being received, for the command it was asked for. */
interface ListState {
  pending: Pending;
  left: number;
  found: string[];
}

/** The join reply being received: held until its welcome line, to be told in IRC's order. */
interface Joining {
  /** The others in the room, separated by spaces. */
  names: string;
  history: string[];
  motd: string[];
}

const TAKEN = /^Cannot accept name "(.*)": name is taken$/;
const BAD_NAME = /^Cannot accept (?:name "(.*)"|an empty name)/;
const NO_SUCH_USER = /^No user named "(.*)" is online/;
const WRONG_PASSWORD = /^Wrong (?:server )?password/;

/** One IRC client's session. */
export class IrcSession {
  /** Lines for the server's read loop, as a member of any door sends them, each with its LF. */
  input = "";
  /** IRC lines for the client, without their CRLF. */
  replies: string[] = [];
  /** The client may send no more now: a name or a password is with the server. */
  isHolding = false;
  /** The session is over from our side: its input should end (QUIT before joining, a bad PASS). */
  isOver = false;
  /** Why the connection closes, for the ERROR line the client gets last. */
  closeReason = "Goodbye";
  #options: IrcSessionOptions;
  #channel: string;
  #nick: string | undefined;
  #hasUser = false;
  #password: string | undefined;
  #isJoined = false;
  /** Whether the client asked to leave (QUIT, PART): its reason is the close's, whatever follows. */
  #hasLeft = false;
  /** What the server asks for next before joining: its password, a name, or nothing yet. */
  #serverWants: "nothing" | "server password" | "name" = "nothing";
  #isNameSent = false;
  #commandsBefore = 0;
  #pending: Pending[] = [];
  #list: ListState | undefined;
  /** CAP and SASL. */
  #negotiation: IrcNegotiation;
  /** What waits for CAP END once joined through SASL. */
  #held: string[] | undefined;
  #joining: Joining | undefined;
  /** KICK, MODE and the room's moderation lines to this member. */
  #moderation: IrcModeration;

  constructor(options: IrcSessionOptions) {
    this.#options = options;
    this.#channel = options.channel;
    this.#negotiation = new IrcNegotiation(options.isRegistered);
    this.#moderation = new IrcModeration(options.channel);
  }

  /** The client's nick, or `*` before it has one. */
  get me(): string {
    return this.#nick ?? "*";
  }

  /** Whether the client is in the room. */
  get isJoined(): boolean {
    return this.#isJoined;
  }

  /** Whether what the room says waits for the client's CAP END (joined through SASL). */
  get isWaiting(): boolean {
    return this.#held !== undefined;
  }

  /** One line from the client (its line end removed), or the mark of one too long. */
  fromClient(line: string | LineTooLongError): void {
    const message = line instanceof LineTooLongError ? "too long" : parseIrcLine(line);
    if (message === "empty") return;
    if (!this.#isJoined && ++this.#commandsBefore > MAX_UNREGISTERED_COMMANDS) {
      return this.#end("Too many commands before registering");
    }
    const before = this.input.length;
    if (message === "too long") {
      this.#reply("417", "Input line was too long");
    } else if (message === "malformed") {
      this.#notice("Cannot read that line: it is not an IRC message");
    } else if (this.#isJoined) {
      this.#command(message.command, message.params);
    } else {
      this.#register(message.command, message.params);
    }
    // Every line of a member reaches the read loop, an empty one if nothing else: flood control
    // and the idle timeout then count IRC's commands as they count any door's lines.
    if (this.#isJoined && this.input.length === before) this.input += "\n";
  }

  /** One line the room sent (its LF removed), told to the client as IRC. */
  fromRoom(line: string): void {
    const room = readRoomLine(line);
    if (this.#list && !(room.kind === "who" && room.count === undefined)) this.#endList();
    if (this.#joining) return this.#joinReply(room, line);
    switch (room.kind) {
      case "prompt":
        return this.#prompted(room.what);
      case "room":
        if (room.isContinued || this.#isJoined) return;
        this.#joining = { names: room.names, history: [], motd: [] };
        this.isHolding = false;
        return;
      case "who":
        return this.#whoList(room.count, room.names);
      case "history":
        return this.#send(...historyToIrc(room, this.#channel));
      case "private":
        if (room.direction === "from") {
          this.#send(...splitTrailing(`:${mask(room.name)} PRIVMSG ${this.me}`, room.text));
        }
        return; // the sender's confirmation: an IRC client shows what it sent itself
      case "error":
        return this.#error(room.text);
      case "topic":
        if (room.by === undefined) return this.#topic(room.text);
        break;
      case "rename":
        if (this.#nick !== undefined && nameKey(room.oldName) === nameKey(this.#nick)) {
          this.#nick = room.newName;
          this.#moderation.nickAsked = undefined;
          this.isHolding = false;
        }
        break;
      case "system": {
        if (!this.#isJoined) return this.#notice(room.text);
        const told = this.#moderation.fromRoom(this.me, room.text);
        if (told) return this.#send(...told);
        if (room.text === "Goodbye!") return;
        if (`* ${room.text}` === SHUTDOWN_NOTICE) this.closeReason = "Server is shutting down";
      }
    }
    this.#send(...roomLineToIrc(room, this.#channel, this.#options.isOperator) ?? []);
  }

  /** The server's PING to a quiet client. */
  ping(): void {
    this.#send(`PING :${SERVER_NAME}`);
  }

  /** Registration: only these commands before the welcome. */
  #register(command: string, params: string[]): void {
    switch (command) {
      case "CAP":
        return this.#cap(params);
      case "PASS":
        if (params[0] === undefined) return this.#reply("461", "PASS", "Not enough parameters");
        this.#password = params[0];
        return;
      case "NICK":
        return this.#negotiation.login ? undefined : this.#nickBefore(params[0]);
      case "AUTHENTICATE":
        return this.#authenticate(params[0]);
      case "USER":
        if (params.length < 4) return this.#reply("461", "USER", "Not enough parameters");
        this.#hasUser = true;
        return this.#tryRegister();
      case "PING":
      case "PONG":
      case "QUIT":
        return this.#command(command, params);
      default:
        this.#reply("451", "You have not registered");
    }
  }

  /** `CAP`: the negotiation answers; CAP END lets the registration (or the welcome) go on. */
  #cap(params: string[]): void {
    const { lines, isEnd } = this.#negotiation.cap(params, this.me, this.#isJoined);
    this.replies.push(...lines);
    if (!isEnd) return;
    if (this.#held) this.replies.push(...this.#held.splice(0));
    this.#held = undefined;
    this.#tryRegister();
  }

  /** `AUTHENTICATE`: SASL PLAIN; the name it gives is the member's, sent to the server at once. */
  #authenticate(param: string | undefined): void {
    this.replies.push(...this.#negotiation.authenticate(param, this.me, this.#isNameSent));
    const login = this.#negotiation.login;
    if (!login || this.#isNameSent) return;
    this.#nick = login.account; // the room knows a member by its registered name
    this.#tryRegister();
  }

  /** `NICK` before registering: checked here, so that a refused one can be followed by another. */
  #nickBefore(nick: string | undefined): void {
    if (nick === undefined || nick === "") return this.#reply("431", "No nickname given");
    try {
      parseName(nick);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      return this.#reply("432", nick, `Erroneous nickname: ${error.message}`);
    }
    if (this.#password === undefined && this.#options.isRegistered?.(nick)) {
      return this.#reply(
        "433",
        nick,
        "Nickname is registered: connect with its password as the server password (PASS)",
      );
    }
    this.#nick = nick;
    this.#tryRegister();
  }

  /** Sends the password and the name to the server once the client and the server are ready. */
  #tryRegister(): void {
    if (this.#nick === undefined) return;
    // SASL's name goes to the server at once: its answer is the 903 that ends the negotiation.
    const { login, isNegotiating } = this.#negotiation;
    if (!login && (!this.#hasUser || isNegotiating)) return;
    if (this.#isNameSent) return;
    if (this.#serverWants === "server password") {
      if (this.#password === undefined) {
        this.#reply("464", "Password required: this server is private");
        return this.#end("Password required");
      }
      this.input += `${this.#password}\n`;
      this.#serverWants = "nothing";
      this.#password = undefined; // it was the server's, not the name's
      this.isHolding = true;
    } else if (this.#serverWants === "name") {
      this.input += `${this.#nick}\n`;
      this.#serverWants = "nothing";
      this.#isNameSent = true;
      this.isHolding = true;
    }
  }

  /** The server asks for its password, a name, or a registered name's password. */
  #prompted(what: "server" | "name" | "login"): void {
    if (what === "login") {
      this.isHolding = false;
      const password = this.#negotiation.login?.password ?? this.#password;
      if (password === undefined) {
        // Registered since the client's NICK was checked: it cannot answer, so it cannot stay.
        this.#reply("433", this.#nick ?? "*", "Nickname is registered: connect with its password");
        return this.#end("Nickname is registered");
      }
      this.input += `${password}\n`;
      this.isHolding = true;
      return;
    }
    this.#serverWants = what === "server" ? "server password" : "name";
    this.isHolding = false;
    this.#tryRegister();
  }

  /** Commands of a member of the room. */
  #command(command: string, params: string[]): void {
    const [first, second] = params;
    switch (command) {
      case "PRIVMSG":
      case "NOTICE":
        return this.#act(
          messageInput(this.me, this.#channel, { command, targets: first, text: second }),
        );
      case "NICK":
        return this.#nick === undefined ? undefined : this.#nickChange(first);
      case "JOIN":
        return this.#join(first);
      case "PART":
        if (!this.#isOurs(first)) {
          return this.#reply("442", first ?? "*", "You're not on that channel");
        }
        this.#send(formatIrc(mask(this.me), "PART", [this.#channel, second ?? "Left"], true));
        return this.#quit(second ?? "", second ? `Left: ${second}` : "Left");
      case "QUIT":
        return this.#quit(first ?? "");
      case "PING":
        if (first === undefined) return this.#reply("409", "No origin specified");
        return this.#send(formatIrc(SERVER_NAME, "PONG", [SERVER_NAME, first], true));
      case "PONG":
      case "CAP":
        return command === "CAP" ? this.#cap(params) : undefined;
      case "WHO":
        return this.#ask({ kind: "who", mask: first ?? "*" });
      case "WHOIS":
        if (first === undefined) return this.#reply("431", "No nickname given");
        return this.#ask({ kind: "whois", nick: second ?? first });
      case "NAMES":
        if (first !== undefined && !this.#isOurs(first)) {
          return this.#reply("366", first, "End of /NAMES list");
        }
        return this.#ask({ kind: "names" });
      case "TOPIC":
        return this.#topicCommand(first, params.length > 1 ? second ?? "" : undefined);
      case "MODE":
        if (first === undefined) return this.#reply("461", "MODE", "Not enough parameters");
        if (this.#isOurs(first)) return this.#act(this.#moderation.mode(this.me, params));
        return this.#send(modeReply(this.me, this.#channel, first, second));
      case "KICK":
        return this.#act(this.#moderation.kick(this.me, params));
      case "MUTE":
      case "UNMUTE":
      case "OPS":
        return this.#act(this.#moderation.command(command, params));
      case "PASS":
      case "USER":
        return this.#reply("462", "You may not reregister");
      default:
        this.#reply("421", command, "Unknown command");
    }
  }

  /** `NICK` of a member: a rename, the room's rules applying; a registered name needs its password. */
  #nickChange(nick: string | undefined): void {
    if (nick === undefined || nick === "") return this.#reply("431", "No nickname given");
    const isOther = nameKey(nick) !== nameKey(this.me);
    if (isOther && this.#options.isRegistered?.(nick)) {
      return this.#reply("433", nick, "Nickname is registered: log in with its password to use it");
    }
    if (/\s/.test(nick)) return this.#reply("432", nick, "Erroneous nickname");
    this.#moderation.nickAsked = nick;
    this.input += `/nick ${nick}\n`;
  }

  #join(channels: string | undefined): void {
    if (channels === undefined) return this.#reply("461", "JOIN", "Not enough parameters");
    for (const channel of channels.split(",")) {
      if (this.#isOurs(channel) || channel === "0") continue; // in it already, and staying
      this.#reply("403", channel, `No such channel: this server has ${this.#channel} only`);
    }
  }

  /** QUIT or PART: `closeReason` is what the ERROR says (QUIT's by default). */
  #quit(reason: string, closeReason = reason === "" ? "Goodbye" : `Quit: ${reason}`): void {
    this.closeReason = closeReason;
    this.#hasLeft = true;
    if (!this.#isJoined) return this.#end(this.closeReason);
    this.input += reason === "" ? "/quit\n" : `/quit ${reason}\n`;
  }

  #topicCommand(channel: string | undefined, text: string | undefined): void {
    if (channel === undefined) return this.#reply("461", "TOPIC", "Not enough parameters");
    if (!this.#isOurs(channel)) return this.#reply("442", channel, "You're not on that channel");
    // The answer needs no waiting for: a topic line, or an error that says what it answers.
    this.input += text === undefined ? "/topic\n" : `/topic ${text === "" ? "-" : text}\n`;
  }

  /** An operator's command: its lines for the room, and any replies now. */
  #act(act: IrcAct): void {
    this.input += act.input;
    this.#send(...act.replies);
  }

  /** A command the room answers with `/who` (or `/topic`): the answer is read for it. */
  #ask(pending: Pending): void {
    this.#pending.push(pending);
    this.input += "/who\n";
  }

  /**
   * A line of the join reply (the room list, the history, the server's notices, the welcome): told
   * at the welcome as IRC has it, 001 to 005, the notices as the MOTD, JOIN, names, then history.
   */
  #joinReply(room: RoomLine, line: string): void {
    const joining = this.#joining!;
    if (room.kind === "room" && room.names !== "") {
      joining.names = joining.names === "" ? room.names : `${joining.names} ${room.names}`;
    } else if (room.kind === "history") joining.history.push(line);
    else if (room.kind === "system") joining.motd.push(room.text);
    if (room.kind !== "welcome") return;
    this.#joining = undefined;
    this.#isJoined = true;
    if (this.#negotiation.login) {
      this.#reply("900", mask(this.me), this.me, `You are now logged in as ${this.me}`);
      this.#reply("903", "SASL authentication successful");
      if (this.#negotiation.isNegotiating) this.#held = [];
    }
    const { channel, version } = this.#options;
    const motd = [...this.#options.motd, ...joining.motd];
    this.#send(...welcomeReplies(this.me, { channel, version, motd }));
    this.#send(formatIrc(mask(this.me), "JOIN", [channel]));
    // The room lists the others: the newcomer is in it too, first, as IRC servers list it.
    const others = joining.names === "" ? "" : ` ${joining.names}`;
    this.#send(...namesReplies(this.me, channel, `${this.me}${others}`));
    this.#send(numeric("366", this.me, [channel, "End of /NAMES list"]));
    for (const kept of joining.history) this.fromRoom(kept);
  }

  /** A `/who` answer, or its continuation, for the command it was asked for. */
  #whoList(count: number | undefined, names: string[]): void {
    if (count !== undefined) {
      const pending = this.#pending.shift();
      if (!pending) return; // nobody asked: not for this client
      this.#list = { pending, left: count, found: [] };
    }
    const list = this.#list;
    if (!list) return;
    list.left -= names.length;
    const { pending } = list;
    if (pending.kind === "names") {
      this.#send(...namesReplies(this.me, this.#channel, names.join(" ")));
    } else if (pending.kind === "who") {
      const all = pending.mask === "*" || this.#isOurs(pending.mask);
      for (const name of names) {
        if (all || nameKey(bareName(name)) === nameKey(pending.mask)) list.found.push(name);
      }
    } else if (pending.kind === "whois") {
      const nick = nameKey(pending.nick);
      const match = names.find((name) => nameKey(bareName(name)) === nick);
      if (match) list.found.push(match);
    }
    if (list.left <= 0) this.#endList();
  }

  /** A list is complete: its end numerics. */
  #endList(): void {
    const list = this.#list;
    this.#list = undefined;
    if (!list) return;
    const { pending, found } = list;
    const { me } = this;
    if (pending.kind === "names") return this.#reply("366", this.#channel, "End of /NAMES list");
    if (pending.kind === "who") this.#send(...whoReplies(me, this.#channel, pending.mask, found));
    if (pending.kind === "whois") {
      this.#send(...whoisReplies(me, this.#channel, pending.nick, found));
    }
  }

  /** The topic, as `/topic` answers it or a newcomer is told it. */
  #topic(text: string | undefined): void {
    if (text === undefined || text === "") {
      return this.#reply("331", this.#channel, "No topic is set");
    }
    this.#reply("332", this.#channel, text);
  }

  /** An error line for this client: a numeric where IRC has one, else a notice. */
  #error(text: string): void {
    const refusal = this.#moderation.error(this.me, text, this.#isJoined);
    if (refusal) {
      if (refusal.closeReason !== undefined && !this.#hasLeft) {
        this.closeReason = refusal.closeReason;
      }
      if (refusal.isOver) this.#end(refusal.closeReason ?? text);
      return this.#send(...refusal.replies);
    }
    let match: RegExpExecArray | null;
    const isName = (match = TAKEN.exec(text)) || (match = BAD_NAME.exec(text));
    if (isName) this.#moderation.nickAsked = undefined;
    if (isName && !this.#isJoined) {
      // Refused at joining: the client may try another nick, as IRC allows.
      this.#isNameSent = false;
      this.#serverWants = "name";
      this.isHolding = false;
    }
    if ((match = TAKEN.exec(text))) {
      return this.#reply("433", match[1]!, "Nickname is already in use");
    }
    if ((match = BAD_NAME.exec(text))) return this.#reply("432", match[1] ?? "*", text);
    if ((match = NO_SUCH_USER.exec(text))) {
      return this.#reply("401", match[1]!, "No such nick/channel");
    }
    if (WRONG_PASSWORD.test(text)) {
      this.isHolding = false;
      this.closeReason = text;
      if (this.#negotiation.login && !this.#isJoined) {
        return this.#reply("904", `SASL authentication failed: ${text}`);
      }
      return this.#reply("464", text);
    }
    // An answer to a command sent before QUIT or PART: the member's own leave is why it closes.
    if (!this.#hasLeft) this.closeReason = text;
    this.isHolding = false;
    this.#notice(text);
  }

  #isOurs(channel: string | undefined): boolean {
    return channel !== undefined && nameKey(channel) === nameKey(this.#channel);
  }

  /** Ends the session from our side: the client is told why, and its input ends. */
  #end(reason: string): void {
    this.closeReason = reason;
    this.isOver = true;
  }

  #reply(code: string, ...params: string[]): void {
    this.replies.push(numeric(code, this.me, params));
  }

  #notice(text: string): void {
    this.#send(...splitTrailing(`:${SERVER_NAME} NOTICE ${this.me}`, text));
  }

  #send(...lines: string[]): void {
    if (this.#held) {
      // Joined through SASL before CAP END: the welcome and the room wait for it, within bounds.
      this.#held.push(...lines);
      if (this.#held.length > MAX_HELD_LINES) this.#end("No CAP END after SASL");
      return;
    }
    for (const line of lines) this.replies.push(line);
  }
}

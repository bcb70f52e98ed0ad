/**
 * An IRC client's capability negotiation (`CAP`) and SASL PLAIN (`AUTHENTICATE`), with no I/O: the
 * one capability offered is `sasl`, where names can be registered. The session asks it what to
 * answer; the name and password SASL gives are checked later by the server's own login.
 */
import { formatIrc, numeric, parseSaslPlain, SERVER_NAME } from "./irc.ts";

/** A registered name and its password, as SASL PLAIN gave them. */
export interface SaslLogin {
  account: string;
  password: string;
}

/** One client's negotiation. */
export class IrcNegotiation {
  /** Whether the client started negotiating (CAP LS or REQ) and has not ended (CAP END). */
  isNegotiating = false;
  /** What SASL PLAIN gave, once it did. */
  login: SaslLogin | undefined;
  #isRegistered: ((name: string) => boolean) | undefined;
  #hasSaslCap = false;
  #isSaslStarted = false;

  /** `isRegistered`: whether a name is registered; none where names cannot be (no `sasl` then). */
  constructor(isRegistered?: (name: string) => boolean) {
    this.#isRegistered = isRegistered;
  }

  /** `CAP` from the client known as `me`: the lines to answer, and whether it was `CAP END`. */
  cap(params: string[], me: string, isJoined: boolean): { lines: string[]; isEnd: boolean } {
    const sub = (params[0] ?? "").toUpperCase();
    const hasSasl = this.#isRegistered !== undefined;
    const cap = (...rest: string[]) => [formatIrc(SERVER_NAME, "CAP", [me, ...rest], true)];
    switch (sub) {
      case "LS":
        if (!isJoined) this.isNegotiating = true;
        return {
          lines: cap("LS", !hasSasl ? "" : params[1] === "302" ? "sasl=PLAIN" : "sasl"),
          isEnd: false,
        };
      case "LIST":
        return { lines: cap("LIST", this.#hasSaslCap ? "sasl" : ""), isEnd: false };
      case "REQ": {
        if (!isJoined) this.isNegotiating = true;
        const asked = (params[1] ?? "").trim();
        const isAck = hasSasl && asked.split(/ +/).every((name) => name === "sasl");
        if (isAck) this.#hasSaslCap = true;
        return { lines: cap(isAck ? "ACK" : "NAK", asked), isEnd: false };
      }
      case "END":
        this.isNegotiating = false;
        return { lines: [], isEnd: true };
      default:
        return { lines: [numeric("410", me, [sub || "*", "Invalid CAP command"])], isEnd: false };
    }
  }

  /**
   * `AUTHENTICATE` (SASL PLAIN) before the name was sent: the lines to answer; `login` is set
   * once it gave a registered name and a password, which the server's login then checks (so its
   * backoff holds), 903 coming only once the server let the client in.
   */
  authenticate(param: string | undefined, me: string, isNameSent: boolean): string[] {
    const reply = (code: string, ...params: string[]) => [numeric(code, me, params)];
    if (param === undefined) return reply("461", "AUTHENTICATE", "Not enough parameters");
    if (this.login || isNameSent) return reply("907", "You have already authenticated");
    if (param === "*") {
      this.#isSaslStarted = false;
      return reply("906", "SASL authentication aborted");
    }
    if (!this.#isSaslStarted) {
      if (param.toUpperCase() !== "PLAIN" || !this.#hasSaslCap) {
        return [
          ...reply("908", "PLAIN", "are available SASL mechanisms"),
          ...reply("904", "SASL authentication failed"),
        ];
      }
      this.#isSaslStarted = true;
      return ["AUTHENTICATE +"];
    }
    this.#isSaslStarted = false;
    const plain = parseSaslPlain(param);
    if (typeof plain === "string") return reply("904", `SASL authentication failed: ${plain}`);
    if (!this.#isRegistered?.(plain.account)) {
      return reply("904", "SASL authentication failed: no such registered name");
    }
    this.login = plain;
    return [];
  }
}

/**
 * What one server asks another over the channel and waits for an answer to: a private message for
 * a member there, and a place kept there (resume across servers: the member comes back on this
 * server with the token the other one gave). Each request has a number and is answered by an
 * `ack` naming it; no answer within the deadline is an answer too.
 */
import type { Member, PlaceKeeper } from "../server/hub.ts";
import { encodeLine, formatPrivateFrom } from "../protocol.ts";
import { type Event, type RemoteMember, unconfirmed } from "./events.ts";
import { Receipts } from "./receipts.ts";
import { REDIS_TIMEOUT_MS } from "./redis_link.ts";

/** What the requests need of the hub. */
export interface RequestHooks {
  /** This server's id. */
  id: string;
  /** The member here under `name`, if any (a kept place too). */
  local(name: string): Member | undefined;
  /** Publishes an event, to be relayed within `budget` ms or not at all. */
  publish(event: Omit<Event, "o" | "d">, budget?: number): void;
}

/** The requests this server made that wait for an answer, and its answers to the others'. */
export class Requests {
  #hooks: RequestHooks;
  #receipts = new Receipts();
  /** Who keeps places here (the server sets it); none: no place is given up. */
  keeper: PlaceKeeper | undefined;

  constructor(hooks: RequestHooks) {
    this.#hooks = hooks;
  }

  /** A number for a request and its answer (see {@linkcode Receipts}). */
  expect(ms = REDIS_TIMEOUT_MS): { i: number; receipt: Promise<boolean | undefined> } {
    return this.#receipts.expect(ms);
  }

  /** An answer came: settles the request it names, if it was this server's. */
  settle(event: Event): void {
    if (event.s === this.#hooks.id) this.#receipts.settle(event.i!, event.t !== "gone");
  }

  /** Sends a private message to another server's member: true once that server delivered it,
   * false if the member was gone, undefined if no answer came in time. */
  async sendPrivate(from: string, to: RemoteMember, text: string): Promise<boolean | undefined> {
    const { i, receipt } = this.expect();
    // Half the time to get there, half for the answer: a message that arrives later is dropped
    // unread, so that "did not confirm" means it was not delivered, unless the answer was lost.
    const event = { k: "msg", n: from, to: to.name, s: to.server, t: text, i } as const;
    this.#hooks.publish(event, REDIS_TIMEOUT_MS / 2);
    return await receipt;
  }

  /** A private message for a member here: delivered, and confirmed to its sender's server. */
  deliverPrivate(event: Event): void {
    if (event.s !== this.#hooks.id) return;
    const recipient = this.#hooks.local(event.to!);
    recipient?.send(encodeLine(formatPrivateFrom(event.n, event.t ?? "")));
    this.#answer(event, recipient !== undefined);
  }

  /**
   * Asks the server of `remote` to put it out: it is told `line`, and the room hears `notice`
   * instead of its leave. True once that server did, false if it was not there.
   */
  async expel(remote: RemoteMember, options: { line: string; notice: string }): Promise<boolean> {
    const { i, receipt } = this.expect();
    const { line: t, notice: x } = options;
    this.#hooks.publish({ k: "expel", n: remote.name, s: remote.server, i, t, x });
    const answer = await receipt;
    if (answer === undefined) throw unconfirmed(remote.name, REDIS_TIMEOUT_MS, "the kick");
    return answer;
  }

  /**
   * Asks the server that keeps `holder`'s place to give it up for the token whose hash is
   * `tokenHash`: true once it did (it told the room nothing), false if it keeps no such place,
   * undefined if no answer came in time.
   */
  async askPlace(holder: RemoteMember, tokenHash: string): Promise<boolean | undefined> {
    const { i, receipt } = this.expect();
    // Half the time to get there, as for a private message: a request that arrives after this
    // server stopped waiting is dropped, so the place is never given up with nobody taking it.
    const event = { k: "place", n: holder.name, s: holder.server, t: tokenHash, i } as const;
    this.#hooks.publish(event, REDIS_TIMEOUT_MS / 2);
    return await receipt;
  }

  /** Another server asks for a place kept here: given up if the token is its own, and answered. */
  givePlace(event: Event): void {
    if (event.s !== this.#hooks.id) return;
    const isHere = this.#hooks.local(event.n) !== undefined;
    this.#answer(event, isHere && (this.keeper?.giveUp(event.n, event.t!) ?? false));
  }

  #answer(event: Event, isDone: boolean): void {
    const ack = { k: "ack", n: "", s: event.o, i: event.i!, ...(isDone ? {} : { t: "gone" }) };
    this.#hooks.publish(ack as Omit<Event, "o" | "d">);
  }
}

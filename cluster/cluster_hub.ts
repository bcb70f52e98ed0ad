/**
 * The room across several server processes: a {@linkcode Hub} on Redis. Each server delivers to its
 * own members at once and publishes the event on one Redis channel; every other server relays it to
 * its members. Names are claims in Redis (`SET` with a lifetime each server keeps renewing), so they
 * are unique across the cluster and come free within seconds of a server's death. The history is a
 * bounded Redis list that each server reads once; from then on it shows newcomers its own record of
 * what it relayed, so that a newcomer's history ends exactly where its live chat begins.
 *
 * Each server keeps its own view of who is on the others, from their events. When Redis cannot be
 * reached, or hangs, or this server itself was stopped, the room is partitioned: each server keeps
 * its members chatting as a room of their own and tells them so, and nothing said meanwhile is
 * queued for later, so nothing arrives twice or late. On healing, each server claims its members'
 * names again and sends its whole membership; the others tell their members what changed.
 */
import type { Log } from "../server/log.ts";
import {
  DEFAULT_LOG_BYTES,
  type Hub,
  type LeaveReason,
  type Member,
  type PlaceKeeper,
  sortNames,
} from "../server/hub.ts";
import { RoomLog } from "../server/room_log.ts";
import { pause } from "../server/conn.ts";
import {
  type Event,
  HEAL_NOTICE,
  type HistoryEntry,
  isOlder,
  joinHistory,
  LEFT_IN_PARTITION,
  PARTITION_NOTICE,
  type RemoteMember,
  type RosterEntry,
  SERVER_SHUT_DOWN,
  unconfirmed,
  unreachable,
  welcomeLines,
} from "./events.ts";
import {
  backoff,
  Link,
  redact,
  REDIS_TIMEOUT_MS,
  RedisClock,
  RedisRefusedError,
  refusalOf,
} from "./redis_link.ts";
import { Requests } from "./requests.ts";
import { Claims, type LocalMember } from "./claims.ts";
import { takeIn } from "./intake.ts";
import { RedisAccounts, type StoreHooks } from "./redis_accounts.ts";
import { RedisModeration } from "./redis_moderation.ts";
import { NAME_TAKEN, type OtherServer, OtherServers, type Told } from "./others.ts";
import {
  DEFAULT_MAX_LINE_BYTES,
  describe,
  encodeLine,
  formatAction,
  formatError,
  formatJoin,
  formatLeave,
  formatPrivateFrom,
  formatPrivateTo,
  formatQuit,
  formatRename,
  formatSystemLine,
  formatUserLine,
  formatWho,
  markOperator,
  nameKey,
  nameTaken,
  noSuchUser,
  ProtocolError,
  quote,
  sameName,
} from "../protocol.ts";

/** How long a name claim lives without renewal: a dead server's names are free after this. */
export const DEFAULT_CLAIM_TTL_MS = 10_000;
/** The longest wait between two health checks of the link (ping, clock, beat). */
const MAX_TICK_MS = 1000;
/** Events that arrive while a link heals wait for it; so many mean the heal is stuck. */
const MAX_PENDING_EVENTS = 10_000;
/** How long shutdown waits for Redis to take the goodbyes before it drops the connection. */
const CLOSE_TIMEOUT_MS = 2000;

/** Options for {@linkcode ClusterHub}. */
export interface ClusterOptions {
  /** `redis://[[user]:password@]host[:port][/db]` */
  url: string;
  /** Lines of chat kept for newcomers, in Redis (0 keeps none). */
  historySize: number;
  /** Lifetime of a name claim; renewed at a third of it. */
  claimTtlMs?: number;
  /** Longest text accepted from another server. */
  maxLineBytes?: number;
  /** Bytes of the room log that carries every line to this server's members. */
  logSize?: number;
  /** One line per event worth a log: lost and regained Redis, bad messages. */
  log?: Log;
}

/** One server's share of the cluster's room. */
export class ClusterHub implements Hub {
  /** This server's id, random per process, carried by every event it publishes. */
  readonly id = crypto.randomUUID();
  #members = new Map<string, Member>();
  #local = new Map<Member, LocalMember>();
  /** Name keys of members whose join is under way, so two cannot take one name meanwhile. */
  #joining = new Set<string>();
  /** The other servers and their members, as this server knows them. */
  #others: OtherServers;
  #log: RoomLog;
  /** The lines this server relayed lately: what a newcomer here is shown, exactly up to its join. */
  #history: HistoryEntry[] = [];
  #options: Required<ClusterOptions>;
  /** The current link to Redis, healthy or not; the room is whole while it is healed. */
  #link: Link | undefined;
  #isWhole = false;
  #hasBeenWhole = false;
  /** Whether the members were told the room is partitioned, and so must hear that it healed. */
  #isPartitionTold = false;
  /** Whether the room's history and members were read from Redis (once, at the first link). */
  #isSeeded = false;
  #memberCount = 0;
  #lineCount = 0;
  /** Private messages and places asked of other servers, and the answers to theirs. */
  #requests = new Requests({
    id: this.id,
    local: (name) => this.#members.get(nameKey(name)),
    publish: (event, budget) => this.#publish(event, "", budget),
  });
  #clock = new RedisClock();
  #tickMs: number;
  /** How long between two ticks means this server was stopped, not merely busy. */
  #awayMs: number;
  #tickAt = performance.now();
  #renewedAt = 0;
  /** When the last ping that the subscription answered was sent. */
  #confirmedAt = 0;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #running: Promise<void> | undefined;
  #stopWaiting = new AbortController();
  #startup = Promise.withResolvers<void>();
  #isStarted = false;
  #claims: Claims;
  /** The last reason Redis gave for refusing this server, logged once. */
  #refusal: string | undefined;
  #closing: Promise<void> | undefined;
  /** The registered names, in Redis: changed only while the room is whole. */
  readonly accounts: RedisAccounts;
  /** The operators, bans, mutes and topic, in Redis: changed only while the room is whole. */
  readonly moderation: RedisModeration;

  constructor(options: ClusterOptions) {
    this.#options = {
      claimTtlMs: DEFAULT_CLAIM_TTL_MS,
      maxLineBytes: DEFAULT_MAX_LINE_BYTES,
      logSize: DEFAULT_LOG_BYTES,
      log: () => {},
      ...options,
    };
    this.#log = new RoomLog(this.#options.logSize);
    const hooks: StoreHooks = {
      link: () => this.#isWhole && !this.#closing ? this.#link : undefined,
      now: () => this.#clock.now(),
      origin: this.id,
      changed: (name) => this.#publish({ k: "account", n: name }),
    };
    this.accounts = new RedisAccounts(this.#options.url, this.#options.log, hooks);
    this.moderation = new RedisModeration(hooks);
    this.#others = new OtherServers(this.#options.claimTtlMs);
    this.#claims = new Claims(this.id, this.#options.claimTtlMs, hooks.link);
    this.#tickMs = Math.min(MAX_TICK_MS, this.#options.claimTtlMs / 3);
    // The others count a server gone after a claim's lifetime without a word from it, and its
    // claims may lapse a little sooner (which its members' place in the others' rooms covers until
    // it claims them again). Half the lifetime is well inside that, and two ticks is well above a
    // busy machine's hiccup.
    this.#awayMs = Math.max(this.#options.claimTtlMs / 2, 2 * this.#tickMs);
    this.#startup.promise.catch(() => {}); // read by start(), if it still waits
  }

  /**
   * Connects to Redis and heals into the room. Resolves once in the room, or after `timeoutMs`
   * while it goes on trying in the background ({@linkcode isWhole} says which). Rejects with a
   * {@linkcode RedisRefusedError} if Redis refuses this server for good meanwhile.
   */
  async start(timeoutMs = 3000): Promise<void> {
    this.#ticker = setInterval(() => this.#tick(), this.#tickMs);
    this.#running = this.#run();
    const started = new AbortController(); // ends the wait's timer
    try {
      await Promise.race([this.#startup.promise, pause(timeoutMs, started.signal)]);
    } finally {
      started.abort();
      this.#isStarted = true;
    }
  }

  /** How late the last event from another server came, in ms on Redis' clock (for the metrics). */
  eventLagMs = 0;

  /** Whether Redis is reachable and healed into, so that this server's members are in the whole room. */
  get isWhole(): boolean {
    return this.#isWhole;
  }

  async join(member: Member, notices: readonly string[] = [], isResumed = false): Promise<void> {
    const name = member.name;
    const key = nameKey(name);
    if (this.#closing) throw new ProtocolError("Server is shutting down");
    if (this.#isTaken(key)) throw nameTaken(name);
    this.#noticeStop();
    this.#joining.add(key);
    try {
      const info = { id: (++this.#memberCount).toString(36), since: this.#clock.now() };
      // Redis decides while it can be reached; in a partition the name is claimed on healing.
      if (!await this.#claims.tryClaim(name, info)) throw nameTaken(name);
      if (this.#closing || this.#others.holder(key)) {
        this.#claims.release(name, info);
        throw this.#closing ? new ProtocolError("Server is shutting down") : nameTaken(name);
      }
      // The newcomer is a member from here on, all at once: it has seen every line this server
      // relayed until now in the history, and hears every later one live.
      this.#members.set(key, member);
      this.#local.set(member, info);
      if (!isResumed) this.#deliver(member, formatJoin(name), true);
      this.#welcome(member, notices); // it reads the room after its own join
      const x = isResumed ? { x: "" } : {}; // nobody hears of a place taken back
      this.#publish({ k: "join", n: name, m: info.id, c: info.since, ...x });
    } finally {
      this.#joining.delete(key);
    }
  }

  /**
   * Puts `next` in the place of `old` here, under its name and claim, and no server hears of it: a
   * place kept while its connection is lost (see server/kept_places.ts), or a member back in it.
   */
  replace(old: Member, next: Member, welcome?: readonly string[]): boolean {
    const key = nameKey(old.name);
    const info = this.#local.get(old);
    if (this.#members.get(key) !== old || !info || this.#closing) return false;
    this.#log.remove(old); // a connection not yet seen lost still gets what was said before
    next.name = old.name;
    this.#members.set(key, next);
    this.#local.delete(old);
    this.#local.set(next, info);
    if (welcome) this.#welcome(next, welcome);
    return true;
  }

  /** Who gives up a place kept here when another server asks for it for its token. */
  keepPlacesWith(keeper: PlaceKeeper): void {
    this.#requests.keeper = keeper;
  }

  /** Asks the server that keeps the place of `name` to give it up (see `Hub.takePlace`). */
  async takePlace(name: string, tokenHash: string): Promise<boolean> {
    const holder = this.#others.holder(nameKey(name));
    if (!holder || !this.#isWhole) return false;
    return await this.#requests.askPlace(holder, tokenHash) === true;
  }

  /** The room list, the history, `notices` and the welcome; then it reads the room from here on. */
  #welcome(member: Member, notices: readonly string[]): void {
    const key = nameKey(member.name);
    const marked = this.names().filter((other) => nameKey(other) !== key).map((other) =>
      this.#marked(other)
    );
    member.welcome([
      encodeLine(welcomeLines(member.name, marked, this.#history, notices, this.#isWhole)),
    ]);
    if (!this.#isWhole) this.#isPartitionTold = true;
    this.#log.add(member);
  }

  leave(member: Member, reason: LeaveReason = {}): void {
    const key = nameKey(member.name);
    const info = this.#local.get(member);
    if (this.#members.get(key) !== member || !info) return;
    this.#noticeStop();
    this.#members.delete(key);
    this.#log.remove(member);
    this.#local.delete(member);
    this.#claims.release(member.name, info);
    const text = reason.quit ?? reason.problem;
    const line = reason.notice ??
      (reason.quit
        ? formatQuit(member.name, reason.quit)
        : formatLeave(member.name, reason.problem));
    if (line !== "") this.#deliver(member, line, true);
    this.#publish({
      k: "leave",
      n: member.name,
      m: info.id,
      ...(text ? { t: text } : {}),
      ...(reason.quit ? { q: true } : {}),
      ...(reason.notice === undefined ? {} : { x: reason.notice }),
    });
  }

  /** A notice for the whole room, here and on every other server. */
  announce(line: string): void {
    this.#deliver(undefined, line, true);
    this.#publish({ k: "note", n: "", t: line });
  }

  /** Every name in the room as this server knows it, sorted: across servers there is no one join
   * order to keep. */
  names(): string[] {
    const names = [...this.#members.values()].map((member) => member.name);
    for (const remote of this.#others.members()) names.push(remote.name);
    return sortNames(names);
  }

  /** Why no moderation act can be made now, if so: every act needs Redis. */
  canModerate(): string | undefined {
    if (this.#isWhole && !this.#closing) return undefined;
    return "The server cannot save it now (the room is partitioned): try again later";
  }

  /**
   * Has the server of a member of another server put it out: it is told `line`, and the room hears
   * `notice` instead of its leave. True once that server did, false if it was not there.
   */
  async expel(name: string, options: { line: string; notice: string }): Promise<boolean> {
    const remote = this.#others.holder(nameKey(name));
    if (!remote) return false;
    const cannot = this.canModerate();
    if (cannot) throw new ProtocolError(cannot);
    return await this.#requests.expel(remote, options);
  }

  say(member: Member, text: string): void {
    this.#relay(member, formatUserLine(member.name, text), { k: "say", n: member.name, t: text });
  }

  act(member: Member, text: string): void {
    this.#relay(member, formatAction(member.name, text), { k: "act", n: member.name, t: text });
  }

  async rename(member: Member, newName: string): Promise<void> {
    const oldName = member.name;
    if (newName === oldName) throw sameName(newName);
    const oldKey = nameKey(oldName);
    const newKey = nameKey(newName);
    const isNewKey = newKey !== oldKey;
    const info = this.#local.get(member);
    if (!info) return;
    if (isNewKey && this.#isTaken(newKey)) throw nameTaken(newName);
    this.#noticeStop();
    // A change of case keeps the name, and so the time it was taken.
    const renamed = { id: info.id, since: isNewKey ? this.#clock.now() : info.since };
    if (isNewKey) this.#joining.add(newKey);
    try {
      if (!await this.#claims.tryClaim(newName, renamed)) throw nameTaken(newName);
    } finally {
      if (isNewKey) this.#joining.delete(newKey);
    }
    const isGone = this.#members.get(oldKey) !== member || member.name !== oldName;
    if (isGone || (isNewKey && this.#others.holder(newKey))) {
      if (isNewKey) this.#claims.release(newName, renamed);
      if (isGone) return; // it left, or was renamed, while we waited
      throw nameTaken(newName);
    }
    if (isNewKey) this.#claims.release(oldName, info);
    info.since = renamed.since;
    this.#members.delete(oldKey);
    this.#members.set(newKey, member);
    member.name = newName;
    this.#deliver(undefined, formatRename(oldName, newName));
    this.#publish({ k: "rename", n: oldName, to: newName, m: info.id, c: info.since });
  }

  async whisper(member: Member, to: string, text: string): Promise<void> {
    this.#noticeStop();
    const local = this.#members.get(nameKey(to));
    if (local) {
      local.send(encodeLine(formatPrivateFrom(member.name, text)));
      return member.send(encodeLine(formatPrivateTo(local.name, text)));
    }
    const remote = this.#others.holder(nameKey(to));
    if (!remote) throw noSuchUser(to);
    if (!this.#isWhole) throw unreachable(remote.name);
    const answer = await this.#requests.sendPrivate(member.name, remote, text);
    if (answer === undefined) throw unconfirmed(remote.name, REDIS_TIMEOUT_MS);
    if (!answer) throw noSuchUser(to);
    member.send(encodeLine(formatPrivateTo(remote.name, text)));
  }

  who(member: Member): void {
    this.#noticeStop();
    const lines = formatWho(this.names().map((name) => this.#marked(name)));
    if (!this.#isWhole) {
      lines.push(formatSystemLine("The room is partitioned: only people on this server hear you"));
    }
    member.send(encodeLine(lines.join("\n")));
  }

  /**
   * Tells the other servers that every member here leaves and gives up their claims (the members
   * themselves hear the server's own shutdown notice), then closes the link to Redis, dropping it
   * if Redis does not take the goodbyes in time. Safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#ticker);
      this.#stopWaiting.abort();
      for (const member of this.#members.values()) {
        const info = this.#local.get(member)!;
        this.#claims.release(member.name, info);
        this.#publish({ k: "leave", n: member.name, m: info.id, t: SERVER_SHUT_DOWN });
      }
      this.#members.clear();
      this.#local.clear();
      const link = this.#link;
      this.#isWhole = false;
      link?.flush(); // the goodbyes go before the link starts closing
      await link?.close(CLOSE_TIMEOUT_MS);
      await this.#running;
    })();
    return this.#closing;
  }

  /**
   * Hands a line to every local member but `from`: one append to the room log. A notice (a join or
   * a leave) waits a little to go out with the others, as in the LocalHub.
   */
  #deliver(from: Member | undefined, line: string, isNotice = false): void {
    if (!this.#closing) this.#log.append(encodeLine(line), from, isNotice);
  }

  /** A line of chat from a member here: delivered here, kept, and published with its number. */
  #relay(from: Member, line: string, event: Pick<Event, "k" | "n" | "t">): void {
    this.#noticeStop(); // a server that was stopped says so before anything it read meanwhile
    this.#remember(line);
    this.#deliver(from, line);
    const i = ++this.#lineCount;
    const entry = this.#options.historySize > 0
      ? JSON.stringify({ at: Date.now(), line, o: this.id, i })
      : "";
    this.#publish({ ...event, i }, entry);
  }

  #remember(line: string, time = new Date()): void {
    const size = this.#options.historySize;
    if (size === 0) return;
    this.#history.push({ time, line });
    if (this.#history.length > size) this.#history.shift();
  }

  #isTaken(key: string): boolean {
    return this.#members.has(key) || this.#joining.has(key) ||
      this.#others.holder(key) !== undefined;
  }

  /**
   * Publishes an event to the other servers, to be relayed within `budget` ms or not at all; while
   * partitioned it goes nowhere, on purpose. Events wait for the next turn of the event loop and go
   * out together, in order, in one call to Redis.
   */
  #publish(event: Omit<Event, "o" | "d">, entry = "", budget = REDIS_TIMEOUT_MS): void {
    const link = this.#link;
    if (!link || !this.#isWhole || this.#noticeStop()) return;
    const d = this.#clock.now() + budget;
    // Our own events come back on the channel: their first bytes tell them apart (see takeIn).
    link.publish(JSON.stringify({ o: this.id, d, ...event }), d, entry);
  }

  /**
   * Links to Redis, heals, and stays until the link breaks; then again, with backoff, until the hub
   * closes. Each link is used until its first fault and then dropped whole.
   */
  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#closing) {
      const link = new Link(this.#options.url, {
        onMessage: (message) => this.#onMessage(link, message),
        onBreak: (reason) => this.#onBreak(link, reason),
        historySize: this.#options.historySize,
      });
      this.#link = link;
      try {
        await link.open();
        await this.#heal(link);
        failures = 0;
        await link.broken;
      } catch (error) {
        link.break(describe(error));
        if (this.#isRefused(link.cause ?? error)) failures = Infinity;
      }
      if (!this.#closing) await pause(backoff(failures++), this.#stopWaiting.signal);
    }
  }

  /** Whether Redis refused this server for good (reported once; fatal at startup). */
  #isRefused(error: unknown): boolean {
    const refusal = refusalOf(error);
    if (!refusal) return false;
    const message = `Redis at ${redact(this.#options.url)} refused this server: ${refusal}`;
    if (!this.#isStarted) this.#startup.reject(new RedisRefusedError(message));
    else if (refusal !== this.#refusal) {
      this.#options.log(`redis: ${message}; serving this server's members alone and retrying`, {
        event: "redis refused",
        level: "error",
        reason: refusal,
      });
    }
    this.#refusal = refusal;
    return true;
  }

  /**
   * A new link is up: reads the room from Redis the first time, makes sure every member here holds
   * its name (the one who held a name longer keeps it), then sends this server's roster, asking the
   * others for theirs, and only then relays: the events that came meanwhile first.
   */
  async #heal(link: Link): Promise<void> {
    await this.#clock.sample(link, { isFirst: !this.#hasBeenWhole });
    if (!this.#isSeeded) await this.#seed(link);
    await this.#settle(link);
    this.#evictRegistered(await this.accounts.heal(link));
    await this.moderation.heal(link, this.accounts.wasLost); // puts out whom a new ban matches
    // Publishing is tried once before it counts: a Redis user without the permission fails here.
    const d = this.#clock.now() + REDIS_TIMEOUT_MS;
    const beat = JSON.stringify({
      o: this.id,
      d,
      k: "beat",
      n: "",
      t: `${this.#options.claimTtlMs}`,
    });
    await link.within(link.send({ deadline: d, messages: [beat], entries: [] }));
    if (link.isBroken || this.#closing) throw new Error("Lost Redis while healing");
    const now = performance.now();
    this.#tickAt = this.#renewedAt = this.#confirmedAt = now;
    this.#others.heardAll(now);
    this.#isWhole = true;
    this.#options.log(
      `redis: connected to ${redact(this.#options.url)}${this.#hasBeenWhole ? " again" : ""}`,
      { event: "redis connected" },
    );
    this.#hasBeenWhole = true;
    this.#refusal = undefined;
    this.#publish({ k: "roster", n: "", l: this.#roster(), r: true });
    if (this.#isPartitionTold) this.#deliver(undefined, HEAL_NOTICE);
    this.#isPartitionTold = false;
    const pending = link.pending ?? [];
    link.pending = undefined;
    for (const message of pending) this.#receive(message);
    this.#startup.resolve();
  }

  /**
   * The first time Redis is reached: the room's history (with what was said here before, in time
   * order) and who is on the other servers, from their claims. The channel was subscribed first,
   * and its events wait meanwhile; a line both in the history and among them is kept once.
   */
  async #seed(link: Link): Promise<void> {
    const [claims, entries] = await link.within(
      Promise.all([link.readClaims(), link.readHistory(this.#options.historySize)]),
    );
    const size = this.#options.historySize;
    const seam = joinHistory(entries, this.#history, { size, pending: link.pending });
    [this.#history, link.pending] = [seam.history, seam.pending];
    for (const claim of claims) {
      if (claim.server !== this.id) this.#admit(this.#others.heardFrom(claim.server), claim);
    }
    this.#isSeeded = true;
  }

  /**
   * Makes sure each member here holds the claim on its name, renewing it; a member whose name was
   * held longer by someone on another server (they took it on two sides of a partition) cannot
   * keep it: it is told, and disconnected.
   */
  async #settle(link: Link): Promise<void> {
    const members = [...this.#members.values()].map((member) => ({
      member,
      name: member.name,
      info: { ...this.#local.get(member)! },
    }));
    const held = await link.within(
      Promise.all(members.map(({ name, info }) => this.#claims.claim(link, name, info, true))),
    );
    members.forEach(({ member, name, info }, index) => {
      const isCurrent = this.#members.get(nameKey(name)) === member && member.name === name;
      if (!isCurrent && held[index]) this.#claims.release(name, info); // it left or was renamed meanwhile
      else if (isCurrent && !held[index]) this.#evict(member);
    });
  }

  /** This server's members, as its roster lists them. */
  #roster(): RosterEntry[] {
    return [...this.#members.values()].map((member) => {
      const { id, since } = this.#local.get(member)!;
      return [id, member.name, since];
    });
  }

  /**
   * Every tick: notices if this server was away, checks that both connections answer in time
   * (they break otherwise), measures Redis's clock, renews the claims at a third of their
   * lifetime, says it is alive, and tells the members here who left with a server gone silent.
   */
  #tick(): void {
    const now = performance.now();
    if (this.#noticeStop(now)) return;
    this.#tickAt = now;
    const link = this.#link;
    if (!link || !this.#isWhole) return;
    const sentAt = now;
    link.within(link.subscriber.ping()).then(() => {
      this.#confirmedAt = Math.max(this.#confirmedAt, sentAt);
    }, () => {});
    this.#clock.sample(link, { isFirst: !this.#hasBeenWhole }).catch(() => {});
    if (now - this.#renewedAt >= this.#options.claimTtlMs / 3) {
      this.#renewedAt = now;
      this.#settle(link).catch(() => {});
    }
    this.#publish({ k: "beat", n: "", t: String(this.#options.claimTtlMs) });
    // Silent by what the channel certainly delivered: everything published before a ping that our
    // subscription answered has reached us, so a hang of our own cannot pass for their silence.
    this.#tell(this.#others.dropSilent(this.#confirmedAt));
  }

  /**
   * Notices that this server did not run on time, and breaks the link: true if so. One that was
   * stopped or starved (SIGSTOP, a paused machine) for longer than `#awayMs` may have been counted
   * gone by the others, and what waits in its sockets is late: it heals before relaying anything.
   */
  #noticeStop(now = performance.now()): boolean {
    const away = now - this.#tickAt;
    if (!this.#isWhole || away <= this.#awayMs) return false;
    this.#link?.break(`this server was stopped for ${(away / 1000).toFixed(1)} s`);
    return true;
  }

  /** The link broke: this server's members are alone until it heals, and are told so. */
  #onBreak(link: Link, reason: string): void {
    if (link !== this.#link || !this.#isWhole) return;
    this.#isWhole = false;
    if (this.#closing) return;
    this.#options.log(
      `redis: lost ${
        redact(this.#options.url)
      } (${reason}); serving this server's members alone and retrying`,
      { event: "redis lost", level: "warn", reason },
    );
    this.#deliver(undefined, PARTITION_NOTICE);
    this.#isPartitionTold = true;
  }

  /** An event from the channel: relayed now, or kept until the link has healed. */
  #onMessage(link: Link, message: string): void {
    if (link !== this.#link || link.isBroken) return;
    if (!link.pending) return this.#receive(message);
    if (link.pending.length >= MAX_PENDING_EVENTS) link.break("too many events while healing");
    else link.pending.push(message);
  }

  /**
   * Sends away the members here under a name Redis says is registered, read for the first time:
   * they joined before this server could know (it started while Redis was out of reach), so without
   * its password; they rejoin with it.
   */
  #evictRegistered(registered: Set<string>): void {
    for (const member of [...this.#members.values()]) {
      if (!registered.has(nameKey(member.name))) continue;
      const error = `${member.name} is registered: rejoin, and send its password when asked`;
      this.#sendAway(member, formatError(error), { problem: "registered name" });
    }
  }

  /** Disconnects a member whose name someone elsewhere has held longer. */
  #evict(member: Member): void {
    const error = `Someone on another server had the name ${quote(member.name)} first, while ` +
      "the room was partitioned; rejoin with another name";
    this.#sendAway(member, formatError(error), { problem: NAME_TAKEN });
  }

  /** Sends a member away: it is told `line`, and leaves for `reason`. */
  #sendAway(member: Member, line: string, reason: LeaveReason): void {
    member.send(encodeLine(line));
    this.leave(member, reason);
    member.end();
  }

  /**
   * Brings another server's member into the view and tells the members here: it entered, or was
   * renamed if known. Two people with one name (taken on two sides of a partition) cannot both
   * stay: the one who has held it longer does, and the other's server sends it away.
   */
  #admit(other: OtherServer, member: RemoteMember, isResumed = false): void {
    if (this.#others.has(other, member)) return;
    const local = this.#members.get(nameKey(member.name));
    if (local) {
      if (isOlder({ server: this.id, ...this.#local.get(local)! }, member)) return;
      this.#evict(local);
    }
    this.#tell(this.#others.admit(other, member, isResumed));
  }

  /** Takes another server's member out of the view, telling the members here why. */
  #forget(member: RemoteMember, problem?: string, quit?: string, notice?: string): void {
    this.#tell([this.#others.forget(member, { problem, quit, notice })]);
  }

  /** Tells the members here what changed in the view of the other servers. */
  #tell(told: Told[]): void {
    for (const { line, isNotice } of told) if (line) this.#deliver(undefined, line, isNotice);
  }

  /** What a server's roster says: whoever it no longer lists left, the rest are admitted. */
  #applyRoster(server: string, other: OtherServer, entries: RosterEntry[]): void {
    const listed = new Set(entries.map(([id]) => id));
    for (const member of [...other.members.values()]) {
      if (!listed.has(member.id)) this.#forget(member, LEFT_IN_PARTITION);
    }
    for (const [id, name, since] of entries) this.#admit(other, { server, id, name, since });
  }

  /** Relays another server's event to the members here, once it proves well formed and on time. */
  #receive(message: string): void {
    if (this.#noticeStop()) return;
    const { event, isLate, lagMs } = takeIn(message, {
      id: this.id,
      now: this.#clock.now(),
      maxLineBytes: this.#options.maxLineBytes,
      log: this.#options.log,
      holds: (name) => this.#members.has(nameKey(name)),
    });
    if (lagMs !== undefined) this.eventLagMs = lagMs;
    if (isLate) return this.#link?.break("an event from another server came too late");
    // A moderation change may come from `chat admin`, which is no server: it is not heard from.
    if (event?.k === "mod") return this.moderation.changed(event.t!, event.v, event.b);
    if (event) this.#apply(event, this.#others.heardFrom(event.o));
  }

  #apply(event: Event, other: OtherServer): void {
    const { o: server, n: name, t: text = "", m: id = "", c: since = 0 } = event;
    switch (event.k) {
      case "beat":
        other.ttl = Number(text) || other.ttl;
        return;
      case "roster":
        this.#applyRoster(server, other, event.l!);
        if (event.r) this.#publish({ k: "roster", n: "", l: this.#roster() });
        return;
      case "say":
      case "act": {
        const line = event.k === "say" ? formatUserLine(name, text) : formatAction(name, text);
        this.#remember(line);
        return this.#deliver(undefined, line);
      }
      case "join":
        return this.#admit(other, { server, id, name, since }, event.x === "");
      case "rename":
        return this.#admit(other, { server, id, name: event.to!, since });
      case "leave": {
        const known = other.members.get(id);
        if (known) this.#forget(known, text || undefined, event.q ? text : undefined, event.x);
        return;
      }
      case "msg":
        return this.#requests.deliverPrivate(event);
      case "note":
        return this.#deliver(undefined, text, true);
      case "expel":
        return this.#putOut(event);
      case "ack":
        return this.#requests.settle(event);
      case "place":
        return this.#requests.givePlace(event);
      case "account":
        // Another server changed a registered name: read it as Redis has it now.
        if (this.#link && this.#isWhole) this.accounts.refresh(this.#link, name);
        return;
    }
  }

  /** Another server asks to put out a member here (a kick): done, and confirmed to it. */
  #putOut(event: Event): void {
    if (event.s !== this.id) return;
    const member = this.#members.get(nameKey(event.n));
    const problem = event.t!.includes("kicked") ? "kicked" : "banned";
    if (member) this.#sendAway(member, event.t!, { problem, notice: event.x ?? "" });
    this.#publish({ k: "ack", n: "", s: event.o, i: event.i!, ...(member ? {} : { t: "gone" }) });
  }

  /** A name as the room list and `/who` show it: `@alice` for an operator. */
  #marked(name: string): string {
    return markOperator(name, this.moderation.isOperator(name));
  }
}

/**
 * The room across several server processes: a {@linkcode Hub} on Redis. Each server delivers to its
 * own members at once and publishes the event on one Redis channel; every other server relays it to
 * its members. Names are claims in Redis (`SET NX` with a lifetime each server keeps renewing), so
 * they are unique across the cluster and come free within seconds of a server's death. The history
 * is a bounded Redis list.
 *
 * When Redis is unreachable the server keeps its own members chatting as a room of their own, tells
 * them the room is partitioned, and reconnects with backoff; nothing said meanwhile is queued for
 * later, so nothing arrives twice or late.
 */
import { createClient } from "@redis/client";
import { DEFAULT_LOG_BYTES, type Hub, type LeaveReason, type Member, sortNames } from "./hub.ts";
import { RoomLog } from "./room_log.ts";
import { describe } from "./peer.ts";
import {
  cleanText,
  DEFAULT_MAX_LINE_BYTES,
  encodeLine,
  formatAction,
  formatError,
  formatHistory,
  formatJoin,
  formatLeave,
  formatPrivateFrom,
  formatPrivateTo,
  formatQuit,
  formatRename,
  formatRoomList,
  formatSystemLine,
  formatUserLine,
  formatWelcome,
  formatWho,
  nameKey,
  parseName,
  ProtocolError,
  quote,
} from "./protocol.ts";

/** How long a name claim lives without renewal: a dead server's names are free after this. */
export const DEFAULT_CLAIM_TTL_MS = 10_000;
/** The longest wait between two attempts to reach Redis. */
const MAX_BACKOFF_MS = 5000;
/** The Redis keys and channel, all under one prefix so that a Redis can be shared. */
const PREFIX = "chat:";
const CHANNEL = `${PREFIX}room`;
const HISTORY_KEY = `${PREFIX}history`;
const NAME_PREFIX = `${PREFIX}name:`;
/** Deletes a claim only if this server still holds it (it may have expired and been taken). */
const RELEASE_SCRIPT =
  "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0";
/**
 * Takes a claim if it is free or this server's already (under any spelling of the name: a
 * leftover, or a member changing the case of its name), with a fresh lifetime: 1 if taken, 0 if
 * another server holds it. ARGV: this server's id and a space, the claim's value, its lifetime.
 */
const TAKE_SCRIPT = "local held = redis.call('get', KEYS[1]) " +
  "if held == false or string.sub(held, 1, #ARGV[1]) == ARGV[1] then " +
  "redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3]) return 1 end return 0";
/** Renews a claim only if this server still holds it: 1 if it does, 0 if not. */
const RENEW_SCRIPT =
  "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end return 0";
/** The longest claim lifetime a beat may announce (an hour), so a beat cannot silence the check. */
const MAX_CLAIM_TTL_MS = 3_600_000;
/** How long shutdown waits for Redis to take the goodbyes before it drops the connection. */
const CLOSE_TIMEOUT_MS = 2000;
/** Server ids are UUIDs, so that a forged one cannot be anything else. */
const SERVER_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** What the members of a partitioned server are told, and told again when it heals. */
export const PARTITION_NOTICE = formatSystemLine(
  "The room is partitioned: only people on this server hear you until it is whole again",
);
export const HEAL_NOTICE = formatSystemLine("The room is whole again");

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
  log?: (message: string) => void;
}

/** An event as published on the channel: short keys, since every line of chat is one. */
interface Event {
  /** The origin server's id. */
  o: string;
  /** What happened; `sync` asks every server to say its members again. */
  k: "say" | "act" | "join" | "leave" | "rename" | "msg" | "beat" | "sync";
  /** The member's name (the old one for a rename); empty in a beat or a sync. */
  n: string;
  /** Text: the line, the quit reason, the leave problem, the private message; in a beat, the
   * claims' lifetime in ms. */
  t?: string;
  /** The new name of a rename, or the recipient of a private message. */
  to?: string;
  /** The server of a private message's recipient: only that one delivers it. */
  s?: string;
  /** Whether a leave was a `/quit` (its text is then the member's own reason). */
  q?: boolean;
}

type Redis = ReturnType<typeof createClient>;

/** What this server knows of another: when it last spoke, its claims' lifetime, its members. */
interface OtherServer {
  heardAt: number;
  ttl: number;
  names: Map<string, string>;
}

/** One server's share of the cluster's room. */
export class ClusterHub implements Hub {
  /** This server's id, random per process, carried by every event it publishes. */
  readonly id = crypto.randomUUID();
  #members = new Map<string, Member>();
  /** Name keys of members whose join is under way, so two cannot take one name meanwhile. */
  #joining = new Set<string>();
  /** The name each member holds a claim on in Redis; a member missing here, or holding a claim on
   * a name other than its own, is claimed when Redis can be reached (it joined or was renamed in
   * a partition). */
  #claims = new Map<Member, string>();
  /** The other servers, to tell ours who left with a server that falls silent for longer than its
   * claims live (it died, or lost Redis). */
  #others = new Map<string, OtherServer>();
  #redis: Redis;
  #subscriber: Redis;
  #log: RoomLog;
  #options: Required<ClusterOptions>;
  #isWhole = false;
  /** Whether the members were told the room is partitioned, and so must hear that it healed. */
  #isPartitionTold = false;
  #settled = Promise.resolve();
  #hasMetOthers = false;
  #isSettleQueued = false;
  #closing: Promise<void> | undefined;
  #renewer: ReturnType<typeof setInterval>;

  constructor(options: ClusterOptions) {
    this.#options = {
      claimTtlMs: DEFAULT_CLAIM_TTL_MS,
      maxLineBytes: DEFAULT_MAX_LINE_BYTES,
      logSize: DEFAULT_LOG_BYTES,
      log: () => {},
      ...options,
    };
    this.#log = new RoomLog(this.#options.logSize);
    const backoff = (retries: number) =>
      Math.min(MAX_BACKOFF_MS, 100 * 2 ** retries) * (0.5 + Math.random() / 2);
    // Without the offline queue a command fails at once while Redis is away, rather than being
    // sent, late, after it comes back: what is said in a partition stays in it.
    this.#redis = createClient({
      url: options.url,
      disableOfflineQueue: true,
      socket: { reconnectStrategy: backoff, connectTimeout: 2000 },
    });
    this.#subscriber = this.#redis.duplicate();
    for (const client of [this.#redis, this.#subscriber]) {
      client.on("ready", () => this.#onStatus());
      client.on("end", () => this.#onStatus());
      client.on("reconnecting", () => this.#onStatus());
      client.on("error", (error: unknown) => this.#onStatus(error));
    }
    const renewEvery = Math.max(100, this.#options.claimTtlMs / 3);
    this.#renewer = setInterval(() => this.#renewClaims(), renewEvery);
  }

  /**
   * Connects to Redis and subscribes. Resolves once connected, or after `timeoutMs` while the
   * clients go on retrying in the background; whether it is connected is in {@linkcode isWhole}.
   */
  async start(timeoutMs = 3000): Promise<void> {
    const connected = Promise.all([
      this.#redis.connect(),
      this.#subscriber.connect().then(() =>
        this.#subscriber.subscribe(CHANNEL, (message) => this.#receive(message))
      ),
    ]);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<void>((resolve) => timer = setTimeout(resolve, timeoutMs));
    await Promise.race([connected.catch(() => {}), timeout]);
    clearTimeout(timer);
    this.#onStatus();
  }

  /** Whether Redis is reachable, so that this server's members are in the whole room. */
  get isWhole(): boolean {
    return this.#isWhole;
  }

  async join(member: Member, notices: readonly string[] = []): Promise<void> {
    const name = member.name;
    const key = nameKey(name);
    if (this.#closing) throw new ProtocolError("Server is shutting down");
    if (this.#members.has(key) || this.#joining.has(key)) throw taken(name);
    this.#joining.add(key);
    try {
      // Whether the name is claimed in Redis now; undefined when Redis is away.
      let claimed: boolean | undefined;
      if (this.#isWhole) claimed = await this.#secure(name).catch(() => undefined);
      if (claimed === false) throw taken(name);
      if (claimed) this.#claims.set(member, name);
      let names: string[] = [];
      let history: string[] = [];
      if (claimed) {
        [names, history] = await Promise.all([this.#roomNames(), this.#history()])
          .catch(() => [[], []]);
      }
      if (this.#closing) {
        this.#releaseClaim(member);
        throw new ProtocolError("Server is shutting down");
      }
      // The newcomer is a member from here on: nothing reaches it before its room list.
      this.#members.set(key, member);
      const others = this.#union(names).filter((other) => nameKey(other) !== key);
      const lines = [
        ...formatRoomList(others),
        ...history,
        ...notices,
        formatWelcome(name, others.length + 1),
        ...(this.#isWhole ? [] : [PARTITION_NOTICE]),
      ];
      if (!this.#isWhole) this.#isPartitionTold = true;
      member.welcome([encodeLine(lines.join("\n"))]);
      this.#deliver(member, formatJoin(name));
      this.#log.add(member); // it reads the room from here on, after its welcome
      this.#publish({ k: "join", n: name });
    } finally {
      this.#joining.delete(key);
    }
  }

  leave(member: Member, reason: LeaveReason = {}): void {
    const key = nameKey(member.name);
    if (this.#members.get(key) !== member) return;
    this.#members.delete(key);
    this.#log.remove(member);
    this.#releaseClaim(member);
    const text = reason.quit ?? reason.problem;
    const line = reason.quit
      ? formatQuit(member.name, reason.quit)
      : formatLeave(member.name, reason.problem);
    this.#deliver(member, line);
    this.#publish({ k: "leave", n: member.name, ...(text ? { t: text } : {}), q: !!reason.quit });
  }

  say(member: Member, text: string): void {
    const line = formatUserLine(member.name, text);
    this.#deliver(member, line);
    this.#publish({ k: "say", n: member.name, t: text });
    this.#remember(line);
  }

  act(member: Member, text: string): void {
    const line = formatAction(member.name, text);
    this.#deliver(member, line);
    this.#publish({ k: "act", n: member.name, t: text });
    this.#remember(line);
  }

  async rename(member: Member, newName: string): Promise<void> {
    const oldName = member.name;
    if (newName === oldName) throw new ProtocolError(`Your name is already ${quote(newName)}`);
    const oldKey = nameKey(oldName);
    const newKey = nameKey(newName);
    const isNewKey = newKey !== oldKey;
    if (isNewKey && (this.#members.has(newKey) || this.#joining.has(newKey))) throw taken(newName);
    // Whether the new name is claimed in Redis now; undefined when Redis is away.
    let claimed: boolean | undefined;
    if (this.#isWhole) {
      if (isNewKey) this.#joining.add(newKey);
      try {
        claimed = await this.#secure(newName).catch(() => undefined);
      } finally {
        if (isNewKey) this.#joining.delete(newKey);
      }
    }
    if (claimed === false) throw taken(newName);
    if (this.#members.get(oldKey) !== member || member.name !== oldName) {
      if (claimed && isNewKey) this.#release(newName);
      return; // it left, or was renamed, while we waited
    }
    if (isNewKey) this.#releaseClaim(member);
    if (claimed) this.#claims.set(member, newName);
    this.#members.delete(oldKey);
    this.#members.set(newKey, member);
    member.name = newName;
    this.#deliver(undefined, formatRename(oldName, newName));
    this.#publish({ k: "rename", n: oldName, to: newName });
  }

  async whisper(member: Member, to: string, text: string): Promise<void> {
    const local = this.#members.get(nameKey(to));
    if (local) {
      local.send(encodeLine(formatPrivateFrom(member.name, text)));
      return member.send(encodeLine(formatPrivateTo(local.name, text)));
    }
    if (!this.#isWhole) {
      throw new ProtocolError(
        `No user named ${quote(to)} is on this server, and the room is partitioned`,
      );
    }
    const holder = parseClaim(await this.#redis.get(NAME_PREFIX + nameKey(to)).catch(() => null));
    // A claim of ours with nobody here is a leftover about to expire: nobody is there.
    if (!holder || holder.server === this.id) {
      throw new ProtocolError(`No user named ${quote(to)} is online: /who lists who is`);
    }
    this.#publish({ k: "msg", n: member.name, to: holder.name, s: holder.server, t: text });
    member.send(encodeLine(formatPrivateTo(holder.name, text)));
  }

  async who(member: Member): Promise<void> {
    const names = this.#isWhole ? await this.#roomNames().catch(() => undefined) : undefined;
    const lines = formatWho(sortNames(this.#union(names ?? [])));
    if (!names) lines.push(formatSystemLine("That is this server only: the room is partitioned"));
    member.send(encodeLine(lines.join("\n")));
  }

  /**
   * Tells the other servers that every member here leaves and gives up their claims (the members
   * themselves hear the server's own shutdown notice), then closes both connections to Redis,
   * dropping them if Redis does not take the goodbyes in time. Safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#renewer);
      for (const member of this.#members.values()) {
        this.#releaseClaim(member);
        this.#publish({ k: "leave", n: member.name, t: "server shut down" });
      }
      this.#members.clear();
      for (const client of [this.#redis, this.#subscriber]) {
        if (!client.isReady) {
          client.destroy();
          continue;
        }
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_TIMEOUT_MS));
        await Promise.race([client.close().catch(() => {}), late]);
        clearTimeout(timer);
        if (client.isOpen) client.destroy();
      }
    })();
    return this.#closing;
  }

  /** Hands a line to every local member but `from`: one append to the room log. */
  #deliver(from: Member | undefined, line: string): void {
    if (!this.#closing) this.#log.append(encodeLine(line), from);
  }

  /** `names` from Redis with this server's members, some of whom may not be claimed yet. */
  #union(names: string[]): string[] {
    const all = new Map(names.map((name) => [nameKey(name), name]));
    for (const [key, member] of this.#members) all.set(key, member.name);
    // Sorted: across servers there is no one join order to keep.
    return sortNames([...all.values()]);
  }

  /** Publishes an event to the other servers; while partitioned it goes nowhere, on purpose. */
  #publish(event: Omit<Event, "o">): void {
    if (!this.#isWhole) return;
    this.#redis.publish(CHANNEL, JSON.stringify({ o: this.id, ...event })).catch(() => {});
  }

  #remember(line: string): void {
    const size = this.#options.historySize;
    if (size === 0 || !this.#isWhole) return;
    const entry = JSON.stringify({ at: Date.now(), line });
    // Sent together, in order, without waiting: a failure means Redis is away, which we hear of.
    this.#redis.rPush(HISTORY_KEY, entry).catch(() => {});
    this.#redis.lTrim(HISTORY_KEY, -size, -1).catch(() => {});
  }

  /** The room's history for a newcomer, skipping any entry that is not a line we would write. */
  async #history(): Promise<string[]> {
    const size = this.#options.historySize;
    if (size === 0) return [];
    const entries = await this.#redis.lRange(HISTORY_KEY, -size, -1);
    const lines: string[] = [];
    for (const entry of entries) {
      try {
        const { at, line } = JSON.parse(entry);
        if (typeof at === "number" && typeof line === "string" && isChatLine(line)) {
          lines.push(formatHistory(new Date(at), line));
        }
      } catch {
        // Not ours: skipped.
      }
    }
    return lines;
  }

  /** Every name claimed in the cluster. */
  async #roomNames(): Promise<string[]> {
    return (await this.#allClaims()).map((claim) => claim.name);
  }

  /** Every claim in the cluster: the server holding it and the name. */
  async #allClaims(): Promise<{ server: string; name: string }[]> {
    const keys: string[] = [];
    for await (const batch of this.#redis.scanIterator({ MATCH: `${NAME_PREFIX}*`, COUNT: 1000 })) {
      keys.push(...batch);
    }
    if (keys.length === 0) return [];
    return (await this.#redis.mGet(keys)).flatMap((value) => parseClaim(value) ?? []);
  }

  /** Claims `name` for this server unless another holds it: true if it is ours now. */
  async #secure(name: string): Promise<boolean> {
    const taken = await this.#redis.eval(TAKE_SCRIPT, {
      keys: [NAME_PREFIX + nameKey(name)],
      arguments: [`${this.id} `, `${this.id} ${name}`, String(this.#options.claimTtlMs)],
    });
    return taken === 1;
  }

  /** Gives up the claim a member holds, if it holds one. */
  #releaseClaim(member: Member): void {
    const name = this.#claims.get(member);
    if (name === undefined) return;
    this.#claims.delete(member);
    this.#release(name);
  }

  #release(name: string): void {
    if (!this.#isWhole) return; // the claim expires by itself
    this.#redis.eval(RELEASE_SCRIPT, {
      keys: [NAME_PREFIX + nameKey(name)],
      arguments: [`${this.id} ${name}`],
    }).catch(() => {});
  }

  /**
   * Every third of a claim's lifetime: renews this server's claims (only those it still holds),
   * claims what a partition left unclaimed, says it is alive, and tells the members here who left
   * with a server that has gone silent for longer than its claims live.
   */
  #renewClaims(): void {
    if (!this.#isWhole) return;
    const ttl = String(this.#options.claimTtlMs);
    let isSettled = true;
    for (const [member, name] of this.#claims) {
      if (name !== member.name) {
        isSettled = false;
        continue;
      }
      this.#redis.eval(RENEW_SCRIPT, {
        keys: [NAME_PREFIX + nameKey(name)],
        arguments: [`${this.id} ${name}`, ttl],
      }).then((renewed) => {
        // Lost (it expired while Redis was slow, say): claimed again at the next renewal.
        if (renewed !== 1 && this.#claims.get(member) === name) this.#claims.delete(member);
      }, () => {});
    }
    if (!isSettled || this.#claims.size < this.#members.size) this.#settle();
    this.#publish({ k: "beat", n: "", t: ttl });
    const now = Date.now();
    for (const [origin, other] of this.#others) {
      if (now - other.heardAt <= other.ttl) continue;
      this.#others.delete(origin);
      for (const name of other.names.values()) {
        if (!this.#members.has(nameKey(name))) {
          this.#deliver(undefined, formatLeave(name, "server lost"));
        }
      }
    }
  }

  /** Follows both connections: the room is whole when both are ready. */
  #onStatus(error?: unknown): void {
    const isWhole = this.#redis.isReady && this.#subscriber.isReady && !this.#closing;
    if (isWhole === this.#isWhole) return;
    this.#isWhole = isWhole;
    if (this.#closing) return;
    const { log, url } = this.#options;
    if (isWhole) {
      log(`redis: connected to ${redact(url)}${this.#isPartitionTold ? " again" : ""}`);
      this.#heal().catch((error) => log(`redis: ${describe(error)}`));
    } else {
      log(
        `redis: lost ${redact(url)}${
          error ? ` (${describe(error)})` : ""
        }; serving this server's members alone and retrying`,
      );
      this.#deliver(undefined, PARTITION_NOTICE);
      this.#isPartitionTold = true;
    }
  }

  /**
   * Redis is reachable (again): learns who is on the other servers (the first time), gives every one of them a
   * claim's lifetime to be heard, makes sure every member here holds its claim, asks the other
   * servers to say their members (so joins made on either side of a partition are heard), and
   * tells the members here that the room is whole.
   */
  async #heal(): Promise<void> {
    // The first time only: later, names new to us come as joins, which our members must hear.
    if (!this.#hasMetOthers) {
      for (const claim of await this.#allClaims()) {
        if (claim.server !== this.id) {
          this.#heardFrom(claim.server).names.set(nameKey(claim.name), claim.name);
        }
      }
      this.#hasMetOthers = true;
    }
    for (const other of this.#others.values()) other.heardAt = Date.now();
    await this.#settle(true);
    if (!this.#isWhole) return;
    this.#publish({ k: "sync", n: "" });
    if (this.#isPartitionTold) this.#deliver(undefined, HEAL_NOTICE);
    this.#isPartitionTold = false;
  }

  /**
   * Makes sure each member here holds the claim on its name and, when a claim is new, tells the
   * other servers it is here (`all`: tells them of every member). A member whose name someone on
   * another server took meanwhile cannot keep it: it is told, and disconnected.
   */
  #settle(all = false): Promise<void> {
    // One at a time, in order; a routine one need not queue behind another that has not started.
    if (!all && this.#isSettleQueued) return this.#settled;
    this.#isSettleQueued = true;
    this.#settled = this.#settled.then(() => {
      this.#isSettleQueued = false;
      return this.#settleNow(all);
    }).catch((error) => this.#options.log(`redis: ${describe(error)}`));
    return this.#settled;
  }

  async #settleNow(all: boolean): Promise<void> {
    const members = [...this.#members.values()];
    const secured = await Promise.all(members.map(async (member) => {
      const name = member.name;
      const isNew = this.#claims.get(member) !== name;
      try {
        return { member, name, isNew, ok: await this.#secure(name) };
      } catch {
        return { member, name, isNew, ok: undefined }; // lost again: tried again later
      }
    }));
    for (const { member, name, isNew, ok } of secured) {
      const isCurrent = this.#members.get(nameKey(name)) === member && member.name === name;
      if (ok && !isCurrent) {
        if (this.#claims.get(member) !== name) this.#release(name); // left or renamed meanwhile
      } else if (ok) {
        this.#claims.set(member, name);
        if (isNew || all) this.#publish({ k: "join", n: name });
      } else if (ok === false && isCurrent) {
        this.#evict(member);
      }
    }
  }

  /** Disconnects a member whose name another server holds: only this server knew it by it. */
  #evict(member: Member): void {
    const name = member.name;
    this.#members.delete(nameKey(name));
    this.#log.remove(member);
    this.#claims.delete(member);
    member.send(encodeLine(formatError(
      `Someone on another server took the name ${quote(name)} while the room was partitioned; ` +
        "rejoin with another name",
    )));
    this.#deliver(member, formatLeave(name, "name taken during a partition"));
    (member as Partial<Closable>).end?.();
  }

  /** Notes that another server spoke, and returns what is known of it. */
  #heardFrom(origin: string): OtherServer {
    let other = this.#others.get(origin);
    if (!other) {
      other = { heardAt: 0, ttl: this.#options.claimTtlMs, names: new Map() };
      this.#others.set(origin, other);
    }
    other.heardAt = Date.now();
    return other;
  }

  /** Relays another server's event to the members here, once it proves well formed. */
  #receive(message: string): void {
    let event: Event;
    try {
      event = parseEvent(message, this.#options.maxLineBytes);
    } catch (error) {
      this.#options.log(`redis: ignored a message: ${describe(error)}`);
      return;
    }
    if (event.o === this.id) return; // our own: delivered here already
    const { n: name, t: text = "" } = event;
    const key = nameKey(name);
    // A name held here speaks only from here: another server cannot speak for our members.
    if (name !== "" && this.#members.has(key) && event.k !== "leave") {
      this.#options.log(`redis: ignored an event for ${name}, who is on this server`);
      return;
    }
    const other = this.#heardFrom(event.o);
    switch (event.k) {
      case "beat":
        other.ttl = Number(text) || other.ttl;
        return;
      case "sync":
        for (const [member, claimed] of this.#claims) {
          if (claimed === member.name) this.#publish({ k: "join", n: claimed });
        }
        return;
      case "say":
        other.names.set(key, name);
        return this.#deliver(undefined, formatUserLine(name, text));
      case "act":
        other.names.set(key, name);
        return this.#deliver(undefined, formatAction(name, text));
      case "join":
        if (other.names.get(key) === name) return; // said again after a partition: known here
        other.names.set(key, name);
        return this.#deliver(undefined, formatJoin(name));
      case "leave":
        if (this.#members.has(key)) return; // someone here has the name now
        other.names.delete(key);
        return this.#deliver(
          undefined,
          event.q && text ? formatQuit(name, text) : formatLeave(name, text || undefined),
        );
      case "rename":
        other.names.delete(key);
        other.names.set(nameKey(event.to!), event.to!);
        return this.#deliver(undefined, formatRename(name, event.to!));
      case "msg": {
        other.names.set(key, name);
        if (event.s !== this.id) return;
        const recipient = this.#members.get(nameKey(event.to!));
        return recipient?.send(encodeLine(formatPrivateFrom(name, text)));
      }
    }
  }
}

/** A member the hub can disconnect (the server's peers can). */
interface Closable {
  end(): void;
}

const encoder = new TextEncoder();
const KINDS = new Set(["say", "act", "join", "leave", "rename", "msg", "beat", "sync"]);

/**
 * Checks an event from the channel as strictly as a client's line: a server id, a known kind,
 * names a client could have chosen, clean text within the line limit. So a message in Redis
 * cannot make a server send a line that a client could not have made it send.
 */
export function parseEvent(message: string, maxLineBytes: number): Event {
  if (message.length > maxLineBytes * 2 + 200) throw new ProtocolError("message too long");
  const event = JSON.parse(message);
  if (typeof event !== "object" || event === null) throw new ProtocolError("not an object");
  const { o, k, n, t, to, s, q } = event;
  if (typeof o !== "string" || !SERVER_ID.test(o)) throw new ProtocolError("no server id");
  if (!KINDS.has(k)) throw new ProtocolError("unknown kind");
  const parsed: Event = { o, k, n: k === "beat" || k === "sync" ? "" : strictName(n) };
  if (k === "beat") {
    const ttl = Number(t);
    if (!(Number.isInteger(ttl) && ttl >= 1 && ttl <= MAX_CLAIM_TTL_MS)) {
      throw new ProtocolError("bad claim lifetime");
    }
    parsed.t = String(ttl);
  } else if (t !== undefined) {
    if (typeof t !== "string") throw new ProtocolError("text is not a string");
    const text = cleanText(t);
    if (encoder.encode(text).length > maxLineBytes) throw new ProtocolError("too long");
    parsed.t = text;
  }
  if (k === "rename" || k === "msg") parsed.to = strictName(to);
  if (k === "msg") {
    if (typeof s !== "string" || !SERVER_ID.test(s)) throw new ProtocolError("no recipient server");
    parsed.s = s;
  }
  if (q === true) parsed.q = true;
  return parsed;
}

/** A claim's value, `SERVER NAME`, checked; undefined if it is not one we would write. */
function parseClaim(
  value: string | null | undefined,
): { server: string; name: string } | undefined {
  const space = value?.indexOf(" ") ?? -1;
  if (!value || space < 0) return;
  const server = value.slice(0, space);
  const name = value.slice(space + 1);
  return SERVER_ID.test(server) && isValidName(name) ? { server, name } : undefined;
}

/** A name exactly as a client could have chosen it, or a {@linkcode ProtocolError}. */
function strictName(name: unknown): string {
  if (typeof name !== "string" || parseName(name) !== name) {
    throw new ProtocolError(`invalid name ${quote(String(name))}`);
  }
  return name;
}

function isValidName(name: string): boolean {
  try {
    return parseName(name) === name;
  } catch {
    return false;
  }
}

/** Whether a history entry is a chat line or an action, from a valid name. */
function isChatLine(line: string): boolean {
  const match = /^(?:\* )?\[([^\]]*)\] /.exec(line);
  return match !== null && isValidName(match[1]!) && cleanText(line) === line;
}

function taken(name: string): ProtocolError {
  return new ProtocolError(`Cannot accept name ${quote(name)}: name is taken`);
}

/** The URL without its password, for the log. */
export function redact(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = "***";
    return parsed.href;
  } catch {
    return "the Redis URL";
  }
}

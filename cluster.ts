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
import { type Hub, type LeaveReason, type Member, sortNames } from "./hub.ts";
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
  /** One line per event worth a log: lost and regained Redis, bad messages. */
  log?: (message: string) => void;
}

/** An event as published on the channel: short keys, since every line of chat is one. */
interface Event {
  /** The origin server's id. */
  o: string;
  /** What happened. */
  k: "say" | "act" | "join" | "leave" | "rename" | "msg" | "beat";
  /** The member's name (the old one for a rename); empty in a beat. */
  n: string;
  /** Text: the line, the quit reason, the leave problem, the private message; in a beat, the
   * claims' lifetime in ms. */
  t?: string;
  /** The new name of a rename, or the recipient of a private message. */
  to?: string;
  /** Whether a leave was a `/quit` (its text is then the member's own reason). */
  q?: boolean;
}

type Redis = ReturnType<typeof createClient>;

/** One server's share of the cluster's room. */
export class ClusterHub implements Hub {
  /** This server's id, random per process, carried by every event it publishes. */
  readonly id = crypto.randomUUID();
  #members = new Map<string, Member>();
  /** The other servers as last heard of, and their members by name key, to tell ours when a
   * server goes silent for longer than its claims live (it died, or lost Redis). */
  #others = new Map<string, { heardAt: number; ttl: number; names: Map<string, string> }>();
  /** Members whose name is not claimed in Redis yet (they joined while partitioned). */
  #unclaimed = new Set<Member>();
  #redis: Redis;
  #subscriber: Redis;
  #options: Required<ClusterOptions>;
  #isWhole = false;
  #wasWhole = false;
  #closing: Promise<void> | undefined;
  #renewer: ReturnType<typeof setInterval>;

  constructor(options: ClusterOptions) {
    this.#options = {
      claimTtlMs: DEFAULT_CLAIM_TTL_MS,
      maxLineBytes: DEFAULT_MAX_LINE_BYTES,
      log: () => {},
      ...options,
    };
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
    // Who is on the other servers already, so that their leave is told if their server dies.
    if (this.#isWhole) {
      for (const [origin, name] of await this.#claims().catch(() => [])) {
        if (origin !== this.id) this.#heardFrom(origin).names.set(nameKey(name), name);
      }
    }
  }

  /** Whether Redis is reachable, so that this server's members are in the whole room. */
  get isWhole(): boolean {
    return this.#isWhole;
  }

  async join(member: Member): Promise<void> {
    const key = nameKey(member.name);
    if (this.#members.has(key)) throw taken(member.name);
    // Whether the name is claimed in Redis now; undefined when Redis is away.
    let claimed: boolean | undefined;
    if (this.#isWhole) claimed = await this.#claim(member.name).catch(() => undefined);
    if (claimed === false) throw taken(member.name);
    // Redis may have gone while we waited, and someone here may have taken the name meanwhile.
    if (this.#members.has(key)) {
      if (claimed) this.#release(member.name);
      throw taken(member.name);
    }
    this.#members.set(key, member);
    if (!claimed) this.#unclaimed.add(member);
    let names: string[] | undefined;
    let history: string[] = [];
    if (claimed) {
      [names, history] = await Promise.all([this.#roomNames(), this.#history()])
        .catch(() => [undefined, []]);
    }
    // Sorted: across servers there is no one join order to keep.
    const others = sortNames((names ?? this.#localNames()).filter((name) => nameKey(name) !== key));
    const lines = [
      formatRoomList(others),
      ...history,
      formatWelcome(member.name, others.length + 1),
      ...(this.#isWhole ? [] : [PARTITION_NOTICE]),
    ];
    member.send(encodeLine(lines.join("\n")));
    this.#deliver(member, formatJoin(member.name));
    this.#publish({ k: "join", n: member.name });
  }

  leave(member: Member, reason: LeaveReason = {}): void {
    const key = nameKey(member.name);
    if (this.#members.get(key) !== member) return;
    this.#members.delete(key);
    if (!this.#unclaimed.delete(member)) this.#release(member.name);
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
    if (isNewKey && this.#members.has(newKey)) throw taken(newName);
    const isClaimed = !this.#unclaimed.has(member);
    // Whether the new name is claimed in Redis now; undefined when Redis is away.
    let claimed: boolean | undefined;
    if (this.#isWhole && isClaimed) {
      claimed = await (isNewKey ? this.#claim(newName) : this.#reclaim(newName))
        .catch(() => undefined);
    }
    if (claimed === false) throw taken(newName);
    if (this.#members.get(oldKey) !== member) {
      if (claimed && isNewKey) this.#release(newName);
      return; // it left while we waited
    }
    if (isNewKey && this.#members.has(newKey)) {
      if (claimed) this.#release(newName);
      throw taken(newName);
    }
    if (isClaimed && isNewKey) this.#release(oldName);
    // Partitioned: the name is this server's, and is claimed for real when the room heals.
    if (!claimed) this.#unclaimed.add(member);
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
    const holder = await this.#redis.get(NAME_PREFIX + nameKey(to)).catch(() => null);
    const name = holder?.slice(holder.indexOf(" ") + 1);
    if (!name) throw new ProtocolError(`No user named ${quote(to)} is online: /who lists who is`);
    this.#publish({ k: "msg", n: member.name, to: name, t: text });
    member.send(encodeLine(formatPrivateTo(name, text)));
  }

  async who(member: Member): Promise<void> {
    const names = this.#isWhole ? await this.#roomNames().catch(() => undefined) : undefined;
    const line = formatWho(sortNames(names ?? this.#localNames()));
    member.send(encodeLine(names ? line : `${line} (this server only: the room is partitioned)`));
  }

  /**
   * Says goodbye for every member still here (their leave notices and their claims), then closes
   * both connections to Redis. Safe to call twice.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#renewer);
      const members = [...this.#members.values()];
      for (const member of members) this.leave(member, { problem: "server shut down" });
      for (const client of [this.#redis, this.#subscriber]) {
        // close() lets the leave notices above go out first; a client that never connected has
        // nothing to send.
        await (client.isReady ? client.close() : Promise.resolve(client.destroy())).catch(() => {});
      }
    })();
    return this.#closing;
  }

  /** Hands a line to every local member but `from`; the same bytes for all. */
  #deliver(from: Member | undefined, line: string): void {
    const bytes = encodeLine(line);
    for (const member of this.#members.values()) {
      if (member !== from) member.send(bytes);
    }
  }

  #localNames(): string[] {
    return [...this.#members.values()].map((member) => member.name);
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
    return (await this.#claims()).map(([, name]) => name);
  }

  /** Every claim in the cluster: the server holding it and the name. */
  async #claims(): Promise<[string, string][]> {
    const keys: string[] = [];
    for await (const batch of this.#redis.scanIterator({ MATCH: `${NAME_PREFIX}*`, COUNT: 1000 })) {
      keys.push(...batch);
    }
    if (keys.length === 0) return [];
    const holders = await this.#redis.mGet(keys);
    return holders.flatMap((holder): [string, string][] => {
      const space = holder?.indexOf(" ") ?? -1;
      const name = holder?.slice(space + 1);
      return holder && name && space > 0 && isValidName(name)
        ? [[holder.slice(0, space), name]]
        : [];
    });
  }

  /** Claims a name for this server: true if it is ours now, false if someone holds it. */
  async #claim(name: string): Promise<boolean> {
    const reply = await this.#redis.set(NAME_PREFIX + nameKey(name), `${this.id} ${name}`, {
      NX: true,
      PX: this.#options.claimTtlMs,
    });
    return reply === "OK";
  }

  /** Renews the claim under a new spelling of the same name (a change of case). */
  async #reclaim(name: string): Promise<boolean> {
    const key = NAME_PREFIX + nameKey(name);
    const options = { XX: true, PX: this.#options.claimTtlMs } as const;
    return (await this.#redis.set(key, `${this.id} ${name}`, options)) === "OK" ||
      await this.#claim(name);
  }

  #release(name: string): void {
    if (!this.#isWhole) return; // the claim expires by itself
    this.#redis.eval(RELEASE_SCRIPT, {
      keys: [NAME_PREFIX + nameKey(name)],
      arguments: [`${this.id} ${name}`],
    }).catch(() => {});
  }

  /**
   * Renews this server's claims (sent together, without waiting), says it is alive, and tells the
   * members here who left with a server that has gone silent for longer than its claims live.
   */
  #renewClaims(): void {
    if (!this.#isWhole) return;
    const ttl = this.#options.claimTtlMs;
    for (const member of this.#members.values()) {
      if (this.#unclaimed.has(member)) continue;
      this.#redis.pExpire(NAME_PREFIX + nameKey(member.name), ttl).catch(() => {});
    }
    this.#publish({ k: "beat", n: "", t: String(ttl) });
    const now = Date.now();
    for (const [origin, other] of this.#others) {
      if (now - other.heardAt <= other.ttl) continue;
      this.#others.delete(origin);
      for (const name of other.names.values()) {
        this.#deliver(undefined, formatLeave(name, "server lost"));
      }
    }
  }

  /** Notes that another server spoke, and returns what is known of it. */
  #heardFrom(origin: string) {
    let other = this.#others.get(origin);
    if (!other) {
      this.#others.set(
        origin,
        other = { heardAt: 0, ttl: this.#options.claimTtlMs, names: new Map() },
      );
    }
    other.heardAt = Date.now();
    return other;
  }

  /** Follows both connections: the room is whole when both are ready. */
  #onStatus(error?: unknown): void {
    const isWhole = this.#redis.isReady && this.#subscriber.isReady && !this.#closing;
    if (isWhole === this.#isWhole) return;
    this.#isWhole = isWhole;
    if (this.#closing) return;
    const { log, url } = this.#options;
    if (isWhole) {
      log(`redis: connected to ${redact(url)}${this.#wasWhole ? " again" : ""}`);
      this.#heal(this.#wasWhole).catch((error) => log(`redis: ${describe(error)}`));
      this.#wasWhole = true;
    } else {
      log(
        `redis: lost ${redact(url)}${
          error ? ` (${describe(error)})` : ""
        }; serving this server's members alone and retrying`,
      );
      this.#deliver(undefined, PARTITION_NOTICE);
    }
  }

  /**
   * The room is whole again: claims what was claimed in the meantime or expired, and tells the
   * members. One whose name someone on another server holds now cannot keep it, and is told.
   */
  async #heal(isReturn: boolean): Promise<void> {
    const members = [...this.#members.values()];
    const results = await Promise.all(members.map(async (member) => {
      const name = member.name;
      const key = NAME_PREFIX + nameKey(name);
      const mine = `${this.id} ${name}`;
      try {
        if (await this.#claim(name)) return true;
        return (await this.#redis.get(key)) === mine;
      } catch {
        return undefined; // lost again: the next heal retries
      }
    }));
    if (!this.#isWhole) return;
    // Nobody was heard while we were away: every other server gets a claim's lifetime again.
    for (const other of this.#others.values()) other.heardAt = Date.now();
    members.forEach((member, index) => {
      if (results[index] === true) {
        // Said again after a partition: servers that took us for dead, and those that never heard
        // of someone who joined here meanwhile, hear of them; the others already know.
        this.#unclaimed.delete(member);
        this.#publish({ k: "join", n: member.name });
        this.#redis.pExpire(NAME_PREFIX + nameKey(member.name), this.#options.claimTtlMs)
          .catch(() => {});
      } else if (results[index] === false && this.#members.get(nameKey(member.name)) === member) {
        member.send(encodeLine(formatError(
          `Someone on another server took the name ${quote(member.name)} while the room was ` +
            "partitioned; rejoin with another name",
        )));
        this.leave(member, { problem: "name taken during a partition" });
        (member as Partial<Closable>).end?.();
      }
    });
    if (isReturn) this.#deliver(undefined, HEAL_NOTICE);
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
    const other = this.#heardFrom(event.o);
    const key = nameKey(name);
    switch (event.k) {
      case "beat":
        other.ttl = Math.max(1, Number(text)) || other.ttl;
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

const KINDS = new Set(["say", "act", "join", "leave", "rename", "msg", "beat"]);

/**
 * Checks an event from the channel as if it came from a client: the names must be valid names and
 * the text clean and within the line limit, so that nothing from Redis can forge a line.
 */
export function parseEvent(message: string, maxLineBytes: number): Event {
  if (message.length > maxLineBytes * 2 + 200) throw new ProtocolError("message too long");
  const event = JSON.parse(message);
  if (typeof event !== "object" || event === null) throw new ProtocolError("not an object");
  const { o, k, n, t, to, q } = event;
  if (typeof o !== "string" || !KINDS.has(k)) throw new ProtocolError("no origin or kind");
  const parsed: Event = { o, k, n: k === "beat" ? "" : strictName(n) };
  if (t !== undefined) {
    if (typeof t !== "string") throw new ProtocolError("text is not a string");
    const text = cleanText(t);
    if (new TextEncoder().encode(text).length > maxLineBytes) throw new ProtocolError("too long");
    parsed.t = text;
  }
  if (k === "rename" || k === "msg") parsed.to = strictName(to);
  if (q === true) parsed.q = true;
  return parsed;
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

/**
 * Moderation's policy (issue 27): who is an operator, the bans, mutes and topic, the checks the
 * accept loop, the join gate and the read loop call, and the operators' acts. It keeps nothing of
 * its own (a {@linkcode ModerationStore} does) and does no I/O but telling members and the room.
 */
import {
  encodeLine,
  formatBan,
  formatBanned,
  formatBans,
  formatKick,
  formatMute,
  formatOperatorChange,
  formatOps,
  formatTopic,
  formatTopicChange,
  formatUnban,
  formatUnbanned,
  formatUnmute,
  formatWhois,
  formatYouAreBanned,
  formatYouAreMuted,
  formatYouWereKicked,
  type ModerationCommand,
  nameKey,
  NO_TOPIC,
  noSuchUser,
  OPERATOR_WELCOME,
  ProtocolError,
  quote,
} from "../protocol.ts";
import { type Hub, StoreError } from "./hub.ts";
import type { Peer } from "./peer.ts";
import type { Log } from "./log.ts";
import { Tally } from "./metrics.ts";
import { AddressSet, formatAddress, parseBlock } from "./cidr.ts";
import {
  type Ban,
  banKey,
  hasEnded,
  type ModerationChange,
  type ModerationStore,
  type Mute,
} from "./moderation_store.ts";

/** Bans `/bans` lists, the newest first: the answer stays within what a member may be queued. */
const MAX_LISTED_BANS = 100;

/**
 * A member of this server as moderation sees it: a connection in the room, or the place kept for
 * one whose connection was lost (server/resume.ts), which a kick or a ban puts out all the same.
 */
export type ModerationMember = Pick<Peer, "name" | "hostname" | "kind" | "send">;

/** Options for {@linkcode Moderation}. */
export interface ModerationOptions {
  store: ModerationStore;
  hub: Hub;
  /** This server's joined members, and the places it keeps. */
  members: () => Iterable<ModerationMember>;
  /** Puts out a member of this server: it is sent `line` and closed; the room hears `notice`. */
  expel: (
    member: ModerationMember,
    options: { line: string; notice: string; reason: "kicked" | "banned" },
  ) => void;
  log: Log;
  tally: Tally;
}

/** What the checks read, built from the store's copy once per change rather than per line. */
interface Index {
  names: Map<string, Ban>;
  addresses: { ban: Ban; block: AddressSet }[];
  /** Every address ban's block at once: one look at a connection that none holds for. */
  anyAddress: AddressSet;
  mutes: Map<string, Mute>;
}

/** An act's record: what, by whom, on whom, until when and why (the log line and the metrics). */
interface Act {
  act: "kick" | "ban" | "unban" | "mute" | "unmute" | "topic" | "op" | "deop";
  by: string;
  target: string;
  until?: number | undefined;
  reason?: string | undefined;
}

/** The moderation of one server's members, over a store shared with `chat admin` (and a cluster). */
export class Moderation {
  #store: ModerationStore;
  #options: ModerationOptions;
  #index: Index | undefined;

  constructor(options: ModerationOptions) {
    this.#store = options.store;
    this.#options = options;
    this.#store.onChange = (change) => this.#apply(change);
  }

  /** Bans in force, for the metrics. */
  get banCount(): number {
    return this.#store.bans().length;
  }

  /** Whether the member is an operator: a registered name in the operators (it logged in as it). */
  isOperator(member: { name: string }): boolean {
    return this.#store.isOperator(member.name) &&
      this.#options.hub.accounts?.get(member.name) !== undefined;
  }

  /** The refusal of a connection from `hostname`, if a ban holds for its address. */
  addressRefusal(hostname: string): string | undefined {
    const { addresses, anyAddress } = this.#current();
    const found = addresses[anyAddress.indexOf(hostname)];
    if (!found) return undefined;
    if (!hasEnded(found.ban)) return bannedMessage(found.ban);
    this.#changed(); // it ended: the index is built again without it, and asked again
    return this.addressRefusal(hostname);
  }

  /** Throws the refusal of a connection not yet joined, if a ban made since its accept holds for it. */
  checkAddress(hostname: string): void {
    const refusal = this.addressRefusal(hostname);
    if (refusal) throw new ProtocolError(refusal);
  }

  /**
   * Throws the refusal of `name` (at joining, or as a `/nick`), if a ban holds for it, or for the
   * joining connection's address (`hostname`).
   */
  checkName(name: string, hostname?: string): void {
    if (hostname !== undefined) this.checkAddress(hostname);
    const refusal = this.nameRefusal(name);
    if (refusal) throw new ProtocolError(refusal);
  }

  /** The refusal of `name`, if a ban holds for it. */
  nameRefusal(name: string): string | undefined {
    const ban = this.#current().names.get(nameKey(name));
    return ban && !hasEnded(ban) ? bannedMessage(ban) : undefined;
  }

  /** Throws the refusal of a muted member's line. */
  checkMute(member: { name: string }): void {
    const { mutes } = this.#current();
    if (mutes.size === 0) return; // every line asks: the common case costs no lookup
    const mute = mutes.get(nameKey(member.name));
    if (mute && !hasEnded(mute)) {
      throw new ProtocolError(formatYouAreMuted(mute.until).slice("* error: ".length));
    }
  }

  /** What a newcomer is told after the welcome: the topic, if one is set; an operator, that it is. */
  welcomeNotices(member: { name: string }): string[] {
    const topic = this.#store.topic();
    return [
      ...topic ? [formatTopic(topic.text)] : [],
      ...this.isOperator(member) ? [OPERATOR_WELCOME] : [],
    ];
  }

  /** Runs a moderation command; the command's word was checked against the operator rule. */
  run(peer: Peer, command: ModerationCommand): void | Promise<void> {
    // Every act needs the whole cluster: one cut off from Redis says so (a kick stores nothing).
    const isLook = ["ops", "whois", "bans"].includes(command.name) ||
      (command.name === "topic" && command.text === undefined);
    const cannot = isLook ? undefined : this.#options.hub.canModerate?.();
    if (cannot) throw new ProtocolError(cannot);
    switch (command.name) {
      case "topic":
        return command.text === undefined
          ? this.#showTopic(peer)
          : this.#setTopic(peer, command.text);
      case "ops":
        return this.#ops(peer);
      case "whois":
        return this.#whois(peer, command.target);
      case "bans":
        return this.#bans(peer);
      case "kick":
        return this.#kick(peer, command.target, command.reason);
      case "ban":
        return command.kind === "name"
          ? this.#banName(peer, command)
          : this.#banAddress(peer, command);
      case "unban":
        return this.#unban(peer, command.target);
      case "mute":
        return this.#mute(peer, command);
      case "unmute":
        return this.#unmute(peer, command.target);
      case "op":
      case "deop":
        return this.#setOperator(peer, command.target, command.name === "op");
    }
  }

  #showTopic(peer: Peer): void {
    const topic = this.#store.topic();
    peer.send(encodeLine(topic ? formatTopic(topic.text) : NO_TOPIC));
  }

  async #setTopic(peer: Peer, text: string): Promise<void> {
    const topic = text === "" ? undefined : { text, by: peer.name, at: Date.now() };
    await kept(this.#store.setTopic(topic));
    this.#announce(formatTopicChange(peer.name, topic?.text));
    this.#record({ act: "topic", by: peer.name, target: "the room", reason: text || "cleared" });
  }

  #ops(peer: Peer): void {
    // A cluster's operators online are on every server; a registered name joins only as itself.
    const { hub } = this.#options;
    const names = hub.names
      ? hub.names().filter((name) => this.#store.isOperator(name))
      : [...this.#options.members()].filter((m) => this.isOperator(m)).map((m) => m.name);
    peer.send(encodeLine(formatOps(names.sort((a, b) => nameKey(a).localeCompare(nameKey(b))))));
  }

  #whois(peer: Peer, name: string): void {
    const member = this.#member(name);
    if (!member) throw noSuchUser(name);
    peer.send(encodeLine(formatWhois({
      name: member.name,
      address: member.hostname,
      door: member.kind === "tls" ? "TLS" : member.kind === "websocket" ? "web" : "TCP",
      isRegistered: this.#options.hub.accounts?.get(member.name) !== undefined,
      isOperator: this.isOperator(member),
    })));
  }

  #bans(peer: Peer): void {
    const bans = this.#store.bans().sort((a, b) => b.at - a.at);
    const lines = formatBans(bans.slice(0, MAX_LISTED_BANS));
    if (bans.length > MAX_LISTED_BANS) {
      lines[0] = `* ${bans.length} bans (the newest ${MAX_LISTED_BANS} shown):`;
    }
    peer.send(encodeLine(lines.join("\n")));
  }

  async #kick(peer: Peer, name: string, reason: string | undefined): Promise<void> {
    this.#refuseOperator(peer, name, "kick");
    const line = formatYouWereKicked(peer.name, reason);
    const member = this.#member(name);
    const shown = member?.name ?? name;
    const notice = formatKick(shown, peer.name, reason);
    if (member) this.#options.expel(member, { line, notice, reason: "kicked" });
    else if (!await this.#options.hub.expel?.(name, { line, notice })) throw noSuchUser(name);
    this.#record({ act: "kick", by: peer.name, target: shown, reason });
  }

  async #banName(
    peer: Peer,
    command: { target: string; durationMs?: number; reason?: string },
  ): Promise<void> {
    this.#refuseOperator(peer, command.target, "ban");
    const ban = this.#newBan(peer, command, "name");
    await kept(this.#store.addBan(ban));
    this.#changed();
    const notice = formatBan([this.#member(ban.target)?.name ?? ban.target], peer.name, ban);
    const line = formatYouAreBanned(ban.until, ban.reason);
    const member = this.#member(ban.target);
    if (member) this.#options.expel(member, { line, notice, reason: "banned" });
    // Elsewhere in a cluster, the member's server puts it out when told of the ban (see #apply).
    else this.#announce(notice);
    this.#record({ act: "ban", ...ban });
  }

  async #banAddress(
    peer: Peer,
    command: { target: string; durationMs?: number; reason?: string },
  ): Promise<void> {
    const target = normalizeAddress(command.target);
    const block = new AddressSet([target]);
    const members = [...this.#options.members()].filter((m) => block.has(m.hostname));
    const operators = members.filter((m) => this.isOperator(m)).map((m) => m.name);
    if (operators.length > 0) {
      throw new ProtocolError(
        `Cannot ban ${target}: it holds operator ${operators.join(", ")}, whom no ban may put out`,
      );
    }
    const ban = this.#newBan(peer, { ...command, target }, "address");
    await kept(this.#store.addBan(ban));
    this.#changed();
    // Looked for again: who joined from it while the ban was being kept goes too (no operator).
    const matches = [...this.#options.members()].filter((m) =>
      block.has(m.hostname) && !this.isOperator(m)
    );
    this.#expelMatches(ban, matches);
    peer.send(encodeLine(formatBanned(target, ban.until)));
    this.#record({ act: "ban", ...ban });
  }

  /** Puts out the members an address ban holds for, silently, naming them in one notice. */
  #expelMatches(ban: Ban, members: ModerationMember[]): void {
    const line = formatYouAreBanned(ban.until, ban.reason);
    for (const member of members) {
      this.#options.expel(member, { line, notice: "", reason: "banned" });
    }
    if (members.length > 0) this.#announce(formatBan(members.map((m) => m.name), ban.by, ban));
  }

  #newBan(
    peer: Peer,
    command: { target: string; durationMs?: number; reason?: string },
    kind: Ban["kind"],
  ): Ban {
    const at = Date.now();
    return {
      target: command.target,
      kind,
      by: peer.name,
      at,
      ...command.durationMs === undefined ? {} : { until: at + command.durationMs },
      ...command.reason === undefined ? {} : { reason: command.reason },
    };
  }

  async #unban(peer: Peer, target: string): Promise<void> {
    const isAddress = /[.:]/.test(target);
    const key = isAddress ? normalizeAddress(target) : target;
    const ban = this.#store.bans().find((b) => banKey(b.target) === banKey(key));
    if (!await kept(this.#store.removeBan(key, peer.name))) {
      throw new ProtocolError(`There is no ban on ${quote(key)}: /bans lists them`);
    }
    this.#changed();
    if (isAddress) peer.send(encodeLine(formatUnbanned(key)));
    else this.#announce(formatUnban(ban?.target ?? key, peer.name));
    this.#record({ act: "unban", by: peer.name, target: key });
  }

  async #mute(
    peer: Peer,
    command: { target: string; durationMs?: number; reason?: string },
  ): Promise<void> {
    this.#refuseOperator(peer, command.target, "mute");
    const { by, at, until, reason, target } = this.#newBan(peer, command, "name");
    const name = this.#member(target)?.name ?? target;
    const mute: Mute = {
      name,
      by,
      at,
      ...until === undefined ? {} : { until },
      ...reason === undefined ? {} : { reason },
    };
    await kept(this.#store.addMute(mute));
    this.#changed();
    this.#announce(formatMute(name, by, mute));
    this.#record({ act: "mute", by, target: name, until, reason });
  }

  async #unmute(peer: Peer, name: string): Promise<void> {
    const mute = this.#store.mutes().find((m) => nameKey(m.name) === nameKey(name));
    if (!await kept(this.#store.removeMute(name, peer.name))) {
      throw new ProtocolError(`${quote(name)} is not muted`);
    }
    this.#changed();
    this.#announce(formatUnmute(mute?.name ?? name, peer.name));
    this.#record({ act: "unmute", by: peer.name, target: mute?.name ?? name });
  }

  async #setOperator(peer: Peer, name: string, isOperator: boolean): Promise<void> {
    const verb = isOperator ? "op" : "deop";
    const account = this.#options.hub.accounts?.get(name);
    if (!account) {
      throw new ProtocolError(
        `Cannot ${verb} ${quote(name)}: only a registered name can be an operator`,
      );
    }
    if (!isOperator && nameKey(name) === nameKey(peer.name)) {
      throw new ProtocolError("You cannot deop yourself: the server's chat admin can");
    }
    if (this.#store.isOperator(name) === isOperator) {
      throw new ProtocolError(
        `${account.name} is ${isOperator ? "an operator already" : "not an operator"}`,
      );
    }
    await kept(this.#store.setOperator(account.name, isOperator, peer.name));
    this.#options.hub.operatorsChanged?.();
    this.#announce(formatOperatorChange(account.name, isOperator, peer.name));
    this.#record({ act: verb, by: peer.name, target: account.name });
  }

  /** Refuses an act on an operator, or on oneself. */
  #refuseOperator(peer: Peer, name: string, verb: string): void {
    if (nameKey(name) === nameKey(peer.name)) {
      throw new ProtocolError(`You cannot ${verb} yourself`);
    }
    if (this.#store.isOperator(name)) {
      throw new ProtocolError(
        `Cannot ${verb} ${quote(name)}: an operator cannot ${verb} an operator`,
      );
    }
  }

  /** A change made elsewhere (`chat admin`, another server): applied to this server's members. */
  #apply(change: ModerationChange): void {
    this.#changed();
    switch (change.kind) {
      case "operator":
        this.#options.hub.operatorsChanged?.();
        // Another server's operator told the whole room; `chat admin` tells each server's own.
        if (change.by === undefined) {
          this.#tellMembers(formatOperatorChange(change.name, change.isOperator));
          const act = change.isOperator ? "op" : "deop";
          this.#record({ act, by: "chat admin", target: change.name });
        }
        return;
      case "ban":
        return this.#enforce([change.ban], false);
      case "reload":
        this.#options.hub.operatorsChanged?.();
        return this.#enforce(this.#store.bans(), true);
    }
  }

  /**
   * Puts out the members of this server that `bans` hold for (made elsewhere, or meanwhile). The
   * banning server told the whole room of a ban by name, but of a ban by address only the names
   * it put out itself: those put out here are named here, to every server. After a heal
   * (`isMeanwhile`) this server's members missed the ban by name's notice, and hear it now.
   */
  #enforce(bans: readonly Ban[], isMeanwhile: boolean): void {
    for (const ban of bans) {
      const members = [...this.#options.members()].filter((m) =>
        ban.kind === "name"
          ? nameKey(m.name) === nameKey(ban.target)
          : blockOf(ban.target)?.has(m.hostname) === true
      );
      if (members.length === 0) continue;
      if (ban.kind === "address") {
        this.#expelMatches(ban, members);
        continue;
      }
      const line = formatYouAreBanned(ban.until, ban.reason);
      for (const member of members) {
        this.#options.expel(member, { line, notice: "", reason: "banned" });
      }
      if (isMeanwhile) this.#tellMembers(formatBan(members.map((m) => m.name), ban.by, ban));
    }
  }

  #tellMembers(line: string): void {
    const bytes = encodeLine(line);
    for (const member of this.#options.members()) member.send(bytes);
  }

  #announce(line: string): void {
    const { hub } = this.#options;
    if (hub.announce) hub.announce(line);
    else this.#tellMembers(line);
  }

  /** The member of this server named `name` (any case). */
  #member(name: string): ModerationMember | undefined {
    const key = nameKey(name);
    for (const member of this.#options.members()) if (nameKey(member.name) === key) return member;
  }

  /** The store's copy changed: the checks' index is built again when next needed. */
  #changed(): void {
    this.#index = undefined;
  }

  #current(): Index {
    if (this.#index) return this.#index;
    const names = new Map<string, Ban>();
    const addresses: Index["addresses"] = [];
    // What has ended is left out: an address ban found ended builds the index again, once.
    const now = Date.now();
    for (const ban of this.#store.bans()) {
      if (hasEnded(ban, now)) continue;
      if (ban.kind === "name") names.set(nameKey(ban.target), ban);
      else {
        const block = blockOf(ban.target);
        if (block) addresses.push({ ban, block });
      }
    }
    const anyAddress = new AddressSet(addresses.map(({ ban }) => ban.target));
    const index: Index = { names, addresses, anyAddress, mutes: new Map() };
    for (const mute of this.#store.mutes()) index.mutes.set(nameKey(mute.name), mute);
    return this.#index = index;
  }

  /** One log line and one count per act. */
  #record(act: Act): void {
    const until = act.until === undefined ? undefined : new Date(act.until).toISOString();
    Tally.bump(this.#options.tally.moderation, act.act);
    this.#options.log(
      `moderation: ${act.by} ${act.act} ${act.target}${until ? ` until ${until}` : ""}${
        act.reason ? `: ${act.reason}` : ""
      }`,
      {
        event: "moderation",
        act: act.act,
        by: act.by,
        target: act.target,
        ...until ? { until } : {},
        ...act.reason ? { reason: act.reason } : {},
      },
    );
  }
}

/** The block an address ban holds for; undefined for a target that is none (a forged row). */
function blockOf(target: string): AddressSet | undefined {
  try {
    return new AddressSet([target]);
  } catch {
    return undefined; // never matched: a ban this server made always parses
  }
}

/** A ban's refusal, as the member is told it (without `* error: `). */
function bannedMessage(ban: Ban): string {
  return formatYouAreBanned(ban.until, ban.reason).slice("* error: ".length);
}

/** Waits for a change of the store, turning its failure into an error line for the operator. */
async function kept<T>(change: Promise<T>): Promise<T> {
  try {
    return await change;
  } catch (error) {
    if (error instanceof StoreError) throw new ProtocolError(error.message);
    throw error;
  }
}

/**
 * An address ban's target as kept and listed: an IPv4 address as it is, an IPv6 address as its
 * /64 (one host or home has a whole /64, as the per-address limits have it), a block as its first
 * address and prefix. A ProtocolError for what is no address.
 */
export function normalizeAddress(text: string): string {
  let block;
  try {
    block = parseBlock(text.replace(/%[\w.-]+(?=\/|$)/, ""));
  } catch {
    throw new ProtocolError(
      `Cannot ban ${quote(text)}: give a name, an address (203.0.113.7, 2001:db8::1) or a CIDR`,
    );
  }
  const isV4 = block.bits >= 96 && block.bytes.subarray(0, 10).every((byte) => byte === 0) &&
    block.bytes[10] === 0xff && block.bytes[11] === 0xff;
  const bits = !isV4 && !text.includes("/") ? 64 : block.bits;
  const masked = block.bytes.map((byte, i) => {
    const kept = Math.max(0, Math.min(8, bits - 8 * i));
    return byte & ((0xff << (8 - kept)) & 0xff);
  });
  if (isV4) {
    const address = formatAddress(masked.subarray(12));
    return bits === 128 ? address : `${address}/${bits - 96}`;
  }
  return `${formatAddress(masked)}/${bits}`;
}

/**
 * Chat server: one room of named peers over plain TCP (or TLS), one UTF-8 line per message.
 *
 * Wire protocol (Budget Chat, Protohackers problem 3):
 *   server: * Welcome to chat! What shall I call you?
 *   client: alice
 *   server: * The room contains: bob          (bob gets "* alice has entered the room")
 *   client: hello                             (bob gets "[alice] hello")
 * Every line the server sends is "[NAME] text" from a user or a "* " system line.
 * Try it: `deno task server`, then `nc 127.0.0.1 1234` in two terminals.
 *
 * Data flows one way: socket -> line splitter -> read loop -> hub -> room log -> each peer's writer.
 * Each connection reads into a plain loop with the splitter's core (`LineBuffer`) rather than a
 * stream pipeline: streams cost about 10 KB per connection, more than an idle connection's budget.
 * This file owns one connection's life and the limits around it (connections, time limits); the
 * read loop asks flood control (server/flood.ts) and the login flow (server/login.ts) about each
 * line, and hands commands to the hub (server/hub.ts, or the cluster's).
 */
import { type CloseReason, DEFAULT_HISTORY_SIZE, type Hub, LocalHub } from "./server/hub.ts";
import { Moderation } from "./server/moderation.ts";
import { HeldPlace, type PlaceStore } from "./server/resume.ts";
import { KeptPlaces } from "./server/kept_places.ts";
import { Commands } from "./server/commands.ts";
import { MemoryModerationStore } from "./server/moderation_store.ts";
import { type AddressState, type Limits, resolveLimits } from "./server/limits.ts";
import { Admission } from "./server/admission.ts";
import { CountLog } from "./server/count_log.ts";
import { FloodControl, throttle, throttleBytes } from "./server/flood.ts";
import { digest, Login, type LoginOutcome } from "./server/login.ts";
import { type Census, census, type ConnKind, Peer, readBufferBytes } from "./server/peer.ts";
import { Tally } from "./server/metrics.ts";
import { WebSocketConn } from "./server/websocket_conn.ts";
import { IrcConn } from "./server/irc_conn.ts";
import { aborted, type ChatConn, closeQuietly, isPeerGone } from "./server/conn.ts";
import { type SecureContext } from "node:tls";
import { TlsConn, tlsContext } from "./server/tls_conn.ts";
import { acceptAll, refuse } from "./server/accept.ts";
import { type Log, peerFields } from "./server/log.ts";
import { AddressSet, LOOPBACK } from "./server/cidr.ts";
import { TrustedProxies } from "./server/trusted_proxies.ts";
import { type ProxiedConn, ProxyHeaders } from "./server/proxied_conn.ts";
import {
  cleanText,
  DEFAULT_HOST,
  DEFAULT_PORT,
  describe,
  encodeLine,
  formatError,
  formatLimits,
  formatTakeOver,
  formatWrongDoor,
  isHttpRequestLine,
  LineBuffer,
  LineTooLongError,
  nameKey,
  normalizePassword,
  parseName,
  parseResume,
  ProtocolError,
  SHUTDOWN_NOTICE,
} from "./protocol.ts";

export { DEFAULT_LIMITS, type Limits, resolveLimits } from "./server/limits.ts";
export { LOOPBACK } from "./server/cidr.ts";
export type { ChatServer, ServerOptions } from "./server/server_api.ts";
import type { ChatServer, ServerOptions } from "./server/server_api.ts";

/**
 * Listens and starts accepting clients. Throws what `Deno.listen` throws (for example `AddrInUse`
 * or `NotCapable`), what `node:tls` throws for an unusable certificate or key, a `RangeError`
 * for a limit out of range, and a `TypeError` for an address block that is not one.
 */
export function startServer(options: ServerOptions = {}): ChatServer {
  const limits = resolveLimits(options);
  const exempt = new AddressSet(options.exempt ?? LOOPBACK);
  const log = options.log ?? (() => {});
  const proxies = new TrustedProxies(options.trustProxy ?? [], log);
  const address = {
    hostname: options.hostname ?? DEFAULT_HOST,
    port: options.port ?? DEFAULT_PORT,
  };
  // The certificate is checked before listening, so that a bad one is reported as such.
  const tls = options.tls ? tlsContext(options.tls) : undefined;
  const listener = Deno.listen(address);
  const hub = options.hub ??
    new LocalHub({
      historySize: options.historySize ?? DEFAULT_HISTORY_SIZE,
      logSize: limits.logSize,
      moderation: options.moderation ?? new MemoryModerationStore(),
      ...options.accounts ? { accounts: options.accounts } : {},
    });
  return new Server(listener, {
    limits,
    exempt,
    proxies,
    proxyProtocol: new AddressSet(options.proxyProtocol ?? []),
    hub,
    log,
    ...(tls ? { tls } : {}),
    ...(options.places ? { places: options.places } : {}),
    ...(options.serverPassword === undefined
      ? {}
      : { serverPassword: digest(normalizePassword(options.serverPassword)) }),
  });
}

interface ServerConfig {
  limits: Limits;
  exempt: AddressSet;
  proxies: TrustedProxies;
  /** `--proxy-protocol`: where a connection to the chat's port must start with a PROXY header. */
  proxyProtocol: AddressSet;
  hub: Hub;
  tls?: SecureContext;
  log: Log;
  /** The SHA-256 digest of the server's password, if it is private. */
  serverPassword?: Uint8Array;
  /** Where kept places outlive a planned restart. */
  places?: PlaceStore;
}

const SHUTDOWN_LINE = encodeLine(SHUTDOWN_NOTICE);
/** How often idle peers give back their write buffers. */
const TRIM_INTERVAL_MS = 1000;
/** What a flooder is told, and the room. */
const FLOODING = { error: "Disconnected for flooding", problem: "flooding" } as const;

class Server implements ChatServer {
  readonly addr: Deno.NetAddr;
  webPort: number | undefined;
  readonly finished: Promise<void>;
  readonly tally = new Tally();
  #listener: Deno.Listener;
  #config: ServerConfig;
  #limits: Limits;
  #peers = new Set<Peer>();
  /** Connections from trusted proxies whose PROXY header is awaited. */
  #proxyHeaders: ProxyHeaders;
  /** The connection limits and the join rate. */
  #admission: Admission;
  #tasks = new Set<Promise<void>>();
  #isClosing = false;
  #stop = new AbortController();
  #sweeper: ReturnType<typeof setInterval> | undefined;
  /** What was refused or failed, logged at most once a second. */
  #counts: CountLog;
  /** The server's password, registered names' passwords, and the account commands. */
  #login: Login;
  /** Connections that took their join of the join rate when they opened (see `takeJoin`). */
  #joinTaken = new WeakSet<Peer>();
  #trimmedAt = Date.now();
  #hubClosed: Promise<void> = Promise.resolve();
  /** The places kept for the next start, written at close. */
  #placesKept: Promise<void> = Promise.resolve();
  /** Tells each newcomer the limits its lines must keep to, so a client can pace a paste. */
  #limitsNotice: string;
  /** Operators, bans, mutes and the topic. */
  #moderation: Moderation;
  /** Places kept for members whose connection was lost, and their resume tokens. */
  #places: KeptPlaces;
  /** What a joined member's line does. */
  #commands: Commands;

  constructor(listener: Deno.Listener, config: ServerConfig) {
    this.#listener = listener;
    this.#config = config;
    this.#limits = config.limits;
    this.addr = listener.addr as Deno.NetAddr;
    const { maxLineBytes, floodBurst, floodRate, registerRate } = this.#limits;
    this.#limitsNotice = formatLimits({ maxLineBytes, floodBurst, floodRate });
    this.#admission = new Admission(this.#limits, {
      exempt: config.exempt,
      tally: this.tally,
      log: config.log,
    });
    this.#sweeper = setInterval(() => this.#sweep(), sweepInterval(this.#limits));
    this.#login = new Login({
      hub: config.hub,
      serverPassword: config.serverPassword,
      registerRate,
      log: config.log,
      tally: this.tally,
    });
    this.#proxyHeaders = new ProxyHeaders({ timeoutMs: this.#limits.handshakeTimeoutMs });
    this.#moderation = new Moderation({
      store: config.hub.moderation ?? new MemoryModerationStore(),
      hub: config.hub,
      members: () => [...[...this.#peers].filter((peer) => peer.isJoined), ...this.#places.held],
      expel: (member, why) =>
        member instanceof HeldPlace
          ? this.#places.leave(member, why.reason, why.notice)
          : this.#disconnect(
            member as Peer,
            { error: why.reason, problem: why.reason, notice: why.notice },
            why.line,
          ),
      log: config.log,
      tally: this.tally,
    });
    this.#places = new KeptPlaces({
      hub: config.hub,
      log: config.log,
      tally: this.tally,
      graceMs: this.#limits.resumeGraceMs,
      maxHeld: this.#limits.maxConnections || Infinity,
      limitsNotice: this.#limitsNotice,
      welcomeNotices: (peer) => this.#moderation.welcomeNotices(peer),
      ...config.places ? { store: config.places } : {},
      addressOf: (hostname) => this.#admission.address(hostname),
      isBanned: (name, hostname) =>
        this.#moderation.nameRefusal(name) !== undefined ||
        this.#moderation.addressRefusal(hostname) !== undefined,
    });
    const { hub, log } = config;
    const [moderation, login, tally] = [this.#moderation, this.#login, this.tally];
    this.#commands = new Commands({ hub, moderation, login, tally, log });
    this.#counts = new CountLog({
      log: config.log,
      admission: this.#admission,
      login: this.#login,
      proxyHeaders: this.#proxyHeaders,
    });
    this.finished = this.#acceptLoop();
  }

  get limits(): Limits {
    return this.#limits;
  }

  get proxies(): TrustedProxies {
    return this.#config.proxies;
  }

  get connectionCount(): number {
    return this.#peers.size;
  }

  /** Bytes of read buffers the connections hold now: what a burst of long lines left behind. */
  get readBufferBytes(): number {
    return readBufferBytes(this.#peers);
  }

  isOperator(name: string): boolean {
    return this.#moderation.isOperator({ name });
  }

  census(): Census {
    const [bans, keptPlaces] = [this.#moderation.banCount, this.#places.heldCount];
    return { ...census(this.#peers), bans, keptPlaces };
  }

  close(): Promise<void> {
    if (this.#isClosing) return this.finished;
    this.#isClosing = true;
    this.#stop.abort();
    clearInterval(this.#sweeper);
    closeQuietly(this.#listener); // the accept loop then ends
    this.#proxyHeaders.close();
    this.#placesKept = this.#places.keepForRestart();
    // The hub says goodbye for the members first (a cluster hub tells the other servers).
    this.#hubClosed = Promise.resolve(this.#config.hub.close()).catch((error) =>
      this.#config.log(`hub: ${describe(error)}`, { event: "hub failed", level: "error" })
    );
    for (const peer of this.#peers) {
      peer.send(SHUTDOWN_LINE);
      peer.end();
    }
    return this.finished;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  reload(options: { tls?: { cert: string; key: string }; serverPassword?: string }): void {
    if (options.tls && !this.#config.tls) {
      throw new TypeError("Cannot take a certificate: the server does not speak TLS");
    }
    // Checked before anything changes, so that a bad pair leaves the server as it was.
    const tls = options.tls ? tlsContext(options.tls) : undefined;
    if (tls) this.#config.tls = tls;
    if (options.serverPassword !== undefined) {
      this.#login.changeServerPassword(digest(normalizePassword(options.serverPassword)));
    }
  }

  async #acceptLoop(): Promise<void> {
    await acceptAll(this.#listener, {
      onConn: (conn) => {
        const tcp = conn as Deno.TcpConn;
        if (this.#config.proxyProtocol.has((tcp.remoteAddr as Deno.NetAddr).hostname)) {
          return this.#track(this.#unwrap(tcp));
        }
        const { tls } = this.#config; // read at each connection: SIGHUP may renew it
        this.accept(tls ? new TlsConn(tcp, tls) : tcp);
      },
      log: this.#config.log,
      signal: this.#stop.signal,
    });
    await Promise.all(this.#tasks);
    await this.#hubClosed;
    await this.#placesKept;
  }

  accept(conn: ChatConn, options: { isJoinTaken?: boolean } = {}): void {
    if (this.#isClosing) return closeQuietly(conn);
    const { hostname } = conn.remoteAddr as Deno.NetAddr;
    const banned = this.#moderation.addressRefusal(hostname);
    const address = this.#admission.address(hostname);
    const refusal = banned ?? this.#admission.refusal(address, this.#connections);
    this.#track(refusal ? refuse(conn, refusal) : this.#serve(conn, address, options));
    if (banned) {
      Tally.bump(this.tally.refusals, "banned");
      this.#counts.bannedRefused();
    } else if (refusal) this.#admission.refused(refusal);
  }

  takeJoin(hostname: string): string | undefined {
    return this.#admission.takeJoin(hostname);
  }

  hold(hostname: string | undefined): string | { release(): void } {
    if (this.#isClosing) return "Server is shutting down";
    return this.#admission.hold(hostname, this.#connections);
  }

  /** Connections, and places kept for members whose connection was lost: each counts. */
  get #connections(): number {
    return this.#peers.size + this.#places.heldCount;
  }

  /**
   * A connection from a `--proxy-protocol` proxy: its PROXY header is read first (before TLS), under the
   * handshake deadline and the global limit, then it is served as the client's, under the client's
   * limits (see {@linkcode ProxyHeaders}).
   */
  async #unwrap(tcp: Deno.TcpConn): Promise<void> {
    const { tls } = this.#config;
    const held = this.hold(undefined);
    if (typeof held === "string") {
      // Refused before its header is read: a plaintext client hears why through the proxy.
      return tls ? closeQuietly(tcp) : refuse(tcp, held);
    }
    let conn: ProxiedConn | undefined;
    try {
      conn = await this.#proxyHeaders.unwrap(tcp);
    } finally {
      held.release(); // accept takes its place again, under the client's address
    }
    if (conn) this.accept(tls ? new TlsConn(conn, tls) : conn);
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async #serve(
    conn: ChatConn,
    address: AddressState,
    options: { isJoinTaken?: boolean },
  ): Promise<void> {
    const { maxBacklogBytes, maxLineBytes } = this.#limits;
    const kind = kindOf(conn);
    const peer = new Peer(conn, { maxBacklogBytes, address, kind, tally: this.tally });
    if (options.isJoinTaken) this.#joinTaken.add(peer);
    const flood = FloodControl.for(this.#limits, address);
    const { log } = this.#config;
    const login = this.#login;
    this.#peers.add(peer);
    address.connections++;
    try {
      // A chat line must leave now, not wait for an ACK (Nagle); TlsConn sets it on its own socket.
      if ("setNoDelay" in conn) (conn as Deno.TcpConn).setNoDelay(true);
      if (conn instanceof TlsConn && !await this.#handshake(peer, conn)) return;
      peer.send(login.greet(peer));
      const splitter = new LineBuffer({ maxLineBytes });
      // The loop never breaks: it ends when the socket does, so there is no read to cancel.
      for (let chunk = await peer.read(); chunk !== null; chunk = await peer.read()) {
        for (const line of splitter.push(chunk)) {
          if (peer.isEnding) break;
          peer.lastLineAt = Date.now();
          // Flood control starts once joined: before that, one bad line ends the connection anyway.
          if (flood && peer.isJoined && !flood.admit(peer.lastLineAt)) {
            const next = await throttle(peer, flood);
            if (next === "flooding") this.#disconnect(peer, FLOODING);
            if (next !== "go") continue;
          }
          const pending = this.#take(peer, line);
          if (pending) await pending;
        }
        if (flood && await throttleBytes(peer, flood, chunk.length) === "flooding") {
          this.#disconnect(peer, FLOODING);
        }
      }
    } catch (error) {
      if (!isPeerGone(error)) {
        log(`${peer.label}: ${describe(error)}`, {
          event: "peer failed",
          level: "error",
          ...peerFields(peer),
          reason: describe(error),
        });
      }
    } finally {
      login.forget(peer);
      // A token is good while its member is in the room or its place is kept: after a /quit, a
      // kick or a ban (no longer joined) it dies with the connection.
      if (peer.isJoined) this.#left(peer);
      else this.#places.forget(peer);
      peer.readEnded();
      await peer.closed;
      this.#peers.delete(peer);
      address.connections--;
    }
  }

  /** Acts on a line flood control let through; a promise only when it must be waited for. */
  #take(peer: Peer, line: string | LineTooLongError): void | Promise<void> {
    const login = this.#login;
    if (line instanceof LineTooLongError) {
      peer.sendError(line.message);
      if (!peer.isJoined) peer.end();
      login.forget(peer);
    } else if (login.isAwaiting(peer)) {
      return login.answer(peer, line).then((outcome) => this.#afterSecret(peer, outcome));
    } else if (peer.isJoined) {
      return this.#commands.handle(peer, cleanText(line));
    } else {
      return this.#join(peer, line);
    }
  }

  /**
   * A member's connection ended: the room hears it left, and why, if the server cut it; or, when
   * its client holds a resume token, nobody hears anything yet and its place is kept.
   */
  #left(peer: Peer): void {
    if (!this.#isClosing && this.#places.keep(peer)) return;
    this.#config.hub.leave(peer, peer.closeReason ? { problem: peer.closeReason } : {});
    const why = [peer.closeReason, peer.closeDetail].filter(Boolean).join(": ");
    Tally.bump(this.tally.leaves, peer.closeReason ?? "disconnected");
    this.#config.log(`${peer.label} left${why ? ` (${why})` : ""}`, {
      event: "leave",
      ...peerFields(peer),
      reason: peer.closeReason ?? "disconnected",
    });
  }

  /** Waits for a TLS client's handshake; false (the connection closed, with a log line) if it fails. */
  async #handshake(peer: Peer, conn: TlsConn): Promise<boolean> {
    peer.isHandshaking = true;
    try {
      // The sweep closes the peer when its handshake takes too long, which ends this wait.
      await Promise.race([conn.handshake(), aborted(peer.signal)]);
      return !peer.signal.aborted;
    } catch (error) {
      if (!peer.signal.aborted && !isPeerGone(error)) {
        this.#counts.handshakeFailed(`${peer.label}: ${describe(error)}`);
      }
      peer.close();
      return false;
    } finally {
      peer.isHandshaking = false;
    }
  }

  /**
   * Ends a peer for a reason of ours: it is told, and the room hears it left at once (or `notice`
   * instead: an operator put it out).
   */
  #disconnect(
    peer: Peer,
    why: { error: string; problem?: CloseReason; notice?: string },
    line = formatError(why.error),
  ): void {
    peer.send(encodeLine(line));
    if (peer.isJoined) {
      peer.isJoined = false;
      this.#config.hub.leave(peer, {
        ...why.problem ? { problem: why.problem } : {},
        ...why.notice === undefined ? {} : { notice: why.notice },
      });
      const reason = why.problem ?? why.error;
      Tally.bump(this.tally.leaves, why.problem ?? "refused");
      this.#config.log(`${peer.label} left (${reason})`, {
        event: "leave",
        ...peerFields(peer),
        reason,
      });
    }
    peer.end();
  }

  /**
   * Enforces the time limits, trims idle peers' buffers, forgets addresses that carry no
   * information, and logs refused connections and joins at most once per sweep.
   */
  #sweep(): void {
    const now = Date.now();
    const { nameTimeoutMs, idleTimeoutMs, writeTimeoutMs, handshakeTimeoutMs } = this.#limits;
    const isTrimming = now - this.#trimmedAt >= TRIM_INTERVAL_MS;
    if (isTrimming) {
      this.#trimmedAt = now;
      this.#admission.prune(now);
      this.#login.prune(now);
    }
    this.#places.expire(now);
    this.#proxyHeaders.sweep(now);
    for (const peer of this.#peers) {
      if (isTrimming) peer.trimBuffers();
      if (writeTimeoutMs > 0 && peer.writeStalledFor(now) > writeTimeoutMs) {
        // Even while ending: its last lines are not going anywhere.
        peer.close("stopped reading", `no byte taken for ${writeTimeoutMs / 1000} s`);
      } else if (peer.isEnding) {
        continue;
      } else if (
        handshakeTimeoutMs > 0 && peer.isHandshaking && now - peer.connectedAt > handshakeTimeoutMs
      ) {
        this.#counts.handshakeFailed(`${peer.label}: none within ${handshakeTimeoutMs / 1000} s`);
        peer.close();
      } else if (!peer.isJoined && nameTimeoutMs > 0 && now - peer.connectedAt > nameTimeoutMs) {
        // One deadline for the name and the passwords before it is joined.
        const what = this.#login.isAwaiting(peer) ? "No password" : "No valid name";
        this.#disconnect(peer, { error: `${what} within ${nameTimeoutMs / 1000} seconds` });
      } else if (peer.isJoined && idleTimeoutMs > 0 && now - peer.lastLineAt > idleTimeoutMs) {
        this.#disconnect(peer, {
          error: `Closed after ${idleTimeoutMs / 1000} seconds without a line`,
          problem: "idle",
        });
      }
    }
    this.#counts.logCounts(now);
  }

  async #join(peer: Peer, line: string): Promise<void> {
    try {
      if (isHttpRequestLine(line)) throw new ProtocolError(formatWrongDoor(this.webPort));
      this.#moderation.checkAddress(peer.hostname);
      const request = parseResume(line);
      if (request) this.#places.wantsToken(peer);
      if (request?.token && await this.#places.resumeWith(peer, request.name, request.token)) {
        return;
      }
      const name = request?.name ?? parseName(line);
      this.#moderation.checkName(name); // before its password: a banned name is not asked for one
      // A registered name: its password comes on the next line, under the same deadline.
      if (this.#login.asksPassword(peer, name)) return;
      await this.#enter(peer, name);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      // The protocol wants a rejected name to be told and disconnected, and nobody else to hear of it;
      // IRC lets a client try another nick.
      peer.sendError(error.message);
      if (peer.kind !== "irc") peer.end();
    }
  }

  /**
   * Joins a peer under `name`, within the join rate (unless its connection took its join when it
   * opened); a ProtocolError says why it cannot.
   */
  async #enter(peer: Peer, name: string): Promise<void> {
    this.#moderation.checkName(name, peer.hostname); // and its address: bans since its accept
    peer.name = name;
    const joins = this.#joinTaken.delete(peer) ? undefined : peer.address.joins;
    const refusal = this.#admission.joinRefusal(peer.address, joins);
    if (refusal) throw new ProtocolError(refusal);
    await this.#config.hub.join(peer, [this.#limitsNotice]);
    // The topic comes after the welcome, where a reader's eye lands.
    for (const notice of this.#moderation.welcomeNotices(peer)) peer.send(encodeLine(notice));
    this.#places.sendToken(peer);
    joins?.take(Date.now());
    peer.isJoined = true;
    this.tally.joins++;
    this.#config.log(`${peer.label} joined`, { event: "join", ...peerFields(peer) });
  }

  /**
   * The owner of a registered name logs in while a connection of theirs still holds it (a lost
   * connection not yet noticed, another device): the old one gives way.
   */
  #takeOver(name: string): void {
    this.#places.takeOver(name);
    for (const other of this.#peers) {
      if (other.isJoined && nameKey(other.name) === nameKey(name)) {
        this.#disconnect(
          other,
          { error: "logged in from elsewhere", problem: "logged in elsewhere" },
          formatTakeOver(other.name),
        );
      }
    }
  }

  /** What the login flow decided after a secret: let the peer in under its name, or rename it. */
  async #afterSecret(peer: Peer, outcome: LoginOutcome): Promise<void> {
    // Put out or resumed elsewhere while the password was checked: no longer the one to rename.
    if (outcome?.kind !== "enter" && (outcome?.kind !== "rename" || !peer.isJoined)) return;
    try {
      this.#moderation.checkName(outcome.name); // a ban may have come meanwhile
      if (outcome.kind === "rename") return await this.#commands.rename(peer, outcome.name);
      this.#takeOver(outcome.name);
      await this.#enter(peer, outcome.name);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      peer.sendError(error.message);
      if (!peer.isJoined) peer.end();
    }
  }
}

/**
 * How often the sweep runs: a quarter of the shortest time limit keeps each within 25% of its
 * value, at a second at most.
 */
function sweepInterval(limits: Limits): number {
  const { nameTimeoutMs, idleTimeoutMs, writeTimeoutMs, handshakeTimeoutMs, resumeGraceMs } =
    limits;
  const shortest = Math.min(
    ...[nameTimeoutMs, idleTimeoutMs, writeTimeoutMs, handshakeTimeoutMs, resumeGraceMs]
      .filter((ms) => ms > 0),
    4000,
  );
  return Math.max(10, shortest / 4);
}

/** How a connection came. */
function kindOf(conn: ChatConn): ConnKind {
  if (conn instanceof IrcConn) return "irc";
  return conn instanceof TlsConn ? "tls" : conn instanceof WebSocketConn ? "websocket" : "tcp";
}

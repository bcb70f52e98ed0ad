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
import { HeldPlace, Resume } from "./server/resume.ts";
import { MemoryModerationStore } from "./server/moderation_store.ts";
import { type AddressState, type Limits, resolveLimits } from "./server/limits.ts";
import { Admission } from "./server/admission.ts";
import { CountLog } from "./server/count_log.ts";
import { FloodControl } from "./server/flood.ts";
import { digest, Login, type LoginOutcome } from "./server/login.ts";
import {
  type Census,
  census,
  type ConnKind,
  Peer,
  readBufferBytes,
  replyTo,
} from "./server/peer.ts";
import { Tally } from "./server/metrics.ts";
import { WebSocketConn } from "./server/websocket_conn.ts";
import { IrcConn } from "./server/irc_conn.ts";
import { aborted, type ChatConn, closeQuietly, isPeerGone, pause } from "./server/conn.ts";
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
  formatResumed,
  formatResumeFailed,
  formatResumeToken,
  formatTakeOver,
  formatWrongDoor,
  GOODBYE,
  HELP_LINES,
  isHttpRequestLine,
  LineBuffer,
  LineTooLongError,
  nameKey,
  normalizePassword,
  OPERATOR_HELP_LINES,
  operatorCommandOf,
  operatorsOnly,
  parseCommand,
  parseName,
  parseResume,
  ProtocolError,
  RESUMED_ELSEWHERE,
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
}

const SHUTDOWN_LINE = encodeLine(SHUTDOWN_NOTICE);
const HELP = encodeLine(HELP_LINES.join("\n"));
const OPERATOR_HELP = encodeLine(OPERATOR_HELP_LINES.join("\n"));
const GOODBYE_LINE = encodeLine(GOODBYE);
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
  /** Tells each newcomer the limits its lines must keep to, so a client can pace a paste. */
  #limitsNotice: string;
  /** Operators, bans, mutes and the topic. */
  #moderation: Moderation;
  /** Resume tokens and the places they keep; none with a hub that cannot keep places (a cluster). */
  #resume: Resume;
  /** Members whose client asked for a resume token (`/resume NAME`). */
  #wantsToken = new WeakSet<Peer>();

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
    const { nameTimeoutMs, idleTimeoutMs, writeTimeoutMs, handshakeTimeoutMs, resumeGraceMs } =
      this.#limits;
    const shortest = Math.min(
      ...[nameTimeoutMs, idleTimeoutMs, writeTimeoutMs, handshakeTimeoutMs, resumeGraceMs]
        .filter((ms) => ms > 0),
      4000,
    );
    // A quarter of the shortest time limit keeps each within 25% of its value, at a second at most.
    this.#sweeper = setInterval(() => this.#sweep(), Math.max(10, shortest / 4));
    this.#login = new Login({
      hub: config.hub,
      serverPassword: config.serverPassword,
      registerRate,
      log: config.log,
      tally: this.tally,
    });
    this.#proxyHeaders = new ProxyHeaders({ timeoutMs: handshakeTimeoutMs });
    this.#moderation = new Moderation({
      store: config.hub.moderation ?? new MemoryModerationStore(),
      hub: config.hub,
      members: () => [...[...this.#peers].filter((peer) => peer.isJoined), ...this.#resume.held],
      expel: (member, why) =>
        member instanceof HeldPlace
          ? this.#leaveHeld(member, why.reason, why.notice)
          : this.#disconnect(
            member as Peer,
            { error: why.reason, problem: why.reason, notice: why.notice },
            why.line,
          ),
      log: config.log,
      tally: this.tally,
    });
    this.#resume = new Resume({
      graceMs: config.hub.replace ? this.#limits.resumeGraceMs : 0,
      maxHeld: this.#limits.maxConnections || Infinity,
    });
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
    return { ...census(this.#peers), bans: this.#moderation.banCount };
  }

  close(): Promise<void> {
    if (this.#isClosing) return this.finished;
    this.#isClosing = true;
    this.#stop.abort();
    clearInterval(this.#sweeper);
    closeQuietly(this.#listener); // the accept loop then ends
    this.#proxyHeaders.close();
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
    return this.#peers.size + this.#resume.heldCount;
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
            if (!await this.#throttle(peer, flood)) continue;
          }
          const pending = this.#take(peer, line);
          if (pending) await pending;
        }
        if (flood) await this.#throttleBytes(peer, flood, chunk.length);
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
      else this.#resume.revoke(peer);
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
      return this.#handle(peer, cleanText(line));
    } else {
      return this.#join(peer, line);
    }
  }

  /**
   * A member's connection ended: the room hears it left, and why, if the server cut it; or, when
   * its client holds a resume token, nobody hears anything yet and its place is kept.
   */
  #left(peer: Peer): void {
    const place = this.#isClosing ? undefined : this.#resume.hold(peer, Date.now());
    if (place && this.#config.hub.replace!(peer, place)) {
      peer.isJoined = false; // its place stands for it now (moderation must not see both)
      const why = peer.closeReason ? ` (${peer.closeReason})` : "";
      return this.#config.log(`${peer.label} lost its connection${why}: its place is kept`, {
        event: "held",
        ...peerFields(peer),
      });
    }
    if (place) this.#resume.revoke(place);
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
   * A line flood control could not take at once: stops reading from this peer (which slows the
   * client through TCP) until both buckets have a token, warning it once, or disconnects a peer
   * that keeps flooding. Returns whether the line may be handled.
   */
  async #throttle(peer: Peer, flood: FloodControl): Promise<boolean> {
    let now = peer.lastLineAt;
    const delay = flood.delay(now);
    if (delay.kind === "flooding") {
      this.#disconnect(peer, FLOODING);
      return false;
    }
    if (delay.warning) peer.sendError(delay.warning);
    let wait = delay.ms;
    while (wait > 0 && !peer.signal.aborted && !peer.isEnding) {
      await pause(wait, peer.signal);
      now = Date.now();
      wait = flood.wait(now);
    }
    if (wait > 0 || peer.isEnding) return false;
    flood.take(now);
    return true;
  }

  /** The byte budget after a read of `count` bytes: a pause in the reading, or a disconnection. */
  async #throttleBytes(peer: Peer, flood: FloodControl, count: number): Promise<void> {
    const wait = flood.spend(Date.now(), count);
    if (wait === 0 || peer.isEnding) return;
    if (wait === "flooding") return this.#disconnect(peer, FLOODING);
    await pause(wait, peer.signal);
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
    for (const place of this.#resume.expire(now)) this.#leaveHeld(place);
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
      if (request) this.#wantsToken.add(peer);
      if (request?.token && this.#resumeWith(peer, request.name, request.token)) return;
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
    this.#sendToken(peer);
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
    const place = this.#resume.heldPlace(name);
    if (place) this.#leaveHeld(place, "logged in elsewhere");
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
      if (outcome.kind === "rename") return await this.#rename(peer, outcome.name);
      this.#takeOver(outcome.name);
      await this.#enter(peer, outcome.name);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      peer.sendError(error.message);
      if (!peer.isJoined) peer.end();
    }
  }

  /**
   * `/resume NAME TOKEN` as a first line: the peer takes the place the token keeps, and the room
   * hears nothing. False (told so) when the token keeps none for that name: the peer joins anew.
   * A kick or a ban puts out a kept place as it does a member (see `members` for moderation), so
   * its token is dead by then.
   */
  #resumeWith(peer: Peer, name: string, token: string): boolean {
    const holder = this.#resume.take(name, token, Date.now());
    if (!holder) {
      if (this.#resume.graceMs > 0) peer.send(encodeLine(formatResumeFailed(name)));
      return false;
    }
    const kept = holder instanceof HeldPlace ? holder.kept : [];
    this.#config.hub.replace!(holder, peer, [this.#limitsNotice, formatResumed(kept.length)]);
    if (!(holder instanceof HeldPlace)) {
      // Its old connection, not yet seen lost (a phone asleep), gives way without a leave.
      holder.isJoined = false;
      holder.send(encodeLine(RESUMED_ELSEWHERE));
      holder.end();
    }
    for (const bytes of kept) peer.send(bytes);
    for (const notice of this.#moderation.welcomeNotices(peer)) peer.send(encodeLine(notice));
    peer.isJoined = true;
    this.#sendToken(peer);
    this.#config.log(`${peer.label} resumed its place`, { event: "resumed", ...peerFields(peer) });
    return true;
  }

  /** A new resume token for a member whose client asked for one (the old one dies). */
  #sendToken(peer: Peer): void {
    const token = this.#wantsToken.has(peer) ? this.#resume.issue(peer) : undefined;
    if (token) peer.send(encodeLine(formatResumeToken(token, this.#resume.graceMs / 1000)));
  }

  /**
   * A kept place is given up (its grace is over, a take-over, a kick or a ban): the room hears it
   * left, or `notice` instead (an operator put it out).
   */
  #leaveHeld(place: HeldPlace, problem?: CloseReason, notice?: string): void {
    this.#resume.revoke(place);
    this.#config.hub.leave(place, {
      ...problem ? { problem } : {},
      ...notice === undefined ? {} : { notice },
    });
    Tally.bump(this.tally.leaves, problem ?? "disconnected");
    this.#config.log(`${place.name} left (${problem ?? "not back in time"})`, {
      event: "leave",
      name: place.name,
      reason: problem ?? "disconnected",
    });
  }

  /** `/nick` once allowed: the hub renames, and everyone is told. */
  #rename(peer: Peer, newName: string): void | Promise<void> {
    const oldName = peer.name;
    const renamed = () =>
      this.#config.log(`${oldName} is now known as ${peer.name}`, {
        event: "rename",
        ...peerFields(peer),
        reason: `was ${oldName}`,
      });
    return replyTo(peer, () => this.#config.hub.rename(peer, newName), renamed);
  }

  /** A `/quit` reason, or none from a muted member (who is told; the quit still happens). */
  #unmuted(peer: Peer, reason: string): string {
    try {
      this.#moderation.checkMute(peer);
      return reason;
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      peer.sendError(error.message);
      return "";
    }
  }

  /** Acts on one line from a joined peer; returns a promise only when the hub must be waited for. */
  #handle(peer: Peer, text: string): void | Promise<void> {
    if (text.trim() === "") return;
    const { hub } = this.#config;
    const moderation = this.#moderation;
    try {
      const word = operatorCommandOf(text);
      if (word && !moderation.isOperator(peer)) throw operatorsOnly(word);
      const command = parseCommand(text);
      switch (command.name) {
        case "say":
          moderation.checkMute(peer);
          this.tally.linesSaid++;
          return hub.say(peer, command.text);
        case "me":
          moderation.checkMute(peer);
          this.tally.linesSaid++;
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
          if (isOther && this.#login.asksPassword(peer, command.newName, "nick")) return;
          return this.#rename(peer, command.newName);
        }
        case "register":
        case "password":
        case "unregister":
          return this.#login.runAccountCommand(
            peer,
            command.name,
            command.name === "register" ? command.password : undefined,
          );
        case "quit":
          if (command.reason) command.reason = this.#unmuted(peer, command.reason);
          hub.leave(peer, { quit: command.reason });
          Tally.bump(this.tally.leaves, "quit");
          this.#config.log(`${peer.label} quit${command.reason ? `: ${command.reason}` : ""}`, {
            event: "leave",
            ...peerFields(peer),
            reason: command.reason ? `quit: ${command.reason}` : "quit",
          });
          peer.isJoined = false;
          peer.send(GOODBYE_LINE);
          return peer.end();
        default:
          return replyTo(peer, () => moderation.run(peer, command));
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      peer.sendError(error.message);
    }
  }
}

/** How a connection came. */
function kindOf(conn: ChatConn): ConnKind {
  if (conn instanceof IrcConn) return "irc";
  return conn instanceof TlsConn ? "tls" : conn instanceof WebSocketConn ? "websocket" : "tcp";
}

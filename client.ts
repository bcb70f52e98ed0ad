/**
 * Terminal chat client: sends your name, then your lines, while printing what the room says.
 *
 * Run it with `deno run -N client.ts NAME [--host HOST] [--port PORT]`; end with Ctrl+D or `/quit`.
 * It sends within the flood limits the server states (a paste of any size arrives whole, only
 * later), refuses a line over the server's line limit itself, and at a terminal reconnects when
 * the server is lost or restarts. The screens are in client/terminal.ts; when stdout is not a terminal it
 * prints the server's lines exactly, one per line, so it can be scripted.
 */
import {
  backoffDelay,
  cleanText,
  type ClientLimits,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_PORT,
  encodeLine,
  firstNewLine,
  LineSplitter,
  LineTooLongError,
  MAX_LINE_OVERHEAD_BYTES,
  MAX_MAX_LINE_BYTES,
  messageOf,
  nameKey,
  parseCommandQuietly,
  parseName,
  parsePrompt,
  parseServerLine,
  parseTakeOver,
  parseWrongSecret,
  PRIVATE_GREETING,
  type Prompt,
  ProtocolError,
  type ServerLine,
  SHUTDOWN_NOTICE,
  utf8Length,
} from "./protocol.ts";
import {
  LineScreen,
  type NoteKind,
  type Screen,
  stdinLines,
  TerminalScreen,
  terminalSize,
} from "./client/terminal.ts";

/** Where the client connects when no host is given. */
export const DEFAULT_CLIENT_HOST = "127.0.0.1";
/**
 * Longest line accepted from the server: the longest any server of ours can send (its line limit
 * is at most 2^24 bytes, plus what it adds around a user's text). Longer ones are reported.
 */
const MAX_SERVER_LINE_BYTES = MAX_MAX_LINE_BYTES + MAX_LINE_OVERHEAD_BYTES;
/** How long the server may take to answer our name before we give up on it. */
export const DEFAULT_JOIN_TIMEOUT_MS = 15_000;
/** Passwords a person may type at a terminal before the client gives up, as ssh allows. */
const SECRET_TRIES = 3;
/** Reconnection attempts after the server is lost, at a terminal. */
export const DEFAULT_RECONNECT_TRIES = 10;
/** The first wait before reconnecting; each further attempt waits twice as long, up to the most. */
const RECONNECT_BACKOFF = { firstMs: 500, mostMs: 15_000, jitter: [0.75, 1.25] } as const;
/** The limits of a server that does not state its own: the defaults of ours. */
const DEFAULT_LIMITS: Required<ClientLimits> = {
  maxLineBytes: DEFAULT_MAX_LINE_BYTES,
  floodBurst: 10,
  floodRate: 5,
};
/**
 * Our copy of the server's token bucket refills a little slower than the server's and keeps two
 * tokens in hand, so that lines bunched up on the way still find a token there: the server counts
 * from when it reads a line, and a busy server or network reads a burst late and the next line
 * early (measured: a burst read 50 ms late made the 11th line of a paste wait, at 20 a second).
 */
const PACING_MARGIN = 0.9;
const PACING_HEADROOM = 2;
/** Lines said in the room that we keep, to tell what was said while we were away from repeats. */
const SEEN_LINES = 500;

/** An expected way for a chat session to fail (refused, rejected, lost); its message is for the user. */
export class ClientError extends Error {
  override name = "ClientError";
}

/** Options for {@linkcode runClient}. */
export interface ClientOptions {
  /** The name to join with. */
  name: string;
  /** Server host (default 127.0.0.1). */
  hostname?: string;
  /** Server port (default 1234). */
  port?: number;
  /** Connect with TLS, trusting these PEM certificates besides the system's. */
  tls?: { caCerts: string[] };
  /** How long to wait for the server to let us in, in ms (default 15 s). */
  joinTimeoutMs?: number;
  /** Attempts to reconnect after losing the server (default 10 at a terminal, 0 otherwise). */
  reconnectTries?: number;
  /** The name's password, if it is registered; asked at a terminal when not given. */
  password?: string;
  /** A private server's password; asked at a terminal when not given. */
  serverPassword?: string;
}

/** Where to connect. */
interface Target {
  hostname: string;
  port: number;
  tls?: { caCerts: string[] };
}

/**
 * Joins the room and chats on stdin and stdout until the user leaves (end of input, `/quit`,
 * Ctrl+C on an empty line). Throws a {@linkcode ClientError} when the server cannot be reached,
 * rejects the name, or is lost (or shut down) for good.
 */
export async function runClient(options: ClientOptions): Promise<void> {
  const name = checkName(options.name);
  const target: Target = {
    hostname: options.hostname ?? DEFAULT_CLIENT_HOST,
    port: options.port ?? DEFAULT_PORT,
    ...(options.tls ? { tls: options.tls } : {}),
  };
  const conn = await connect(target);
  const screen = openScreen();
  const session = new Session(screen, {
    name,
    target,
    joinTimeoutMs: options.joinTimeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS,
    reconnectTries: options.reconnectTries ??
      (screen instanceof PlainScreen ? 0 : DEFAULT_RECONNECT_TRIES),
    secrets: {
      ...(options.password === undefined ? {} : { login: options.password }),
      ...(options.serverPassword === undefined ? {} : { server: options.serverPassword }),
    },
  });
  try {
    await session.run(conn);
  } finally {
    session.stop();
    screen.close();
  }
}

function checkName(name: string): string {
  try {
    return parseName(name);
  } catch (error) {
    if (error instanceof ProtocolError) throw new ClientError(error.message);
    throw error;
  }
}

async function connect({ hostname, port, tls }: Target): Promise<Deno.TcpConn | Deno.TlsConn> {
  const where = `${hostname}:${port}`;
  let conn: Deno.TcpConn | Deno.TlsConn;
  try {
    conn = tls
      ? await Deno.connectTls({ hostname, port, caCerts: tls.caCerts })
      : await Deno.connect({ hostname, port });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new ClientError(`Cannot connect to ${where}: no network permission (run with -N)`);
    }
    const reason = error instanceof Deno.errors.ConnectionRefused
      ? "connection refused"
      : messageOf(error);
    throw new ClientError(`Cannot connect to ${where}: ${reason}`);
  }
  if (!("handshake" in conn)) {
    conn.setNoDelay(true); // our lines are small: send each at once (TLS connections cannot set it)
    return conn;
  }
  try {
    await conn.handshake(); // so that a bad certificate is reported as such, before anything else
    return conn;
  } catch (error) {
    conn.close();
    // rustls names the first byte of a plain-text answer, which is no TLS record type.
    const reason = /InvalidContentType/.test(messageOf(error))
      ? "the server does not speak TLS (it answered in plain text): connect without --tls"
      : messageOf(error);
    throw new ClientError(`TLS handshake with ${where} failed: ${reason}`);
  }
}

/**
 * The server's flood control as a token bucket of our own: `burst` lines at once, then `rate` a
 * second. A line is sent only with a token in it, so the server never has to delay one.
 */
export class Pacer {
  #burst: number;
  #rate: number;
  #tokens: number;
  #updatedAt: number;

  constructor(limits: { burst: number; rate: number }, now = performance.now()) {
    this.#burst = usableBurst(limits.burst);
    this.#rate = limits.rate;
    this.#tokens = this.#burst;
    this.#updatedAt = now;
  }

  /** Adopts the limits a server states; what was spent stays spent. */
  setLimits(limits: { burst: number; rate: number }, now = performance.now()): void {
    this.#refill(now);
    this.#burst = usableBurst(limits.burst);
    this.#rate = limits.rate;
    this.#tokens = Math.min(this.#tokens, this.#burst);
  }

  /** The server had to delay a line all the same: send nothing more until a token is earned. */
  backOff(now = performance.now()): void {
    this.#refill(now);
    this.#tokens = Math.min(this.#tokens, 0);
  }

  /** Takes a token and answers 0, or answers how many ms until there is one (taking nothing). */
  take(now = performance.now()): number {
    if (this.#rate <= 0) return 0; // the server has no flood control
    this.#refill(now);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - this.#tokens) * 1000 / (this.#rate * PACING_MARGIN));
  }

  #refill(now: number): void {
    const earned = Math.max(0, now - this.#updatedAt) * this.#rate * PACING_MARGIN / 1000;
    this.#tokens = Math.min(this.#burst, this.#tokens + earned);
    this.#updatedAt = now;
  }
}

/** The burst we use of the server's: all but the headroom, at least one line. */
function usableBurst(burst: number): number {
  return Math.max(1, burst - PACING_HEADROOM);
}

/** How one connection ended. */
type Ending =
  | { kind: "left" }
  | { kind: "retry"; message: string }
  | { kind: "fatal"; message: string }
  | { kind: "lost"; message: string; hasJoined: boolean };

/**
 * What the server stores in its history for a line, to match history against what we saw: a
 * user's line or action, or `undefined` for anything else.
 */
function historyKey(line: ServerLine): string | undefined {
  if (line.kind === "user") return `[${line.name}] ${line.text}`;
  if (line.kind === "action") return `* [${line.name}] ${line.text}`;
}

/**
 * One chat session, across reconnections: the server's lines go to the screen, the user's lines
 * wait in the outbox and leave as the pacer allows.
 */
class Session {
  #screen: Screen;
  #name: string;
  #target: Target;
  #joinTimeoutMs: number;
  #reconnectTries: number;
  #limits = DEFAULT_LIMITS;
  #pacer = new Pacer({ burst: DEFAULT_LIMITS.floodBurst, rate: DEFAULT_LIMITS.floodRate });
  /** Lines typed and not sent yet, oldest first. */
  #outbox: string[] = [];
  /** The connection being served, and the one lines go to once joined. */
  #current: Deno.TcpConn | Deno.TlsConn | undefined;
  #conn: Deno.TcpConn | Deno.TlsConn | undefined;
  #writing: Promise<unknown> = Promise.resolve();
  #pacerTimer: ReturnType<typeof setTimeout> | undefined;
  /** The user has left (end of input or `/quit` sent): the next end of the connection is theirs. */
  #isLeaving = false;
  #isInputOver = false;
  #inputFailure: string | undefined;
  #isStopped = false;
  /** What the waiting lines wait for, when it is not the pacer: joining, reconnecting. */
  #status = "joining";
  /** The room's lines we saw (as the server's history has them), to show only news after a loss. */
  #seen: string[] = [];
  /** In the room on this connection (its room list came), and on any so far. */
  #hasJoined = false;
  #hasEverJoined = false;
  #wakeReconnect: (() => void) | undefined;
  /** The passwords given or typed (kept for reconnecting): the name's and the server's. */
  #secrets: { login?: string; server?: string };
  #isClearWarned = false;
  /** The passwords typed at the prompt (not given), and how many were wrong. */
  #typedSecrets = new Set<"server" | "login">();
  #wrongSecrets = 0;
  /** A reason to end the session that came from us, not the server (no password to give). */
  #failure: string | undefined;
  #joinTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * The server may ask for a password on the next line (after /register, /password, /unregister
   * or /nick): lines waiting are held until it has answered, so that none is taken for one.
   */
  #isHeld = false;

  constructor(
    screen: Screen,
    options: {
      name: string;
      target: Target;
      joinTimeoutMs: number;
      reconnectTries: number;
      secrets?: { login?: string; server?: string };
    },
  ) {
    this.#secrets = { ...options.secrets };
    this.#screen = screen;
    this.#name = options.name;
    this.#target = options.target;
    this.#joinTimeoutMs = options.joinTimeoutMs;
    this.#reconnectTries = options.reconnectTries;
    screen.setName(options.name);
  }

  /** Chats until the user leaves; throws a ClientError for any other ending. */
  async run(first: Deno.TcpConn | Deno.TlsConn): Promise<void> {
    this.#readInput(); // ends with the process: a pending read of stdin cannot be cancelled
    let conn: Deno.TcpConn | Deno.TlsConn | undefined = first;
    let failures = 0;
    while (conn) {
      const ending = await this.#serve(conn);
      if (ending.kind === "left") return;
      if (ending.kind === "fatal") throw new ClientError(ending.message);
      if (ending.kind === "retry") {
        // A password typed wrong: the server has closed; ask again on a new connection at once.
        this.#note(ending.message, "error");
        conn = await connect(this.#target);
        continue;
      }
      if (!this.#hasEverJoined || this.#reconnectTries === 0) {
        throw new ClientError(ending.message);
      }
      if (ending.hasJoined) failures = 0;
      [conn, failures] = await this.#reconnect(ending.message, failures);
    }
  }

  /** Stops timers; lines still waiting are reported. */
  stop(): void {
    this.#isStopped = true;
    clearTimeout(this.#pacerTimer);
    this.#wakeReconnect?.();
    if (this.#outbox.length > 0) {
      const count = this.#outbox.length;
      this.#screen.note(`${count === 1 ? "1 line was" : `${count} lines were`} not sent`, "error");
      this.#outbox = [];
    }
  }

  /**
   * Waits and connects again, with backoff, until it works or the attempts run out. Answers the
   * new connection and the failures so far; `undefined` when the user left meanwhile.
   */
  async #reconnect(
    why: string,
    failures: number,
  ): Promise<[Deno.TcpConn | Deno.TlsConn | undefined, number]> {
    this.#screen.note(`${why}: reconnecting`, "error");
    let reason = why;
    while (failures < this.#reconnectTries) {
      // Spread out, so that a restarted server is not hit by every client at once.
      const delay = backoffDelay(failures, RECONNECT_BACKOFF);
      failures++;
      this.#setStatus(
        `reconnecting (attempt ${failures} of ${this.#reconnectTries} in ${
          Math.ceil(delay / 1000)
        } s)`,
      );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this.#wakeReconnect = () => (clearTimeout(timer), resolve());
      });
      this.#wakeReconnect = undefined;
      if (this.#inputFailure) throw new ClientError(this.#inputFailure);
      if (this.#isLeaving || this.#isStopped) return [undefined, failures];
      try {
        return [await connect(this.#target), failures];
      } catch (error) {
        reason = messageOf(error);
      }
    }
    const where = `${this.#target.hostname}:${this.#target.port}`;
    throw new ClientError(
      `Gave up reconnecting to ${where} after ${this.#reconnectTries} attempts: ${reason}`,
    );
  }

  #setStatus(status: string): void {
    this.#status = status;
    this.#showWaiting();
  }

  /** Shows the lines waiting, and what for: the pacer, or the connection while it is down. */
  #showWaiting(): void {
    const reason = this.#status || `the server takes ${this.#limits.floodRate} a second`;
    this.#screen.setWaiting(this.#outbox, reason, this.#status !== "");
  }

  /** Joins over `conn` and chats until it ends; answers how it ended. */
  async #serve(conn: Deno.TcpConn | Deno.TlsConn): Promise<Ending> {
    let noReply = false;
    const timer = this.#joinTimer = setTimeout(() => {
      noReply = true;
      closeQuietly(conn);
    }, this.#joinTimeoutMs);
    const join = new JoinReply(this, this.#hasEverJoined, conn);
    let lastLine = "";
    let failure: string | undefined;
    let takenOver: string | undefined;
    this.#current = conn;
    this.#isHeld = false;
    try {
      // A script's name goes at once, as Budget Chat clients do; a person at a terminal, or anyone
      // with a private server's password, waits for the server's first line, which may ask for it.
      if (!this.#screen.askSecret && this.#secrets.server === undefined) {
        join.isNameSent = true;
        await send(conn, this.#name);
      }
      const lines = conn.readable.pipeThrough(
        new LineSplitter({ maxLineBytes: MAX_SERVER_LINE_BYTES }),
      );
      for await (const batch of lines) {
        for (const line of batch) {
          if (line instanceof LineTooLongError) {
            this.#note(
              `The server sent a line over ${line.maxLineBytes} bytes: not shown`,
              "error",
            );
            continue;
          }
          lastLine = cleanText(line); // a hostile server must not reach the terminal either
          takenOver ??= parseTakeOver(lastLine);
          const parsed = parseServerLine(lastLine);
          if (!join.isDone) {
            if (join.holds(lastLine, parsed)) continue;
            if (!this.#hasJoined) {
              clearTimeout(timer); // in the room: the join timer is done with
              this.#hasJoined = this.#hasEverJoined = true;
            }
            // Once this read's lines are shown (the welcome is with them), lines waiting go out.
            if (join.isDone) queueMicrotask(() => this.#joined(conn));
          }
          this.#receive(lastLine, parsed);
        }
      }
    } catch (error) {
      failure = `Connection to the server lost: ${messageOf(error)}`;
    } finally {
      clearTimeout(timer);
      this.#current = this.#conn = undefined;
      this.#hasJoined = false;
      clearTimeout(this.#pacerTimer);
      closeQuietly(conn);
    }
    return this.#ending({ join, lastLine, noReply, failure, takenOver });
  }

  #ending(
    options: {
      join: JoinReply;
      lastLine: string;
      noReply: boolean;
      failure: string | undefined;
      takenOver: string | undefined;
    },
  ): Ending {
    const { join, lastLine, noReply, failure, takenOver } = options;
    if (this.#inputFailure) return { kind: "fatal", message: this.#inputFailure };
    if (this.#failure) return { kind: "fatal", message: this.#failure };
    if (takenOver !== undefined) {
      // Logging in again would take the name back from the other login, which would do the same.
      return {
        kind: "fatal",
        message: `You logged in as ${takenOver} from elsewhere: not reconnecting, which would ` +
          "take the name back",
      };
    }
    if (join.isPrivate && !this.#screen.askSecret && this.#secrets.server === undefined) {
      // Our name went out before the server said it is private, and was taken for its password.
      return {
        kind: "fatal",
        message: "The server is private: give its password with CHAT_SERVER_PASSWORD or " +
          "--server-password-file FILE",
      };
    }
    if (this.#isLeaving) return { kind: "left" };
    const hasJoined = join.hasRoom;
    // A restart is the common case: come back as after a loss (unless reconnecting is off).
    if (lastLine === SHUTDOWN_NOTICE) {
      return { kind: "lost", hasJoined, message: "The server shut down" };
    }
    if (noReply) {
      const seconds = this.#joinTimeoutMs / 1000;
      const message = `No reply from the server within ${seconds} s: is it a chat server?`;
      return { kind: "lost", hasJoined, message };
    }
    const wrong = join.rejection === undefined ? undefined : parseWrongSecret(join.rejection);
    if (
      !hasJoined && wrong && this.#typedSecrets.has(wrong) && ++this.#wrongSecrets < SECRET_TRIES
    ) {
      delete this.#secrets[wrong]; // asked again, as ssh does
      this.#typedSecrets.delete(wrong);
      return { kind: "retry", message: join.rejection! };
    }
    if (!hasJoined && join.rejection) {
      // A name refused at the first join ends it; after a loss it may be our own ghost, still there.
      return this.#hasEverJoined
        ? { kind: "lost", hasJoined, message: join.rejection }
        : { kind: "fatal", message: join.rejection };
    }
    const message = failure ??
      (hasJoined
        ? "The server closed the connection"
        : "The server closed the connection before we joined");
    return { kind: "lost", hasJoined, message };
  }

  /** The join reply is complete: lines waiting from before go out now. */
  #joined(conn: Deno.TcpConn | Deno.TlsConn): void {
    if (this.#current !== conn) return; // it ended meanwhile
    this.#conn = conn;
    this.#writing = Promise.resolve();
    this.#status = "";
    this.#pump();
  }

  /**
   * Answers what the server says before the room list: its password if it is private, then our
   * name, then the name's password if it is registered. Nothing is sent before the server speaks,
   * so that no password can be taken for a name, or a name for a password.
   */
  async answer(conn: Deno.TcpConn | Deno.TlsConn, line: string, join: JoinReply): Promise<void> {
    try {
      const prompt = parsePrompt(line);
      if (prompt?.kind === "server" || prompt?.kind === "login") {
        return await send(conn, await this.#secret(conn, prompt));
      }
      if (join.isNameSent) return;
      join.isNameSent = true;
      await send(conn, this.#name);
    } catch (error) {
      if (error instanceof ClientError) this.#failure = error.message;
      closeQuietly(conn); // the read loop ends, and the session with it
    }
  }

  /**
   * The password a prompt asks for: given (or typed before, when reconnecting), else typed now
   * without echo at a terminal; elsewhere a ClientError says how to give it.
   */
  async #secret(conn: Deno.TcpConn | Deno.TlsConn, prompt: Prompt): Promise<string> {
    const kind = prompt.kind === "server" ? "server" : "login";
    let secret = this.#secrets[kind];
    if (secret === undefined) {
      const ask = this.#screen.askSecret?.bind(this.#screen);
      if (!ask) {
        throw new ClientError(
          kind === "server"
            ? "The server is private: give its password with CHAT_SERVER_PASSWORD or " +
              "--server-password-file FILE"
            : `${prompt.name} is registered: give its password with CHAT_PASSWORD or ` +
              "--password-file FILE",
        );
      }
      // The person types it: the server's own deadline is the one that counts meanwhile.
      clearTimeout(this.#joinTimer);
      this.#warnIfClear(conn); // before it is typed, while the person can still choose not to
      secret = await ask(kind === "server" ? "Server password" : `Password for ${prompt.name}`);
      if (secret === undefined) throw new ClientError("No password given");
      this.#typedSecrets.add(kind);
    }
    this.#secrets[kind] = secret;
    this.#warnIfClear(conn);
    return secret;
  }

  /** Says once that passwords cross the network unprotected, unless over TLS or loopback. */
  #warnIfClear(conn: Deno.TcpConn | Deno.TlsConn): void {
    if (this.#isClearWarned || this.#target.tls) return;
    if (isLoopback((conn.remoteAddr as Deno.NetAddr).hostname)) return;
    this.#isClearWarned = true;
    this.#note(
      "Your password crosses the network in clear: connect with --tls to protect it",
      "error",
    );
  }

  /**
   * A prompt for a password once in the room (after /register, /password, /unregister or /nick to
   * a registered name): asked without echo, and sent at once; an empty answer cancels.
   */
  async #answerInRoom(conn: Deno.TcpConn | Deno.TlsConn, prompt: Prompt): Promise<void> {
    const label = prompt.kind === "new"
      ? `New password for ${prompt.name}`
      : prompt.kind === "current"
      ? `Current password for ${prompt.name}`
      : `Password for ${prompt.name}`;
    this.#warnIfClear(conn); // before it is typed
    let secret = await this.#screen.askSecret!(label);
    if (prompt.kind === "new" && secret) {
      // Typed unseen, so typed twice: a mistake would lock the person out of the name.
      const again = await this.#screen.askSecret!(`${label} again`);
      if (again !== secret) {
        this.#note("The two passwords differ: nothing changed", "error");
        secret = ""; // cancels
      }
    }
    if (this.#current !== conn) return;
    this.#writing = this.#writing.then(() => send(conn, secret ?? "")).catch(() => {});
  }

  /** A line from the server once in the room. */
  #receive(line: string, parsed: ServerLine | undefined): void {
    if (parsed?.kind === "system" || parsed?.kind === "error" || parsed?.kind === "rename") {
      const prompt = parsed.kind === "system" ? parsePrompt(line) : undefined;
      const conn = this.#conn;
      if (prompt && conn && this.#screen.askSecret) this.#answerInRoom(conn, prompt);
      else if (this.#isHeld) {
        // The server answered the command: what waits may go.
        this.#isHeld = false;
        queueMicrotask(() => this.#pump());
      }
    }
    if (parsed?.kind === "limits") {
      this.#limits = { ...DEFAULT_LIMITS, ...parsed.limits };
      const { floodBurst, floodRate } = this.#limits;
      this.#pacer.setLimits({ burst: floodBurst, rate: parsed.limits.floodRate ? floodRate : 0 });
    }
    // The server's warning that it delays our lines (its wording, from server.ts).
    if (parsed?.kind === "error" && parsed.text.startsWith("Slow down")) this.#pacer.backOff();
    if (parsed?.kind === "rename" && nameKey(parsed.oldName) === nameKey(this.#name)) {
      this.#name = parsed.newName;
      this.#screen.setName(parsed.newName);
    }
    const key = parsed && historyKey(parsed);
    if (key) this.#remember(key);
    this.#screen.show(line, parsed);
  }

  /** Shows what the join reply held back: the history not seen yet, and a separator. */
  showHistory(lines: { line: string; parsed: ServerLine; key: string }[], isRejoin: boolean): void {
    const news = isRejoin ? lines.slice(firstNewLine(this.#seen, lines.map((l) => l.key))) : lines;
    for (const { line, parsed, key } of news) {
      this.#remember(key);
      this.#screen.show(line, parsed);
    }
    if (isRejoin) {
      this.#note(
        news.length > 0 ? "reconnected: missed lines above" : "reconnected",
        news.length > 0 ? "separator" : "info",
      );
    } else if (news.length > 0) this.#note("history above, live below", "separator");
  }

  #note(text: string, kind: NoteKind): void {
    this.#screen.note(text, kind);
  }

  #remember(key: string): void {
    this.#seen.push(key);
    if (this.#seen.length > SEEN_LINES * 2) this.#seen.splice(0, SEEN_LINES);
  }

  /** Reads the user's lines into the outbox; at the end of input, leaves once the outbox is sent. */
  async #readInput(): Promise<void> {
    try {
      for await (const line of this.#screen.input()) {
        if (this.#isLeaving) break;
        this.#queue(line);
      }
    } catch (error) {
      // The session ends with this reason, whatever the connection is doing.
      this.#inputFailure = `Cannot read your input: ${messageOf(error)}`;
      this.#wakeReconnect?.();
      if (this.#current) closeQuietly(this.#current);
      return;
    }
    this.#isInputOver = true;
    this.#pump();
    if (!this.#current) {
      // The user left while we wait to reconnect: stop waiting.
      this.#isLeaving = true;
      this.#wakeReconnect?.();
    }
  }

  /** A line typed or piped: refused when over the server's limit, else sent in its turn. */
  #queue(line: string): void {
    if (this.#isTooLong(line) || line.trim() === "") return;
    this.#outbox.push(line);
    this.#pump();
  }

  /**
   * Whether a line is over the server's limit, which it is then told. Checked when the line is
   * typed and again when it is sent: a line piped before the server said its limits is checked
   * against the defaults first.
   */
  #isTooLong(line: string): boolean {
    const bytes = utf8Length(line);
    if (bytes <= this.#limits.maxLineBytes) return false;
    this.#note(
      `Not sent: that line is ${bytes} bytes and the server takes at most ${this.#limits.maxLineBytes}`,
      "error",
    );
    return true;
  }

  /** Sends what the pacer allows now, and comes back when the next token is due. */
  #pump(): void {
    clearTimeout(this.#pacerTimer);
    const conn = this.#conn;
    while (conn && !this.#isLeaving && !this.#isHeld && this.#outbox.length > 0) {
      const wait = this.#pacer.take();
      if (wait > 0) {
        this.#pacerTimer = setTimeout(() => this.#pump(), wait);
        break;
      }
      const line = this.#outbox.shift()!;
      if (this.#isTooLong(line)) continue;
      this.#write(conn, line);
      this.#said(line);
      // A command that may ask for a password holds what follows until the server answers it.
      if (this.#screen.askSecret && mayPrompt(line)) this.#isHeld = true;
      if (isQuit(line)) {
        this.#isLeaving = true; // the server says goodbye and closes
        this.#outbox = []; // what was typed after /quit is not sent
      }
    }
    this.#showWaiting();
    if (conn && this.#isInputOver && this.#outbox.length === 0 && !this.#isLeaving) {
      this.#isLeaving = true;
      // The server sees us leave, sends what is left, then closes; receive() then ends.
      this.#writing = this.#writing.then(() => conn.closeWrite()).catch(() => {});
    }
  }

  /** Lines go out in order, each whole: a write may take only part of one. */
  #write(conn: Deno.TcpConn | Deno.TlsConn, line: string): void {
    this.#writing = this.#writing.then(() => send(conn, line)).catch(() => {
      // The connection is gone: the read loop reports how.
    });
  }

  /** A line handed to the socket: shown as said, and kept to match the history after a loss. */
  #said(line: string): void {
    this.#screen.said(line);
    const command = commandOf(line);
    if (command?.name === "say") this.#remember(`[${this.#name}] ${command.text}`);
    if (command?.name === "me") this.#remember(`* [${this.#name}] ${command.text}`);
  }
}

/**
 * The server's reply to our name: the greeting, then the room list, the history, the limits and
 * the welcome. The history is held back until it is complete, so that after a reconnection only
 * what we did not see is shown.
 */
class JoinReply {
  #session: Session;
  #isRejoin: boolean;
  #conn: Deno.TcpConn | Deno.TlsConn;
  /** Our name went out (after the greeting, or the private server's password). */
  isNameSent = false;
  /** The server said it is private. */
  isPrivate = false;
  #history: { line: string; parsed: ServerLine; key: string }[] = [];
  /** The room list came: we are in. */
  hasRoom = false;
  /** The history came too, and was shown. */
  isDone = false;
  /** The server's reason for refusing us, if it did. */
  rejection: string | undefined;

  constructor(session: Session, isRejoin: boolean, conn: Deno.TcpConn | Deno.TlsConn) {
    this.#session = session;
    this.#isRejoin = isRejoin;
    this.#conn = conn;
  }

  /** Whether a line of the reply is held back (the greeting, a prompt, a refusal, the history). */
  holds(line: string, parsed: ServerLine | undefined): boolean {
    if (!this.hasRoom) {
      if (line === PRIVATE_GREETING) this.isPrivate = true;
      if (parsed?.kind === "error") this.rejection = parsed.text;
      else if (parsed?.kind !== "room") this.#session.answer(this.#conn, line, this);
      if (parsed?.kind !== "room") return true;
      this.hasRoom = true;
      return false;
    }
    if (parsed?.kind === "room") return false;
    const key = parsed?.kind === "history" ? historyKey(parsed.line) : undefined;
    if (parsed?.kind === "history" && key) {
      this.#history.push({ line, parsed, key });
      return true;
    }
    this.isDone = true;
    this.#session.showHistory(this.#history, this.#isRejoin);
    return false;
  }
}

/** Sends one line, all of it: a write may take only part of the buffer. */
async function send(conn: Deno.Conn, line: string): Promise<void> {
  const bytes = encodeLine(line);
  for (let offset = 0; offset < bytes.length;) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed (the server's EOF closes the socket): nothing left to release.
  }
}

/** Whether a line sent may make the server ask for a password on the next one. */
function mayPrompt(line: string): boolean {
  const command = commandOf(line);
  return command?.name === "nick" || command?.name === "password" ||
    command?.name === "unregister" || (command?.name === "register" && !command.password);
}

/** Whether a host is this machine, where nothing crosses a network. */
function isLoopback(hostname: string): boolean {
  return /^(127\.|::1$|::ffff:127\.)/.test(hostname) || hostname === "localhost";
}

function isQuit(line: string): boolean {
  return commandOf(line)?.name === "quit";
}

/** The command a typed line is, read as the server reads it (cleaned first). */
function commandOf(line: string) {
  return parseCommandQuietly(cleanText(line));
}

/** The value of an environment variable we may read, or `undefined` (no permission asked for). */
function readEnv(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return;
  return Deno.env.get(name);
}

/**
 * The screen for where stdout goes: the server's lines exactly for a pipe or a file; formatted
 * lines without escapes for TERM=dumb; the live terminal when both ends are a terminal.
 */
function openScreen(): Screen {
  if (!Deno.stdout.isTerminal()) return new PlainScreen();
  const width = () => terminalSize().columns;
  if (readEnv("TERM") === "dumb") return new LineScreen({ color: false, width });
  if (!Deno.stdin.isTerminal()) return new LineScreen({ color: !Deno.noColor, width });
  // deno task and npm run set INIT_CWD for the commands they run.
  return new TerminalScreen({
    color: !Deno.noColor,
    canSuspend: readEnv("INIT_CWD") === undefined,
  });
}

/** Output for scripts: the server's lines exactly, nothing else on stdout; notes on stderr. */
class PlainScreen implements Screen {
  show(line: string): void {
    console.log(line);
  }
  note(text: string, kind: NoteKind): void {
    if (kind === "error") console.error(`error: ${text}`);
  }
  setWaiting(): void {}
  said(): void {}
  setName(): void {}
  input(): AsyncIterable<string> {
    return stdinLines();
  }
  close(): void {}
}

if (import.meta.main) {
  // No top-level await here: main.ts imports this module, which must finish loading first.
  import("./main.ts").then(({ main }) => main(["client", ...Deno.args])).then(Deno.exit);
}

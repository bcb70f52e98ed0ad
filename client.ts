/**
 * Terminal chat client: sends your name, then your lines, while printing what the room says.
 *
 * Run it with `deno run -N client.ts NAME [--host HOST] [--port PORT]`; end with Ctrl+D or `/quit`.
 * At a terminal it reconnects when the server is lost or restarts. The session here reads the
 * server's lines and answers the join reply (client/join_reply.ts); what the user types waits in
 * the outbox (client/outbox.ts), which sends within the flood limits the server states and refuses
 * a line over its line limit. The screens are in client/terminal.ts (client/screen.ts picks one):
 * when stdout is not a terminal it prints the server's lines exactly, so it can be scripted.
 */
import {
  backoffDelay,
  cleanText,
  DEFAULT_PORT,
  formatResume,
  LineSplitter,
  LineTooLongError,
  MAX_LINE_OVERHEAD_BYTES,
  MAX_MAX_LINE_BYTES,
  messageOf,
  nameKey,
  parseName,
  parsePrompt,
  parseResumeToken,
  parseServerLine,
  parseTakeOver,
  parseWrongSecret,
  type Prompt,
  ProtocolError,
  RESUMED_ELSEWHERE,
  type ServerLine,
  SHUTDOWN_NOTICE,
} from "./protocol.ts";
import type { NoteKind, Screen } from "./client/terminal.ts";
import { openScreen, PlainScreen } from "./client/screen.ts";
import { LastPrivate } from "./client/reply.ts";
import { Ignored } from "./client/ignore.ts";
import { LoggedScreen } from "./client/log.ts";
import { type ClientConn, Outbox, send } from "./client/outbox.ts";
import { type HeldLine, JoinReply, refusalOf, removalOf, SeenLines } from "./client/join_reply.ts";

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
  /** Ring the terminal's bell on a mention (default true; never when stdout is not a terminal). */
  bell?: boolean;
  /** A file to append every line shown to (closed when the session ends). */
  log?: Deno.FsFile;
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
  const conn = await connect(target).catch((error) => {
    options.log?.close();
    throw error;
  });
  const shown = openScreen({ bell: options.bell ?? true });
  const screen = options.log ? new LoggedScreen(shown, options.log) : shown;
  const session = new Session(screen, {
    name,
    target,
    joinTimeoutMs: options.joinTimeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS,
    reconnectTries: options.reconnectTries ??
      (shown instanceof PlainScreen ? 0 : DEFAULT_RECONNECT_TRIES),
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

async function connect({ hostname, port, tls }: Target): Promise<ClientConn> {
  const where = `${hostname}:${port}`;
  let conn: ClientConn;
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

/** How one connection ended. */
type Ending =
  | { kind: "left" }
  | { kind: "retry"; message: string }
  | { kind: "fatal"; message: string }
  | { kind: "lost"; message: string; hasJoined: boolean };

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
  /** The lines typed and not sent yet, and their pacing. */
  #outbox: Outbox;
  /** The connection being served, and the one lines go to once joined. */
  #current: ClientConn | undefined;
  #conn: ClientConn | undefined;
  #inputFailure: string | undefined;
  #isStopped = false;
  /** The room's lines we saw (as the server's history has them), to show only news after a loss. */
  #seen: SeenLines;
  /** Who `/r` answers. */
  #lastPrivate = new LastPrivate();
  /** Whose lines are hidden (`/ignore`). */
  #ignored = new Ignored();
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
   * The server's resume token for our place, asked for when reconnecting is on: a loss or a
   * server-side drop is then no leave and rejoin for the room, if we are back within its grace.
   */
  #token: string | undefined;

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
    this.#seen = new SeenLines(options.name);
    this.#outbox = new Outbox(screen, this.#seen);
    screen.setName(options.name);
  }

  /** Chats until the user leaves; throws a ClientError for any other ending. */
  async run(first: ClientConn): Promise<void> {
    this.#readInput(); // ends with the process: a pending read of stdin cannot be cancelled
    let conn: ClientConn | undefined = first;
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
    this.#wakeReconnect?.();
    this.#outbox.stop();
  }

  /**
   * Waits and connects again, with backoff, until it works or the attempts run out. Answers the
   * new connection and the failures so far; `undefined` when the user left meanwhile.
   */
  async #reconnect(
    why: string,
    failures: number,
  ): Promise<[ClientConn | undefined, number]> {
    this.#screen.note(`${why}: reconnecting`, "error");
    let reason = why;
    while (failures < this.#reconnectTries) {
      // Spread out, so that a restarted server is not hit by every client at once.
      const delay = backoffDelay(failures, RECONNECT_BACKOFF);
      failures++;
      this.#outbox.setStatus(
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
      if (this.#outbox.isLeaving || this.#isStopped) return [undefined, failures];
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

  /** Joins over `conn` and chats until it ends; answers how it ended. */
  async #serve(conn: ClientConn): Promise<Ending> {
    let noReply = false;
    const timer = this.#joinTimer = setTimeout(() => {
      noReply = true;
      closeQuietly(conn);
    }, this.#joinTimeoutMs);
    const join = new JoinReply(this.#hasEverJoined);
    let lastLine = "";
    let lastParsed: ServerLine | undefined;
    let failure: string | undefined;
    let takenOver: string | undefined;
    this.#current = conn;
    this.#outbox.connecting();
    try {
      // A script's name goes at once, as Budget Chat clients do; a person at a terminal, or anyone
      // with a private server's password, waits for the server's first line, which may ask for it.
      if (!this.#screen.askSecret && this.#secrets.server === undefined) {
        join.isNameSent = true;
        await send(conn, this.#firstLine());
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
          const parsed = lastParsed = parseServerLine(lastLine);
          if (!join.isDone) {
            const step = join.read(lastLine, parsed);
            if (step.kind === "answer") this.#answer(conn, lastLine, join);
            if (step.kind === "answer" || step.kind === "hold") continue;
            if (step.kind === "done") this.#showHistory(step.history, join.isRejoin);
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
      this.#outbox.close();
      closeQuietly(conn);
    }
    const removal = removalOf(lastLine, lastParsed);
    return this.#ending({ join, lastLine, noReply, failure, takenOver, removal });
  }

  #ending(
    options: {
      join: JoinReply;
      lastLine: string;
      noReply: boolean;
      failure: string | undefined;
      takenOver: string | undefined;
      /** Why an operator put us out (kicked, banned), if the last line said so. */
      removal: string | undefined;
    },
  ): Ending {
    const { join, lastLine, noReply, failure, takenOver, removal } = options;
    if (this.#inputFailure) return { kind: "fatal", message: this.#inputFailure };
    if (this.#failure) return { kind: "fatal", message: this.#failure };
    // Coming back by ourselves would defy the operator (and a ban would only refuse it again).
    // When we left ourselves, the line was no farewell: a ban refuses a /nick that way too.
    if (removal !== undefined && !this.#outbox.isLeaving) {
      return { kind: "fatal", message: removal };
    }
    if (lastLine === RESUMED_ELSEWHERE) {
      return { kind: "fatal", message: "Your place was resumed on another connection" };
    }
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
    if (this.#outbox.isLeaving) return { kind: "left" };
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
  #joined(conn: ClientConn): void {
    if (this.#current !== conn) return; // it ended meanwhile
    this.#conn = conn;
    this.#outbox.open(conn);
  }

  /**
   * Answers what the server says before the room list: its password if it is private, then our
   * name, then the name's password if it is registered. Nothing is sent before the server speaks,
   * so that no password can be taken for a name, or a name for a password.
   */
  async #answer(conn: ClientConn, line: string, join: JoinReply): Promise<void> {
    try {
      const prompt = parsePrompt(line);
      if (prompt?.kind === "server" || prompt?.kind === "login") {
        return await send(conn, await this.#secret(conn, prompt));
      }
      if (join.isNameSent) return;
      join.isNameSent = true;
      await send(conn, this.#firstLine());
    } catch (error) {
      if (error instanceof ClientError) this.#failure = error.message;
      closeQuietly(conn); // the read loop ends, and the session with it
    }
  }

  /**
   * The password a prompt asks for: given (or typed before, when reconnecting), else typed now
   * without echo at a terminal; elsewhere a ClientError says how to give it.
   */
  async #secret(conn: ClientConn, prompt: Prompt): Promise<string> {
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
  #warnIfClear(conn: ClientConn): void {
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
  async #answerInRoom(conn: ClientConn, prompt: Prompt): Promise<void> {
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
    this.#outbox.sendNow(conn, secret ?? "");
  }

  /**
   * Our name, or, when we reconnect by ourselves, `/resume NAME [TOKEN]`: with the token we had,
   * back to our place unseen; without (or once it is no good), joined as NAME, given a token.
   */
  #firstLine(): string {
    return this.#reconnectTries > 0 ? formatResume(this.#name, this.#token) : this.#name;
  }

  /** A line from the server once in the room. */
  #receive(line: string, parsed: ServerLine | undefined): void {
    const token = parseResumeToken(line);
    if (token !== undefined) {
      // Kept, never shown: whoever reads it could take our place while we are away.
      this.#token = token;
      this.#outbox.quitsAtEnd = true;
      return;
    }
    if (
      parsed?.kind === "system" || refusalOf(line, parsed) !== undefined ||
      parsed?.kind === "rename"
    ) {
      const prompt = parsed?.kind === "system" ? parsePrompt(line) : undefined;
      const conn = this.#conn;
      if (prompt && conn && this.#screen.askSecret) this.#answerInRoom(conn, prompt);
      else if (this.#outbox.isHeld) this.#outbox.release(); // the server answered the command
    }
    if (parsed?.kind === "limits") this.#outbox.setLimits(parsed.limits);
    // The server's warning that it delays our lines (its wording, from server/flood.ts).
    if (parsed?.kind === "error" && parsed.text.startsWith("Slow down")) this.#outbox.backOff();
    if (parsed?.kind === "rename" && nameKey(parsed.oldName) === nameKey(this.#name)) {
      this.#name = this.#seen.name = parsed.newName;
      this.#screen.setName(parsed.newName);
    }
    this.#seen.saw(parsed);
    this.#lastPrivate.hear(parsed);
    this.#ignored.hear(parsed);
    if (!this.#ignored.hides(parsed)) this.#screen.show(line, parsed);
  }

  /** Shows what the join reply held back: the history not seen yet, and a separator. */
  #showHistory(history: HeldLine[], isRejoin: boolean): void {
    const news = this.#seen.news(history, { isRejoin });
    for (const { line, parsed } of news) {
      if (!this.#ignored.hides(parsed)) this.#screen.show(line, parsed);
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

  /** Reads the user's lines into the outbox; at the end of input, leaves once the outbox is sent. */
  async #readInput(): Promise<void> {
    try {
      for await (const line of this.#screen.input()) {
        if (this.#outbox.isLeaving) break;
        const answer = this.#ignored.command(line, this.#name);
        if (answer) {
          this.#note(
            "error" in answer ? answer.error : answer.info,
            "error" in answer ? "error" : "info",
          );
          continue;
        }
        const reply = this.#lastPrivate.rewrite(line);
        if ("error" in reply) this.#note(reply.error, "error");
        else this.#outbox.queue(reply.line);
      }
    } catch (error) {
      // The session ends with this reason, whatever the connection is doing.
      this.#inputFailure = `Cannot read your input: ${messageOf(error)}`;
      this.#wakeReconnect?.();
      if (this.#current) closeQuietly(this.#current);
      return;
    }
    this.#outbox.endInput();
    if (!this.#current) {
      // The user left while we wait to reconnect: stop waiting.
      this.#outbox.isLeaving = true;
      this.#wakeReconnect?.();
    }
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed (the server's EOF closes the socket): nothing left to release.
  }
}

/** Whether a host is this machine, where nothing crosses a network. */
function isLoopback(hostname: string): boolean {
  return /^(127\.|::1$|::ffff:127\.)/.test(hostname) || hostname === "localhost";
}

if (import.meta.main) {
  // No top-level await here: main.ts imports this module, which must finish loading first.
  import("./main.ts").then(({ main }) => main(["client", ...Deno.args])).then(Deno.exit);
}

/**
 * Terminal chat client: sends your name, then your lines, while printing what the room says.
 *
 * Run it with `deno run -N client.ts NAME [--host HOST] [--port PORT]`; end with Ctrl+D or `/quit`.
 * At a terminal it keeps the line you are typing intact while messages arrive, with line editing
 * and history (`node:readline`), time stamps and a color per name. When stdout is not a terminal it
 * prints the server's lines exactly, one per line, so it can be scripted.
 */
import * as readline from "node:readline";
import process from "node:process";
import { styleText } from "node:util";
import {
  cleanText,
  DEFAULT_PORT,
  encodeLine,
  formatLimits,
  LineSplitter,
  LineTooLongError,
  nameKey,
  parseCommand,
  parseName,
  parseServerLine,
  ProtocolError,
  type ServerLine,
  SHUTDOWN_NOTICE,
} from "./protocol.ts";

/** Where the client connects when no host is given. */
export const DEFAULT_CLIENT_HOST = "127.0.0.1";
/** Longest line accepted from the server: its own lines are far shorter, a hostile one is cut off. */
const MAX_SERVER_LINE_BYTES = 64 * 1024;
/** How long the server may take to answer our name before we give up on it. */
const JOIN_TIMEOUT_MS = 15_000;
/** Lines of your own input that the up arrow brings back. */
const INPUT_HISTORY_SIZE = 500;

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
}

/**
 * Joins the room and chats on stdin and stdout until the user leaves (end of input or `/quit`).
 * Throws a {@linkcode ClientError} when the server cannot be reached, rejects the name or goes away.
 */
export async function runClient(options: ClientOptions): Promise<void> {
  const name = checkName(options.name);
  const hostname = options.hostname ?? DEFAULT_CLIENT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  using conn = await connect({ hostname, port, ...(options.tls ? { tls: options.tls } : {}) });
  const screen = openScreen();
  try {
    await new Session(conn, name, screen).run();
  } finally {
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

async function connect(
  options: { hostname: string; port: number; tls?: { caCerts: string[] } },
): Promise<Deno.TcpConn | Deno.TlsConn> {
  const { hostname, port, tls } = options;
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
    throw new ClientError(`TLS handshake with ${where} failed: ${messageOf(error)}`);
  }
}

/** One chat session: the server's lines go to the screen, the user's lines to the server. */
class Session {
  #conn: Deno.TcpConn | Deno.TlsConn;
  #name: string;
  #screen: Screen;
  #joined = Promise.withResolvers<boolean>();
  #isJoined = false;
  #isLeaving = false;
  #isOver = false;
  /** What ended the session, when it was not the user leaving. */
  #failure: ClientError | undefined;

  constructor(conn: Deno.TcpConn | Deno.TlsConn, name: string, screen: Screen) {
    this.#conn = conn;
    this.#name = name;
    this.#screen = screen;
    screen.setName(name);
  }

  /** Joins, then chats until the user leaves; throws a ClientError for any other ending. */
  async run(): Promise<void> {
    const noReply = setTimeout(
      () =>
        this.#fail(
          `No reply from the server within ${JOIN_TIMEOUT_MS / 1000} s: is it a chat server?`,
        ),
      JOIN_TIMEOUT_MS,
    );
    const sending = this.#sendInput();
    try {
      await this.#send(this.#name);
      await this.#receive();
    } catch (error) {
      this.#fail(`Connection to the server lost: ${messageOf(error)}`);
    } finally {
      clearTimeout(noReply);
      this.#isOver = true;
      this.#joined.resolve(false);
      this.#screen.stopInput();
      await sending;
    }
    if (this.#failure) throw this.#failure;
  }

  /** Ends the session with `message`, unless it already ended; closing the socket ends receive(). */
  #fail(message: string): void {
    if (this.#isOver || this.#isLeaving) return;
    this.#failure ??= new ClientError(message);
    try {
      this.#conn.close();
    } catch {
      // Already closed: the session is ending anyway.
    }
  }

  /** Sends one line, all of it: a write may take only part of the buffer. */
  async #send(line: string): Promise<void> {
    const bytes = encodeLine(line);
    for (let offset = 0; offset < bytes.length;) {
      offset += await this.#conn.write(bytes.subarray(offset));
    }
  }

  /** Shows the room's lines until the server closes; sets the failure unless the user left. */
  async #receive(): Promise<void> {
    let rejection: string | undefined;
    let lastLine = "";
    const lines = this.#conn.readable.pipeThrough(
      new LineSplitter({ maxLineBytes: MAX_SERVER_LINE_BYTES }),
    );
    for await (const batch of lines) {
      for (const line of batch) {
        if (line instanceof LineTooLongError) continue;
        lastLine = cleanText(line); // a hostile server must not reach the terminal either
        const parsed = parseServerLine(lastLine);
        if (!this.#isJoined) {
          if (parsed?.kind === "error") rejection = parsed.text;
          if (parsed?.kind !== "room") continue;
          this.#isJoined = true;
          this.#joined.resolve(true);
        }
        if (parsed?.kind === "rename" && nameKey(parsed.oldName) === nameKey(this.#name)) {
          this.#name = parsed.newName;
          this.#screen.setName(parsed.newName);
        }
        this.#screen.show(lastLine, parsed);
      }
    }
    if (!this.#isJoined) {
      this.#fail(rejection ?? "The server closed the connection before we joined");
    } else {this.#fail(
        lastLine === SHUTDOWN_NOTICE ? "The server shut down" : "The server closed the connection",
      );}
  }

  /** Sends each input line once joined; at the end of input or `/quit`, leaves the room. */
  async #sendInput(): Promise<void> {
    if (!await this.#joined.promise) return;
    try {
      for await (const line of this.#screen.input()) {
        if (this.#isOver) return;
        if (line === undefined) {
          this.#screen.showError("Line too long: it was not sent");
        } else if (line.trim() !== "") {
          if (!await this.#sendTyped(line)) return;
        }
      }
    } catch (error) {
      return this.#fail(`Cannot read your input: ${messageOf(error)}`);
    }
    if (this.#isOver) return;
    this.#isLeaving = true;
    // The server sees us leave, sends what is left, then closes; if the connection is already
    // gone, receive() has ended or is ending.
    await this.#conn.closeWrite().catch(() => {});
  }

  /** Sends one typed line; false once the user has quit or the connection is gone. */
  async #sendTyped(line: string): Promise<boolean> {
    try {
      await this.#send(line);
    } catch {
      return false; // the connection ended: receive() reports how
    }
    if (isQuit(line)) {
      this.#isLeaving = true; // the server says goodbye and closes
      return false;
    }
    this.#screen.echo(line, this.#name);
    return true;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function isQuit(line: string): boolean {
  return parseCommandQuietly(line)?.name === "quit";
}

/** The command a typed line is, or `undefined` when it is malformed (the server will say why). */
function parseCommandQuietly(line: string) {
  try {
    return parseCommand(cleanText(line));
  } catch {
    return undefined;
  }
}

/** Where the session's lines appear and where the user's lines come from. */
interface Screen {
  /** Shows a line from the server (parsed when it follows a known form). */
  show(line: string, parsed: ServerLine | undefined): void;
  /** Shows what the user just sent, as the others will see it. */
  echo(line: string, name: string): void;
  /** Shows a problem with the user's own input. */
  showError(message: string): void;
  /** Tells the screen the user's current name. */
  setName(name: string): void;
  /** The user's lines; `undefined` for a line that was too long. */
  input(): AsyncIterable<string | undefined>;
  /** Stops reading input. */
  stopInput(): void;
  /** Restores the terminal. */
  close(): void;
}

function openScreen(): Screen {
  const isTerminal = Deno.stdout.isTerminal();
  if (!isTerminal) return new PlainScreen();
  return new TerminalScreen({ color: !Deno.noColor, isInteractive: Deno.stdin.isTerminal() });
}

/** Reads stdin as lines, the last one kept even without a line end. */
async function* stdinLines(signal: AbortSignal): AsyncIterable<string | undefined> {
  const lines = Deno.stdin.readable.pipeThrough(new LineSplitter({ keepPartialLine: true }));
  const reader = lines.getReader();
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      for (const line of value) yield line instanceof LineTooLongError ? undefined : line;
    }
  } finally {
    reader.releaseLock();
  }
}

/** Output for scripts: the server's lines exactly, nothing else on stdout. */
class PlainScreen implements Screen {
  #stop = new AbortController();
  show(line: string): void {
    console.log(line);
  }
  echo(): void {}
  showError(message: string): void {
    console.error(`error: ${message}`);
  }
  setName(): void {}
  input(): AsyncIterable<string | undefined> {
    return stdinLines(this.#stop.signal);
  }
  stopInput(): void {
    this.#stop.abort();
  }
  close(): void {}
}

type Style = Parameters<typeof styleText>[0];
const NAME_COLORS: Style[] = [
  "red",
  "green",
  "yellow",
  "blue",
  "magenta",
  "cyan",
  "redBright",
  "greenBright",
  "yellowBright",
  "blueBright",
  "magentaBright",
  "cyanBright",
];

/** The color of a name: a hash of it, so every client shows the same name in the same color. */
export function nameColor(name: string): Style {
  let hash = 0x811c9dc5; // FNV-1a, 32 bits
  for (const char of nameKey(name)) hash = Math.imul(hash ^ char.charCodeAt(0), 0x01000193);
  return NAME_COLORS[(hash >>> 0) % NAME_COLORS.length]!;
}

/**
 * Output for people: a local time stamp, a gutter mark that tells the kinds of line apart without
 * color (`>` yours, `*` an action, `~` private, `-` the server, `!` an error, `|` history), and a
 * color per name. With an interactive stdin the input line is a `node:readline` prompt that stays
 * intact while lines arrive above it.
 */
class TerminalScreen implements Screen {
  #color: boolean;
  #readline: readline.Interface | undefined;
  #stop = new AbortController();
  #name = "";

  constructor(options: { color: boolean; isInteractive: boolean }) {
    this.#color = options.color;
    if (options.isInteractive) {
      this.#readline = readline.createInterface({
        input: process.stdin,
        output: process.stdout,
        historySize: INPUT_HISTORY_SIZE,
        removeHistoryDuplicates: true,
        prompt: "> ",
      });
      this.#readline.on("SIGINT", () => this.#readline?.close()); // Ctrl+C leaves like Ctrl+D
    }
  }

  show(line: string, parsed: ServerLine | undefined): void {
    if (parsed?.kind === "limits") return; // for pacing, not for people
    this.#print(this.#render(parsed ?? { kind: "system", text: line }, new Date()));
  }

  echo(line: string, name: string): void {
    if (this.#readline) {
      // Replace the prompt line that readline left behind with the line as the room sees it.
      readline.moveCursor(process.stdout, 0, -1);
      readline.clearLine(process.stdout, 0);
    }
    const command = parseCommandQuietly(line);
    const now = new Date();
    if (command?.name === "say") {
      this.#print(this.#format(now, ">", `[${this.#nameText(name, true)}] ${command.text}`));
    }
    if (command?.name === "me") {
      this.#print(this.#format(now, "*", `${this.#nameText(name, true)} ${command.text}`));
    }
  }

  showError(message: string): void {
    this.#print(this.#format(new Date(), "!", this.#style("red", message)));
  }

  setName(name: string): void {
    this.#name = name;
  }

  input(): AsyncIterable<string | undefined> {
    if (!this.#readline) return stdinLines(this.#stop.signal);
    this.#readline.prompt();
    return this.#readline;
  }

  stopInput(): void {
    this.#stop.abort();
    this.#readline?.close();
  }

  close(): void {
    this.#readline?.close();
  }

  #render(line: ServerLine, time: Date, isHistory = false): string {
    const format = (mark: string, body: string) => this.#format(time, isHistory ? "|" : mark, body);
    switch (line.kind) {
      case "user":
        return format(" ", `[${this.#nameText(line.name)}] ${line.text}`);
      case "action":
        return format("*", `${this.#nameText(line.name)} ${line.text}`);
      case "private": {
        const [from, to] = line.direction === "from" ? [line.name, "you"] : ["you", line.name];
        return format("~", this.#style("magenta", `[${from} -> ${to}] ${line.text}`));
      }
      case "history":
        return this.#style("dim", this.#render(line.line, line.time, true));
      case "error":
        return format("!", this.#style("red", line.text));
      case "rename":
        return format("-", this.#style("gray", `${line.oldName} is now known as ${line.newName}`));
      case "room": {
        const names = line.names.map((name) => this.#nameText(name)).join(", ");
        const text = line.isContinued
          ? `Also in the room: ${names}`
          : names
          ? `In the room: ${names}`
          : "Nobody else is here yet";
        return format("-", this.#style("gray", text));
      }
      case "limits":
        return format("-", this.#style("gray", formatLimits(line.limits).slice(2)));
      case "system":
        return format("-", this.#style("gray", line.text));
    }
  }

  #format(time: Date, mark: string, body: string): string {
    const clock = `${String(time.getHours()).padStart(2, "0")}:${
      String(time.getMinutes()).padStart(2, "0")
    }`;
    return `${this.#style("gray", clock)} ${mark} ${body}`;
  }

  /** A name in its color, in bold when it is the user's own. */
  #nameText(name: string, isOwn = nameKey(name) === nameKey(this.#name)): string {
    const colored = this.#style(nameColor(name), name);
    return isOwn ? this.#style("bold", colored) : colored;
  }

  #style(style: Style, text: string): string {
    return this.#color ? styleText(style, text, { validateStream: false }) : text;
  }

  #print(text: string): void {
    if (!this.#readline) return void console.log(text);
    // Clear the prompt line, print above it, then redraw the prompt with what was being typed.
    readline.cursorTo(process.stdout, 0);
    readline.clearLine(process.stdout, 0);
    process.stdout.write(`${text}\n`);
    this.#readline.prompt(true);
  }
}

if (import.meta.main) {
  // No top-level await here: main.ts imports this module, which must finish loading first.
  import("./main.ts").then(({ main }) => main(["client", ...Deno.args])).then(Deno.exit);
}

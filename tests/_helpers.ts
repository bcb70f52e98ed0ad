/** Test helpers: a raw line client over a real socket, deadlines, and subprocess plumbing. */
import { type ChatServer, type ServerOptions, startServer } from "../server.ts";

/** How long a test waits for an expected event before it fails. */
export const DEADLINE_MS = 10_000;

/** Starts a server on a free loopback port. */
export function startTestServer(options: ServerOptions = {}): ChatServer {
  return startServer({ hostname: "127.0.0.1", port: 0, ...options });
}

/** Waits for `promise`, failing with `what` if it takes longer than `ms`. */
export async function withDeadline<T>(
  promise: Promise<T>,
  what: string,
  ms = DEADLINE_MS,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const encoder = new TextEncoder();

/**
 * A client that speaks raw bytes, as `nc` does. Its line reader is written here rather than taken
 * from protocol.ts, so that a bug in the server's splitter cannot hide itself in the tests.
 */
export class TestClient implements AsyncDisposable {
  readonly conn: Deno.TcpConn;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #decoder = new TextDecoder();
  #buffered = "";
  #isEof = false;

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
    this.#reader = conn.readable.getReader();
  }

  /** Connects to a port on 127.0.0.1 (or `hostname`). */
  static async connect(port: number, hostname = "127.0.0.1"): Promise<TestClient> {
    return new TestClient(await Deno.connect({ hostname, port }));
  }

  /** Writes text or bytes exactly as given. */
  async write(data: string | Uint8Array): Promise<void> {
    const bytes = typeof data === "string" ? encoder.encode(data) : data;
    for (let offset = 0; offset < bytes.length;) {
      offset += await this.conn.write(bytes.subarray(offset));
    }
  }

  /** Writes one line with its LF. */
  send(line: string): Promise<void> {
    return this.write(`${line}\n`);
  }

  /** The next line without its line end; fails at EOF or after the deadline. */
  async readLine(ms = DEADLINE_MS): Promise<string> {
    const line = await this.#nextLine(ms);
    if (line === undefined) throw new Error("Connection closed while a line was expected");
    return line;
  }

  /** Reads the next line and checks it. */
  async expect(expected: string | RegExp, ms = DEADLINE_MS): Promise<string> {
    const line = await this.readLine(ms);
    if (typeof expected === "string" ? line !== expected : !expected.test(line)) {
      throw new Error(
        `Expected ${expected instanceof RegExp ? expected : JSON.stringify(expected)}, got ${
          JSON.stringify(line)
        }`,
      );
    }
    return line;
  }

  /** Every line until the server closes the connection. */
  async readToEnd(ms = DEADLINE_MS): Promise<string[]> {
    const lines: string[] = [];
    for (let line = await this.#nextLine(ms); line !== undefined; line = await this.#nextLine(ms)) {
      lines.push(line);
    }
    return lines;
  }

  async #nextLine(ms: number): Promise<string | undefined> {
    while (true) {
      const lf = this.#buffered.indexOf("\n");
      if (lf !== -1) {
        const line = this.#buffered.slice(0, lf);
        this.#buffered = this.#buffered.slice(lf + 1);
        return line.endsWith("\r") ? line.slice(0, -1) : line;
      }
      if (this.#isEof) return undefined;
      const { value, done } = await withDeadline(this.#reader.read(), "a line from the server", ms);
      if (done) this.#isEof = true;
      else this.#buffered += this.#decoder.decode(value, { stream: true });
    }
  }

  /** Closes the socket (idempotent). */
  close(): void {
    try {
      this.conn.close();
    } catch {
      // Already closed by the server's EOF: nothing left to release.
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/**
 * Connects, reads the greeting, sends `name`, and reads the join reply: the room list (one line or
 * more), the history, the limits and the welcome, checking each. The history is returned beside
 * the client.
 */
export async function joinWithHistory(port: number, name: string): Promise<[TestClient, string[]]> {
  const client = await TestClient.connect(port);
  await client.expect(/^\* Welcome to chat/);
  await client.send(name);
  await client.expect(/^\* The room contains:/);
  const history: string[] = [];
  let line = await client.readLine();
  while (line.startsWith("* The room also contains: ")) line = await client.readLine();
  for (; line.startsWith("* history "); line = await client.readLine()) history.push(line);
  if (!line.startsWith("* Limits: ")) {
    throw new Error(`Expected the limits after the history, got ${JSON.stringify(line)}`);
  }
  await client.expect(new RegExp(`^\\* Welcome, ${name.trim()}! `));
  return [client, history];
}

/** Joins as `name` (see {@linkcode joinWithHistory}), for tests that do not look at the history. */
export async function joinAs(port: number, name: string): Promise<TestClient> {
  return (await joinWithHistory(port, name))[0];
}

/**
 * Lets one name timeout pass, as a clock the server keeps: a connection that never sends a name,
 * read until the server closes it. Returns the server's last line to it.
 */
export async function waitOutNameTimeout(port: number, ms = DEADLINE_MS): Promise<string> {
  await using conn = await TestClient.connect(port);
  const lines = await conn.readToEnd(ms);
  return lines.at(-1) ?? "";
}

/** A free loopback port: listens on port 0 and closes, for tests that need nothing listening. */
export function unusedPort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/**
 * Lines from a child's output stream, read on demand. Read to the end (or cancel) before the child
 * is disposed, so that no pipe is left open.
 */
export class LineReader {
  #reader: ReadableStreamDefaultReader<string>;
  #buffered = "";
  #isEof = false;
  /** Everything read so far, for failure messages. */
  seen: string[] = [];

  constructor(stream: ReadableStream<Uint8Array>) {
    this.#reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  }

  /** The next line; fails at the end of the stream or after the deadline. */
  async readLine(ms = DEADLINE_MS): Promise<string> {
    while (true) {
      const lf = this.#buffered.indexOf("\n");
      if (lf !== -1) {
        const line = this.#buffered.slice(0, lf);
        this.#buffered = this.#buffered.slice(lf + 1);
        this.seen.push(line);
        return line;
      }
      if (this.#isEof) throw new Error(`Stream ended; lines so far: ${JSON.stringify(this.seen)}`);
      const { value, done } = await withDeadline(
        this.#reader.read(),
        `a line (so far ${JSON.stringify(this.seen)})`,
        ms,
      );
      if (done) this.#isEof = true;
      else this.#buffered += value;
    }
  }

  /** Reads lines until one matches, returning it. */
  async readUntil(pattern: RegExp | string, ms = DEADLINE_MS): Promise<string> {
    while (true) {
      const line = await this.readLine(ms);
      if (typeof pattern === "string" ? line === pattern : pattern.test(line)) return line;
    }
  }

  /** The rest of the stream, after what was already read. */
  async rest(ms = DEADLINE_MS): Promise<string> {
    let text = this.#buffered;
    this.#buffered = "";
    while (!this.#isEof) {
      const { value, done } = await withDeadline(this.#reader.read(), "the end of the stream", ms);
      if (done) this.#isEof = true;
      else text += value;
    }
    return text;
  }

  /** Stops reading, releasing the stream. */
  async cancel(): Promise<void> {
    if (!this.#isEof) await this.#reader.cancel();
  }
}

/** The project's folder, where the subprocesses run. */
export const ROOT = new URL("..", import.meta.url).pathname;

/**
 * A subprocess with its output read line by line. Disposing it kills it if it still runs and
 * releases its pipes.
 */
export class Child implements AsyncDisposable {
  readonly process: Deno.ChildProcess;
  readonly stdout: LineReader;
  readonly stderr: LineReader;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;

  constructor(
    command: string,
    args: string[],
    options: { stdin?: boolean; env?: Record<string, string> } = {},
  ) {
    this.process = new Deno.Command(command, {
      args,
      cwd: ROOT,
      stdin: options.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", ...options.env },
    }).spawn();
    this.stdout = new LineReader(this.process.stdout);
    this.stderr = new LineReader(this.process.stderr);
    if (options.stdin) this.#stdin = this.process.stdin.getWriter();
  }

  /** Writes text to the child's stdin. */
  async write(text: string): Promise<void> {
    if (!this.#stdin) throw new Error("This child's stdin is not piped");
    await this.#stdin.write(encoder.encode(text));
  }

  /** Closes the child's stdin (Ctrl+D). */
  async closeStdin(): Promise<void> {
    await this.#stdin?.close();
    this.#stdin = undefined;
  }

  /** Waits for the child to exit, returning its status, with whatever is left of stdout and stderr. */
  async finish(
    ms = DEADLINE_MS,
  ): Promise<{ code: number; signal: Deno.Signal | null; stdout: string; stderr: string }> {
    const [stdout, stderr, status] = await withDeadline(
      Promise.all([this.stdout.rest(ms), this.stderr.rest(ms), this.process.status]),
      "the child to exit",
      ms,
    );
    return { code: status.code, signal: status.signal, stdout, stderr };
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.closeStdin().catch(() => {});
    try {
      this.process.kill("SIGKILL");
    } catch {
      // Already exited.
    }
    await this.process.status;
    await this.stdout.cancel();
    await this.stderr.cancel();
  }
}

/** Runs a Deno subcommand of this project (`run ...`, `task ...`) as a child. */
export function denoChild(args: string[], options: { stdin?: boolean } = {}): Child {
  return new Child(Deno.execPath(), args, options);
}

/**
 * Starts the server the way the README says, on a free loopback port, and reads its port from its
 * `listening on` line (log lines may come first). `permissions` replace the network permission for
 * the port alone, for a server that needs more (a cluster's Redis).
 */
export async function startServerProcess(
  extra: string[] = [],
  permissions = ["--allow-net=127.0.0.1:0"],
): Promise<{ child: Child; port: number }> {
  const child = denoChild([
    "run",
    "-q",
    ...permissions,
    "main.ts",
    "server",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    ...extra,
  ]);
  try {
    const line = await child.stdout.readUntil(/^listening on /);
    const match = /^listening on 127\.0\.0\.1:(\d+)(?: |$)/.exec(line);
    if (!match) throw new Error(`Unexpected line from the server: ${JSON.stringify(line)}`);
    return { child, port: Number(match[1]) };
  } catch (error) {
    await child[Symbol.asyncDispose]();
    throw error;
  }
}

let tmuxSessions = 0;
/** How often `Tmux.waitFor` looks at the screen. */
const POLL_MS = 20;

/**
 * A program running in a real terminal: a tmux server of its own (its own socket), one window of a
 * fixed size. `screen()` is what a person would see; `waitFor` polls it until a pattern shows.
 */
export class Tmux implements AsyncDisposable {
  readonly socket: string;

  private constructor(socket: string) {
    this.socket = socket;
  }

  /**
   * Starts `command` in a new terminal of `width` x `height`, with `env` added to the environment
   * and `historyLimit` rows of scrollback (tmux keeps 2000 by default). The terminal stays after
   * the program ends, showing how it ended.
   */
  static async start(
    command: string[],
    options: {
      width?: number;
      height?: number;
      env?: Record<string, string>;
      historyLimit?: number;
    } = {},
  ): Promise<Tmux> {
    const tmux = new Tmux(`chat-test-${Deno.pid}-${++tmuxSessions}`);
    const env = Object.entries(options.env ?? {}).flatMap((
      [key, value],
    ) => ["-e", `${key}=${value}`]);
    const history = options.historyLimit
      ? ["set-option", "-g", "history-limit", String(options.historyLimit), ";"]
      : [];
    await tmux.#run([
      "start-server",
      ";",
      "set-option",
      "-g",
      "remain-on-exit",
      "on",
      ";",
      ...history,
      "new-session",
      "-d",
      "-x",
      String(options.width ?? 100),
      "-y",
      String(options.height ?? 20),
      ...env,
      ...command,
    ]);
    return tmux;
  }

  /** Runs any other tmux command on this terminal, returning what it prints. */
  command(args: string[]): Promise<string> {
    return this.#run(args);
  }

  /** Types keys: text is typed literally; `keys` are tmux key names such as Enter, C-d or Up. */
  async type(text: string, ...keys: string[]): Promise<void> {
    if (text !== "") await this.#run(["send-keys", "-l", text]);
    if (keys.length > 0) await this.#run(["send-keys", ...keys]);
  }

  /**
   * Pastes `text` as a terminal does: all at once, in bracketed-paste markers when the program
   * asked for them (`paste-buffer -p`), each LF sent as CR as a real paste does.
   */
  async paste(text: string): Promise<void> {
    await this.#run(["load-buffer", "-b", "test-paste", "-"], text);
    await this.#run(["paste-buffer", "-p", "-d", "-b", "test-paste"]);
  }

  /** Resizes the terminal, as a person dragging the window's edge. */
  async resize(width: number, height: number): Promise<void> {
    await this.#run(["resize-window", "-x", String(width), "-y", String(height)]);
  }

  /** The visible screen, trailing blank lines removed; with `escapes`, colors and styles included. */
  async screen(options: { escapes?: boolean } = {}): Promise<string> {
    const out = await this.#run(["capture-pane", "-p", ...(options.escapes ? ["-e"] : [])]);
    return out.replace(/\s+$/, "");
  }

  /** Everything the terminal holds: the scrollback, then the screen, trailing blank lines removed. */
  async scrollback(): Promise<string> {
    const out = await this.#run(["capture-pane", "-p", "-S", "-", "-E", "-"]);
    return out.replace(/\s+$/, "");
  }

  /** Where the cursor is on the screen: column and row from 0. */
  async cursor(): Promise<{ x: number; y: number }> {
    const out = await this.#run(["display-message", "-p", "#{cursor_x} #{cursor_y}"]);
    const [x, y] = out.trim().split(" ").map(Number);
    return { x: x!, y: y! };
  }

  /** The process id of the program in the terminal. */
  async pid(): Promise<number> {
    return Number((await this.#run(["display-message", "-p", "#{pane_pid}"])).trim());
  }

  /**
   * Captures the screen until `pattern` matches it, failing after the deadline with what it showed.
   * It looks every 20 ms: a test machine is shared, and a capture costs a tmux process.
   */
  async waitFor(
    pattern: RegExp,
    options: { escapes?: boolean; ms?: number; scrollback?: boolean } = {},
  ): Promise<string> {
    const deadline = Date.now() + (options.ms ?? DEADLINE_MS);
    let screen = "";
    while (true) {
      screen = options.scrollback ? await this.scrollback() : await this.screen(options);
      if (pattern.test(screen)) return screen;
      if (Date.now() >= deadline) break;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
    throw new Error(`Timed out waiting for ${pattern} on the screen:\n${screen}`);
  }

  async #run(args: string[], input?: string): Promise<string> {
    const child = new Deno.Command("tmux", {
      args: ["-L", this.socket, "-f", "/dev/null", ...args],
      cwd: ROOT,
      stdin: input === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    if (input !== undefined) {
      const writer = child.stdin.getWriter();
      await writer.write(encoder.encode(input));
      await writer.close();
    }
    const { code, stdout, stderr } = await child.output();
    if (code !== 0) throw new Error(`tmux ${args[0]} failed: ${new TextDecoder().decode(stderr)}`);
    return new TextDecoder().decode(stdout);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.#run(["kill-server"]).catch(() => {});
  }
}

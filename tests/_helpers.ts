/** Test helpers: a raw line client over a real socket, deadlines, and subprocess plumbing. */
import { connect } from "node:net";
import { type ChatServer, type ServerOptions, startServer } from "../server.ts";

/** How long a test waits for an expected event before it fails. */
export const DEADLINE_MS = 10_000;
/**
 * How long a test waits for the server to close a connection it has given up on: it closes at once
 * once the last lines are out, or after its 2 s end timeout at most; the rest is room for a loaded
 * machine. A connection wrongly left open then fails its test in seconds, saying so.
 */
export const CLOSE_DEADLINE_MS = 5_000;

/**
 * Waits until `condition` holds, checking it every few milliseconds, for state that announces itself
 * with no event (such as the server's connection count once a peer's task has ended). Fails with
 * `what` (or what it returns then, for a message that shows the state at the end) after `ms`.
 */
export async function waitUntil(
  condition: () => boolean | Promise<boolean>,
  what: string | (() => string),
  ms = DEADLINE_MS,
  everyMs = 5,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!await condition()) {
    if (Date.now() > deadline) {
      throw new TimeoutError(
        `Timed out after ${ms} ms waiting for ${typeof what === "string" ? what : what()}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, everyMs)); // paced: the condition is not free
  }
}

/** Starts a server on a free loopback port. */
export function startTestServer(options: ServerOptions = {}): ChatServer {
  return startServer({ hostname: "127.0.0.1", port: 0, ...options });
}

/** What {@linkcode withDeadline} throws when the deadline passes. */
export class TimeoutError extends Error {
  override name = "TimeoutError";
}

/** Waits for `promise`, failing with `what` if it takes longer than `ms`. */
export async function withDeadline<T>(
  promise: Promise<T>,
  what: string,
  ms = DEADLINE_MS,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TimeoutError(`Timed out after ${ms} ms waiting for ${what}`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

const encoder = new TextEncoder();

/** What a {@linkcode TestClient} needs of its socket: a `Deno.TcpConn` has it. */
export interface TestConn {
  readonly readable: ReadableStream<Uint8Array>;
  write(bytes: Uint8Array): Promise<number>;
  close(): void;
}

/**
 * A client that speaks raw bytes, as `nc` does. Its line reader is written here rather than taken
 * from protocol.ts, so that a bug in the server's splitter cannot hide itself in the tests.
 */
export class TestClient<C extends TestConn = Deno.TcpConn> implements AsyncDisposable {
  readonly conn: C;
  #reader: ReadableStreamDefaultReader<Uint8Array>;
  #decoder = new TextDecoder();
  #buffered = "";
  #isEof = false;

  constructor(conn: C) {
    this.conn = conn;
    this.#reader = conn.readable.getReader();
  }

  /**
   * Connects to a port on 127.0.0.1 (or `hostname`). Nagle's algorithm is off, as in the server: a
   * test that writes line after line must not wait for delayed ACKs (40 ms each, at random).
   */
  static async connect(port: number, hostname = "127.0.0.1"): Promise<TestClient> {
    const conn = await Deno.connect({ hostname, port });
    conn.setNoDelay(true);
    return new TestClient(conn);
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

  /**
   * Every line until the server closes the connection, which it must do within `ms` in all: a
   * connection left open fails with the lines it got, not after a deadline per line.
   */
  async readToEnd(ms = CLOSE_DEADLINE_MS): Promise<string[]> {
    const lines: string[] = [];
    const deadline = Date.now() + ms;
    try {
      for (
        let line = await this.#nextLine(ms);
        line !== undefined;
        line = await this.#nextLine(Math.max(1, deadline - Date.now()))
      ) {
        lines.push(line);
      }
    } catch (error) {
      if (!(error instanceof TimeoutError)) throw error;
      throw new Error(
        `The server did not close the connection within ${ms} ms; it sent ${JSON.stringify(lines)}`,
      );
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

const NAME = "[A-Za-z0-9_-]{1,32}";
const LISTED = `@?${NAME}`; // an operator is listed as @NAME
const NAMES = `(?: ${LISTED}(?:, ${LISTED})*)?`;
const ROOM_LIST = new RegExp(`^\\* The room contains:(${NAMES})$`);
const ROOM_LIST_MORE = new RegExp(`^\\* The room also contains:(${NAMES})$`);
const HISTORY = new RegExp(
  `^\\* history \\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ (\\* )?\\[${NAME}\\] .*$`,
);
/** The greeting of a server without registered names, or of one with them (its clause more). */
export const ANY_GREETING =
  /^\* Welcome to chat! (Some names here are registered and need their password\. )?What shall I call you\?$/;
const LIMITS = /^\* Limits: lines of up to \d+ bytes(, \d+ at once, then \d+(\.\d+)? a second)?$/;

/**
 * Connects, reads the greeting, sends `name`, and reads the join reply, checking every line of it:
 * the room list (one line or more, each a list of valid names), the history (each line a timed chat
 * or action line), the limits, and a welcome that counts the room list plus the newcomer. The
 * history is returned beside the client.
 */
export async function joinWithHistory(port: number, name: string): Promise<[TestClient, string[]]> {
  const client = await TestClient.connect(port);
  try {
    await client.expect(ANY_GREETING);
    await client.send(name);
    const first = ROOM_LIST.exec(await client.expect(ROOM_LIST));
    const names = listed(first![1]!);
    let line = await client.readLine();
    for (let more; (more = ROOM_LIST_MORE.exec(line)); line = await client.readLine()) {
      names.push(...listed(more[1]!));
    }
    const history: string[] = [];
    for (; line.startsWith("* history "); line = await client.readLine()) {
      assert(HISTORY.test(line), `Expected a history line, got ${JSON.stringify(line)}`);
      history.push(line);
    }
    assert(LIMITS.test(line), `Expected the limits after the history, got ${JSON.stringify(line)}`);
    const online = names.length + 1;
    await client.expect(
      `* Welcome, ${name.trim()}! ${online} user${online === 1 ? "" : "s"} online; ` +
        "/help lists the commands",
    );
    return [client, history];
  } catch (error) {
    client.close();
    throw error;
  }
}

/** The names of a room list line's tail (" A, B"). */
function listed(tail: string): string[] {
  return tail === "" ? [] : tail.slice(1).split(", ");
}

/** Throws `message` unless `condition` holds (the helpers' own checks, without node:assert). */
function assert(condition: boolean, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** Joins as `name` (see {@linkcode joinWithHistory}), for tests that do not look at the history. */
export async function joinAs(port: number, name: string): Promise<TestClient> {
  return (await joinWithHistory(port, name))[0];
}

/**
 * Connects and sends `first` (`/resume NAME [TOKEN]`, see `formatResume`): the client, the lines up
 * to the token the server gives, and that token.
 */
export async function joinWithToken(
  port: number,
  first: string,
): Promise<{ client: TestClient; lines: string[]; token: string }> {
  const client = await TestClient.connect(port);
  await client.expect("* Welcome to chat! What shall I call you?");
  await client.send(first);
  const lines: string[] = [];
  for (;;) {
    const line = await client.readLine();
    lines.push(line);
    const token = /^\* Resume token: ([A-Za-z0-9_-]{24}) /.exec(line)?.[1];
    if (token) return { client, lines, token };
  }
}

/**
 * Connects from another loopback address (127.0.0.2 and up, all on `lo`), so that the server sees
 * a host of its own: per-address limits apply to each. `Deno.connect` cannot choose its source
 * address; `node:net` can.
 */
export async function connectFrom(
  port: number,
  localAddress: string,
): Promise<TestClient<TestConn & { readonly localPort: number }>> {
  const socket = connect({ host: "127.0.0.1", port, localAddress, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  let isDone = false;
  const readable = new ReadableStream<Uint8Array>({
    start(controller) {
      const done = () => {
        if (!isDone) controller.close();
        isDone = true;
      };
      socket.on("data", (chunk: Uint8Array) => isDone || controller.enqueue(new Uint8Array(chunk)));
      socket.on("end", done);
      socket.on("close", done);
      socket.on("error", done);
    },
    cancel: () => void socket.destroy(),
  });
  return new TestClient({
    readable,
    write: (bytes) =>
      new Promise((resolve, reject) =>
        socket.write(bytes, (error) => error ? reject(error) : resolve(bytes.length))
      ),
    close: () => void socket.destroy(),
    localPort: socket.localPort!, // what the server sees, with localAddress
  });
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
 * The `deno` arguments that run the server the way the README says, on a free loopback port, with
 * `extra` options. `permissions` replace the network permission for the port alone, for a server
 * that needs more (a cluster's Redis, a store's file) or a test of what it says without them.
 */
export function serverArgs(
  extra: string[] = [],
  permissions = ["--allow-net=127.0.0.1:0"],
): string[] {
  return ["run", "-q", ...permissions, "main.ts", "server", "--host", "127.0.0.1", "--port", "0"]
    .concat(extra);
}

/** The server as a child (see {@linkcode serverArgs}), for a test of how it starts or refuses to. */
export function serverChild(
  extra: string[] = [],
  permissions?: string[],
  options: { env?: Record<string, string> } = {},
): Child {
  return new Child(Deno.execPath(), serverArgs(extra, permissions), options);
}

/**
 * Starts the server (see {@linkcode serverArgs}) and reads its port from its `listening on` line
 * (log lines may come first).
 */
export async function startServerProcess(
  extra: string[] = [],
  permissions?: string[],
  options: { env?: Record<string, string> } = {},
): Promise<{ child: Child; port: number }> {
  const child = serverChild(extra, permissions, options);
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

/** A self-signed certificate for localhost and 127.0.0.1, made as the README says, in a temp folder. */
export class Certificate implements AsyncDisposable {
  constructor(
    readonly dir: string,
    readonly cert: string,
    readonly key: string,
    readonly pem: string,
  ) {}

  static async make(): Promise<Certificate> {
    const dir = (await run("mktemp", ["-d"])).trim();
    const [cert, key] = [`${dir}/cert.pem`, `${dir}/key.pem`];
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=localhost",
      "-addext",
      "subjectAltName=DNS:localhost,IP:127.0.0.1",
      "-addext",
      "basicConstraints=critical,CA:FALSE",
      "-keyout",
      key,
      "-out",
      cert,
    ]);
    return new Certificate(dir, cert, key, await run("cat", [cert]));
  }

  /** The key's PEM text. */
  keyPem(): Promise<string> {
    return run("cat", [this.key]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await run("rm", ["-rf", this.dir]);
  }
}

/** Runs a command to its end, returning its stdout; fails with its stderr. */
export async function run(command: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(command, { args, stdin: "null" })
    .output();
  if (code !== 0) throw new Error(`${command} failed: ${new TextDecoder().decode(stderr)}`);
  return new TextDecoder().decode(stdout);
}

/** Closes a connection the server may have closed already. */
export function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Closed by the server already.
  }
}

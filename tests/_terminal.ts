/** The terminal client in tmux for the terminal tests: starting it, and reading what it shows. */
import assert from "node:assert/strict";

import { type ChatServer, type ServerOptions } from "../server.ts";
import {
  DEADLINE_MS,
  joinAs,
  run,
  startTestServer,
  TestClient,
  Tmux,
  withDeadline,
} from "./_helpers.ts";

export const TIME = String.raw`\d\d:\d\d`;

/** client.ts in a real terminal, started as the README says, with colors unless NO_COLOR is set. */
export function terminalClient(
  name: string,
  port: number,
  options: {
    width?: number;
    height?: number;
    args?: string[];
    env?: Record<string, string>;
    historyLimit?: number;
  } = {},
): Promise<Tmux> {
  const env = Object.entries(options.env ?? {}).map(([key, value]) => `${key}=${value}`);
  // The shell says how the client ended, right after its last words, as a person's shell would,
  // and stays: tmux 3.3 may blank the screen of a pane whose program has ended.
  return Tmux.start([
    "sh",
    "-c",
    '"$@"; echo "[exit $?]"; exec sleep 600',
    "sh",
    "env",
    "-u",
    "NO_COLOR",
    ...env,
    Deno.execPath(),
    "run",
    "-q",
    "-N",
    "--allow-env=TERM",
    "client.ts",
    name,
    "--port",
    String(port),
    ...(options.args ?? []),
  ], {
    width: options.width ?? 100,
    height: options.height ?? 30,
    ...(options.historyLimit ? { historyLimit: options.historyLimit } : {}),
  });
}

/** How many lines of `text` match `pattern`. */
export function count(text: string, pattern: RegExp): number {
  return text.split("\n").filter((line) => pattern.test(line)).length;
}

/** The client's exit status, once the shell shows it. */
export async function exitStatus(terminal: Tmux): Promise<number> {
  const screen = await terminal.waitFor(/^\[exit \d+\]$/m, { ms: SLOW_MS });
  return Number(/^\[exit (\d+)\]$/m.exec(screen)![1]);
}

/** Starts a server for a terminal test and joins `others` to it, each as a raw client. */
export async function room(
  options: ServerOptions,
  ...others: string[]
): Promise<{ server: ChatServer; clients: TestClient[] }> {
  const server = startTestServer(options);
  const clients = [];
  for (const name of others) clients.push(await joinAs(server.addr.port, name));
  return { server, clients };
}

/** Reads lines until `line` comes. */
export async function readUntil(client: TestClient, line: string, ms = DEADLINE_MS): Promise<void> {
  while (await client.readLine(ms) !== line);
}

/** Reads lines until `expected` comes, failing on anything from `name` that is not in order. */
export async function expectLines(client: TestClient, expected: string[]): Promise<void> {
  for (const line of expected) {
    let got = await client.readLine();
    while (got.startsWith("* ") && !line.startsWith("* ")) got = await client.readLine();
    assert.equal(got, line);
  }
}

// Lenient deadlines for events that wait on pacing or backoff on a loaded machine.
export const SLOW_MS = 30_000;

/** Collects what a terminal program writes, raw, through `tmux pipe-pane` and a loopback socket. */
export async function rawOutput(terminal: Tmux): Promise<{ bytes: () => Promise<string> }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await terminal.command(["pipe-pane", "-o", `ncat 127.0.0.1 ${listener.addr.port}`]);
  const conn = await withDeadline(listener.accept(), "tmux to pipe the pane");
  listener.close();
  return {
    async bytes() {
      await terminal.command(["pipe-pane"]); // stops the pipe: ncat ends, the socket closes
      const chunks = await withDeadline(Array.fromAsync(conn.readable), "the piped output");
      return new TextDecoder().decode(new Uint8Array(chunks.flatMap((chunk) => [...chunk])));
    },
  };
}

/**
 * A wall clock the test sets for the programs it starts with `env`: libfaketime, preloaded as
 * Debian's `faketime` does, reads the time from a file at every call (`@` starts a clock that runs
 * on from there). Timers and other monotonic time are left alone, so no timeout fires early.
 */
export class FakeClock implements AsyncDisposable {
  readonly env: Record<string, string>;
  readonly #file: string;

  private constructor(file: string, library: string) {
    this.#file = file;
    this.env = {
      LD_PRELOAD: library,
      FAKETIME_TIMESTAMP_FILE: file,
      FAKETIME_NO_CACHE: "1",
      FAKETIME_DONT_FAKE_MONOTONIC: "1",
      TZ: "UTC",
    };
  }

  /** A clock that starts at `time` (`YYYY-MM-DD hh:mm:ss`, UTC) for every program given `env`. */
  static async start(time: string): Promise<FakeClock> {
    // The library `faketime -m` (the variant safe for threads) preloads, as the loader spells it.
    const library = await run("faketime", ["-m", "-f", "+0", "printenv", "LD_PRELOAD"]);
    // The tests may not write files themselves: the shell writes the clock's file.
    const file = await run("mktemp", ["/tmp/chat-clock-XXXXXX"]);
    const clock = new FakeClock(file.trim(), library.trim());
    await clock.set(time);
    return clock;
  }

  /** Sets the clock of every program given `env`: each reads it anew at its next look. */
  async set(time: string): Promise<void> {
    // Moved into place whole: a program looking while it is written never reads half a time.
    await run("sh", [
      "-c",
      'echo "$1" > "$2.new" && mv "$2.new" "$2"',
      "sh",
      `@${time}`,
      this.#file,
    ]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await run("rm", ["-f", this.#file, `${this.#file}.new`]);
  }
}

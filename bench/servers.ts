/**
 * The servers compared by the benchmark, each started as a process of its own on a loopback port:
 * ours, the Java reconstruction of the seed, and `ncat --chat`. Each comes with its dialect: how a
 * client joins it and how the generator knows that it is in.
 */
import { taskFlags } from "./task_flags.ts";
import type { Client, Dialect } from "./load.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const decoder = new TextDecoder();

/** A running server process. */
export class ServerProcess implements AsyncDisposable {
  /**
   * `cuts`: members our server cut, by the reason in its log ("stopped reading", flooding...), as
   * {@linkcode countCut} counts them: a scenario that loses members says why, which the
   * generator's side of a socket cannot tell.
   */
  constructor(
    readonly name: string,
    readonly child: Deno.ChildProcess,
    readonly port: number,
    readonly cuts = new Map<string, number>(),
  ) {}

  /**
   * The cuts in the server's log so far, as "4648 stopped reading: no byte taken for 30 s" ("" if
   * none). A cut logged in the last moment may not have been read yet.
   */
  cutSummary(): string {
    return [...this.cuts].map(([reason, count]) => `${count} ${reason}`).join(", ");
  }

  /** The port client number `id` connects to. */
  portFor(_id: number): number {
    return this.port;
  }

  /** CPU time the process has used, in milliseconds (from /proc: user + system). */
  async cpuMillis(): Promise<number> {
    // Through cat: Deno asks for every permission before it reads anything under /proc itself.
    const stat = await run("cat", [`/proc/${this.child.pid}/stat`]);
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) * 10; // clock ticks of 10 ms (CLK_TCK 100)
  }

  /** Resident memory in KiB, or 0 once the process is gone. */
  async rssKiB(field: "VmRSS" | "VmHWM" = "VmRSS"): Promise<number> {
    try {
      const status = await run("cat", [`/proc/${this.child.pid}/status`]);
      return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  /**
   * Starts the peak resident memory (VmHWM) afresh from now, so that it measures one phase. Through
   * sh for the same reason as above; Linux resets it when 5 is written to clear_refs.
   */
  async resetPeak(): Promise<void> {
    await run("sh", ["-c", `echo 5 > /proc/${this.child.pid}/clear_refs`]);
  }

  /** Whether the process still runs. */
  async isAlive(): Promise<boolean> {
    return (await this.rssKiB()) > 0;
  }

  /** Stops it with SIGTERM (so that ours shuts down cleanly), and SIGKILL after 3 s. */
  async [Symbol.asyncDispose](): Promise<void> {
    const kill = (signal: Deno.Signal) => {
      try {
        this.child.kill(signal);
      } catch {
        // Already gone.
      }
    };
    kill("SIGTERM");
    const timer = setTimeout(() => kill("SIGKILL"), 3000);
    await this.child.status;
    clearTimeout(timer);
  }
}

/** A server to compare: how to start it and how to join it. */
export interface Contender {
  readonly name: string;
  readonly dialect: Dialect;
  /** How many clients may join at once: the seed's threads die on concurrent joins, and a burst
   * of connections overflows ncat's accept backlog. */
  readonly joinBatch: number;
  /** Why it cannot run here, if it cannot. */
  unavailable(): Promise<string | undefined>;
  start(options: { maxClients: number }): Promise<ServerProcess>;
}

/**
 * Reads a child's output until a line matches, then keeps draining it so it never blocks, handing
 * each later line to `onLine`.
 */
async function awaitLine(
  stream: ReadableStream<Uint8Array>,
  pattern: RegExp,
  onLine: (line: string) => void = () => {},
): Promise<RegExpExecArray> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (true) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`The server ended before printing ${pattern}: ${text}`);
    text += value;
    const match = pattern.exec(text);
    if (match) {
      (async () => {
        // The lines after the ready line: the rest of that line is nobody's.
        let rest = text.slice(match.index + match[0].length);
        let isInReadyLine = true;
        const take = (isLast: boolean) => {
          const lines = rest.split("\n");
          rest = isLast ? "" : lines.pop()!;
          for (const line of lines) {
            if (isInReadyLine) isInReadyLine = false;
            else if (line) onLine(line);
          }
        };
        try {
          take(false);
          for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
            rest += chunk.value;
            take(false);
          }
          take(true);
        } catch {
          // The process is gone: its output ends here.
        }
      })();
      return match;
    }
  }
}

/** Counts a line of our server's log if it says that a member was cut, under the reason it gives. */
function countCut(cuts: Map<string, number>, line: string): void {
  const reason = / left \((.+)\)$/.exec(line)?.[1];
  if (reason) cuts.set(reason, (cuts.get(reason) ?? 0) + 1);
}

function freePort(): number {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  return listener.addr.port;
}

/** Whether a shell test succeeds (`command -v java`, `test -f FILE`): no read permission needed. */
async function holds(script: string): Promise<boolean> {
  const { code } = await new Deno.Command("sh", {
    args: ["-c", script],
    stdout: "null",
    stderr: "null",
  }).output();
  return code === 0;
}

/** Extra `deno run` flags for our server, from the environment (`--cpu-prof` to profile it). */
const OURS_FLAGS = Deno.env.get("BENCH_DENO_FLAGS")?.split(" ").filter(Boolean) ?? [];

/** How to run one of our servers: its name in the tables, its `deno run` flags, its folder. */
export interface OursOptions {
  name?: string;
  /** Flags before the script, such as `--v8-flags=--heap-growing-percent=20` (default: the task's). */
  flags?: string[];
  /** The folder with main.ts (default: this checkout). */
  root?: string;
  /** More server flags, such as `--metrics 0`. */
  args?: string[];
}

/** One of our servers: joined once the welcome line arrives. */
export function ours(options: OursOptions = {}): Contender {
  return {
    name: options.name ?? "ours",
    joinBatch: 200,
    dialect: {
      async join(client, name) {
        const welcome = client.waitFor("* Welcome, ");
        // Both fail if the server closes: the write's failure first, and the wait's is then seen.
        await Promise.all([client.write(`${name}\n`), welcome]);
      },
    },
    unavailable: () => Promise.resolve(undefined),
    start: ({ maxClients }) => startOurs(maxClients, options),
  };
}

/** Ours, as `deno task server` runs it. */
export const OURS: Contender = ours();

/**
 * Our server as it was at git revision `rev` (the baseline row), extracted with `git archive` into
 * a temporary folder the first time it is asked for, and removed when the benchmark exits.
 */
export function baseline(rev: string): Contender {
  let root: string | undefined;
  const contender = ours({ name: rev });
  return {
    ...contender,
    async unavailable() {
      if (!(await holds(`git -C '${ROOT}' rev-parse --verify -q '${rev}^{commit}'`))) {
        return `no git revision ${rev} here`;
      }
      if (!root) {
        root = (await run("mktemp", ["-d"])).trim();
        const folder = root;
        // Sync, in the unload event: the event does not wait for promises.
        addEventListener("unload", () => {
          new Deno.Command("rm", { args: ["-rf", folder] }).outputSync();
        });
        await run("sh", ["-c", `git -C '${ROOT}' archive '${rev}' | tar -x -C '${folder}'`]);
      }
    },
    start: ({ maxClients }) => startOurs(maxClients, { name: rev, root: root! }), // its task's flags
  };
}

/**
 * Starts our server, alone or in the cluster on the Redis at `redisPort`, with `args` after the
 * benchmark's own (a later flag wins) and `permissions` beside the network's.
 */
export async function startOurs(
  maxClients: number,
  options: OursOptions & {
    redisPort?: number;
    args?: string[];
    permissions?: string[];
    /** What the server prints once it serves, the chat's port first (default: its listen line). */
    ready?: RegExp;
  },
): Promise<ServerProcess & { ready: RegExpExecArray }> {
  const { redisPort } = options;
  const redis = redisPort === undefined ? [] : [
    `--allow-net=127.0.0.1:0,127.0.0.1:${redisPort}`,
    "--allow-env=CHAT_REDIS_URL,REDIS_DEBUG_MAINTENANCE,REDIS_EMIT_DIAGNOSTICS",
  ];
  const root = options.root ?? ROOT;
  const flags = options.flags ??
    await taskFlags(redisPort === undefined ? "server" : "cluster", root);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      ...flags,
      ...OURS_FLAGS,
      ...(redisPort === undefined ? ["--allow-net=127.0.0.1:0"] : redis),
      ...options.permissions ?? [],
      "main.ts",
      "server",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      ...(redisPort === undefined ? [] : ["--redis", `redis://127.0.0.1:${redisPort}`]),
      "--max-connections",
      String(maxClients + 100),
      "--max-per-address",
      "0",
      // The protections stay on, with limits a benchmark's clients stay within.
      "--flood-burst",
      "1000000",
      "--flood-rate",
      "1000000",
      "--history",
      "0",
      ...options.args ?? [],
    ],
    cwd: root,
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const cuts = new Map<string, number>();
  const ready = await awaitLine(
    child.stdout,
    options.ready ?? /listening on 127\.0\.0\.1:(\d+)/,
    (line) => countCut(cuts, line),
  );
  const server = new ServerProcess(options.name ?? "ours", child, Number(ready[1]), cuts);
  return Object.assign(server, { ready });
}

/** Several of our servers on one Redis, measured as one: CPU and memory are their sums. */
export class ClusterProcess extends ServerProcess {
  constructor(readonly servers: ServerProcess[], readonly redis: ServerProcess) {
    super(`cluster of ${servers.length}`, servers[0]!.child, servers[0]!.port);
  }

  /** Clients take turns among the servers. */
  override portFor(id: number): number {
    return this.servers[id % this.servers.length]!.port;
  }

  override async cpuMillis(): Promise<number> {
    return (await this.cpuEach()).reduce((sum, each) => sum + each, 0);
  }

  /** CPU time of each server, then of Redis. */
  cpuEach(): Promise<number[]> {
    return Promise.all([...this.servers, this.redis].map((part) => part.cpuMillis()));
  }

  override async rssKiB(field: "VmRSS" | "VmHWM" = "VmRSS"): Promise<number> {
    const each = await Promise.all(this.servers.map((server) => server.rssKiB(field)));
    return each.reduce((sum, kib) => sum + kib, 0);
  }

  override async isAlive(): Promise<boolean> {
    return (await Promise.all(this.servers.map((server) => server.isAlive()))).every(Boolean);
  }

  override async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.servers.map((server) => server[Symbol.asyncDispose]()));
    await this.redis[Symbol.asyncDispose]();
  }
}

/** `count` of our servers on a Redis of their own (`redis-server`, nothing saved to disk). */
export function cluster(count: number): Contender {
  return {
    name: `${count} on Redis`,
    joinBatch: OURS.joinBatch,
    dialect: OURS.dialect,
    async unavailable() {
      if (!(await holds("command -v redis-server"))) return "redis-server is not installed";
    },
    async start({ maxClients }) {
      const port = freePort();
      const child = new Deno.Command("redis-server", {
        args: ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout: "piped",
        stderr: "inherit",
        stdin: "null",
      }).spawn();
      await awaitLine(child.stdout, /Ready to accept connections/);
      const redis = new ServerProcess("redis", child, port);
      const servers = await Promise.all(
        Array.from({ length: count }, () => startOurs(maxClients, { redisPort: port })),
      );
      return new ClusterProcess(servers, redis);
    },
  };
}

/** The seed's Java reconstruction, built with javac into a temporary folder. */
export function seed(seedDir: string, options: { jdk8Println?: boolean } = {}): Contender {
  let classes: string | undefined;
  return {
    name: options.jdk8Println ? "seed (JDK 8 println)" : "seed",
    joinBatch: 1,
    dialect: {
      // No reply to the joiner: the member before it sees "NAME has joined the chat", last of all.
      // The joiner's thread still checks its iterator once after that write, so a join in that
      // instant kills it (DEFECTS.md #3); a pause of 20 ms lets it finish, as a human would.
      async join(client: Client, name: string) {
        const joined = client.observer?.waitFor(`${name} has joined the chat`);
        await Promise.all([client.write(`${name}\n`), joined]);
        await new Promise((resolve) => setTimeout(resolve, joined ? 20 : 100));
      },
    },
    async unavailable() {
      if (!(await holds("command -v javac && command -v java"))) {
        return "java and javac are not installed";
      }
      if (!(await holds(`test -f '${seedDir}/ChatServer.java'`))) {
        return `no ChatServer.java in ${seedDir} (pass --seed-dir)`;
      }
    },
    async start() {
      if (!classes) {
        classes = (await run("mktemp", ["-d"])).trim();
        await run("javac", ["-d", classes, `${seedDir}/ChatServer.java`]);
      }
      const port = freePort();
      const child = new Deno.Command("java", {
        args: [
          ...(options.jdk8Println ? ["-Dseed.jdk8println=true"] : []),
          "-cp",
          classes,
          "ChatServer",
          String(port),
          "127.0.0.1",
        ],
        stdout: "piped",
        stderr: "null", // its stack traces are one of its defects
        stdin: "null",
      }).spawn();
      await awaitLine(child.stdout, /Server started/);
      return new ServerProcess(this.name, child, port);
    },
  };
}

/** `ncat --chat`: no names; in once it announces who else is connected. */
export const NCAT: Contender = {
  name: "ncat --chat",
  joinBatch: 10,
  dialect: {
    async join(client) {
      await client.waitFor("<announce> already connected");
    },
  },
  async unavailable() {
    return (await holds("command -v ncat"))
      ? undefined
      : "ncat is not installed (apt-get install ncat)";
  },
  async start({ maxClients }) {
    const port = freePort();
    const child = new Deno.Command("ncat", {
      args: [
        "-v",
        "--chat",
        "--max-conns",
        String(maxClients + 100),
        "-l",
        "127.0.0.1",
        String(port),
      ],
      stdout: "null",
      stderr: "piped",
      stdin: "null",
    }).spawn();
    await awaitLine(child.stderr, /Listening on/);
    return new ServerProcess("ncat --chat", child, port);
  },
};

async function run(command: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(command, { args, stdin: "null" })
    .output();
  if (code !== 0) throw new Error(`${command} failed: ${decoder.decode(stderr)}`);
  return decoder.decode(stdout);
}

/**
 * The store's cost: our server keeping a history of 50 lines in memory, against the same server
 * also keeping it in an SQLite file (`--store`), run by bench/main.ts (`--scenarios store`) through
 * its throughput and latency measurements, so the two are measured alike, in one run.
 */
import { type Contender, OURS, ServerProcess } from "./servers.ts";

const ROOT = new URL("..", import.meta.url).pathname;
/** Extra `deno run` flags for the server, from the environment (`--cpu-prof` to profile it). */
const FLAGS = Deno.env.get("BENCH_DENO_FLAGS")?.split(" ").filter(Boolean) ?? [];

/** Our server with its store in a folder of its own, removed when the server stops. */
class StoreServerProcess extends ServerProcess {
  constructor(name: string, child: Deno.ChildProcess, port: number, readonly folder?: string) {
    super(name, child, port);
  }

  override async [Symbol.asyncDispose](): Promise<void> {
    await super[Symbol.asyncDispose]();
    if (this.folder) await exec("rm", ["-rf", this.folder]);
  }
}

async function exec(command: string, args: string[]): Promise<string> {
  const { stdout } = await new Deno.Command(command, { args, stdin: "null" }).output();
  return new TextDecoder().decode(stdout);
}

/** Starts our server with a history of 50 lines, kept in a new SQLite file when `isStored`. */
async function start(name: string, maxClients: number, isStored: boolean) {
  const folder = isStored ? (await exec("mktemp", ["-d"])).trim() : undefined;
  const file = `${folder}/chat.db`;
  const files = [file, `${file}-wal`, `${file}-shm`].join(",");
  const store = folder ? [`--allow-read=${files}`, `--allow-write=${files}`] : [];
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-q",
      ...FLAGS,
      "--allow-net=127.0.0.1:0",
      ...store,
      "main.ts",
      "server",
      "--host",
      "127.0.0.1",
      "--port",
      "0",
      ...(folder ? ["--store", file] : []),
      "--history",
      "50",
      "--max-connections",
      String(maxClients + 100),
      "--max-per-address",
      "0",
      "--flood-burst",
      "1000000",
      "--flood-rate",
      "1000000",
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  let match: RegExpExecArray | null = null;
  while (!match) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`The server ended: ${text}`);
    text += value;
    match = /listening on 127\.0\.0\.1:(\d+)/.exec(text);
  }
  (async () => {
    while (!(await reader.read()).done); // keep draining its log so it never blocks
  })();
  return new StoreServerProcess(name, child, Number(match[1]), folder);
}

/**
 * The two servers compared: "ours" keeps its history in memory only (the ratio is against it),
 * "ours + store" keeps it in an SQLite file too.
 */
export function storeContenders(): Contender[] {
  const contender = (name: string, isStored: boolean): Contender => ({
    ...OURS,
    name,
    start: ({ maxClients }) => start(name, maxClients, isStored),
  });
  return [contender("ours", false), contender("ours + store", true)];
}

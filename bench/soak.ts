/**
 * Soak: many clients chat with the server process for minutes while others come and go; reports
 * messages sent, received and lost (must be 0), and the server's memory at the start and the end.
 *
 *   deno task soak [--clients 200] [--minutes 3] [--rate 1] [--churn 2]
 */
import { parseArgs } from "node:util";
import { encodeLine, LineSplitter, LineTooLongError } from "../protocol.ts";
import { taskFlags } from "./task_flags.ts";

const { values } = parseArgs({
  options: {
    clients: { type: "string", default: "200" },
    minutes: { type: "string", default: "3" },
    rate: { type: "string", default: "1" },
    churn: { type: "string", default: "2" },
  },
});
const CLIENTS = Number(values.clients);
const DURATION_MS = Number(values.minutes) * 60_000;
/** Messages a second from each steady client. */
const RATE = Number(values.rate);
/** Clients that leave and others that join, each second. */
const CHURN = Number(values.churn);

/** A chat connection that counts, per sender, what it receives and checks the order. */
class Client {
  readonly name: string;
  readonly conn: Deno.TcpConn;
  sent = 0;
  received = 0;
  disorder = 0;
  #sending = Promise.resolve();
  #next = new Map<string, number>();
  #joined = Promise.withResolvers<void>();
  readonly done: Promise<void>;

  constructor(name: string, conn: Deno.TcpConn) {
    this.name = name;
    this.conn = conn;
    this.done = this.#read();
  }

  static async join(port: number, name: string): Promise<Client> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    conn.setNoDelay(true);
    const client = new Client(name, conn);
    await client.send(name);
    await client.#joined.promise;
    return client;
  }

  /** Sends a line after those already being sent, so lines never interleave. */
  send(line: string): Promise<void> {
    const bytes = encodeLine(line);
    this.#sending = this.#sending.then(async () => {
      for (let offset = 0; offset < bytes.length;) {
        offset += await this.conn.write(bytes.subarray(offset));
      }
    });
    return this.#sending;
  }

  async #read(): Promise<void> {
    try {
      const batches = this.conn.readable.pipeThrough(new LineSplitter({ maxLineBytes: 65536 }));
      for await (
        const line of (async function* () {
          for await (const batch of batches) yield* batch;
        })()
      ) {
        if (line instanceof LineTooLongError) continue;
        if (line.startsWith("* Welcome, ")) this.#joined.resolve();
        const match = /^\[(s\d+)\] (\d+)$/.exec(line);
        if (!match) continue;
        const [, from, number] = match;
        const expected = this.#next.get(from!) ?? 0;
        if (Number(number) !== expected) this.disorder++;
        this.#next.set(from!, Number(number) + 1);
        this.received++;
      }
    } catch {
      // Closed by us at the end: the counts are what matter.
    }
  }
}

async function rssKiB(pid: number): Promise<number> {
  const { stdout } = await new Deno.Command("ps", { args: ["-o", "rss=", "-p", String(pid)] })
    .output();
  return Number(new TextDecoder().decode(stdout).trim());
}

const root = new URL("..", import.meta.url).pathname;
const server = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-q",
    ...await taskFlags("server", root), // the server as `deno task server` runs it
    "--allow-net=127.0.0.1:0",
    "main.ts",
    "server",
    "--host",
    "127.0.0.1",
    "--port",
    "0",
    "--max-per-address",
    "0",
    "--max-connections",
    "0",
  ],
  cwd: root,
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const serverLines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
const first = (await serverLines.read()).value ?? "";
const port = Number(/listening on 127\.0\.0\.1:(\d+)/.exec(first)?.[1]);
(async () => { // drain the log so the server never blocks on a full pipe
  while (!(await serverLines.read()).done);
})();

console.log(
  `soak: ${CLIENTS} clients, ${RATE} message(s)/s each, ${CHURN} joining and leaving per second, ${
    DURATION_MS / 60_000
  } min`,
);
const startRss = await rssKiB(server.pid);
const steady: Client[] = [];
for (let i = 0; i < CLIENTS; i++) steady.push(await Client.join(port, `s${i}`));
const joinedRss = await rssKiB(server.pid);

let sent = 0;
let churned = 0;
let churners: Client[] = [];
const started = performance.now();
const tickMs = 100;
let tick = 0;
while (performance.now() - started < DURATION_MS) {
  // Each tick, a tenth of a second's messages: client i sends when its turn comes round.
  const perTick = (CLIENTS * RATE * tickMs) / 1000;
  const sends: Promise<void>[] = [];
  for (let k = 0; k < perTick; k++) {
    const client = steady[Math.floor((tick * perTick + k) % CLIENTS)]!;
    sends.push(client.send(String(client.sent++)));
    sent++;
  }
  await Promise.all(sends);
  if (tick % (1000 / tickMs) === 0 && CHURN > 0) {
    for (const old of churners) old.conn.close();
    churners = await Promise.all(
      Array.from({ length: CHURN }, () => Client.join(port, `c${churned++}`)),
    );
  }
  tick++;
  await new Promise((resolve) => setTimeout(resolve, tickMs)); // pacing the load, not waiting for a result
}

// Everything sent reaches every other steady client: wait for it, up to ten seconds.
const expected = sent * (CLIENTS - 1);
const received = () => steady.reduce((sum, client) => sum + client.received, 0);
const drainUntil = performance.now() + 10_000;
while (received() < expected && performance.now() < drainUntil) {
  await new Promise((resolve) => setTimeout(resolve, 50)); // polling the counters at the very end
}
const endRss = await rssKiB(server.pid);
for (const client of [...steady, ...churners]) client.conn.close();
await Promise.all(steady.map((client) => client.done));
server.kill("SIGTERM");
await server.status;

const disorder = steady.reduce((sum, client) => sum + client.disorder, 0);
console.log(`messages sent:       ${sent}`);
console.log(`deliveries expected: ${expected}`);
console.log(`deliveries received: ${received()}`);
console.log(`lost:                ${expected - received()}`);
console.log(`out of order:        ${disorder}`);
console.log(`clients churned:     ${churned}`);
console.log(
  `server RSS:          ${startRss} KiB idle, ${joinedRss} KiB with ${CLIENTS} clients, ${endRss} KiB at the end`,
);
Deno.exit(received() === expected && disorder === 0 ? 0 : 1);

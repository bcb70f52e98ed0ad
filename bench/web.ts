/**
 * The mixed room: WebSocket members beside TCP members on our server with its page (`--web`).
 * Fan-out throughput with none, half and all of the members on WebSockets, and the server's
 * memory per idle member of each kind. Run by bench/main.ts (`--scenarios web`).
 */
import { Client, connect, cpuMillis, payload, Run } from "./load.ts";
import { type ServerProcess, startOurs } from "./servers.ts";

/** Our server with its page, as `deno task web` runs it, on loopback ports. */
async function startWebServer(maxClients: number): Promise<ServerProcess & { webPort: number }> {
  const server = await startOurs(maxClients, {
    permissions: [],
    args: ["--web", "127.0.0.1:0"],
    ready: /listening on 127\.0\.0\.1:(\d+)[^]*web page on http:\/\/127\.0\.0\.1:(\d+)\//,
  });
  return Object.assign(server, { webPort: Number(server.ready[2]) });
}

/** A member on a WebSocket: sends each payload as a frame, counts what arrives as Client does. */
class SocketMember {
  readonly socket: WebSocket;
  run: Run;
  #next: Int32Array;
  #welcome = Promise.withResolvers<void>();
  readonly closed: Promise<void>;

  constructor(readonly id: number, url: string, run: Run) {
    this.run = run;
    this.#next = new Int32Array(run.senders);
    this.socket = new WebSocket(url, {
      headers: { origin: new URL(url).origin.replace("ws", "http") },
    });
    this.socket.addEventListener("message", (event) => this.#line(String(event.data)));
    this.closed = new Promise((resolve) => this.socket.addEventListener("close", () => resolve()));
  }

  async join(name: string): Promise<void> {
    await new Promise((resolve, reject) => {
      this.socket.addEventListener("open", resolve, { once: true });
      this.socket.addEventListener("error", reject, { once: true });
    });
    this.socket.send(name);
    await this.#welcome.promise;
  }

  reset(run: Run): void {
    this.run = run;
    this.#next = new Int32Array(run.senders);
  }

  send(sender: number, first: number, count: number): void {
    for (let sequence = first; sequence < first + count; sequence++) {
      this.socket.send(payload(sender, sequence).slice(0, -1));
    }
  }

  countMissing(): void {
    for (let sender = 0; sender < this.run.senders; sender++) {
      const gap = sender === this.id ? 0 : this.run.sentBy[sender]! - this.#next[sender]!;
      if (gap > 0) this.run.tally.missing += gap;
    }
  }

  #line(line: string): void {
    const hash = line.indexOf("#");
    if (hash === -1) {
      if (line.startsWith("* Welcome, ")) this.#welcome.resolve();
      return;
    }
    const [sender, sequence] = line.slice(hash + 1).split(".").map(Number) as [number, number];
    const tally = this.run.tally;
    if (!(sender < this.run.senders) || !Number.isInteger(sequence)) return void tally.corrupted++;
    const expected = this.#next[sender]!;
    if (sequence < expected) return void tally.duplicated++;
    if (sequence > expected) tally.missing += sequence - expected;
    this.#next[sender] = sequence + 1;
    tally.lastAt = performance.now();
    this.run.delivered(sender, sequence);
  }
}

type Member = Client | SocketMember;

async function joinMembers(
  server: ServerProcess & { webPort: number },
  count: number,
  socketShare: number,
  run: Run,
): Promise<Member[]> {
  const members: Member[] = [];
  const url = `ws://127.0.0.1:${server.webPort}/chat`;
  for (let id = 0; id < count; id += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, count - id) }, async (_, k) => {
        const at = id + k;
        // Every other member (or all, or none) on a WebSocket, spread evenly.
        const isSocket = Math.floor((at + 1) * socketShare) > Math.floor(at * socketShare);
        if (isSocket) {
          const member = new SocketMember(at, url, run);
          members[at] = member;
          await member.join(`w${at}`);
        } else {
          const client = new Client(at, await connect(server.port), run, 65536);
          members[at] = client;
          const welcome = client.waitFor("* Welcome, ");
          await Promise.all([client.write(`c${at}\n`), welcome]);
        }
      }),
    );
  }
  return members;
}

async function closeMembers(members: Member[]): Promise<void> {
  for (const member of members) {
    if (member instanceof SocketMember) member.socket.close();
    else {
      try {
        member.conn.close();
      } catch {
        // Closed by the server already.
      }
    }
  }
  await Promise.all(
    members.map((member) => member instanceof SocketMember ? member.closed : member.reading),
  );
}

/** Throughput with `socketShare` of the members on WebSockets: deliveries a second, CPU shares. */
async function throughput(
  size: number,
  socketShare: number,
  options: { seconds: number; inFlight: number },
) {
  await using server = await startWebServer(size);
  const window = Math.max(2, Math.ceil(options.inFlight / size));
  const members = await joinMembers(server, size, socketShare, new Run({ senders: size, window }));
  try {
    const run = new Run({ senders: size, window });
    for (const member of members) member.reset(run);
    const [serverBefore, generatorBefore, startedAt] = [
      await server.cpuMillis(),
      cpuMillis(),
      performance.now(),
    ];
    const deadline = startedAt + options.seconds * 1000;
    const sendFrom = (sender: number, count: number) => {
      const first = run.sentBy[sender]!;
      for (let sequence = first; sequence < first + count; sequence++) {
        run.due[sender * window + (sequence % window)] = size - 1;
      }
      run.sentBy[sender] = first + count;
      const member = members[sender]!;
      if (member instanceof SocketMember) member.send(sender, first, count);
      else member.send(sender, first, count).catch(() => {});
    };
    run.onComplete = (sender) => {
      if (performance.now() < deadline) sendFrom(sender, 1);
    };
    for (let sender = 0; sender < size; sender++) sendFrom(sender, window);
    const expected = () => run.sentBy.reduce((sum, sent) => sum + sent, 0) * (size - 1);
    await new Promise((resolve) => setTimeout(resolve, options.seconds * 1000));
    while (run.tally.received < expected()) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const idle = new Promise<"idle">((resolve) =>
        timer = setTimeout(() => resolve("idle"), 3000)
      );
      const outcome = await Promise.race([run.progress(), idle]);
      clearTimeout(timer);
      if (outcome === "idle") break;
    }
    const wall = performance.now() - startedAt;
    for (const member of members) member.countMissing();
    const { tally } = run;
    return {
      value: tally.received / ((tally.lastAt - startedAt) / 1000),
      serverCpu: ((await server.cpuMillis()) - serverBefore) / wall,
      generatorCpu: (cpuMillis() - generatorBefore) / wall,
      lost: tally.missing + tally.duplicated + tally.corrupted,
      isComplete: tally.received >= expected(),
    };
  } finally {
    await closeMembers(members);
  }
}

/** Server RSS per idle member, beyond the idle server: `count` members of one kind. */
async function memory(count: number, socketShare: number): Promise<number> {
  await using server = await startWebServer(count);
  const idle = await server.rssKiB();
  const members = await joinMembers(server, count, socketShare, new Run({ senders: 1, window: 1 }));
  try {
    // Two sweeps for idle peers to give back their buffers, as in the capacity scenario.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    return ((await server.rssKiB()) - idle) / count;
  } finally {
    await closeMembers(members);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** Prints the mixed room's tables. */
export async function webScenario(
  options: { runs: number; seconds: number; inFlight: number; sizes: number[]; idle: number },
): Promise<void> {
  const shares = [["all TCP", 0], ["half WebSocket", 0.5], ["all WebSocket", 1]] as const;
  console.log(`\n### Mixed room: fan-out throughput, TCP and WebSocket members\n`);
  console.log(
    `Every member sends, ${options.inFlight} messages in flight in all, for ${options.seconds} s; ` +
      "deliveries per second; cpu = server/generator share of one core.\n",
  );
  console.log(`| members | ${shares.map(([label]) => label).join(" | ")} |`);
  console.log(`|---|${shares.map(() => "---").join("|")}|`);
  for (const size of options.sizes) {
    const cells = [];
    for (const [label, share] of shares) {
      const samples = [];
      for (let i = 0; i < options.runs; i++) {
        samples.push(await throughput(size, share, options));
      }
      const middle = samples.sort((a, b) =>
        a.value - b.value
      )[Math.floor((samples.length - 1) / 2)]!;
      const lost = samples.reduce((sum, sample) => sum + sample.lost, 0);
      const stalled = samples.some((sample) => !sample.isComplete);
      cells.push(
        `${(middle.value / 1e6).toFixed(2)} M/s, cpu ${Math.round(middle.serverCpu * 100)}%/${
          Math.round(middle.generatorCpu * 100)
        }%${lost > 0 ? `, ${lost} lost` : ""}${stalled ? ", stalled" : ""}`,
      );
      console.error(
        `  web ${size} ${label}: runs ${samples.map((s) => (s.value / 1e6).toFixed(2)).join(", ")}`,
      );
    }
    console.log(`| ${size} | ${cells.join(" | ")} |`);
  }
  console.log(`\n### Mixed room: memory per idle member (${options.idle} members)\n`);
  console.log("| kind | KiB per member |");
  console.log("|---|---|");
  for (const [label, share] of [["TCP", 0], ["WebSocket", 1]] as const) {
    const samples = [];
    for (let i = 0; i < options.runs; i++) samples.push(await memory(options.idle, share));
    console.log(`| ${label} | ${median(samples).toFixed(1)} KiB |`);
    console.error(`  web memory ${label}: runs ${samples.map((s) => s.toFixed(1)).join(", ")}`);
  }
}

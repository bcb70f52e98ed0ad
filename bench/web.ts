/**
 * The mixed room: WebSocket members beside TCP members on our server with its page (`--web`).
 * A burst (every member writes all of its lines at once) with none, half and all of the members on
 * WebSockets: deliveries a second, each kind's p99, the server's memory; latency at a light load;
 * the server's memory per idle member of each kind; and a room of thousands of WebSocket members
 * that each line must reach. Run by bench/main.ts (`--scenarios web`).
 *
 * The WebSocket members are the generator's own (`bench/websocket_client.ts`: frames parsed in
 * the read buffer, as TCP lines are), or Deno's `WebSocket` with `--web-generator deno`, to show
 * whether the generator is what limits the figures.
 */
import { settle } from "./harness.ts";
import { Client, connect, cpuMillis, nowMicros, payload, Run } from "./load.ts";
import { type ServerProcess, startOurs } from "./servers.ts";
import { openWebSocket } from "./websocket_client.ts";
import { attackScenario } from "./web_attacks.ts";

/** Which WebSocket client the generator's members use. */
export type WebGenerator = "raw" | "deno";

type WebServerProcess = ServerProcess & { webPort: number; ircPort: number };

/**
 * The IRC door's channel in the bench: `&chat`, so that the generator's payload mark (`#`) is
 * found in the text of an IRC member's line, not in its channel.
 */
const IRC_CHANNEL = "&chat";

/** Which door the members that are not on TCP come by: the page's WebSocket, or IRC. */
export type OtherDoor = "websocket" | "irc";

/** An IRC member of the generator: its lines are PRIVMSGs to the channel. */
class IrcClient extends Client {
  override send(sender: number, first: number, count: number): Promise<void> {
    let last: Promise<void> = Promise.resolve();
    for (let sequence = first; sequence < first + count; sequence++) {
      last = this.write(`PRIVMSG ${IRC_CHANNEL} :${payload(sender, sequence)}`);
    }
    return last;
  }
}

/**
 * Our server with its page, as `deno task web` runs it, on loopback ports, with no per-address
 * limit, flood control or join rate: the generator's members all come from one address.
 */
async function startWebServer(maxClients: number): Promise<WebServerProcess> {
  const server = await startOurs(maxClients, {
    permissions: [],
    args: [
      "--web",
      "127.0.0.1:0",
      "--irc",
      "127.0.0.1:0",
      "--irc-channel",
      IRC_CHANNEL,
      "--max-per-address",
      "0",
      "--flood-rate",
      "0",
      "--join-rate",
      "0",
    ],
    ready:
      /listening on 127\.0\.0\.1:(\d+)[^]*web page on http:\/\/127\.0\.0\.1:(\d+)\/[^]*irc on 127\.0\.0\.1:(\d+)/,
  });
  return Object.assign(server, {
    webPort: Number(server.ready[2]),
    ircPort: Number(server.ready[3]),
  });
}

/**
 * A member on Deno's `WebSocket`: sends each line as a frame, splits each frame's text on LF, and
 * counts what arrives as Client does (on strings: it is the slower of the two generators).
 */
class DenoSocketMember {
  readonly socket: WebSocket;
  run: Run;
  #next: Int32Array;
  #welcome = Promise.withResolvers<void>();
  readonly reading: Promise<void>;

  constructor(readonly id: number, port: number, run: Run) {
    this.run = run;
    this.#next = new Int32Array(run.senders);
    this.socket = new WebSocket(`ws://127.0.0.1:${port}/chat`, {
      headers: { origin: `http://127.0.0.1:${port}` },
    });
    this.socket.addEventListener("message", (event) => {
      for (const line of String(event.data).split("\n")) if (line) this.#line(line);
    });
    this.reading = new Promise((resolve) => this.socket.addEventListener("close", () => resolve()));
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

  /** Sends each line of `bytes` (whole lines, each ending in LF) as a frame. */
  write(bytes: Uint8Array): Promise<void> {
    for (const line of new TextDecoder().decode(bytes).split("\n")) {
      if (line) this.socket.send(line);
    }
    return Promise.resolve();
  }

  send(sender: number, first: number, count: number): Promise<void> {
    for (let sequence = first; sequence < first + count; sequence++) {
      this.socket.send(payload(sender, sequence).slice(0, -1));
    }
    return Promise.resolve();
  }

  countMissing(): void {
    for (let sender = 0; sender < this.run.senders; sender++) {
      const gap = sender === this.id ? 0 : this.run.sentBy[sender]! - this.#next[sender]!;
      if (gap > 0) this.run.tally.missing += gap;
    }
  }

  close(): void {
    this.socket.close();
  }

  #line(line: string): void {
    const hash = line.indexOf("#");
    if (hash === -1) {
      if (line.startsWith("* Welcome, ")) this.#welcome.resolve();
      return;
    }
    const [sender, sequence, sentAt] = line.slice(hash + 1).split(".").map(Number) as number[];
    const tally = this.run.tally;
    if (!(sender! < this.run.senders) || !Number.isInteger(sequence)) {
      return void tally.corrupted++;
    }
    const expected = this.#next[sender!]!;
    if (sequence! < expected) return void tally.duplicated++;
    if (sequence! > expected) tally.missing += sequence! - expected;
    this.#next[sender!] = sequence! + 1;
    tally.lastAt = performance.now();
    if (this.run.keepLatencies) tally.latencies.push(nowMicros() - sentAt!);
    this.run.delivered(sender!, sequence!);
  }
}

/** A member of the mixed room, on TCP or another door (a WebSocket or IRC), and which. */
interface Member {
  isSocket: boolean;
  client: Client | DenoSocketMember;
}

/**
 * Joins `count` members, `socketShare` of them on WebSockets spread evenly among them, 100 at a
 * time; `runFor` says which run each kind counts in.
 */
async function joinMembers(
  server: WebServerProcess,
  count: number,
  options: {
    socketShare: number;
    generator: WebGenerator;
    bufferBytes: number;
    runFor: (isSocket: boolean) => Run;
    other?: OtherDoor;
  },
): Promise<Member[]> {
  const members: Member[] = [];
  const { socketShare, generator, bufferBytes, runFor } = options;
  const isIrc = options.other === "irc";
  try {
    for (let id = 0; id < count; id += 100) {
      await Promise.all(
        Array.from({ length: Math.min(100, count - id) }, async (_, k) => {
          const at = id + k;
          const isSocket = Math.floor((at + 1) * socketShare) > Math.floor(at * socketShare);
          const run = runFor(isSocket);
          if (isSocket && isIrc) {
            const client = new IrcClient(at, await connect(server.ircPort), run, bufferBytes);
            members[at] = { isSocket, client };
            const welcome = client.waitFor(":chat 366 ");
            await Promise.all([client.write(`NICK i${at}\r\nUSER i 0 * :i\r\n`), welcome]);
            return;
          }
          if (isSocket && generator === "deno") {
            const member = new DenoSocketMember(at, server.webPort, run);
            members[at] = { isSocket, client: member };
            return await member.join(`w${at}`);
          }
          const conn = isSocket
            ? await openWebSocket({ port: server.webPort })
            : await connect(server.port);
          const client = new Client(at, conn, run, bufferBytes);
          members[at] = { isSocket, client };
          const welcome = client.waitFor("* Welcome, ");
          await Promise.all([client.write(`${isSocket ? "w" : "c"}${at}\n`), welcome]);
        }),
      );
    }
  } catch (error) {
    await closeMembers(members.filter(Boolean));
    throw error;
  }
  return members;
}

async function closeMembers(members: Member[]): Promise<void> {
  for (const { client } of members) {
    try {
      if (client instanceof Client) client.conn.close();
      else client.close();
    } catch {
      // Closed by the server already.
    }
  }
  await Promise.all(members.map(({ client }) => client.reading));
}

/** One run's figures for a room. */
export interface RoomSample {
  /** Deliveries a second, from the first write to the last delivery. */
  rate: number;
  /** p50 and p99 of TCP and of WebSocket members, in ms (NaN for a kind with no members). */
  tcpP50: number;
  tcpP99: number;
  socketP50: number;
  socketP99: number;
  serverCpu: number;
  generatorCpu: number;
  /** The server's CPU time per delivery, in µs: its cost, whatever limited the rate. */
  serverMicros: number;
  /** The generator's CPU time per delivery, in µs: what it can drive is about 1 / this. */
  generatorMicros: number;
  /** Lost, duplicated and corrupted deliveries together. */
  lost: number;
  /** Server RSS after the burst and its peak over it, in KiB. */
  rssKiB: number;
  peakKiB: number;
}

function percentile(latencies: number[], q: number): number {
  if (latencies.length === 0) return NaN;
  const sorted = Float64Array.from(latencies).sort();
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! / 1000;
}

/**
 * Each member's lines as one buffer: `lines` lines of `bytes` bytes before the LF (for an IRC
 * member, each a PRIVMSG of that text).
 */
function burstChunk(sender: number, lines: number, bytes: number, isIrc = false): Uint8Array {
  const text = Array.from({ length: lines }, (_, k) => {
    const line = payload(sender, k);
    const said = "x".repeat(Math.max(0, bytes + 1 - line.length)) + line;
    return isIrc ? `PRIVMSG ${IRC_CHANNEL} :${said}` : said;
  });
  return new TextEncoder().encode(text.join(""));
}

/** Waits until `isDone`, or until neither run has had a delivery for 3 s. */
async function settleBoth(runs: Run[], isDone: () => boolean): Promise<boolean> {
  const both = new Run({ senders: 1, window: 1 });
  for (const run of runs) {
    const onProgress = () => {
      both.delivered(0, 0);
      if (!isDone()) run.progress().then(onProgress);
    };
    run.progress().then(onProgress);
  }
  return await settle(both, isDone);
}

/**
 * The issue's burst: `size` members, `socketShare` of them on WebSockets, each writing `lines`
 * lines of `bytes` bytes at once, every member reading as fast as it can.
 */
async function burst(
  size: number,
  socketShare: number,
  options: { lines: number; bytes: number; generator: WebGenerator; other?: OtherDoor },
): Promise<RoomSample> {
  await using server = await startWebServer(size);
  const { lines, bytes, generator, other = "websocket" } = options;
  const tcp = new Run({ senders: size, window: 1 });
  const socket = new Run({ senders: size, window: 1 });
  tcp.keepLatencies = socket.keepLatencies = true;
  const members = await joinMembers(server, size, {
    socketShare,
    generator,
    bufferBytes: 65536,
    runFor: (isSocket) => isSocket ? socket : tcp,
    other,
  });
  try {
    for (const { isSocket, client } of members) client.reset(isSocket ? socket : tcp);
    const chunks = members.map(({ isSocket }, sender) =>
      burstChunk(sender, lines, bytes, isSocket && other === "irc")
    );
    const sockets = members.filter((member) => member.isSocket).length;
    const expected = size * lines * (size - 1);
    const received = () => tcp.tally.received + socket.tally.received;
    (globalThis as { gc?: () => void }).gc?.();
    await server.resetPeak();
    const [serverBefore, generatorBefore, startedAt] = [
      await server.cpuMillis(),
      cpuMillis(),
      performance.now(),
    ];
    for (let sender = 0; sender < size; sender++) {
      tcp.sentBy[sender] = socket.sentBy[sender] = lines;
      members[sender]!.client.write(chunks[sender]!).catch(() => {}); // counted as lost below
    }
    await settleBoth([tcp, socket], () => received() >= expected);
    const wall = performance.now() - startedAt;
    const serverMillis = (await server.cpuMillis()) - serverBefore;
    const serverCpu = serverMillis / wall;
    const generatorMillis = cpuMillis() - generatorBefore;
    const generatorCpu = generatorMillis / wall;
    for (const { client } of members) client.countMissing();
    const lastAt = Math.max(tcp.tally.lastAt, socket.tally.lastAt);
    const tally = (key: "missing" | "duplicated" | "corrupted") =>
      tcp.tally[key] + socket.tally[key];
    return {
      rate: received() / ((lastAt - startedAt) / 1000),
      tcpP50: percentile(tcp.tally.latencies, 0.5),
      tcpP99: percentile(tcp.tally.latencies, 0.99),
      socketP50: sockets > 0 ? percentile(socket.tally.latencies, 0.5) : NaN,
      socketP99: sockets > 0 ? percentile(socket.tally.latencies, 0.99) : NaN,
      serverCpu,
      generatorCpu,
      serverMicros: serverMillis * 1000 / received(),
      generatorMicros: generatorMillis * 1000 / received(),
      lost: tally("missing") + tally("duplicated") + tally("corrupted") +
        Math.max(0, expected - received()),
      rssKiB: await server.rssKiB(),
      peakKiB: await server.rssKiB("VmHWM"),
    };
  } finally {
    await closeMembers(members);
  }
}

/** Latency at a light load: `size` members, half on WebSockets, `rate` lines a second in all. */
async function light(
  size: number,
  options: { rate: number; seconds: number; generator: WebGenerator },
): Promise<RoomSample> {
  await using server = await startWebServer(size);
  const tcp = new Run({ senders: size, window: 1 });
  const socket = new Run({ senders: size, window: 1 });
  tcp.keepLatencies = socket.keepLatencies = true;
  const members = await joinMembers(server, size, {
    socketShare: 0.5,
    generator: options.generator,
    bufferBytes: 65536,
    runFor: (isSocket) => isSocket ? socket : tcp,
  });
  try {
    for (const { isSocket, client } of members) client.reset(isSocket ? socket : tcp);
    const count = options.rate * options.seconds;
    const [serverBefore, generatorBefore, startedAt] = [
      await server.cpuMillis(),
      cpuMillis(),
      performance.now(),
    ];
    for (let k = 0; k < count; k++) {
      const wait = startedAt + (k * 1000) / options.rate - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait)); // the load's pace
      const sender = k % size;
      members[sender]!.client.send(sender, tcp.sentBy[sender]!, 1).catch(() => {});
      tcp.sentBy[sender]!++;
      socket.sentBy[sender]!++;
    }
    const expected = count * (size - 1);
    const received = () => tcp.tally.received + socket.tally.received;
    await settleBoth([tcp, socket], () => received() >= expected);
    const wall = performance.now() - startedAt;
    for (const { client } of members) client.countMissing();
    const serverMillis = (await server.cpuMillis()) - serverBefore;
    return {
      rate: received() / (wall / 1000),
      tcpP50: percentile(tcp.tally.latencies, 0.5),
      tcpP99: percentile(tcp.tally.latencies, 0.99),
      socketP50: percentile(socket.tally.latencies, 0.5),
      socketP99: percentile(socket.tally.latencies, 0.99),
      serverCpu: serverMillis / wall,
      generatorCpu: (cpuMillis() - generatorBefore) / wall,
      serverMicros: serverMillis * 1000 / received(),
      generatorMicros: (cpuMillis() - generatorBefore) * 1000 / received(),
      lost: tcp.tally.missing + socket.tally.missing + Math.max(0, expected - received()),
      rssKiB: await server.rssKiB(),
      peakKiB: await server.rssKiB("VmHWM"),
    };
  } finally {
    await closeMembers(members);
  }
}

/**
 * `count` members of one kind join; then one line said by the first must reach all the others
 * (behind every join notice still on its way), and once the room is quiet, the server's RSS per
 * idle member beyond the idle server.
 */
async function memory(
  count: number,
  options: { isSocket: boolean; generator: WebGenerator; other?: OtherDoor },
): Promise<{ kiB: number; isReached: boolean; joinSeconds: number; lineSeconds: number }> {
  await using server = await startWebServer(count);
  const idle = await server.rssKiB();
  const run = new Run({ senders: 1, window: 1 });
  const joinedAt = performance.now();
  const members = await joinMembers(server, count, {
    socketShare: options.isSocket ? 1 : 0,
    generator: options.generator,
    bufferBytes: 4096,
    runFor: () => run,
    ...(options.other ? { other: options.other } : {}),
  });
  const joinSeconds = (performance.now() - joinedAt) / 1000;
  try {
    const saidAt = performance.now();
    run.sentBy[0] = 1;
    await members[0]!.client.send(0, 0, 1);
    // The line waits behind the join notices (n² of them): a long wait for its first delivery.
    await settle(run, () => run.tally.received >= count - 1, 120_000);
    const lineSeconds = (run.tally.lastAt - saidAt) / 1000;
    // Two sweeps for idle peers to give back their buffers, as in the capacity scenario.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const kiB = ((await server.rssKiB()) - idle) / count;
    return { kiB, isReached: run.tally.received === count - 1, joinSeconds, lineSeconds };
  } finally {
    await closeMembers(members);
  }
}

function median(values: number[]): number {
  const sorted = values.filter((value) => !Number.isNaN(value)).sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** "1.23 (1.01–1.40)": the median and the range. */
function spread(values: number[], digits: number): string {
  const finite = values.filter((value) => !Number.isNaN(value));
  if (finite.length === 0) return "–";
  const [low, high] = [Math.min(...finite), Math.max(...finite)];
  const middle = median(finite).toFixed(digits);
  return low === high ? middle : `${middle} (${low.toFixed(digits)}–${high.toFixed(digits)})`;
}

const percent = (share: number) => `${Math.round(share * 100)}%`;

/** Options of the web scenario, from bench/main.ts's flags. */
export interface WebScenarioOptions {
  runs: number;
  /** Room sizes of the burst. */
  sizes: number[];
  /** Idle members of each kind for the memory figure. */
  idle: number;
  /** WebSocket members that one line must reach (0: skip). */
  capacity: number;
  /** Seconds of each attack on the page and on the chat's port. */
  attackSeconds: number;
  /** Which parts to run: burst, light, memory, capacity, attacks. */
  parts: ReadonlySet<string>;
  generator: WebGenerator;
}

/** Prints the mixed room's tables. */
export async function webScenario(options: WebScenarioOptions): Promise<void> {
  const { runs } = options;
  if (options.parts.has("burst")) await bursts(options);
  if (options.parts.has("light")) await lightLoad(options);
  if (options.parts.has("memory")) await idleMemory(options);
  if (options.parts.has("capacity")) await capacity(options);
  if (options.parts.has("attacks")) {
    await attackScenario({ runs, seconds: options.attackSeconds });
  }
}

async function bursts(options: WebScenarioOptions): Promise<void> {
  const { runs, generator } = options;
  const shares = [
    ["all TCP", 0, "websocket"],
    ["half WebSocket", 0.5, "websocket"],
    ["all WebSocket", 1, "websocket"],
    ["half IRC", 0.5, "irc"],
    ["all IRC", 1, "irc"],
  ] as const;
  const lines = 200;
  const bytes = 80;
  console.log(
    `\n### Mixed room: a burst, TCP, WebSocket and IRC members (${generator} generator)\n`,
  );
  console.log(
    `Every member writes ${lines} lines of ${bytes} bytes at once; deliveries a second from the ` +
      "first write to the last delivery, p99 of each kind in ms, server RSS after the burst " +
      "(peak), cpu = server/generator share of one core, and the CPU time per delivery of the " +
      "server (what a delivery costs it, whatever limited the rate) and of the generator (1 / " +
      "this: the millions of deliveries a second one core of it can take). Medians of " +
      `${runs} runs (range); the ratio is against all TCP in the same runs.\n`,
  );
  console.log(
    "| members | room | deliveries/s | ratio | p99 TCP | p99 other | RSS after | cpu | " +
      "µs/delivery server/generator |",
  );
  console.log("|---|---|---|---|---|---|---|---|---|");
  for (const size of options.sizes) {
    // Interleaved, so that a noisy moment of the machine touches every kind alike.
    const samples = shares.map(() => [] as RoomSample[]);
    for (let i = 0; i < runs; i++) {
      for (const [k, [, share, other]] of shares.entries()) {
        samples[k]!.push(await burst(size, share, { lines, bytes, generator, other }));
      }
    }
    const tcpRate = median(samples[0]!.map((s) => s.rate));
    for (const [k, [label]] of shares.entries()) {
      const each = samples[k]!;
      const rate = median(each.map((s) => s.rate));
      const lost = each.reduce((sum, s) => sum + s.lost, 0);
      console.log(
        `| ${size} | ${label} | ${spread(each.map((s) => s.rate / 1e6), 2)} M${
          lost > 0 ? `, ${lost} lost` : ""
        } | ${(rate / tcpRate).toFixed(2)}x | ${spread(each.map((s) => s.tcpP99), 0)} | ${
          spread(each.map((s) => s.socketP99), 0)
        } | ${(median(each.map((s) => s.rssKiB)) / 1024).toFixed(0)} MiB (${
          (median(each.map((s) => s.peakKiB)) / 1024).toFixed(0)
        }) | ${percent(median(each.map((s) => s.serverCpu)))}/${
          percent(median(each.map((s) => s.generatorCpu)))
        } | ${spread(each.map((s) => s.serverMicros), 2)} / ${
          median(each.map((s) => s.generatorMicros)).toFixed(2)
        } |`,
      );
    }
  }
}

async function lightLoad({ runs, generator }: WebScenarioOptions): Promise<void> {
  console.log(`\n### Mixed room: latency at a light load (10 members, half WebSocket)\n`);
  const paced = [];
  for (let i = 0; i < runs; i++) paced.push(await light(10, { rate: 200, seconds: 3, generator }));
  console.log("| kind | p50 ms | p99 ms |");
  console.log("|---|---|---|");
  console.log(
    `| TCP | ${spread(paced.map((s) => s.tcpP50), 2)} | ${spread(paced.map((s) => s.tcpP99), 2)} |`,
  );
  console.log(
    `| WebSocket | ${spread(paced.map((s) => s.socketP50), 2)} | ${
      spread(paced.map((s) => s.socketP99), 2)
    } |`,
  );
  const pacedLost = paced.reduce((sum, s) => sum + s.lost, 0);
  if (pacedLost > 0) console.log(`\n${pacedLost} deliveries lost.`);
}

async function idleMemory(options: WebScenarioOptions): Promise<void> {
  const { runs, generator } = options;
  console.log(`\n### Mixed room: memory per idle member (${options.idle} members)\n`);
  console.log("| kind | KiB per member | ratio |");
  console.log("|---|---|---|");
  const kinds = [
    ["TCP", false, "websocket"],
    ["WebSocket", true, "websocket"],
    ["IRC", true, "irc"],
  ] as const;
  const idle = kinds.map(() => [] as number[]);
  for (let i = 0; i < runs; i++) {
    for (const [k, [, isSocket, other]] of kinds.entries()) {
      idle[k]!.push((await memory(options.idle, { isSocket, generator, other })).kiB);
    }
  }
  for (const [k, [label]] of kinds.entries()) {
    console.log(
      `| ${label} | ${spread(idle[k]!, 1)} | ${
        (median(idle[k]!) / median(idle[0]!)).toFixed(1)
      }x |`,
    );
  }
}

async function capacity({ capacity, generator }: WebScenarioOptions): Promise<void> {
  const held = await memory(capacity, { isSocket: true, generator });
  console.log(
    `\n${capacity} WebSocket members joined in ${held.joinSeconds.toFixed(1)} s; one line ${
      held.isReached
        ? `reached all of them in ${held.lineSeconds.toFixed(1)} s`
        : "did NOT reach all of them"
    }, behind the join notices; then ${held.kiB.toFixed(1)} KiB each.`,
  );
}

/**
 * `deno task bench`: our server against the seed's Java design and `ncat --chat`, in one run, on
 * loopback. Every figure is the median of several runs, with the ratio to each baseline measured in
 * the same run and the CPU share of the server and of the load generator beside it.
 *
 *   deno task bench [--runs 3] [--seconds 4]
 *                   [--scenarios throughput,latency,slow,capacity,wire,cluster,web,store]
 *                   [--clients 10,100,500,1000] [--capacity 10000] [--servers ours,seed,ncat]
 *                   [--in-flight 2000] [--cluster-clients 100,500] [--web-clients 100,500]
 *                   [--web-idle 2000] [--store-clients 10,100,500]
 *                   [--seed-dir ../shared/baselines/java-seed]
 */
import { parseArgs } from "node:util";
import { Client, connect, cpuMillis, Run } from "./load.ts";
import {
  cluster,
  ClusterProcess,
  type Contender,
  NCAT,
  OURS,
  seed,
  type ServerProcess,
} from "./servers.ts";
import { webScenario } from "./web.ts";
import { storeScenario } from "./store.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    seconds: { type: "string", default: "4" },
    scenarios: {
      type: "string",
      default: "throughput,latency,slow,capacity,wire,cluster,web,store",
    },
    "store-clients": { type: "string", default: "10,100,500" },
    "web-clients": { type: "string", default: "100,500" },
    "web-idle": { type: "string", default: "2000" },
    "cluster-clients": { type: "string", default: "100,500" },
    clients: { type: "string", default: "10,100,500,1000" },
    capacity: { type: "string", default: "10000" },
    "in-flight": { type: "string", default: "2000" },
    servers: { type: "string", default: "ours,seed,ncat" },
    "seed-dir": {
      type: "string",
      default: new URL("../../shared/baselines/java-seed", import.meta.url).pathname,
    },
  },
});
const RUNS = Number(values.runs);
const SECONDS = Number(values.seconds);
const SIZES = values.clients.split(",").map(Number);
const SCENARIOS = new Set(values.scenarios.split(","));
const IN_FLIGHT = Number(values["in-flight"]);

/** One measured run: the figure, and the CPU each side used over its wall time. */
interface Sample {
  value: number;
  serverCpu: number;
  generatorCpu: number;
  note?: string;
  extra?: Record<string, number>;
  /** For a cluster: the CPU share of each server, then of Redis. */
  parts?: number[];
}

/** Measures the CPU share of the server and of this process over what `body` does. */
async function measured(
  server: ServerProcess,
  body: () => Promise<Omit<Sample, "serverCpu" | "generatorCpu">>,
) {
  // Each measurement starts from a clean heap here, whatever the scenarios before it left.
  (globalThis as { gc?: () => void }).gc?.();
  const partsOf = () => server instanceof ClusterProcess ? server.cpuEach() : Promise.resolve([]);
  const [serverBefore, partsBefore, generatorBefore, startedAt] = [
    await server.cpuMillis(),
    await partsOf(),
    cpuMillis(),
    performance.now(),
  ];
  const result = await body();
  const wall = performance.now() - startedAt;
  const serverCpu = ((await server.cpuMillis().catch(() => serverBefore)) - serverBefore) / wall;
  const parts = (await partsOf().catch(() => partsBefore)).map((ms, i) =>
    (ms - partsBefore[i]!) / wall
  );
  return {
    ...result,
    serverCpu,
    generatorCpu: (cpuMillis() - generatorBefore) / wall,
    ...(parts.length > 0 ? { parts } : {}),
  };
}

/** Opens and joins `count` clients for `run`; joins in parallel unless the server cannot take it. */
async function joinClients(
  contender: Contender,
  server: ServerProcess,
  count: number,
  run: Run,
  options: { bufferBytes?: number; deadline?: number } = {},
): Promise<Client[]> {
  const clients: Client[] = [];
  const joinOne = async (id: number) => {
    const port = server.portFor(id);
    const client = new Client(id, await connect(port), run, options.bufferBytes ?? 65536);
    // The seed writes a join notice to its members in join order: the newest one hears it last,
    // so once it has, the joiner's thread has finished iterating the member list.
    client.observer = clients[id - 1];
    clients[id] = client;
    await contender.dialect.join(client, `c${id}`);
  };
  const batch = contender.joinBatch;
  for (let id = 0; id < count; id += batch) {
    if (options.deadline && performance.now() > options.deadline) break;
    const joins = Promise.all(
      Array.from({ length: Math.min(batch, count - id) }, (_, k) => joinOne(id + k)),
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    const tooLong = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`clients ${id} to ${id + batch - 1} did not get in within 30 s`)),
        30_000,
      );
    });
    try {
      await Promise.race([joins, tooLong]);
    } catch (error) {
      await closeAll(clients.filter(Boolean));
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }
  return clients;
}

async function closeAll(clients: Client[]): Promise<void> {
  for (const client of clients) {
    try {
      client.conn.close();
    } catch {
      // Closed by the server already.
    }
  }
  await Promise.all(clients.map((client) => client.reading));
}

/** Waits until `isDone`, or until no delivery has come for `idleMs`; returns whether it is done. */
async function settle(run: Run, isDone: () => boolean, idleMs = 3000): Promise<boolean> {
  while (!isDone()) {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const idle = new Promise<"idle">((resolve) =>
      timer = setTimeout(() => resolve("idle"), idleMs)
    );
    const outcome = await Promise.race([run.progress(), idle]);
    clearTimeout(timer);
    if (outcome === "idle") return isDone();
  }
  return true;
}

/**
 * Fan-out throughput: every client sends, each keeping a window of messages in flight (a message
 * is out of the window once every other client has it), for `SECONDS`; then the rest drains.
 * The figure is deliveries a second from the first send to the last delivery.
 */
async function throughput(
  contender: Contender,
  size: number,
  options: { idle?: boolean } = {},
): Promise<Sample> {
  await using server = await contender.start({ maxClients: size + 1 });
  // About IN_FLIGHT messages in flight in all (2,000 by default: some dozens of KiB queued per
  // recipient). More in flight flatters ncat, which then relays more lines per read under one
  // prefix; BENCHMARKS.md shows both.
  const window = Math.max(2, Math.ceil(IN_FLIGHT / size));
  const joinRun = new Run({ senders: size, window });
  const clients = await joinClients(contender, server, size, joinRun);
  // The slow-reader scenario adds one member that never reads.
  const sloth = options.idle ? await connect(server.port) : undefined;
  if (sloth) await sloth.write(new TextEncoder().encode("sloth\n"));
  try {
    return await measured(server, async () => {
      const run = new Run({ senders: size, window });
      for (const client of clients) client.reset(run);
      const deadline = performance.now() + SECONDS * 1000;
      const credit = new Int32Array(size);
      let scheduled = false;
      const flush = () => {
        scheduled = false;
        if (performance.now() > deadline) return;
        for (let sender = 0; sender < size; sender++) {
          if (credit[sender] === 0) continue;
          sendFrom(sender, credit[sender]!);
          credit[sender] = 0;
        }
      };
      const sendFrom = (sender: number, count: number) => {
        const first = run.sentBy[sender]!;
        for (let sequence = first; sequence < first + count; sequence++) {
          run.due[sender * window + (sequence % window)] = size - 1;
        }
        run.sentBy[sender] = first + count;
        clients[sender]!.send(sender, first, count).catch(() => {});
      };
      run.onComplete = (sender) => {
        credit[sender]!++;
        if (!scheduled) {
          scheduled = true;
          queueMicrotask(flush);
        }
      };
      const startedAt = performance.now();
      for (let sender = 0; sender < size; sender++) sendFrom(sender, window);
      const expected = () => run.sentBy.reduce((sum, sent) => sum + sent, 0) * (size - 1);
      await new Promise((resolve) => setTimeout(resolve, SECONDS * 1000));
      const isComplete = await settle(run, () => run.tally.received >= expected());
      for (const client of clients) client.countMissing();
      const { tally } = run;
      const seconds = (tally.lastAt - startedAt) / 1000;
      return {
        value: tally.received / seconds,
        ...(isComplete ? {} : { note: "stalled" }),
        extra: {
          expected: expected(),
          received: tally.received,
          missing: tally.missing,
          duplicated: tally.duplicated,
          corrupted: tally.corrupted,
          merged: tally.merged,
        },
      };
    });
  } finally {
    sloth?.close();
    await closeAll(clients);
  }
}

/** Latency at a fixed 100 messages a second across the room: send-to-receipt times of every delivery. */
/** CPU per relayed line with two clients, each line to the other: the server's, then Redis's. */
async function lineCost(contender: Contender): Promise<Sample> {
  const sample = await throughput(contender, 2);
  const [server = sample.serverCpu, redis] = sample.parts ?? [];
  const perLine = (share: number) => share / sample.value * 1e6;
  const note = redis === undefined ? sample.note : `redis ${perLine(redis).toFixed(1)} µs`;
  return { ...sample, value: perLine(server), ...(note ? { note } : {}) };
}

async function latency(contender: Contender, size: number): Promise<Sample> {
  await using server = await contender.start({ maxClients: size });
  const rate = 100;
  const count = rate * SECONDS;
  const clients = await joinClients(contender, server, size, new Run({ senders: size, window: 1 }));
  try {
    return await measured(server, async () => {
      const run = new Run({ senders: size, window: 1 });
      run.keepLatencies = true;
      for (const client of clients) client.reset(run);
      const startedAt = performance.now();
      for (let k = 0; k < count; k++) {
        const due = startedAt + (k * 1000) / rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait)); // the pace of the load
        const sender = k % size;
        clients[sender]!.send(sender, run.sentBy[sender]!, 1).catch(() => {});
        run.sentBy[sender]!++;
      }
      await settle(run, () => run.tally.received >= count * (size - 1));
      for (const client of clients) client.countMissing();
      const sorted = Float64Array.from(run.tally.latencies).sort();
      const at = (q: number) =>
        sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! / 1000;
      return {
        value: at(0.99),
        extra: {
          p50: at(0.5),
          p99: at(0.99),
          max: sorted.at(-1)! / 1000,
          missing: run.tally.missing,
        },
      };
    });
  } finally {
    await closeAll(clients);
  }
}

/**
 * Capacity: `size` idle members, then one message that must reach all of them. Resident memory
 * per connection is the server's growth over its idle self, divided by the members it holds.
 */
async function capacity(contender: Contender, size: number): Promise<Sample> {
  await using server = await contender.start({ maxClients: size });
  const idleRss = await server.rssKiB();
  const joinDeadline = performance.now() + 120_000;
  const joinRun = new Run({ senders: 1, window: 1 });
  let clients: Client[] = [];
  let note: string | undefined;
  try {
    clients = await joinClients(contender, server, size, joinRun, {
      bufferBytes: 4096,
      deadline: joinDeadline,
    });
  } catch (error) {
    note = `joins failed: ${error instanceof Error ? error.message : error}`;
  }
  const joined = clients.filter(Boolean).length;
  if (joined < size) note ??= `${joined} of ${size} joined in 120 s`;
  try {
    if (!(await server.isAlive())) {
      const why = `the server exited${note ? ` (${note})` : ""}`;
      return { value: NaN, serverCpu: 0, generatorCpu: 0, note: why };
    }
    return await measured(server, async () => {
      const run = new Run({ senders: 1, window: 1 });
      for (const client of clients) client?.reset(run);
      const sentAt = performance.now();
      run.sentBy[0] = 1;
      await clients[0]!.send(0, 0, 1);
      const reachedAll = await settle(run, () => run.tally.received >= joined - 1, 10_000);
      // Lines reach a client in order, so once the message is everywhere, every join notice
      // before it has been delivered too: the server holds the connections and nothing in
      // flight. Give idle peers two sweeps to hand back their buffers, then read its memory.
      await new Promise((resolve) => setTimeout(resolve, 2500));
      const fullRss = await server.rssKiB();
      const kibPerConnection = (fullRss - idleRss) / Math.max(1, joined);
      return {
        value: kibPerConnection,
        ...(note || !reachedAll
          ? { note: note ?? `reached ${run.tally.received} of ${joined - 1}` }
          : {}),
        extra: {
          joined,
          reached: run.tally.received,
          reachMs: run.tally.lastAt - sentAt,
          idleRssKiB: idleRss,
          fullRssKiB: fullRss,
          peakRssKiB: await server.rssKiB("VmHWM"),
        },
      };
    });
  } finally {
    await closeAll(clients.filter(Boolean));
  }
}

/** Wire economy: data segments per message per recipient when idle, counted by tshark on loopback. */
async function wire(contender: Contender): Promise<Sample> {
  await using server = await contender.start({ maxClients: 4 });
  const size = 4;
  const messages = 20;
  const clients = await joinClients(contender, server, size, new Run({ senders: size, window: 1 }));
  const capture = (await exec("mktemp", ["--suffix=.pcap"])).trim();
  const tshark = new Deno.Command("tshark", {
    args: ["-i", "lo", "-f", `tcp src port ${server.port}`, "-w", capture],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr = tshark.stderr.pipeThrough(new TextDecoderStream()).getReader();
  // "Capturing on" comes before dumpcap really captures; "Capture started" comes once it does.
  for (let seen = ""; !seen.includes("Capture started");) seen += (await stderr.read()).value ?? "";
  try {
    return await measured(server, async () => {
      const run = new Run({ senders: size, window: 1 });
      for (const client of clients) client.reset(run);
      for (let k = 0; k < messages; k++) {
        run.sentBy[0] = k + 1;
        await clients[0]!.send(0, k, 1);
        await settle(run, () => run.tally.received >= (k + 1) * (size - 1));
      }
      // dumpcap hands packets over on a buffer timeout and has no immediate mode: give it a
      // second, or a SIGINT loses what it has not written yet.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      tshark.kill("SIGINT");
      await tshark.status;
      const lengths = await exec("tshark", [
        "-r",
        capture,
        "-Y",
        "tcp.len > 0",
        "-T",
        "fields",
        "-e",
        "tcp.len",
      ]);
      const segments = lengths.split("\n").filter(Boolean).length;
      return { value: segments / (messages * (size - 1)), extra: { segments } };
    });
  } finally {
    try {
      tshark.kill("SIGKILL");
    } catch {
      // Stopped above.
    }
    await tshark.status;
    stderr.cancel().catch(() => {});
    await exec("rm", ["-f", capture]);
    await closeAll(clients);
  }
}

async function exec(command: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(command, { args, stdin: "null" })
    .output();
  if (code !== 0) throw new Error(`${command} failed: ${new TextDecoder().decode(stderr)}`);
  return new TextDecoder().decode(stdout);
}

function median(samples: Sample[]): Sample {
  const sorted = [...samples].sort((a, b) => (a.value || 0) - (b.value || 0));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** The contenders that can run here, each said why not if one cannot. */
async function available(candidates: Contender[]): Promise<Contender[]> {
  const contenders: Contender[] = [];
  for (const contender of candidates) {
    const reason = await contender.unavailable();
    if (reason) console.log(`skipping ${contender.name}: ${reason}`);
    else contenders.push(contender);
  }
  return contenders;
}

const allContenders = await available(
  values.servers.split(",").map((name) =>
    name === "ours" ? OURS : name === "ncat" ? NCAT : seed(values["seed-dir"])
  ),
);

/** Runs a measurement RUNS times for each contender and prints one row with medians and ratios. */
async function row(
  label: string,
  unit: string,
  measure: (contender: Contender) => Promise<Sample>,
  options: {
    higherIsBetter: boolean;
    format: (value: number) => string;
    runs?: number;
    among?: Contender[];
  },
) {
  const contenders = options.among ?? allContenders;
  const medians = new Map<string, Sample & { all: number[] }>();
  for (const contender of contenders) {
    const samples: Sample[] = [];
    for (let i = 0; i < (options.runs ?? RUNS); i++) {
      try {
        samples.push(await measure(contender));
      } catch (error) {
        samples.push({
          value: NaN,
          serverCpu: 0,
          generatorCpu: 0,
          note: `failed: ${error instanceof Error ? error.message : error}`,
        });
      }
    }
    const middle = median(samples);
    // Losses in any run, not only the median one, show in the table.
    const damaged = samples.reduce(
      (sum, { extra = {} }) =>
        sum + (extra.missing ?? 0) + (extra.duplicated ?? 0) + (extra.corrupted ?? 0),
      0,
    );
    const note = damaged > 0
      ? [middle.note, `${damaged} lost, duplicated or corrupted over ${samples.length} runs`]
        .filter(Boolean).join(", ")
      : middle.note;
    medians.set(contender.name, {
      ...middle,
      ...(note ? { note } : {}),
      all: samples.map((s) => s.value),
    });
  }
  const ours = medians.get("ours");
  const cells = contenders.map((contender) => {
    const sample = medians.get(contender.name)!;
    const ratio = ours && contender !== OURS && Number.isFinite(sample.value) && sample.value > 0
      ? ` (${
        options.higherIsBetter
          ? (ours.value / sample.value).toFixed(1)
          : (sample.value / ours.value).toFixed(1)
      }x)`
      : "";
    const percent = (share: number) => `${Math.round(share * 100)}%`;
    // A cluster's share is its servers' each, then Redis's.
    const server = sample.parts
      ? `${sample.parts.slice(0, -1).map(percent).join("+")} + redis ${
        percent(sample.parts.at(-1)!)
      }`
      : percent(sample.serverCpu);
    const cpu = `cpu ${server}/${percent(sample.generatorCpu)}`;
    return `${Number.isFinite(sample.value) ? options.format(sample.value) : "-"}${ratio}, ${cpu}${
      sample.note ? `, ${sample.note}` : ""
    }`;
  });
  console.log(`| ${label} | ${cells.join(" | ")} |`);
  for (const [name, sample] of medians) {
    console.error(
      `  ${label} ${name} ${unit}: runs ${sample.all.map((v) => options.format(v)).join(", ")} ${
        JSON.stringify(sample.extra ?? {})
      }`,
    );
  }
}

function header(title: string, what: string, contenders = allContenders) {
  console.log(`\n### ${title}\n\n${what}\n`);
  console.log(`| clients | ${contenders.map((c) => c.name).join(" | ")} |`);
  console.log(`|---|${contenders.map(() => "---").join("|")}|`);
}

const deliveries = (value: number) => `${(value / 1e6).toFixed(2)} M/s`;
const millis = (value: number) => `${value.toFixed(2)} ms`;
console.log(
  `bench: ${
    new Date().toISOString()
  }, ${navigator.hardwareConcurrency} cores, Deno ${Deno.version.deno}, ` +
    `${RUNS} runs each, median shown; ratio = ours against that server (higher is better for ours); ` +
    `cpu = server/generator share of one core over the run`,
);

if (SCENARIOS.has("throughput")) {
  header(
    "Fan-out throughput",
    `Every client sends (a line per write when idle; what queues meanwhile, in the next write), ` +
      `${IN_FLIGHT} messages in flight in all, for ${SECONDS} s; ` +
      "deliveries per second until all are in.",
  );
  for (const size of SIZES) {
    await row(String(size), "deliveries/s", (c) => throughput(c, size), {
      higherIsBetter: true,
      format: deliveries,
    });
  }
}
if (SCENARIOS.has("latency")) {
  header(
    "Latency at 100 messages a second",
    "99th percentile from send to receipt, over every delivery.",
  );
  for (const size of SIZES) {
    await row(String(size), "p99", (c) => latency(c, size), {
      higherIsBetter: false,
      format: millis,
    });
  }
}
if (SCENARIOS.has("slow")) {
  header(
    "One client stops reading",
    `100 clients send for ${SECONDS} s while one more never reads.`,
  );
  await row("100 + 1", "deliveries/s", (c) => throughput(c, 100, { idle: true }), {
    higherIsBetter: true,
    format: deliveries,
  });
}
if (SCENARIOS.has("capacity")) {
  const size = Number(values.capacity);
  header("Capacity", `${size} idle members, then one message to all; server RSS per connection.`);
  await row(String(size), "KiB/connection", (c) => capacity(c, size), {
    higherIsBetter: false,
    format: (kib) => `${kib.toFixed(1)} KiB`,
  });
}
if (SCENARIOS.has("wire")) {
  // The seed's report saw two segments per message: JDK 8's println wrote the text and the line
  // end apart. JDK 17's does not, so the reconstruction can do it both ways.
  const seedOnJdk8 = allContenders.some((contender) => contender.name === "seed")
    ? [seed(values["seed-dir"], { jdk8Println: true })]
    : [];
  const among = [...allContenders, ...seedOnJdk8];
  header(
    "Wire economy",
    "Data segments per message per recipient, idle, counted by tshark on loopback.",
    among,
  );
  await row("4", "segments", wire, {
    higherIsBetter: false,
    format: (value) => value.toFixed(2),
    runs: 1,
    among,
  });
}
if (SCENARIOS.has("cluster")) {
  const among = [OURS, ...await available([cluster(1), cluster(2), cluster(3)])];
  const sizes = values["cluster-clients"].split(",").map(Number);
  const note = "Clients take turns among the servers; ratio = ours alone against that cluster; " +
    "cpu = each server + Redis / generator.";
  header(
    "Cluster: fan-out throughput",
    `As above, ${IN_FLIGHT} in flight for ${SECONDS} s, through 1, 2 and 3 servers on one Redis. ${note}`,
    among,
  );
  for (const size of sizes) {
    await row(String(size), "deliveries/s", (c) => throughput(c, size), {
      higherIsBetter: true,
      format: deliveries,
      among,
    });
  }
  header("Cluster: latency at 100 messages a second", `99th percentile. ${note}`, among);
  for (const size of sizes) {
    await row(String(size), "p99", (c) => latency(c, size), {
      higherIsBetter: false,
      format: millis,
      among,
    });
  }
  // What going through Redis costs each line, apart from the fan-out that dominates the above.
  const alone = among.slice(0, 2);
  header(
    "Cluster: CPU per relayed line",
    `Two clients on one server, each line to the other, ${IN_FLIGHT} in flight for ${SECONDS} s: ` +
      "microseconds of the server's CPU per line, and of Redis's; ratio = the server's against ours " +
      "alone.",
    alone,
  );
  await row("2", "us/line", lineCost, {
    higherIsBetter: false,
    format: (value) => `${value.toFixed(1)} µs`,
    among: alone,
  });
}
if (SCENARIOS.has("web")) {
  await webScenario({
    runs: RUNS,
    seconds: SECONDS,
    inFlight: IN_FLIGHT,
    sizes: values["web-clients"].split(",").map(Number),
    idle: Number(values["web-idle"]),
  });
}
if (SCENARIOS.has("store")) {
  await storeScenario({
    runs: RUNS,
    sizes: values["store-clients"].split(",").map(Number),
    throughput,
    latency,
  });
}

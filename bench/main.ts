/**
 * `deno task bench`: our server against its own baseline (the server as it was at a git revision,
 * before the room log), the seed's Java design and `ncat --chat`, in one run, on loopback. Every
 * figure is the median of several runs, with the ratio to each baseline measured in the same run
 * and the CPU share of the server and of the load generator beside it.
 *
 *   deno task bench [--runs 3] [--seconds 4]
 *                   [--scenarios throughput,latency,slow,burst,storm,capacity,v8,wire,cluster,web,store]
 *                   [--clients 10,100,500,1000] [--capacity 10000]
 *                   [--servers ours,baseline,seed,ncat] [--baseline-rev c498234]
 *                   [--in-flight 2000] [--storm 10000] [--storm-max 19000] [--storm-in-flight 250]
 *                   [--storm-name-first] [--storm-threads 2]
 *                   [--v8 VARIANTS] [--v8-clients 100,1000]
 *                   [--cluster-clients 100,500] [--web-clients 100] [--web-idle 2000]
 *                   [--web-capacity 10000] [--web-generator raw|deno] [--web-attack-seconds 10]
 *                   [--web-parts burst,light,memory,capacity,attacks]
 *                   [--store-clients 10,100,500]
 *                   [--seed-dir ../shared/baselines/java-seed]
 */
import { parseArgs } from "node:util";
import { burst, burstLabel, BURSTS } from "./burst.ts";
import { closeAll, exec, joinClients, measured, median, type Sample, settle } from "./harness.ts";
import { type Client, connect, Run } from "./load.ts";
import { baseline, cluster, type Contender, NCAT, OURS, ours, seed } from "./servers.ts";
import { storm } from "./storm.ts";
import { webScenario } from "./web.ts";
import { storeScenario } from "./store.ts";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "3" },
    seconds: { type: "string", default: "4" },
    scenarios: {
      type: "string",
      // v8 (each V8 flag variant through storm, capacity, throughput and latency) is long: on demand.
      default: "throughput,latency,slow,burst,storm,capacity,wire,cluster,web,store",
    },
    "store-clients": { type: "string", default: "10,100,500" },
    "web-clients": { type: "string", default: "100" },
    "web-idle": { type: "string", default: "2000" },
    "web-capacity": { type: "string", default: "10000" },
    "web-attack-seconds": { type: "string", default: "10" },
    "web-parts": { type: "string", default: "burst,light,memory,capacity,attacks" },
    // The generator's own WebSocket client, or Deno's (to see whether the generator is the limit).
    "web-generator": { type: "string", default: "raw" },
    "cluster-clients": { type: "string", default: "100,500" },
    clients: { type: "string", default: "10,100,500,1000" },
    capacity: { type: "string", default: "10000" },
    "in-flight": { type: "string", default: "2000" },
    servers: { type: "string", default: "ours,baseline,seed,ncat" },
    // The last commit with an outbox per member, before the room log (issue 13).
    "baseline-rev": { type: "string", default: "c498234" },
    storm: { type: "string", default: "10000" },
    // As many members as 20,000 file descriptors allow, each process holding one per member.
    "storm-max": { type: "string", default: "19000" },
    "storm-in-flight": { type: "string", default: "250" },
    // Threads of the storm's generator (bench/storm_worker.ts says why): one a core here. Four on
    // these 2 cores took the server's CPU, and starved reads past the write timeout.
    "storm-threads": { type: "string", default: "2" },
    // Also storm with each member sending its name at once, before the greeting arrives.
    "storm-name-first": { type: "boolean", default: false },
    // Each variant is the --v8-flags value (comma-separated V8 flags), "default" for none.
    v8: {
      type: "string",
      default:
        "default;--optimize-for-size;--max-semi-space-size=4,--heap-growing-percent=20;--heap-growing-percent=20",
    },
    "v8-clients": { type: "string", default: "100,1000" },
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

const BASELINE = baseline(values["baseline-rev"]);
const allContenders = await available(
  values.servers.split(",").map((name) =>
    name === "ours"
      ? OURS
      : name === "ncat"
      ? NCAT
      : name === "baseline"
      ? BASELINE
      : seed(values["seed-dir"])
  ),
);
/** Ours and its baseline: the scenarios of the room log, which only they can run. */
const roomLogContenders = allContenders.filter((c) => c === OURS || c === BASELINE);

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
    /** The contender the ratios compare against (default: ours). */
    reference?: Contender;
    /** More figures for the cell, from every run's sample and the median one. */
    details?: (samples: Sample[], middle: Sample) => string;
  },
) {
  const reference = options.reference ?? OURS;
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
    const details = options.details?.(samples, middle);
    medians.set(contender.name, {
      ...middle,
      ...(note || details ? { note: [details, note].filter(Boolean).join(", ") } : {}),
      all: samples.map((s) => s.value),
    });
  }
  const ours = medians.get(reference.name);
  const cells = contenders.map((contender) => {
    const sample = medians.get(contender.name)!;
    const ratio = ours && contender !== reference && Number.isFinite(sample.value) &&
        sample.value > 0
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

function header(title: string, what: string, contenders = allContenders, first = "clients") {
  console.log(`\n### ${title}\n\n${what}\n`);
  console.log(`| ${first} | ${contenders.map((c) => c.name).join(" | ")} |`);
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
/** One figure over the runs: "a", or "least–most" when they differ. */
function span(values: number[], format: (value: number) => string = String): string {
  const finite = values.filter(Number.isFinite);
  if (finite.length === 0) return "-";
  const [least, most] = [Math.min(...finite), Math.max(...finite)];
  return least === most ? format(least) : `${format(least)}–${format(most)}`;
}

/** The median over the runs of one of the samples' extra figures. */
function medianExtra(samples: Sample[], key: string): number {
  const values = samples.map((s) => s.extra?.[key] ?? NaN).filter(Number.isFinite).sort((a, b) =>
    a - b
  );
  return values[Math.floor((values.length - 1) / 2)] ?? NaN;
}

/** Megabytes (10^6 bytes, as the targets are stated) from the kernel's KiB. */
const megabytes = (kib: number) => `${Math.round((kib * 1024) / 1e6)} MB`;
const STORM_IN_FLIGHT = Number(values["storm-in-flight"]);
/** The storm's deadline: 120 s at 10,000, growing with the join notices (the square of the size). */
const stormTimeoutMs = (size: number) => Math.max(120_000, 120_000 * (size / 10_000) ** 2);

/** A storm row: KiB per member, then the peak, the storm's duration, what was lost. */
async function stormRow(
  size: number,
  among: Contender[],
  options: { isNameFirst: boolean; runs?: number; reference?: Contender },
) {
  const { isNameFirst, runs = RUNS, reference = OURS } = options;
  const stormOptions = {
    inFlight: STORM_IN_FLIGHT,
    timeoutMs: stormTimeoutMs(size),
    isNameFirst,
    threads: Number(values["storm-threads"]),
  };
  const label = `${size}, ${isNameFirst ? "name at once" : "name after the greeting"}`;
  await row(label, "KiB/member", (c) => storm(c, size, stormOptions), {
    higherIsBetter: false,
    format: (kib) => `${kib.toFixed(1)} KiB`,
    among,
    runs,
    reference,
    details: (samples) => {
      const lost = samples.map((s) => s.extra?.noticesLost ?? NaN);
      // The server's CPU time over the storm itself: its share of a core times the storm's wall.
      const cpu = samples.map((s) => ({
        ...s,
        extra: { cpuMs: s.serverCpu * (s.extra?.stormMs ?? NaN) },
      }));
      return `peak ${megabytes(medianExtra(samples, "peakRssKiB"))}, storm ${
        (medianExtra(samples, "stormMs") / 1000).toFixed(1)
      } s, server CPU ${(medianExtra(cpu, "cpuMs") / 1000).toFixed(1)} s${
        lost.some((n) => n !== 0) ? `, join notices lost ${span(lost)}` : ""
      }`;
    },
  });
}

if (SCENARIOS.has("burst") && roomLogContenders.length > 0) {
  header(
    "Unwindowed bursts",
    "Every member writes all of its lines at once (members × lines × bytes a line), every member " +
      "reading as fast as it can: the burst's duration from the first write to the last delivery, " +
      "members cut, deliveries lost, and the server's peak RSS over the burst.",
    roomLogContenders,
    "burst",
  );
  for (const shape of BURSTS) {
    await row(burstLabel(shape), "ms", (c) => burst(c, shape), {
      higherIsBetter: false,
      format: (ms) => `${ms.toFixed(0)} ms`,
      among: roomLogContenders,
      details: (samples) => {
        const cut = span(samples.map((s) => s.extra?.cut ?? NaN));
        const lost = span(samples.map((s) => s.extra?.lost ?? NaN));
        return `${cut} cut, ${lost} lost, peak ${megabytes(medianExtra(samples, "peakRssKiB"))}`;
      },
    });
  }
}
if (SCENARIOS.has("storm") && roomLogContenders.length > 0) {
  const sizes = values.storm.split(",").map(Number).filter((size) => size > 0); // --storm 0: none
  header(
    "Join storm",
    `Members join with ${STORM_IN_FLIGHT} joins in flight (Deno's listen backlog is 511), every ` +
      "join announced to all, then one line to all: server RSS per member beyond the idle server, " +
      "2.5 s after; peak RSS; the storm from the first connect to the last welcome. Each member " +
      "sends its name once the server's greeting has come (with --storm-name-first, also at " +
      "once, as our client does).",
    roomLogContenders,
    "members",
  );
  for (const size of sizes) {
    // Names sent at once stalled the 10,000 storm past its timeout when tried here (see
    // BENCHMARKS.md), so that variant runs only when asked for.
    for (const isNameFirst of values["storm-name-first"] ? [false, true] : [false]) {
      await stormRow(size, roomLogContenders, { isNameFirst });
    }
  }
  const most = Number(values["storm-max"]);
  if (most > 0 && allContenders.includes(OURS)) {
    header(
      "Join storm, as many members as the file descriptors allow",
      `Ours alone, ${most} members, 1 run, names after the greeting: the generator and the ` +
        "server each hold one descriptor per member, out of 20,000.",
      [OURS],
      "members",
    );
    await stormRow(most, [OURS], { isNameFirst: false, runs: 1 });
  }
}
if (SCENARIOS.has("capacity")) {
  const size = Number(values.capacity);
  header("Capacity", `${size} idle members, then one message to all; server RSS per connection.`);
  await row(String(size), "KiB/connection", (c) => capacity(c, size), {
    higherIsBetter: false,
    format: (kib) => `${kib.toFixed(1)} KiB`,
  });
}
if (SCENARIOS.has("v8")) {
  // Each variant is a value of --v8-flags; "default" runs V8 as it comes.
  const variants = values.v8.split(";").map((flags) =>
    ours({ name: flags, flags: flags === "default" ? [] : [`--v8-flags=${flags}`] })
  );
  const reference = variants[0]!;
  const [stormSize = 10_000] = values.storm.split(",").map(Number);
  const capacitySize = Number(values.capacity);
  const sizes = values["v8-clients"].split(",").map(Number).filter((size) => size > 0);
  const note = `Ours with each value of --v8-flags; ratio = against ${reference.name}.`;
  // --storm 0 or --capacity 0 leaves that part out.
  if (stormSize > 0) {
    header(
      "V8 flags: join storm",
      `As in "Join storm", names after the greeting. ${note}`,
      variants,
      "members",
    );
    await stormRow(stormSize, variants, { isNameFirst: false, reference });
  }
  if (capacitySize > 0) {
    header("V8 flags: idle members", `As in "Capacity" (joins in batches). ${note}`, variants);
    await row(String(capacitySize), "KiB/connection", (c) => capacity(c, capacitySize), {
      higherIsBetter: false,
      format: (kib) => `${kib.toFixed(1)} KiB`,
      among: variants,
      reference,
      details: (samples) => `peak ${megabytes(medianExtra(samples, "peakRssKiB"))}`,
    });
  }
  header("V8 flags: fan-out throughput", `As in "Fan-out throughput". ${note}`, variants);
  for (const size of sizes) {
    await row(String(size), "deliveries/s", (c) => throughput(c, size), {
      higherIsBetter: true,
      format: deliveries,
      among: variants,
      reference,
    });
  }
  header("V8 flags: latency at 100 messages a second", `99th percentile. ${note}`, variants);
  for (const size of sizes) {
    await row(String(size), "p99", (c) => latency(c, size), {
      higherIsBetter: false,
      format: millis,
      among: variants,
      reference,
    });
  }
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
  const generator = values["web-generator"];
  if (generator !== "raw" && generator !== "deno") {
    throw new TypeError(`Invalid --web-generator "${generator}": use raw or deno`);
  }
  await webScenario({
    runs: RUNS,
    sizes: values["web-clients"].split(",").map(Number),
    idle: Number(values["web-idle"]),
    capacity: Number(values["web-capacity"]),
    attackSeconds: Number(values["web-attack-seconds"]),
    parts: new Set(values["web-parts"].split(",")),
    generator,
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

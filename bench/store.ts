/**
 * The store's cost: our server keeping a history of 50 lines in memory, against the same server
 * also keeping it in an SQLite file (`--store`), run by bench/main.ts (`--scenarios store`) with
 * its own throughput and latency measurements, so the two are measured alike, in one run. The runs
 * of the two alternate (and which goes first alternates too), so that a machine whose load changes
 * during the run, as a shared one does, weighs on both alike.
 */
import { exec } from "./harness.ts";
import { type Contender, OURS, ServerProcess, startOurs } from "./servers.ts";

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

/**
 * Starts our server with a history of 50 lines, kept in a new SQLite file when `isStored`: with
 * exactly the permissions `deno task store` grants for it.
 */
async function start(name: string, maxClients: number, isStored: boolean) {
  const folder = isStored ? (await exec("mktemp", ["-d"])).trim() : undefined;
  const file = `${folder}/chat.db`;
  const files = [file, `${file}-wal`, `${file}-shm`].join(",");
  const server = await startOurs(maxClients, {
    name,
    permissions: folder ? [`--allow-read=${files}`, `--allow-write=${files}`] : [],
    args: [...(folder ? ["--store", file] : []), "--history", "50"],
  });
  return new StoreServerProcess(name, server.child, server.port, folder);
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

/** What a measurement of bench/main.ts answers: the figure and the CPU shares. */
interface Sample {
  value: number;
  serverCpu: number;
  generatorCpu: number;
  extra?: Record<string, number>;
}

/** Measures `measure` for both contenders, alternating, and prints one table row of medians. */
async function storeRow(
  label: string,
  contenders: Contender[],
  runs: number,
  measure: (contender: Contender) => Promise<Sample>,
  options: { format: (value: number) => string; higherIsBetter: boolean },
): Promise<void> {
  const samples: Sample[][] = contenders.map(() => []);
  for (let run = 0; run < runs; run++) {
    const order = run % 2 === 0 ? [0, 1] : [1, 0];
    for (const i of order) samples[i]!.push(await measure(contenders[i]!));
  }
  const medians = samples.map((all) =>
    [...all].sort((a, b) => a.value - b.value)[Math.floor((all.length - 1) / 2)]!
  );
  const [without, withStore] = medians as [Sample, Sample];
  const ratio = options.higherIsBetter
    ? without.value / withStore.value
    : withStore.value / without.value;
  const cell = (sample: Sample) =>
    `${options.format(sample.value)}, cpu ${Math.round(sample.serverCpu * 100)}%/${
      Math.round(sample.generatorCpu * 100)
    }%`;
  console.log(`| ${label} | ${cell(without)} | ${cell(withStore)} (${ratio.toFixed(2)}x) |`);
  contenders.forEach((contender, i) => {
    const values = samples[i]!.map((sample) => options.format(sample.value)).join(", ");
    const lost = samples[i]!.reduce((sum, { extra = {} }) => sum + (extra.missing ?? 0), 0);
    console.error(`  store ${label} ${contender.name}: runs ${values}; missing ${lost}`);
  });
}

/** Prints the store's tables: throughput and latency, without and with --store. */
export async function storeScenario(options: {
  runs: number;
  sizes: number[];
  throughput: (contender: Contender, size: number) => Promise<Sample>;
  latency: (contender: Contender, size: number) => Promise<Sample>;
}): Promise<void> {
  const contenders = storeContenders();
  const note = "A history of 50 lines, in memory only or also in an SQLite file; runs alternate; " +
    "ratio = the cost of the store (throughput without over with it, latency with over without); " +
    "cpu = server/generator share of one core.";
  console.log(`\n### Store: fan-out throughput\n\n${note}\n`);
  console.log("| clients | without --store | with --store |\n|---|---|---|");
  for (const size of options.sizes) {
    await storeRow(String(size), contenders, options.runs, (c) => options.throughput(c, size), {
      format: (value) => `${(value / 1e6).toFixed(2)} M/s`,
      higherIsBetter: true,
    });
  }
  // Where the store costs most: two clients, each line one delivery, every line to keep.
  console.log(
    "\n### Store: server CPU per relayed line, two clients\n\nEach line to the other client, " +
      "as many in flight as above: microseconds of the server's CPU per line (the store's own " +
      `thread included), the worst case for the store. ${note}\n`,
  );
  console.log("| clients | without --store | with --store |\n|---|---|---|");
  await storeRow("2", contenders, options.runs, async (c) => {
    const sample = await options.throughput(c, 2);
    return { ...sample, value: sample.serverCpu / sample.value * 1e6 };
  }, { format: (value) => `${value.toFixed(2)} µs`, higherIsBetter: false });
  console.log(`\n### Store: latency at 100 messages a second (99th percentile)\n\n${note}\n`);
  console.log("| clients | without --store | with --store |\n|---|---|---|");
  for (const size of options.sizes) {
    await storeRow(String(size), contenders, options.runs, (c) => options.latency(c, size), {
      format: (value) => `${value.toFixed(2)} ms`,
      higherIsBetter: false,
    });
  }
}

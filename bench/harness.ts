/**
 * What the scenarios share: a sample of one run, the CPU each side used over it, joining and
 * closing clients, and waiting for deliveries to settle.
 */
import { Client, connect, cpuMillis, Run } from "./load.ts";
import { ClusterProcess, type Contender, type ServerProcess } from "./servers.ts";

/** One measured run: the figure, and the CPU each side used over its wall time. */
export interface Sample {
  value: number;
  serverCpu: number;
  generatorCpu: number;
  note?: string;
  extra?: Record<string, number>;
  /** For a cluster: the CPU share of each server, then of Redis. */
  parts?: number[];
}

/** Measures the CPU share of the server and of this process over what `body` does. */
export async function measured(
  server: ServerProcess,
  body: () => Promise<Omit<Sample, "serverCpu" | "generatorCpu">>,
): Promise<Sample> {
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
export async function joinClients(
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

/** Closes every client and waits for their read loops to end. */
export async function closeAll(clients: Client[]): Promise<void> {
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
export async function settle(run: Run, isDone: () => boolean, idleMs = 3000): Promise<boolean> {
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

/** Runs a command and returns its output; throws with its stderr if it fails. */
export async function exec(command: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(command, { args, stdin: "null" })
    .output();
  if (code !== 0) throw new Error(`${command} failed: ${new TextDecoder().decode(stderr)}`);
  return new TextDecoder().decode(stdout);
}

export function median(samples: Sample[]): Sample {
  const sorted = [...samples].sort((a, b) => (a.value || 0) - (b.value || 0));
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/**
 * Attacks on the page's door, measured beside the same attacks on the chat's port: 20 WebSockets
 * from one address each sending one 60 MiB frame; a junk stream from one joined member (a message
 * that never ends, or a TCP line that never ends); a flood of connections from one address that
 * never send a name and reconnect whenever closed; and connections that go as soon as answered. Each with the server's limits at their
 * defaults, while 10 bystanders chat at a light pace from another address: the server's CPU and
 * memory, and the bystanders' latency. Run by bench/web.ts (`--scenarios web`).
 */
import { connect as connectNode, type Socket } from "node:net";
import { settle } from "./harness.ts";
import { Client, connect, cpuMillis, Run } from "./load.ts";
import { startOurs } from "./servers.ts";

/** The attackers' own address: the per-address limits keep them apart from the bystanders. */
const ATTACKER = "127.0.0.2";
const MIB = 1024 * 1024;

/** One attack's figures. */
export interface AttackSample {
  /** The server's CPU share of one core over the attack. */
  serverCpu: number;
  generatorCpu: number;
  /** The bystanders' p50 and p99 over the attack, in ms, and deliveries missing. */
  p50: number;
  p99: number;
  missing: number;
  /** Server RSS in KiB: before, its peak during, and after the attackers are gone. */
  rssBefore: number;
  rssPeak: number;
  rssAfter: number;
  /** Attacker connections opened, and those answered 101 (WebSocket) or greeted (TCP). */
  opened: number;
  served: number;
}

/** A node socket from `ATTACKER` to `port`, connected. */
async function attackerSocket(port: number): Promise<Socket> {
  const socket = connectNode({ host: "127.0.0.1", port, localAddress: ATTACKER, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("error", reject);
  });
  socket.on("error", () => {}); // a reset by the server ends the attacker's loop: expected
  return socket;
}

/**
 * Writes `bytes`, waiting for the socket to drain; false once the socket is closed. It yields to
 * the event loop after every write, so that the attackers' loops never starve the bystanders, who
 * share this process: their latency is the server's, not the generator's.
 */
function send(socket: Socket, bytes: Uint8Array): Promise<boolean> {
  if (socket.destroyed || !socket.writable) return Promise.resolve(false);
  if (socket.write(bytes)) return new Promise((resolve) => setTimeout(() => resolve(true), 0));
  return new Promise((resolve) => {
    const done = (isOpen: boolean) => {
      socket.off("drain", drained);
      socket.off("close", closed);
      resolve(isOpen);
    };
    const drained = () => done(true);
    const closed = () => done(false);
    socket.once("drain", drained);
    socket.once("close", closed);
  });
}

/** Resolves with the text the socket received once `pattern` matches it, or "" if it closes. */
function received(socket: Socket, pattern: RegExp): Promise<string> {
  let text = "";
  return new Promise((resolve) => {
    const onData = (chunk: Uint8Array) => {
      text += new TextDecoder().decode(chunk);
      if (pattern.test(text)) finish(text);
    };
    const finish = (result: string) => {
      socket.off("data", onData);
      socket.off("close", onClose);
      resolve(result);
    };
    const onClose = () => finish("");
    socket.on("data", onData);
    socket.once("close", onClose);
  });
}

/**
 * A WebSocket from the attacker's address: the socket after its 101, or undefined if refused,
 * once the server has closed the refused connection (the attacker reconnects whenever closed).
 */
async function attackerWebSocket(port: number): Promise<Socket | undefined> {
  const socket = await attackerSocket(port);
  const closed = new Promise((resolve) => socket.once("close", resolve));
  const answer = received(socket, /\r\n\r\n/);
  socket.write(
    [
      "GET /chat HTTP/1.1",
      `Host: 127.0.0.1:${port}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${btoa("attack-key-16-by")}`,
      "Sec-WebSocket-Version: 13",
      "",
      "",
    ].join("\r\n"),
  );
  if ((await answer).startsWith("HTTP/1.1 101 ")) return socket;
  socket.resume(); // read what else comes, to the server's close
  await closed;
}

/** A masked client frame header for `length` bytes under a zero mask (the payload goes as it is). */
function frameHeader(opcode: number, length: number, isFinal: boolean): Uint8Array {
  const size = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const header = new Uint8Array(2 + size + 4);
  header[0] = (isFinal ? 0x80 : 0) | opcode;
  const view = new DataView(header.buffer);
  if (size === 0) header[1] = 0x80 | length;
  else if (size === 2) (header[1] = 0x80 | 126, view.setUint16(2, length));
  else (header[1] = 0x80 | 127, view.setUint32(6, length));
  return header;
}

/** A text frame of `text`, masked with zeros. */
function textFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const header = frameHeader(1, payload.length, true);
  const frame = new Uint8Array(header.length + payload.length);
  frame.set(header);
  frame.set(payload, header.length);
  return frame;
}

/** The attacks, each a function of the chat's and the page's ports that runs until `signal`. */
const ATTACKS: Record<string, (ports: Ports, signal: AbortSignal) => Promise<Counts>> = {
  /** 20 joined WebSockets, each sending one frame of 60 MiB as fast as the server takes it. */
  "20 x 60 MiB frames (WebSocket)": async ({ web }, signal) => {
    const counts = { opened: 0, served: 0 };
    const piece = new Uint8Array(MIB).fill(0x78);
    await Promise.all(Array.from({ length: 20 }, async (_, i) => {
      counts.opened++;
      const socket = await attackerWebSocket(web);
      if (!socket) return;
      counts.served++;
      const welcome = received(socket, /Welcome, /);
      socket.write(textFrame(`huge${i}`));
      await welcome;
      let isOpen = await send(socket, frameHeader(1, 60 * MIB, true));
      for (let sent = 0; isOpen && sent < 60 && !signal.aborted; sent++) {
        isOpen = await send(socket, piece);
      }
      socket.destroy();
    }));
    return counts;
  },
  /** One joined WebSocket sending a message that never ends, in fragments of 4 KB. */
  "junk stream (WebSocket)": async ({ web }, signal) => {
    const socket = await attackerWebSocket(web);
    if (!socket) return { opened: 1, served: 0 };
    const welcome = received(socket, /Welcome, /);
    socket.write(textFrame("junk"));
    await welcome;
    let isOpen = await send(socket, frameHeader(1, 0, false));
    const fragment = new Uint8Array(6 + 4096).fill(0x6a);
    fragment.set(frameHeader(0, 4096, false));
    while (isOpen && !signal.aborted) isOpen = await send(socket, fragment);
    socket.destroy();
    return { opened: 1, served: 1 };
  },
  /** One joined TCP member sending a line that never ends. */
  "junk stream (TCP)": async ({ chat }, signal) => {
    const socket = await attackerSocket(chat);
    const welcome = received(socket, /Welcome, /);
    socket.write("junk\n");
    await welcome;
    const junk = new Uint8Array(4096).fill(0x6a);
    let isOpen = true;
    while (isOpen && !signal.aborted) isOpen = await send(socket, junk);
    socket.destroy();
    return { opened: 1, served: 1 };
  },
  /** 8 loops that open a WebSocket, send junk frames without a name, and reconnect when closed. */
  "reconnect flood (WebSocket)": ({ web }, signal) =>
    reconnectFlood(signal, async (counts) => {
      const socket = await attackerWebSocket(web);
      if (!socket) return;
      counts.served++;
      const junk = new Uint8Array(64 * 7).fill(0);
      for (let at = 0; at < junk.length; at += 7) junk.set([0x89, 0x81, 0, 0, 0, 0, 0x70], at);
      const closed = new Promise((resolve) => socket.once("close", resolve));
      while (await send(socket, junk) && !signal.aborted); // pings, 1 byte each, until closed
      socket.destroy();
      await closed;
    }),
  /** 8 loops that connect over TCP, send junk without a line end, and reconnect when closed. */
  "reconnect flood (TCP)": ({ chat }, signal) =>
    reconnectFlood(signal, async (counts) => {
      const socket = await attackerSocket(chat);
      counts.served++;
      const junk = new Uint8Array(4096).fill(0x6a);
      const closed = new Promise((resolve) => socket.once("close", resolve));
      while (await send(socket, junk) && !signal.aborted);
      socket.destroy();
      await closed;
    }),
  /** 8 loops that open a WebSocket and go as soon as it is answered, 101 or not: churn. */
  "connection churn (WebSocket)": ({ web }, signal) =>
    reconnectFlood(signal, async (counts) => {
      const socket = await attackerSocket(web);
      const answer = received(socket, /\r\n\r\n/);
      socket.write(
        `GET /chat HTTP/1.1\r\nHost: 127.0.0.1:${web}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${btoa("attack-key-16-by")}\r\n` +
          "Sec-WebSocket-Version: 13\r\n\r\n",
      );
      if ((await answer).startsWith("HTTP/1.1 101 ")) counts.served++;
      socket.destroy();
    }),
  /** 8 loops that connect over TCP and go as soon as they are greeted: churn. */
  "connection churn (TCP)": ({ chat }, signal) =>
    reconnectFlood(signal, async (counts) => {
      const socket = await attackerSocket(chat);
      if (await received(socket, /\n/)) counts.served++;
      socket.destroy();
    }),
};

interface Ports {
  chat: number;
  web: number;
}

interface Counts {
  opened: number;
  served: number;
}

/** 8 loops of `once` (one connection's life) until `signal`. */
async function reconnectFlood(
  signal: AbortSignal,
  once: (counts: Counts) => Promise<void>,
): Promise<Counts> {
  const counts = { opened: 0, served: 0 };
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (!signal.aborted) {
      counts.opened++;
      await once(counts).catch(() => {}); // refused or reset: the next try
    }
  }));
  return counts;
}

/** Runs `attack` for `seconds` beside 10 bystanders paced at 20 lines a second in all. */
async function attack(name: string, seconds: number): Promise<AttackSample> {
  await using server = await startOurs(30, {
    permissions: [],
    // The limits at their defaults (the benchmark's server raises flood control and lifts the
    // per-address limits: put back).
    args: [
      "--web",
      "127.0.0.1:0",
      "--max-per-address",
      "20",
      "--flood-burst",
      "10",
      "--flood-rate",
      "5",
    ],
    ready: /listening on 127\.0\.0\.1:(\d+)[^]*web page on http:\/\/127\.0\.0\.1:(\d+)\//,
  });
  const ports = { chat: server.port, web: Number(server.ready[2]) };
  const size = 10;
  const run = new Run({ senders: size, window: 1 });
  const bystanders: Client[] = [];
  try {
    for (let id = 0; id < size; id++) {
      const client = new Client(id, await connect(ports.chat), run, 65536);
      bystanders.push(client);
      const welcome = client.waitFor("* Welcome, ");
      await Promise.all([client.write(`b${id}\n`), welcome]);
    }
    run.keepLatencies = true;
    // Two sweeps, so that the bystanders' joins are out of the way.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const rssBefore = await server.rssKiB();
    await server.resetPeak();
    const [serverBefore, generatorBefore, startedAt] = [
      await server.cpuMillis(),
      cpuMillis(),
      performance.now(),
    ];
    const stop = new AbortController();
    const attacking = ATTACKS[name]!(ports, stop.signal);
    const rate = 20;
    for (let k = 0; k < rate * seconds; k++) {
      const wait = startedAt + (k * 1000) / rate - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait)); // the load's pace
      const sender = k % size;
      bystanders[sender]!.send(sender, run.sentBy[sender]!, 1).catch(() => {});
      run.sentBy[sender]!++;
    }
    const wall = performance.now() - startedAt;
    const serverCpu = ((await server.cpuMillis()) - serverBefore) / wall;
    const generatorCpu = (cpuMillis() - generatorBefore) / wall;
    stop.abort();
    const counts = await attacking;
    await settle(run, () => run.tally.received >= rate * seconds * (size - 1));
    for (const client of bystanders) client.countMissing();
    const rssPeak = await server.rssKiB("VmHWM");
    // Two sweeps after the attackers are gone, for the server to give back what they cost.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    const sorted = Float64Array.from(run.tally.latencies).sort();
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
    return {
      serverCpu,
      generatorCpu,
      p50: at(0.5) / 1000,
      p99: at(0.99) / 1000,
      missing: run.tally.missing + Math.max(0, rate * seconds * (size - 1) - run.tally.received),
      rssBefore,
      rssPeak,
      rssAfter: await server.rssKiB(),
      ...counts,
    };
  } finally {
    for (const client of bystanders) client.conn.close();
    await Promise.all(bystanders.map((client) => client.reading));
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)]!;
}

/** Prints the attacks' table: `runs` of each, `seconds` long. */
export async function attackScenario(options: { runs: number; seconds: number }): Promise<void> {
  const { runs, seconds } = options;
  console.log(`\n### Attacks on the page and on the chat's port (${seconds} s each)\n`);
  console.log(
    "The server's limits at their defaults; the attacker on 127.0.0.2, 10 bystanders on " +
      "127.0.0.1 sending 20 lines a second in all. cpu = server/generator share of one core " +
      "over the attack; RSS before the attack, its peak, and 2.5 s after the attackers are gone. " +
      `Medians of ${runs} runs.\n`,
  );
  console.log(
    "| attack | server cpu | bystanders p50 / p99 | RSS before / peak / after | connections |",
  );
  console.log("|---|---|---|---|---|");
  for (const name of Object.keys(ATTACKS)) {
    const samples: AttackSample[] = [];
    for (let i = 0; i < runs; i++) samples.push(await attack(name, seconds));
    const m = (key: keyof AttackSample) => median(samples.map((sample) => sample[key]));
    const mib = (kib: number) => `${(kib / 1024).toFixed(0)}`;
    const missing = samples.reduce((sum, sample) => sum + sample.missing, 0);
    console.log(
      `| ${name} | ${Math.round(m("serverCpu") * 100)}% (generator ${
        Math.round(m("generatorCpu") * 100)
      }%) | ${m("p50").toFixed(1)} / ${m("p99").toFixed(1)} ms${
        missing > 0 ? `, ${missing} lost` : ""
      } | ${mib(m("rssBefore"))} / ${mib(m("rssPeak"))} / ${mib(m("rssAfter"))} MiB | ${
        m("opened")
      } opened, ${m("served")} served |`,
    );
    console.error(
      `  ${name}: p99 ${samples.map((s) => s.p99.toFixed(1)).join(", ")}; cpu ${
        samples.map((s) => Math.round(s.serverCpu * 100)).join(", ")
      }`,
    );
  }
}

/**
 * Helpers for the cluster tests: a real `redis-server` of the test's own (stopped, paused and
 * restarted at will), cluster server processes, and a TCP proxy that can hold everything it
 * carries, as a network black hole does.
 */
import assert from "node:assert/strict";
import { Child, startServerProcess, TestClient, unusedPort, withDeadline } from "./_helpers.ts";

/** A Redis of the test's own, which can be stopped, paused and started again on the same port. */
export class Redis implements AsyncDisposable {
  readonly port = unusedPort();
  #child: Child | undefined;

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts it empty (nothing is saved), with `extra` arguments such as `--requirepass`. */
  async start(extra: string[] = []): Promise<this> {
    this.#child = new Child("redis-server", [
      "--port",
      String(this.port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      ...extra,
    ]);
    await this.#child.stdout.readUntil(/Ready to accept connections/);
    return this;
  }

  /** Freezes it (SIGSTOP): connections stay open and nothing is answered, as in a hang. */
  pause(): void {
    this.#child!.process.kill("SIGSTOP");
  }

  resume(): void {
    this.#child!.process.kill("SIGCONT");
  }

  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = undefined;
    if (!child) return;
    child.process.kill("SIGCONT"); // a paused Redis must run to take its SIGTERM
    child.process.kill("SIGTERM");
    await withDeadline(child.process.status, "redis-server to stop");
    await child[Symbol.asyncDispose]();
  }

  /** Runs `redis-cli` on it, returning what it printed. */
  async cli(...args: string[]): Promise<string> {
    await using cli = new Child("redis-cli", ["-p", String(this.port), ...args]);
    const { code, stdout } = await cli.finish();
    assert.equal(code, 0, `redis-cli ${args.join(" ")}`);
    return stdout;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/**
 * A server process in the cluster on the Redis at `redisPort` (or `url`), started as the README
 * says, and its port.
 */
export function clusterServer(
  redis: { port: number; url: string },
  extra: string[] = [],
): Promise<{ child: Child; port: number }> {
  return startServerProcess(["--redis", redis.url, ...extra], [
    `--allow-net=127.0.0.1:0,127.0.0.1:${redis.port}`,
    "--allow-env=CHAT_REDIS_URL,REDIS_DEBUG_MAINTENANCE,REDIS_EMIT_DIAGNOSTICS",
  ]);
}

/** Joins and returns the client with its room list line and its history. */
export async function joinReadingRoom(
  port: number,
  name: string,
): Promise<[TestClient, string, string[]]> {
  const client = await TestClient.connect(port);
  await client.expect(/^\* Welcome to chat/);
  await client.send(name);
  const room = await client.expect(/^\* The room contains:/);
  const history: string[] = [];
  let line = await client.readLine();
  for (; line.startsWith("* history "); line = await client.readLine()) history.push(line);
  assert.match(line, /^\* Limits: /);
  await client.expect(/^\* Welcome, /);
  return [client, room, history];
}

/**
 * Joins as `name`, expecting `others` in the room: each is in the room list, or, if this server
 * had not heard of it yet (its join is on its way from another server), announced right after.
 */
export async function joinKnowing(
  port: number,
  name: string,
  others: string[],
): Promise<TestClient> {
  const [client, room] = await joinReadingRoom(port, name);
  const listed = room.replace(/^\* The room contains:/, "").split(",").map((n) => n.trim());
  const missing = new Set(others.filter((other) => !listed.includes(other)));
  while (missing.size > 0) {
    const line = await client.readLine();
    const entered = /^\* (\S+) has entered the room$/.exec(line);
    assert.ok(entered && missing.delete(entered[1]!), `${name} got ${JSON.stringify(line)}`);
  }
  return client;
}

/**
 * Keeps a fault in place for `ms`: the length of an outage is what a test is about, unlike a wait
 * for something to happen, which always waits for the event itself.
 */
export function holdFault(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Reads lines until `last`, returning them all (`last` too). */
export async function readUntil(client: TestClient, last: string, ms?: number): Promise<string[]> {
  const lines: string[] = [];
  for (let line = ""; line !== last;) {
    lines.push(
      line = await client.readLine(ms).catch((error) => {
        throw new Error(`${error.message}; lines until then: ${JSON.stringify(lines)}`);
      }),
    );
  }
  return lines;
}

/**
 * A TCP proxy to a port on 127.0.0.1. `stall()` makes it a black hole: it stops accepting and
 * carrying bytes, which wait in the kernel and in the proxy, until `resume()` lets them all
 * through, late, the way a network that held them would.
 */
export class Proxy implements AsyncDisposable {
  readonly port: number;
  readonly url: string;
  #listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  #target: number;
  #open = Promise.resolve();
  #resume = () => {};
  #conns = new Set<Deno.Conn>();
  #tasks = new Set<Promise<void>>();
  #accepting: Promise<void>;

  constructor(target: number) {
    this.#target = target;
    this.port = (this.#listener.addr as Deno.NetAddr).port;
    this.url = `redis://127.0.0.1:${this.port}`;
    this.#accepting = this.#accept();
  }

  stall(): void {
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#open = promise;
    this.#resume = resolve;
  }

  resume(): void {
    this.#resume();
  }

  async #accept(): Promise<void> {
    try {
      for await (const client of this.#listener) {
        await this.#open;
        this.#track(this.#connect(client));
      }
    } catch {
      // The listener was closed while a connection waited: the proxy is being disposed.
    }
  }

  async #connect(client: Deno.Conn): Promise<void> {
    this.#conns.add(client);
    let upstream: Deno.Conn;
    try {
      upstream = await Deno.connect({ hostname: "127.0.0.1", port: this.#target });
    } catch {
      return closeQuietly(client); // the target is down, as a refused connection would be
    }
    this.#conns.add(upstream);
    this.#track(this.#carry(client, upstream));
    this.#track(this.#carry(upstream, client));
  }

  /** Copies `from` into `to` while open, then closes `to` for writing: what was sent arrives. */
  async #carry(from: Deno.Conn, to: Deno.Conn): Promise<void> {
    const buffer = new Uint8Array(64 * 1024);
    try {
      for (let count = await from.read(buffer); count !== null; count = await from.read(buffer)) {
        await this.#open;
        for (let offset = 0; offset < count;) {
          offset += await to.write(buffer.subarray(offset, count));
        }
      }
      await this.#open; // a black hole holds the end of a connection too
      await to.closeWrite();
    } catch {
      // Either side went away: the other goes too.
      closeQuietly(from);
      closeQuietly(to);
    }
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#resume();
    this.#listener.close();
    await this.#accepting;
    for (const conn of this.#conns) closeQuietly(conn);
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // Already closed: closing is all we wanted.
  }
}

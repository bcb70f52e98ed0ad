/** `--metrics`: Prometheus' text format at /metrics, /healthz and /readyz, from the server process. */
import assert from "node:assert/strict";
import {
  type Child,
  joinAs,
  joinWithToken,
  startServerProcess,
  TestClient,
  withDeadline,
} from "./_helpers.ts";
import { formatResume } from "../protocol.ts";
import { Folder, startStoreServer } from "./_store.ts";
import { clusterServer, Redis } from "./_cluster.ts";
import { METRICS_MAX_CONNECTIONS, startMetrics } from "../server/metrics_server.ts";

/** The metrics port the server names in its log. */
async function metricsPort(child: Child): Promise<number> {
  const line = await child.stdout.readUntil(/metrics on http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  return Number(/:(\d+)\/metrics$/.exec(line)![1]);
}

/** GETs `path` on the metrics port: its status and body. */
async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const response = await withDeadline(fetch(`http://127.0.0.1:${port}${path}`), `GET ${path}`);
  return { status: response.status, body: await response.text() };
}

/** The value of one sample (`name` with its labels as written) in an exposition. */
function sample(body: string, name: string): number | undefined {
  const line = body.split("\n").find((line) => line.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
}

/** Runs `promtool check metrics` on an exposition: its complaints, empty when clean. */
async function promtool(body: string): Promise<string> {
  const child = new Deno.Command("promtool", {
    args: ["check", "metrics"],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(body));
  await writer.close();
  const { code, stdout, stderr } = await child.output();
  const said = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  return code === 0 ? said.trim() : `exit ${code}: ${said}`;
}

Deno.test("server --metrics serves figures that match what members did, which promtool accepts", async () => {
  const { child, port } = await startServerProcess(
    ["--metrics", "0", "--idle-timeout", "3"],
    ["--allow-net=127.0.0.1"],
  );
  await using _server = child;
  const metrics = await metricsPort(child);
  {
    // A member cut for being idle: counted as a leave and a cut.
    await using _idler = await joinAs(port, "idler");
    await child.stdout.readUntil(/idler \(.*\) left \(idle\)$/);
  }
  await using alice = await joinAs(port, "alice");
  await using bob = await joinAs(port, "bob");
  for (const text of ["one", "two", "three"]) await alice.send(text);
  await alice.send("/me waves");
  for (;;) if ((await bob.readLine()) === "* [alice] waves") break;
  const { status, body } = await get(metrics, "/metrics");
  assert.equal(status, 200);
  assert.equal(await promtool(body), "");
  assert.equal(sample(body, 'chat_members{kind="tcp"}'), 2);
  assert.equal(sample(body, 'chat_members{kind="tls"}'), 0);
  assert.equal(sample(body, "chat_connections"), 2);
  assert.equal(sample(body, "chat_joins_total"), 3);
  assert.equal(sample(body, "chat_lines_total"), 4);
  assert.equal(sample(body, 'chat_leaves_total{reason="idle"}'), 1);
  assert.equal(sample(body, 'chat_cuts_total{reason="idle"}'), 1);
  assert.ok(sample(body, "chat_written_bytes_total")! > 0);
  assert.ok(sample(body, "process_resident_memory_bytes")! > 0);
  assert.deepEqual(await get(metrics, "/healthz"), { status: 200, body: "ok\n" });
  assert.deepEqual(await get(metrics, "/readyz"), { status: 200, body: "ready\n" });
  assert.equal((await get(metrics, "/nothing")).status, 404);
  // Nothing of it on the chat's port: that speaks the chat.
});

Deno.test("server --metrics counts kept places now, and resumes taken, refused by reason and expired", async () => {
  const { child, port } = await startServerProcess(
    ["--metrics", "0", "--resume-grace", "5"],
    ["--allow-net=127.0.0.1"],
  );
  await using _server = child;
  const metrics = await metricsPort(child);
  const scrape = async () => (await get(metrics, "/metrics")).body;
  await using _bob = await joinAs(port, "bob");
  const alice = await joinWithToken(port, formatResume("alice"));
  alice.client.close();
  await child.stdout.readUntil(/ alice .*lost its connection.*: its place is kept$/);
  assert.equal(sample(await scrape(), "chat_kept_places"), 1);
  // A token for another name, and one the server never gave, take nothing.
  const eve = await joinWithToken(port, formatResume("eve", alice.token)); // joins anew, as eve
  await eve.client.send("/quit"); // so that no place is kept for her
  await child.stdout.readUntil(/ eve .* quit$/);
  eve.client.close();
  {
    await using thief = await TestClient.connect(port);
    await thief.expect("* Welcome to chat! What shall I call you?");
    await thief.send(formatResume("alice", "x".repeat(24)));
    await thief.expect("* Could not resume alice: that place is no longer kept; joining anew");
  }
  const back = await joinWithToken(port, formatResume("alice", alice.token));
  let body = await scrape();
  assert.equal(await promtool(body), "");
  assert.equal(sample(body, "chat_kept_places"), 0);
  assert.equal(sample(body, 'chat_resumes_total{result="taken"}'), 1);
  assert.equal(sample(body, 'chat_resumes_total{result="refused",reason="other name"}'), 1);
  assert.equal(sample(body, 'chat_resumes_total{result="refused",reason="unknown token"}'), 1);
  assert.equal(sample(body, 'chat_resumes_total{result="expired"}'), undefined);
  // Dropped again and not back within the grace: the place leaves, counted as expired.
  back.client.close();
  await child.stdout.readUntil(/ alice left \(not back in time\)$/);
  body = await scrape();
  assert.equal(sample(body, "chat_kept_places"), 0);
  assert.equal(sample(body, 'chat_resumes_total{result="expired"}'), 1);
  assert.equal(sample(body, 'chat_resumes_total{result="taken"}'), 1);
});

Deno.test("server --metrics /readyz is 503 while the store cannot be written", async () => {
  await using folder = await Folder.make();
  {
    const { child } = await startStoreServer(folder);
    await using _first = child; // creates the file
    child.process.kill("SIGTERM");
    await child.finish();
  }
  // A read-only file system where the tests may mount one; elsewhere (root in a container, where
  // chmod is ignored) a file size limit, which fails the first write as a full disk does.
  if (folder.isTmpfs) await folder.setReadOnly(true);
  const { child, port } = folder.isTmpfs
    ? await startStoreServer(folder, ["--metrics", "0"])
    : await startStoreServer(folder, ["--metrics", "0"], 64);
  await using _server = child;
  const metrics = await metricsPort(child);
  if (!folder.isTmpfs) {
    await using alice = await joinAs(port, "alice");
    await using bob = await joinAs(port, "bob");
    for (let n = 0; n < 40; n++) {
      await alice.send(`${n} ${"x".repeat(4000)}`);
      while (!(await bob.readLine()).startsWith(`[alice] ${n} `));
    }
    await child.stdout.readUntil(/store: cannot write /);
  }
  const ready = await get(metrics, "/readyz");
  assert.equal(ready.status, 503);
  assert.match(ready.body, /^not ready: the store cannot be written: /);
  assert.equal((await get(metrics, "/healthz")).status, 200);
});

Deno.test("server --metrics /readyz is 503 while the cluster's Redis is down, 200 once it is back", async () => {
  await using redis = await new Redis().start();
  const { child } = await clusterServer(redis, ["--metrics", "0"]);
  await using _server = child;
  const metrics = await metricsPort(child);
  assert.equal((await get(metrics, "/readyz")).status, 200);
  assert.equal(sample((await get(metrics, "/metrics")).body, "chat_redis_up"), 1);
  await redis.stop();
  await child.stdout.readUntil(/redis: lost /);
  const down = await get(metrics, "/readyz");
  assert.deepEqual(down, {
    status: 503,
    body: "not ready: the cluster is not whole: Redis cannot be reached\n",
  });
  assert.equal(sample((await get(metrics, "/metrics")).body, "chat_redis_up"), 0);
  await redis.start();
  await child.stdout.readUntil(/redis: connected to .* again/, 30_000);
  assert.equal((await get(metrics, "/readyz")).status, 200);
});

/** A metrics server on a free loopback port, with a short head deadline, for the tests below. */
function metricsServer(headTimeoutMs = 60_000) {
  return startMetrics({
    hostname: "127.0.0.1",
    port: 0,
    families: () => [],
    unready: () => undefined,
    headTimeoutMs,
  });
}

/** Reads `conn` to its end: the text it got. */
async function readToEnd(conn: Deno.Conn): Promise<string> {
  const chunks: Uint8Array[] = [];
  const buffer = new Uint8Array(4096);
  for (let count; (count = await conn.read(buffer)) !== null;) chunks.push(buffer.slice(0, count));
  return new TextDecoder().decode(new Uint8Array(chunks.flatMap((chunk) => [...chunk])));
}

/** Sends `request` on `conn` and reads the answer to its end (the server closes after one). */
async function ask(conn: Deno.Conn, request: string): Promise<string> {
  await conn.write(new TextEncoder().encode(request));
  return await withDeadline(readToEnd(conn), request.split("\r\n")[0]!);
}

Deno.test("metrics: a connection that sends no request head is closed after the deadline", async () => {
  await using metrics = metricsServer(200);
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: metrics.addr.port });
  assert.equal(await withDeadline(readToEnd(conn), "the close of a silent connection"), "");
});

Deno.test("metrics: connections over the cap are closed at once; a scrape works once they are gone", async () => {
  await using metrics = metricsServer();
  const { port } = metrics.addr;
  const held: Deno.Conn[] = [];
  try {
    for (let i = 0; i < METRICS_MAX_CONNECTIONS; i++) {
      held.push(await Deno.connect({ hostname: "127.0.0.1", port }));
    }
    {
      using over = await Deno.connect({ hostname: "127.0.0.1", port });
      assert.equal(await withDeadline(readToEnd(over), "the close of one over the cap"), "");
    }
    // Each held one is answered once, then closed: the places are free before the client sees EOF.
    for (const conn of held) {
      const answer = await ask(conn, "GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n");
      assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(answer, /\r\nconnection: close\r\n/i);
      assert.ok(answer.endsWith("\r\n\r\nok\n"));
    }
  } finally {
    for (const conn of held) conn.close();
  }
  assert.deepEqual(await get(port, "/healthz"), { status: 200, body: "ok\n" });
  assert.equal((await get(port, "/metrics")).status, 200);
});

Deno.test("metrics: GET and HEAD only, one request per connection", async () => {
  await using metrics = metricsServer();
  const { port } = metrics.addr;
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    assert.match(await ask(conn, "POST /metrics HTTP/1.1\r\n\r\n"), /^HTTP\/1\.1 405 /);
  }
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const answer = await ask(conn, "HEAD /healthz HTTP/1.1\r\n\r\n");
    assert.match(answer, /^HTTP\/1\.1 200 OK\r\n/);
    assert.ok(answer.endsWith("\r\n\r\n"), "no body for HEAD");
  }
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    // Two requests at once: the first is answered, then the connection closes.
    const answer = await ask(conn, "GET /healthz HTTP/1.1\r\n\r\nGET /readyz HTTP/1.1\r\n\r\n");
    assert.equal(answer.match(/HTTP\/1\.1 /g)?.length, 1);
  }
  {
    using conn = await Deno.connect({ hostname: "127.0.0.1", port });
    assert.match(await ask(conn, "junk\r\n\r\n"), /^HTTP\/1\.1 400 /);
  }
});

Deno.test("metrics: a port in use throws and leaves no timer behind", () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = taken.addr;
  assert.throws(
    () =>
      startMetrics({ hostname: "127.0.0.1", port, families: () => [], unready: () => undefined }),
    Deno.errors.AddrInUse,
  );
});

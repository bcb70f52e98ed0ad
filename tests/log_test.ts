/** The server's log: `--log-format json` gives one JSON object a line, the text format stays prose. */
import assert from "node:assert/strict";
import { formatLogLine } from "../server/log.ts";
import { connectFrom, joinAs, type LineReader, serverChild } from "./_helpers.ts";

const TIME = new Date("2025-01-02T03:04:05.678Z");

Deno.test("formatLogLine gives the text line as the time and the message alone", () => {
  const event = {
    message: "Emil (127.0.0.1:5000) joined",
    fields: { event: "join", name: "Emil", address: "127.0.0.1:5000" },
  };
  assert.equal(
    formatLogLine(TIME, event, "text"),
    "2025-01-02T03:04:05.678Z Emil (127.0.0.1:5000) joined",
  );
});

Deno.test("formatLogLine gives a JSON line with the level info unless said", () => {
  const event = {
    message: "refused 2 connection(s)",
    fields: { event: "refused", reason: "connection limits", counts: { connections: 2 } },
  };
  assert.deepEqual(JSON.parse(formatLogLine(TIME, event, "json")), {
    time: "2025-01-02T03:04:05.678Z",
    level: "info",
    event: "refused",
    reason: "connection limits",
    counts: { connections: 2 },
    message: "refused 2 connection(s)",
  });
});

/** Reads the JSON log until an object matches `wanted`, checking every line on the way parses. */
async function readEvent(
  lines: LineReader,
  wanted: (entry: Record<string, unknown>) => boolean,
): Promise<Record<string, unknown>> {
  while (true) {
    const line = await lines.readLine();
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line);
    } catch {
      throw new Error(`Not a JSON line: ${JSON.stringify(line)}`);
    }
    assert.equal(typeof entry.time, "string");
    assert.equal(typeof entry.event, "string");
    assert.match(String(entry.level), /^(info|warn|error)$/);
    if (wanted(entry)) return entry;
  }
}

Deno.test("server --log-format json logs every line as JSON, joins, leaves and refusals with their fields", async () => {
  await using server = serverChild([
    "--log-format",
    "json",
    "--join-rate",
    "1",
    "--exempt",
    "none",
  ]);
  const listening = await readEvent(server.stdout, (entry) => entry.event === "listening");
  const port = Number(/:(\d+)$/.exec(String(listening.address))?.[1]);
  await readEvent(server.stdout, (entry) => entry.event === "connect hint");

  {
    await using emil = await joinAs(port, "Emil");
    const join = await readEvent(server.stdout, (entry) => entry.event === "join");
    assert.equal(join.name, "Emil");
    assert.match(String(join.address), /^127\.0\.0\.1:\d+$/);
    assert.match(String(join.message), /^Emil \(127\.0\.0\.1:\d+\) joined$/);
    await emil.send("/quit bye");
    const quit = await readEvent(server.stdout, (entry) => entry.event === "leave");
    assert.deepEqual([quit.name, quit.reason], ["Emil", "quit: bye"]);
  }
  // With no exempt address, 127.0.0.2's second join in a minute is refused, and counted in the log.
  {
    await using first = await connectFrom(port, "127.0.0.2");
    await first.expect(/Welcome to chat/);
    await first.send("Anna");
    while (!(await first.readLine()).startsWith("* Welcome, Anna!"));
    let refusals = 0;
    for (let i = 0; i < 5 && refusals === 0; i++) {
      await using next = await connectFrom(port, "127.0.0.2");
      await next.expect(/Welcome to chat/);
      await next.send(`Bert${i}`);
      if (/^\* error: Too many joins from 127\.0\.0\.2/.test(await next.readLine())) refusals++;
    }
    assert.equal(refusals, 1);
    const refused = await readEvent(server.stdout, (entry) => entry.event === "refused");
    assert.equal(refused.level, "warn");
    assert.deepEqual(refused.counts, { connections: 0, joins: 1 });
    first.close();
    const left = await readEvent(
      server.stdout,
      (entry) => entry.event === "leave" && entry.name === "Anna",
    );
    assert.equal(left.reason, "disconnected");
    assert.match(String(left.address), /^127\.0\.0\.2:\d+$/);
  }
  server.process.kill("SIGTERM");
  await readEvent(server.stdout, (entry) => entry.event === "shutdown");
  const { code, stdout, stderr } = await server.finish();
  assert.equal(code, 0);
  assert.equal(stderr, "");
  for (const line of stdout.split("\n").filter(Boolean)) JSON.parse(line);
});

Deno.test("server --log-format refuses a format it does not know in one line", async () => {
  await using server = serverChild(["--log-format", "xml"]);
  const { code, stderr } = await server.finish();
  assert.equal(code, 2);
  assert.match(stderr, /^error: Invalid --log-format "xml": use text or json \(see .*\)\n$/);
});

/** End-to-end tests: the server process started as the README says, with ncat and client.ts. */
import assert from "node:assert/strict";
import {
  Child,
  denoChild,
  joinAs,
  startServerProcess,
  TestClient,
  withDeadline,
} from "./_helpers.ts";

/** `ncat HOST PORT`, the `nc` of Debian's ncat package, as a user at a terminal would run it. */
function ncat(port: number): Child {
  return new Child("ncat", ["127.0.0.1", String(port)], { stdin: true });
}

/** The limits line at the default limits. */
const LIMITS = "* Limits: lines of up to 4096 bytes, 10 at once, then 5 a second";

Deno.test("e2e: an nc user and two client.ts users chat through the server process", async () => {
  const { child: server, port } = await startServerProcess();
  await using _server = server;
  await using nc = ncat(port);
  assert.equal(await nc.stdout.readLine(), "* Welcome to chat! What shall I call you?");
  await nc.write("ncuser\n");
  assert.equal(await nc.stdout.readLine(), "* The room contains:");
  assert.equal(await nc.stdout.readLine(), LIMITS);
  assert.equal(
    await nc.stdout.readLine(),
    "* Welcome, ncuser! 1 user online; /help lists the commands",
  );

  await using emil = denoChild(["run", "-q", "-N", "client.ts", "Emil", "--port", String(port)], {
    stdin: true,
  });
  assert.equal(await emil.stdout.readLine(), "* The room contains: ncuser");
  assert.equal(await emil.stdout.readLine(), LIMITS);
  assert.equal(
    await emil.stdout.readLine(),
    "* Welcome, Emil! 2 users online; /help lists the commands",
  );
  assert.equal(await nc.stdout.readLine(), "* Emil has entered the room");
  await using anna = denoChild([
    "run",
    "-q",
    "-N",
    "main.ts",
    "client",
    "Anna",
    "--port",
    String(port),
  ], {
    stdin: true,
  });
  assert.equal(await anna.stdout.readLine(), "* The room contains: ncuser, Emil");
  assert.equal(await anna.stdout.readLine(), LIMITS);
  assert.equal(
    await anna.stdout.readLine(),
    "* Welcome, Anna! 3 users online; /help lists the commands",
  );
  assert.equal(await emil.stdout.readLine(), "* Anna has entered the room");
  assert.equal(await nc.stdout.readLine(), "* Anna has entered the room");

  await nc.write("hello from nc\r\n");
  assert.equal(await emil.stdout.readLine(), "[ncuser] hello from nc");
  assert.equal(await anna.stdout.readLine(), "[ncuser] hello from nc");
  await emil.write("hello from Emil\n");
  assert.equal(await nc.stdout.readLine(), "[Emil] hello from Emil");
  assert.equal(await anna.stdout.readLine(), "[Emil] hello from Emil");

  // A client killed outright is removed at once and the others are told.
  emil.process.kill("SIGKILL");
  assert.equal(await nc.stdout.readLine(), "* Emil has left the room");
  assert.equal(await anna.stdout.readLine(), "* Emil has left the room");
  await anna.closeStdin();
  assert.equal(await nc.stdout.readLine(), "* Anna has left the room");
  assert.equal((await anna.finish()).code, 0);

  // SIGTERM: everyone is told, every socket closes, the server exits 0.
  server.process.kill("SIGTERM");
  assert.equal(await nc.stdout.readLine(), "* Server is shutting down, goodbye");
  const end = await server.finish(); // exits although ncat, as it does, keeps its side open
  await nc.closeStdin();
  assert.equal((await nc.finish()).stdout, "");
  assert.equal(end.code, 0);
  assert.equal(end.stderr, "");
  assert.match(end.stdout, /ncuser \(127\.0\.0\.1:\d+\) joined/);
  assert.match(end.stdout, /shutting down/);
});

Deno.test("e2e: SIGINT shuts the server down cleanly with exit code 0", async () => {
  const { child: server, port } = await startServerProcess();
  await using _server = server;
  await using nc = ncat(port);
  await nc.stdout.readLine();
  server.process.kill("SIGINT");
  assert.equal(await nc.stdout.readLine(), "* Server is shutting down, goodbye");
  assert.equal((await server.finish()).code, 0);
});

Deno.test("e2e: a client.ts user is told in one line when the server is killed", async () => {
  const { child: server, port } = await startServerProcess();
  await using _server = server;
  await using emil = denoChild(["run", "-q", "-N", "client.ts", "Emil", "--port", String(port)], {
    stdin: true,
  });
  assert.equal(await emil.stdout.readLine(), "* The room contains:");
  server.process.kill("SIGKILL");
  const end = await emil.finish();
  assert.equal(end.code, 1);
  assert.match(
    end.stderr,
    /^error: (The server closed the connection|Connection to the server lost: .*)\n$/,
  );
});

Deno.test("e2e: deno task server refuses another port with one clear line, whose command works and keeps every option", async () => {
  const options = ["--host", "127.0.0.1", "--port", "0", "--history", "1", "--join-rate", "0"];
  await using task = denoChild(["task", "-q", "server", ...options]);
  const { code, stdout, stderr } = await task.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  const command = "deno run --allow-net=127.0.0.1:0 " +
    "--v8-flags=--max-semi-space-size=4,--heap-growing-percent=20 main.ts server " +
    options.join(" ");
  assert.equal(
    stderr,
    `error: No permission to listen on 127.0.0.1:0 (the deno tasks allow 0.0.0.0:1234 only); run: ${command}\n`,
  );
  // Pasted as it is, it runs: the history of one line shows the option was kept.
  await using pasted = new Child("sh", ["-c", `exec '${Deno.execPath()}'${command.slice(4)}`]);
  const line = await pasted.stdout.readUntil(/^listening on /);
  const port = Number(/:(\d+)/.exec(line)![1]);
  await using alice = await joinAs(port, "alice");
  await using carol = await joinAs(port, "carol");
  await alice.send("one");
  await alice.send("two");
  await carol.expect("[alice] one");
  await carol.expect("[alice] two"); // in the history before bob joins
  const newcomer = await TestClient.connect(port);
  await using _newcomer = newcomer;
  await newcomer.expect(/^\* Welcome to chat/);
  await newcomer.send("bob");
  await newcomer.expect("* The room contains: alice, carol");
  await newcomer.expect(/^\* history \S+ \[alice\] two$/);
  await newcomer.expect(/^\* Limits: /);
});

Deno.test("e2e: a port in use gives one clear line and exit code 1", async () => {
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  await using server = denoChild([
    "run",
    "-q",
    `--allow-net=127.0.0.1:${port}`,
    "main.ts",
    "server",
    "--host",
    "127.0.0.1",
    "--port",
    String(port),
  ]);
  const { code, stdout, stderr } = await server.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(
    stderr,
    `error: Cannot listen on 127.0.0.1:${port}: the address is already in use\n`,
  );
});

Deno.test("e2e: bad server flags give one line and exit code 2", async () => {
  for (const args of [["--port", "http"], ["--max-line", "10"], ["--what"], ["extra"]]) {
    await using server = denoChild([
      "run",
      "-q",
      "--allow-net=127.0.0.1:0",
      "main.ts",
      "server",
      ...args,
    ]);
    const { code, stderr } = await server.finish();
    assert.equal(code, 2, args.join(" "));
    assert.match(stderr, /^error: .* \(see deno task server --help\)\n$/, args.join(" "));
  }
});

Deno.test("e2e: --help lists both commands, and server --help every server flag", async () => {
  await using overview = denoChild(["run", "-q", "main.ts", "--help"]);
  const general = await withDeadline(overview.finish(), "help");
  assert.equal(general.code, 0);
  for (const text of ["deno task server [options]", "deno task client NAME [options]"]) {
    assert.ok(general.stdout.includes(text), text);
  }
  await using help = denoChild(["run", "-q", "main.ts", "server", "--help"]);
  const { code, stdout } = await withDeadline(help.finish(), "help");
  assert.equal(code, 0);
  const flags = [
    "--host",
    "--port",
    "--cert FILE --key FILE",
    "--history",
    "--max-line",
    "--max-backlog",
    "--max-connections",
    "--max-per-address",
    "--name-timeout",
    "--idle-timeout",
    "--write-timeout",
    "--flood-burst",
    "--flood-rate",
    "--flood-limit",
  ];
  for (const text of ["deno task server [options]", ...flags]) {
    assert.ok(stdout.includes(text), text);
  }
  // Each default as the README's table of limits states it.
  const defaults: Record<string, string> = {
    "--history N": "50",
    "--max-line N": "4096",
    "--max-backlog N": String(1024 * 1024),
    "--max-connections N": "10000",
    "--max-per-address N": "20",
    "--name-timeout SECONDS": "30",
    "--idle-timeout SECONDS": "0",
    "--write-timeout SECONDS": "30",
    "--flood-burst N": "10",
    "--flood-rate N": "5",
    "--flood-limit N": "50",
  };
  // Each option's text, with the lines it wraps to.
  const rows = stdout.split(/\n(?= {2}-|\n)/).map((row) => row.replace(/\n +/g, " "));
  for (const [flag, value] of Object.entries(defaults)) {
    const row = rows.find((row) => row.startsWith(`  ${flag} `));
    assert.ok(row?.endsWith(`(default ${value})`), `${flag}: ${row}`);
  }
});

Deno.test("e2e: --max-line, --history, --flood-burst, --flood-rate and --max-connections reach the server", async () => {
  const { child: server, port } = await startServerProcess([
    "--max-line",
    "4000",
    "--history",
    "0",
    "--flood-burst",
    "3",
    "--flood-rate",
    "2",
    "--max-connections",
    "2",
  ]);
  await using _server = server;
  await using nc = ncat(port);
  await nc.stdout.readLine();
  await nc.write("ncuser\nsaid before\n");
  await nc.stdout.readUntil(/^\* Welcome, ncuser/);
  await nc.write(`${"x".repeat(4001)}\n`);
  assert.equal(await nc.stdout.readLine(), "* error: Line too long: the limit is 4000 bytes");
  await using emil = denoChild(["run", "-q", "-N", "client.ts", "Emil", "--port", String(port)], {
    stdin: true,
  });
  assert.equal(await emil.stdout.readLine(), "* The room contains: ncuser");
  // No history line before the limits, which show the new line limit and flood control.
  assert.equal(
    await emil.stdout.readLine(),
    "* Limits: lines of up to 4000 bytes, 3 at once, then 2 a second",
  );
  assert.match(await emil.stdout.readLine(), /^\* Welcome, Emil/);
  await using third = await TestClient.connect(port);
  assert.deepEqual(await third.readToEnd(), [
    "* error: Server is full: at most 2 connections; try again later",
  ]);
});

Deno.test("e2e: --name-timeout and --idle-timeout take seconds", async () => {
  const { child: server, port } = await startServerProcess([
    "--name-timeout",
    "0.3",
    "--idle-timeout",
    "0.5",
  ]);
  await using _server = server;
  await using silent = await TestClient.connect(port);
  await using member = await joinAs(port, "member");
  assert.deepEqual(await silent.readToEnd(), [
    "* Welcome to chat! What shall I call you?",
    "* error: No valid name within 0.3 seconds",
  ]);
  assert.deepEqual(await member.readToEnd(), [
    "* error: Closed after 0.5 seconds without a line",
  ]);
});

/** 4 KB lines, as many as it takes to fill the kernel's buffers for a client that does not read. */
const TEXT = "w".repeat(4000);

/** Alice says `count` lines, eight at a time, and bob reads each; returns whether bob saw `notice`. */
async function talk(
  alice: TestClient,
  bob: TestClient,
  count: number,
  notice?: string,
): Promise<boolean> {
  let isNoticed = false;
  for (let sent = 0, received = 0; sent < count;) {
    for (const end = sent + 8; sent < end;) await alice.send(`${sent++} ${TEXT}`);
    while (received < sent) {
      const line = await bob.readLine();
      if (line === notice && !isNoticed) isNoticed = true;
      else assert.equal(line, `[alice] ${received++} ${TEXT}`);
    }
  }
  return isNoticed;
}

Deno.test("e2e: --write-timeout takes seconds: a reader that pauses is kept, one that stops is not", async () => {
  const { child: server, port } = await startServerProcess([
    "--write-timeout",
    "3",
    // The room log (64 MiB, for 24 MiB of talk) and the limit on private lines out of reach:
    // only the write timeout can drop the reader.
    "--log-size",
    String(2 ** 26),
    "--max-backlog",
    String(2 ** 30),
    "--flood-rate",
    "0",
  ]);
  await using _server = server;
  await using alice = await joinAs(port, "alice");
  await using bob = await joinAs(port, "bob");
  await using reader = await joinAs(port, "reader");
  await alice.expect("* bob has entered the room");
  await alice.expect("* reader has entered the room");
  await bob.expect("* reader has entered the room");
  // 8 MiB, about twice what the kernel buffers for the reader, so the server's writes to it stall
  // for the rest of the talk and the pause: well under 3 s, far over 3 ms.
  await talk(alice, bob, 2048);
  await new Promise((resolve) => setTimeout(resolve, 300)); // the reader's pause (not a wait)
  for (let i = 0; i < 2048; i++) await reader.expect(`[alice] ${i} ${TEXT}`);
  // Now it stops reading for good: dropped 3 s into the stall (checked every 0.75 s).
  const notice = "* reader has left the room (stopped reading)";
  if (!await talk(alice, bob, 4096, notice)) await bob.expect(notice, 8000);
});

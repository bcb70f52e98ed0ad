/** End-to-end tests: the server process started as the README says, with ncat and client.ts. */
import assert from "node:assert/strict";
import { Child, denoChild, startServerProcess, withDeadline } from "./_helpers.ts";

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

Deno.test("e2e: deno task server refuses another port with one clear line", async () => {
  await using task = denoChild(["task", "-q", "server", "--host", "127.0.0.1", "--port", "0"]);
  const { code, stdout, stderr } = await task.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(
    stderr,
    "error: No permission to listen on 127.0.0.1:0 (deno task server allows 0.0.0.0:1234 only); " +
      "run: deno run --allow-net=127.0.0.1:0 main.ts server --host 127.0.0.1 --port 0\n",
  );
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
    assert.match(stderr, /^error: .* \(see chat --help\)\n$/, args.join(" "));
  }
});

Deno.test("e2e: chat --help lists both commands and every server flag", async () => {
  await using help = denoChild(["run", "-q", "main.ts", "--help"]);
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
    "--tls",
    "--ca FILE",
  ];
  for (const text of ["chat server", "chat client NAME", ...flags]) {
    assert.ok(stdout.includes(text), text);
  }
});

Deno.test("e2e: --max-line and --history reach the server", async () => {
  const { child: server, port } = await startServerProcess([
    "--max-line",
    "4000",
    "--history",
    "0",
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
  // No history line before the limits, which show the new line limit.
  assert.equal(
    await emil.stdout.readLine(),
    "* Limits: lines of up to 4000 bytes, 10 at once, then 5 a second",
  );
  assert.match(await emil.stdout.readLine(), /^\* Welcome, Emil/);
});

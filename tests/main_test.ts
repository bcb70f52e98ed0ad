/** Tests of the command line (main.ts) as a newcomer meets it: subprocesses, as the README runs them. */
import assert from "node:assert/strict";
import {
  ANY_GREETING,
  Certificate,
  Child,
  denoChild,
  run,
  startServerProcess,
  TestClient,
  unusedPort,
} from "./_helpers.ts";
import { Folder } from "./_store.ts";
import { SERVER_V8_FLAGS } from "../cli/flags.ts";
import config from "../deno.json" with { type: "json" };

/** The names in a folder, sorted (by ls: the tests have no read permission of their own). */
async function namesIn(path: string): Promise<string[]> {
  return (await run("ls", ["-A", path])).split("\n").filter((name) => name !== "").sort();
}

Deno.test("main server --store creates no file when the server cannot listen or use its certificate", async () => {
  await using folder = await Folder.make();
  using taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = String(taken.addr.port);
  await run("sh", ["-c", 'echo "not a certificate" > "$1"', "sh", `${folder.path}/cert.pem`]);
  const cert = ["--cert", `${folder.path}/cert.pem`, "--key", `${folder.path}/cert.pem`];
  const cases: [string[], RegExp][] = [
    [["--port", port], /^error: Cannot listen on 127\.0\.0\.1:\d+: the address is already in use$/],
    [["--port", "0", "--web", port], /^error: the web page: Cannot listen on .*already in use$/],
    [["--port", "0", ...cert], /^error: Cannot use the TLS certificate and key: .*$/],
  ];
  for (const [args, expected] of cases) {
    await using server = denoChild([
      "run",
      "-q",
      "--allow-net=127.0.0.1",
      `--allow-read=${folder.path}`,
      `--allow-write=${folder.path}`,
      "main.ts",
      "server",
      "--host",
      "127.0.0.1",
      "--store",
      folder.file,
      ...args,
    ]);
    const { code, stdout, stderr } = await server.finish();
    assert.equal(code, 1, args.join(" "));
    assert.equal(stdout, "", args.join(" "));
    assert.match(stderr.trimEnd(), expected, args.join(" "));
    assert.deepEqual(await namesIn(folder.path), ["cert.pem"], args.join(" "));
  }
});

/** The command a refusal asks to run, pasted into a shell, with this deno first on the PATH. */
function paste(stderr: string): Child {
  const command = /; run: (deno run .*)\n$/.exec(stderr)?.[1];
  assert.ok(command, stderr);
  const path = `${Deno.execPath().replace(/\/[^/]*$/, "")}:${Deno.env.get("PATH")}`;
  return new Child("sh", ["-c", `exec ${command}`], { env: { PATH: path } });
}

Deno.test("main server tasks refuse another port with a command that works first time, with every flag of the task once", async () => {
  await using folder = await Folder.make();
  const [port, webPort, ircPort] = [unusedPort(), unusedPort(), unusedPort()];
  const chat = ["--host", "127.0.0.1", "--port", String(port)];
  for (
    const [task, args] of [
      ["web", [...chat, "--web", String(webPort)]],
      ["irc", [...chat, "--irc", String(ircPort)]],
      ["store", [...chat, "--store", folder.file]],
    ] as const
  ) {
    await using refused = denoChild(["task", "-q", task, ...args]);
    const { code, stderr } = await refused.finish();
    assert.equal(code, 1, stderr);
    assert.match(stderr, /^error: No permission to listen on 127\.0\.0\.1:\d+ \(the deno tasks /);
    assert.ok(stderr.includes(` --v8-flags=${SERVER_V8_FLAGS} main.ts server `), stderr);
    assert.equal(stderr.split(` --${task} `).length, 2, `one --${task}: ${stderr}`);
    await using pasted = paste(stderr);
    const line = await pasted.stdout.readUntil(/^listening on /);
    assert.match(line, new RegExp(`^listening on 127\\.0\\.0\\.1:${port}\\b`));
    if (task === "web") {
      assert.match(
        await pasted.stdout.readLine(),
        new RegExp(`^web page on http://127\\.0\\.0\\.1:${webPort}/`),
      );
    } else if (task === "irc") {
      assert.match(
        await pasted.stdout.readLine(),
        new RegExp(`^irc on 127\\.0\\.0\\.1:${ircPort} as #chat$`),
      );
    } else assert.ok(line.includes(`keeping the room in ${folder.file}`), line);
  }
});

Deno.test("main SERVER_V8_FLAGS are the V8 flags of every server task", () => {
  for (const task of ["server", "store", "cluster", "web", "irc"] as const) {
    assert.ok(config.tasks[task].command.includes(` --v8-flags=${SERVER_V8_FLAGS} `), task);
  }
});

/** Runs main.ts with `permissions` and `args` to its end. */
async function runMain(args: string[], permissions: string[] = []) {
  await using child = denoChild(["run", "-q", ...permissions, "main.ts", ...args]);
  return await child.finish();
}

Deno.test("main startup mistakes are one line each, saying what is wrong and naming a help that exists", async () => {
  const port = String(unusedPort());
  const net = ["--allow-net=127.0.0.1"];
  const cases: [string[], string[], number, string][] = [
    [
      ["server", "--history", "-1"],
      net,
      2,
      'Invalid --history "-1": use a whole number from 0 to 10000 (see deno task server --help)',
    ],
    [
      ["client", "x", "--reconnect", "-1"],
      net,
      2,
      'Invalid --reconnect "-1": use a whole number from 0 to 1000 (see deno task client --help)',
    ],
    [["server", "--what"], net, 2, 'Unknown option "--what" (see deno task server --help)'],
    [["client"], net, 2, "Missing NAME: deno task client NAME (see deno task client --help)"],
    [
      ["chat"],
      [],
      2,
      'Unknown command "chat": use "server", "client" or "admin" (see deno run main.ts --help)',
    ],
    [
      ["admin", "op", "alice"],
      [],
      2,
      "Give the server's store: --store FILE (or --redis URL for a cluster) (see deno task admin --help)",
    ],
    [
      ["admin", "promote", "x"],
      [],
      2,
      'Unknown action "promote": use op, deop, list or hash (see deno task admin --help)',
    ],
    [["admin", "--store", "x.db", "op"], [], 2, "op needs one NAME (see deno task admin --help)"],
    [
      ["admin", "--store", "/nonexistent/chat.db", "list"],
      ["--allow-read=/nonexistent"],
      1,
      "Cannot open /nonexistent/chat.db: no such file (a server run with --store makes it)",
    ],
    [
      ["server", "--operators-file", "ops.txt", "--store", "chat.db"],
      net,
      2,
      "--operators-file is for a server with no --store and no --redis: those keep their operators themselves (chat admin --store FILE op NAME) (see deno task server --help)",
    ],
    [
      ["server", "--host", "127.0.0.1", "--port", port, "--web", port],
      net,
      2,
      `--web ${port} is the chat's own port: give the page a port of its own, as --web 8080 (see deno task server --help)`,
    ],
    [
      ["server", "--host", "127.0.0.1", "--web", "0.0.0.0:1234"],
      net,
      2,
      "--web 0.0.0.0:1234 is the chat's own port: give the page a port of its own, as --web 8080 (see deno task server --help)",
    ],
    [
      [
        "server",
        "--port",
        "0",
        "--cert",
        "/nonexistent/cert.pem",
        "--key",
        "/nonexistent/cert.pem",
      ],
      [...net, "--allow-read=/nonexistent"],
      1,
      "Cannot read /nonexistent/cert.pem: no such file",
    ],
    [
      [
        "server",
        "--port",
        "0",
        "--cert",
        "/nonexistent/cert.pem",
        "--key",
        "/nonexistent/cert.pem",
      ],
      net,
      1,
      "No permission to read /nonexistent/cert.pem; run with --allow-read=/nonexistent/cert.pem",
    ],
    [
      ["server", "--host", "127.0.0.1", "--port", "0", "--store", "/nonexistent/chat.db"],
      [...net, "--allow-read=/nonexistent", "--allow-write=/nonexistent"],
      1,
      "Cannot create /nonexistent/chat.db: the folder /nonexistent does not exist or cannot be written",
    ],
  ];
  for (const [args, permissions, code, line] of cases) {
    const result = await runMain(args, permissions);
    assert.deepEqual([result.code, result.stderr], [code, `error: ${line}\n`], args.join(" "));
  }
});

Deno.test("main --version prints the version deno.json holds", async () => {
  const { code, stdout } = await runMain(["--version"]);
  assert.equal(code, 0);
  assert.equal(stdout, `chat ${config.version}\n`);
  assert.match(config.version, /^\d+\.\d+\.\d+$/);
});

Deno.test("main deno task server --version and deno task client --version print the version and start nothing", async () => {
  for (const args of [["server", "--version"], ["client", "-V"], ["server", "--port", "1", "-V"]]) {
    await using child = denoChild(["task", "-q", ...args]);
    const { code, stdout, stderr } = await child.finish();
    assert.deepEqual([code, stdout, stderr], [0, `chat ${config.version}\n`, ""], args.join(" "));
  }
});

Deno.test("main server --help and client --help each list their own options, in lines of at most 100 columns, aligned", async () => {
  const own = {
    server: [
      "--host HOST",
      "--port PORT",
      "--store FILE",
      "--web [HOST:]PORT",
      "--handshake-timeout SECONDS",
      "--flood-limit N",
    ],
    client: ["--host HOST", "--tls", "--ca FILE", "--server-password-file FILE", "--reconnect N"],
  };
  for (const [command, options] of Object.entries(own)) {
    const { code, stdout } = await runMain([command, "--help"]);
    assert.equal(code, 0);
    assert.match(stdout, new RegExp(`^Usage: deno task ${command} `));
    const lines = stdout.trimEnd().split("\n");
    for (const line of lines) assert.ok(line.length <= 100, `${command}: ${line}`);
    // Every option's text starts in one column, as do the lines its text wraps to.
    const rows = lines.filter((line) => /^ {2}-/.test(line));
    const column = /^ {2}\S.*? {2,}(?=\S)/.exec(rows[0]!)![0].length;
    for (const row of rows) {
      assert.equal(/^ {2}\S.*? {2,}(?=\S)/.exec(row)?.[0].length, column, row);
    }
    for (const option of options) {
      assert.ok(rows.some((row) => row.startsWith(`  ${option} `)), `${command}: ${option}`);
    }
    const other = command === "server" ? "--server-password-file" : "--store";
    assert.ok(!stdout.includes(other), `${command} --help lists ${other}`);
  }
});

Deno.test("main server says at startup how to connect, and the command it gives joins the room", async () => {
  const { child: server, port } = await startServerProcess();
  await using _server = server;
  const hint = await server.stdout.readLine();
  assert.equal(
    hint,
    `connect with: deno task client NAME --port ${port}, or nc 127.0.0.1 ${port}`,
  );
  // As the hint says, with Emil for NAME.
  const flags = /^connect with: deno task client NAME (.*), or /.exec(hint)![1]!.split(" ");
  await using client = denoChild(["task", "-q", "client", "Emil", ...flags], { stdin: true });
  assert.equal(await client.stdout.readLine(), "* The room contains:");
});

/** Reads lines until one is `expected` (past the limits line a newcomer is told, say). */
async function until(client: TestClient<Deno.Conn>, expected: string): Promise<void> {
  while (await client.readLine() !== expected);
}

/** A TLS client of `port` trusting only `certificate`; resolves once its handshake is done. */
async function connectTrusting(port: number, certificate: Certificate): Promise<Deno.TlsConn> {
  const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [certificate.pem] });
  try {
    await conn.handshake();
    return conn;
  } catch (error) {
    conn.close();
    throw error;
  }
}

/** Joins as `name` over TLS, trusting only `certificate`. */
async function joinTrusting(
  port: number,
  options: { certificate: Certificate; name: string },
): Promise<TestClient<Deno.TlsConn>> {
  const client = new TestClient(await connectTrusting(port, options.certificate));
  await client.expect(ANY_GREETING);
  await client.send(options.name);
  await client.expect(/^\* The room contains:/);
  return client;
}

Deno.test("main server reloads its certificate on SIGHUP: members stay, new handshakes (chat and page) get the new one, a bad one is refused in one line", async () => {
  await using certificate = await Certificate.make();
  await using renewed = await Certificate.make();
  const { cert, key } = certificate;
  const { child, port } = await startServerProcess(
    ["--cert", cert, "--key", key, "--web", "127.0.0.1:0"],
    ["--allow-net=127.0.0.1:0", `--allow-read=${cert},${key}`],
  );
  await using server = child;
  const webPort = Number(/:(\d+)\/$/.exec(await server.stdout.readUntil(/^web page on /))![1]);
  await using alice = await joinTrusting(port, { certificate, name: "alice" });

  await run("cp", [renewed.cert, cert]);
  await run("cp", [renewed.key, key]);
  server.process.kill("SIGHUP");
  assert.match(
    await server.stdout.readUntil(/ SIGHUP: /),
    new RegExp(
      ` SIGHUP: reloaded the certificate ${cert} and key ${key}; new connections use them$`,
    ),
  );
  await using bob = await joinTrusting(port, { certificate: renewed, name: "bob" });
  await until(alice, "* bob has entered the room");
  await alice.send("still here");
  await until(bob, "[alice] still here");
  await assert.rejects(connectTrusting(port, certificate), Deno.errors.InvalidData);
  (await connectTrusting(webPort, renewed)).close();
  await assert.rejects(connectTrusting(webPort, certificate), Deno.errors.InvalidData);

  // A key that is not one: said in one line, and the certificate served stays the one before.
  await run("sh", ["-c", 'echo "not a key" > "$1"', "sh", key]);
  server.process.kill("SIGHUP");
  assert.match(
    await server.stdout.readUntil(/ SIGHUP: /),
    / SIGHUP: reload refused, the old certificate and password are kept: Cannot use the TLS certificate and key: the key file holds no PEM private key$/,
  );
  await using _carol = await joinTrusting(port, { certificate: renewed, name: "carol" });
  (await connectTrusting(webPort, renewed)).close();
  await bob.send("and me");
  await until(alice, "* carol has entered the room");
  await until(alice, "[bob] and me");
});

Deno.test("main server re-reads --password-file on SIGHUP: new connections need the new password, members stay", async () => {
  await using folder = await Folder.make();
  const file = `${folder.path}/password`;
  await run("sh", ["-c", `printf 'our secret room\\n' > ${file}`]);
  const { child, port } = await startServerProcess(["--password-file", file], [
    "--allow-net=127.0.0.1:0",
    `--allow-read=${file}`,
  ]);
  await using server = child;
  const join = async (password: string, _name: string) => {
    const client = await TestClient.connect(port);
    await client.expect("* Welcome to chat! This server is private: send its password");
    await client.send(password);
    return client;
  };
  await using alice = await join("our secret room", "alice");
  await until(alice, "* What shall I call you?");
  await alice.send("alice");
  await until(alice, "* The room contains:");

  await run("sh", ["-c", `printf 'a new secret\\n' > ${file}`]);
  server.process.kill("SIGHUP");
  assert.match(
    await server.stdout.readUntil(/ SIGHUP: /),
    new RegExp(` SIGHUP: reloaded the server password ${file}; new connections use it$`),
  );
  {
    await using guest = await join("our secret room", "guest");
    assert.deepEqual(await guest.readToEnd(), ["* error: Wrong server password"]);
  }
  await using bob = await join("a new secret", "bob");
  await until(bob, "* What shall I call you?");
  await bob.send("bob");
  await until(bob, "* The room contains: alice");
  await until(alice, "* bob has entered the room");

  // Too short to be a password: refused, and the one before still holds.
  await run("sh", ["-c", `printf 'short\\n' > ${file}`]);
  server.process.kill("SIGHUP");
  assert.match(
    await server.stdout.readUntil(/ SIGHUP: /),
    / SIGHUP: reload refused, the old certificate and password are kept: --password-file .*: /,
  );
  await using carol = await join("a new secret", "carol");
  await carol.expect("* What shall I call you?");
  await alice.send("hello");
  await until(bob, "[alice] hello");
});

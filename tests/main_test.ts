/** Tests of the command line (main.ts) as a newcomer meets it: subprocesses, as the README runs them. */
import assert from "node:assert/strict";
import { Child, denoChild, run, startServerProcess, unusedPort } from "./_helpers.ts";
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
  const [port, webPort] = [unusedPort(), unusedPort()];
  const chat = ["--host", "127.0.0.1", "--port", String(port)];
  for (
    const [task, args] of [
      ["web", [...chat, "--web", String(webPort)]],
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
    } else assert.ok(line.includes(`keeping the room in ${folder.file}`), line);
  }
});

Deno.test("main SERVER_V8_FLAGS are the V8 flags of every server task", () => {
  for (const task of ["server", "store", "cluster", "web"] as const) {
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
      'Unknown command "chat": use "server" or "client" (see deno run main.ts --help)',
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

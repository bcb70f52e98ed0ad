/** Tests of the command line (main.ts) as a newcomer meets it: subprocesses, as the README runs them. */
import assert from "node:assert/strict";
import { Child, denoChild, run, unusedPort } from "./_helpers.ts";
import { Folder } from "./_store.ts";
import { SERVER_V8_FLAGS } from "../main.ts";
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

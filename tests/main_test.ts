/** Tests of the command line (main.ts) as a newcomer meets it: subprocesses, as the README runs them. */
import assert from "node:assert/strict";
import { denoChild, run } from "./_helpers.ts";
import { Folder } from "./_store.ts";

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

import assert from "node:assert/strict";
import { denoChild, joinAs, startTestServer, TestClient, unusedPort } from "./_helpers.ts";

/** client.ts started the way the README says, with a pipe for stdin. */
function clientChild(name: string, port: number, extra: string[] = []) {
  return denoChild(["run", "-q", "-N", "client.ts", name, "--port", String(port), ...extra], {
    stdin: true,
  });
}

Deno.test("client sends its name and typed lines while printing the room's lines", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using emil = clientChild("Emil", server.addr.port);
  await alice.expect("* Emil has entered the room");
  assert.equal(await emil.stdout.readLine(), "* The room contains: alice");
  await alice.send("hello Emil");
  assert.equal(await emil.stdout.readLine(), "[alice] hello Emil");
  await emil.write("hi alice\n");
  await alice.expect("[Emil] hi alice");
  await alice.send("bye");
  assert.equal(await emil.stdout.readLine(), "[alice] bye");
  await emil.closeStdin(); // Ctrl+D
  await alice.expect("* Emil has left the room");
  assert.deepEqual(await emil.finish(), { code: 0, signal: null, stdout: "", stderr: "" });
});

Deno.test("client leaves on /quit and sends a last line without a line end", async () => {
  await using server = startTestServer();
  await using alice = await joinAs(server.addr.port, "alice");
  await using emil = clientChild("Emil", server.addr.port);
  await alice.expect("* Emil has entered the room");
  await emil.write("one\n/quit\nnever sent\n");
  await alice.expect("[Emil] one");
  await alice.expect("* Emil has left the room");
  assert.equal((await emil.finish()).code, 0);

  await using piped = clientChild("Piped", server.addr.port);
  await alice.expect("* Piped has entered the room");
  await piped.write("no line end");
  await piped.closeStdin();
  await alice.expect("[Piped] no line end");
  await alice.expect("* Piped has left the room");
  assert.equal((await piped.finish()).code, 0);
});

Deno.test("client reports a refused connection in one line and exits 1", async () => {
  await using emil = clientChild("Emil", unusedPort());
  const { code, stdout, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.match(stderr, /^error: Cannot connect to 127\.0\.0\.1:\d+: connection refused\n$/);
});

Deno.test("client reports a taken name with the server's reason and exits 1", async () => {
  await using server = startTestServer();
  await using _emil = await joinAs(server.addr.port, "Emil");
  await using other = clientChild("emil", server.addr.port);
  const { code, stdout, stderr } = await other.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(stderr, 'error: Cannot accept name "emil": name is taken\n');
});

Deno.test("client refuses an invalid name before connecting", async () => {
  await using emil = clientChild("not valid", unusedPort());
  const { code, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.match(stderr, /^error: Cannot accept name "not valid": use only ASCII letters.*\n$/);
});

Deno.test("client says so and exits 1 when the server shuts down", async () => {
  const server = startTestServer();
  await using emil = clientChild("Emil", server.addr.port);
  assert.equal(await emil.stdout.readLine(), "* The room contains:");
  await server.close();
  const { code, stdout, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "* Server is shutting down, goodbye\n");
  assert.equal(stderr, "error: The server shut down\n");
});

Deno.test("client says so and exits 1 when the connection is lost", async () => {
  // A bare listener stands in for a server that accepts, greets and then drops the connection.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  await using emil = clientChild("Emil", listener.addr.port);
  await using conn = new TestClient(await listener.accept());
  await conn.write("* hello\n");
  assert.equal(await conn.readLine(), "Emil");
  await conn.write("* The room contains:\n");
  assert.equal(await emil.stdout.readLine(), "* The room contains:");
  conn.close();
  const { code, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.equal(stderr, "error: The server closed the connection\n");
});

Deno.test("client prints usage errors in one line and exits 2", async () => {
  for (const args of [[], ["--port", "99999", "Emil"], ["Emil", "extra"], ["--bogus", "Emil"]]) {
    await using child = denoChild(["run", "-q", "-N", "client.ts", ...args]);
    const { code, stdout, stderr } = await child.finish();
    assert.equal(code, 2, `exit code for ${args.join(" ")}`);
    assert.equal(stdout, "");
    assert.match(stderr, /^error: .* \(see chat --help\)\n$/, `stderr for ${args.join(" ")}`);
  }
});

Deno.test("client --help documents the client and exits 0", async () => {
  await using child = denoChild(["run", "-q", "-N", "client.ts", "--help"]);
  const { code, stdout } = await child.finish();
  assert.equal(code, 0);
  assert.match(stdout, /chat client NAME/);
  assert.match(stdout, /\/quit/);
});

/** TLS end to end: a certificate made with openssl, the server and client.ts over TLS, ncat --ssl. */
import assert from "node:assert/strict";
import {
  Certificate,
  Child,
  CLOSE_DEADLINE_MS,
  denoChild,
  run,
  serverChild,
  startTestServer,
  waitUntil,
  withDeadline,
} from "./_helpers.ts";

/** Everything `conn` receives until the other side closes it (or resets it, which ends it too). */
async function readUntilClosed(conn: Deno.Conn): Promise<Uint8Array> {
  const chunks: number[] = [];
  const buffer = new Uint8Array(4096);
  try {
    for (let count = await conn.read(buffer); count !== null; count = await conn.read(buffer)) {
      chunks.push(...buffer.subarray(0, count));
    }
  } catch (error) {
    if (!(error instanceof Deno.errors.ConnectionReset)) throw error;
  }
  return new Uint8Array(chunks);
}

function tlsClient(certificate: Certificate, name: string, port: number): Child {
  return denoChild(
    [
      "run",
      "-q",
      "-N",
      `--allow-read=${certificate.cert}`,
      "client.ts",
      name,
      "--port",
      String(port),
      "--tls",
      "--ca",
      certificate.cert,
    ],
    { stdin: true },
  );
}

Deno.test("TLS: client.ts and ncat --ssl chat through the server process speaking TLS", async () => {
  await using certificate = await Certificate.make();
  await using server = serverChild(["--cert", certificate.cert, "--key", certificate.key], [
    "--allow-net=127.0.0.1:0",
    `--allow-read=${certificate.cert},${certificate.key}`,
  ]);
  const port = Number(
    /^listening on 127\.0\.0\.1:(\d+) \(TLS\)$/.exec(await server.stdout.readLine())?.[1],
  );
  assert.ok(port > 0);

  await using emil = tlsClient(certificate, "Emil", port);
  assert.equal(await emil.stdout.readLine(), "* The room contains:");
  await using nc = new Child("ncat", ["--ssl", "127.0.0.1", String(port)], { stdin: true });
  assert.equal(await nc.stdout.readLine(), "* Welcome to chat! What shall I call you?");
  await nc.write("ncuser\n");
  await nc.stdout.readUntil(/^\* Welcome, ncuser/);
  await emil.stdout.readUntil("* ncuser has entered the room");
  await emil.write("hello over TLS\n");
  assert.equal(await nc.stdout.readLine(), "[Emil] hello over TLS");
  await nc.write("and back\n");
  assert.equal(await emil.stdout.readLine(), "[ncuser] and back");

  // openssl s_client works too.
  await using openssl = new Child("openssl", [
    "s_client",
    "-quiet",
    "-connect",
    `127.0.0.1:${port}`,
  ], { stdin: true });
  assert.equal(await openssl.stdout.readLine(), "* Welcome to chat! What shall I call you?");
  await openssl.write("viaopenssl\n");
  assert.equal(await emil.stdout.readLine(), "* viaopenssl has entered the room");
});

Deno.test("TLS: a plaintext client fails cleanly and the server goes on serving", async () => {
  await using certificate = await Certificate.make();
  const logs: string[] = [];
  await using server = startTestServer({
    tls: { cert: certificate.pem, key: await certificate.keyPem() },
    log: (line) => logs.push(line),
  });
  using plain = await Deno.connect({ hostname: "127.0.0.1", port: server.addr.port });
  await plain.write(new TextEncoder().encode("alice\n")); // not a TLS handshake
  const received = await withDeadline(
    readUntilClosed(plain),
    "the plaintext client to be dropped",
    CLOSE_DEADLINE_MS,
  );
  // At most a TLS alert record (content type 21), never a line of the chat in clear.
  assert.ok(received.length === 0 || received[0] === 21, `got ${received}`);
  assert.ok(!new TextDecoder().decode(received).includes("*"), `got ${received}`);

  await using emil = tlsClient(certificate, "Emil", server.addr.port);
  assert.equal(await emil.stdout.readLine(), "* The room contains:");
  await waitUntil(
    () => logs.some((line) => /^1 TLS handshake\(s\) failed \(last: 127\.0\.0\.1:\d+: /.test(line)),
    () => `the failed handshake in the log: ${JSON.stringify(logs)}`,
  );
  assert.ok(logs.every((line) => !line.includes("\n")), "each log entry is one line");
});

/** client.ts with --tls and no certificate of its own to trust, joining as Emil. */
function clientWithTls(port: number) {
  return denoChild(["run", "-q", "-N", "client.ts", "Emil", "--port", String(port), "--tls"]);
}

Deno.test("TLS: client.ts refuses a certificate it does not trust, in one line", async () => {
  await using certificate = await Certificate.make();
  await using server = startTestServer({
    tls: { cert: certificate.pem, key: await certificate.keyPem() },
  });
  await using emil = clientWithTls(server.addr.port);
  const { code, stdout, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.match(stderr, /^error: TLS handshake with 127\.0\.0\.1:\d+ failed: .*certificate.*\n$/i);
});

Deno.test("TLS: client.ts --tls to a server without TLS says so in one line", async () => {
  await using server = startTestServer();
  await using emil = clientWithTls(server.addr.port);
  const { code, stdout, stderr } = await emil.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(
    stderr,
    `error: TLS handshake with 127.0.0.1:${server.addr.port} failed: the server does not speak TLS (it answered in plain text): connect without --tls\n`,
  );
});

Deno.test("TLS: reading the certificate needs permission, asked for in one line", async () => {
  await using certificate = await Certificate.make();
  await using server = serverChild(["--cert", certificate.cert, "--key", certificate.key]);
  const { code, stderr } = await server.finish();
  assert.equal(code, 1);
  assert.equal(
    stderr,
    `error: No permission to read ${certificate.cert}; run with --allow-read=${certificate.cert},${certificate.key}\n`,
  );
});

Deno.test("TLS: a certificate or key that cannot be used is refused at startup in one line", async () => {
  await using certificate = await Certificate.make();
  await using other = await Certificate.make();
  // In the certificate's own folder, removed with it (the tests may run commands, not write files).
  const junk = `${certificate.dir}/junk.pem`;
  await run("sh", ["-c", `echo 'not a certificate' > '${junk}'`]);
  const cases: [string, string, string][] = [
    [junk, certificate.key, "the certificate file holds no PEM certificate"],
    [certificate.cert, junk, "the key file holds no PEM private key"],
    [certificate.cert, other.key, "the key does not belong to the certificate"],
  ];
  for (const [cert, key, reason] of cases) {
    await using server = serverChild(["--cert", cert, "--key", key], [
      "--allow-net=127.0.0.1:0",
      `--allow-read=${cert},${key}`,
    ]);
    const { code, stdout, stderr } = await server.finish();
    assert.equal(code, 1);
    assert.equal(stdout, "", "it never said it was listening");
    assert.equal(stderr, `error: Cannot use the TLS certificate and key: ${reason}\n`);
  }
});

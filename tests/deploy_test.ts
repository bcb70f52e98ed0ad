/**
 * Tests of the files in deploy/ with the real programs they configure: Debian's nginx in front of
 * the page (deploy/nginx.conf), HAProxy in front of the chat's port (deploy/haproxy.cfg), and
 * systemd's own check of the service unit (deploy/chat.service). Each
 * runs the shipped file with only its ports and certificate put in, as an unprivileged child of
 * the test in the foreground, with its pid, logs and temporary files in a folder of its own, and
 * is killed on every path.
 */
import assert from "node:assert/strict";
import { connect as connectTls, type TLSSocket } from "node:tls";
import { connect as connectTcp, type Socket } from "node:net";
import {
  Certificate,
  Child,
  connectFrom,
  ROOT,
  run,
  startServerProcess,
  unusedPort,
  waitUntil,
  withDeadline,
} from "./_helpers.ts";
import { clientFrame, ServerFrames, upgradeRequest } from "./_websocket.ts";
import { OPCODE } from "../server/websocket.ts";
import config from "../deno.json" with { type: "json" };

const encoder = new TextEncoder();

/** A temporary folder of the test's own, removed with everything in it. */
class TempDir implements AsyncDisposable {
  private constructor(readonly path: string) {}

  static async make(): Promise<TempDir> {
    return new TempDir((await run("mktemp", ["-d", "/tmp/chat-deploy-XXXXXX"])).trim());
  }

  /** Writes `text` to `name` in the folder, through `sh`: the tests write nothing themselves. */
  async write(name: string, text: string): Promise<string> {
    const path = `${this.path}/${name}`;
    const child = new Deno.Command("sh", {
      args: ["-c", 'cat > "$1"', "sh", path],
      stdin: "piped",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    await writer.write(encoder.encode(text));
    await writer.close();
    const { code, stderr } = await child.output();
    if (code !== 0) throw new Error(`Cannot write ${path}: ${new TextDecoder().decode(stderr)}`);
    return path;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await run("rm", ["-rf", this.path]);
  }
}

/**
 * A file of deploy/ with `replacements` made, each of which must be found exactly once: a change
 * to the shipped file that the test no longer fits fails here, saying which.
 */
async function shipped(name: string, replacements: [string, string][]): Promise<string> {
  let text = await run("cat", [`${ROOT}deploy/${name}`]);
  for (const [from, to] of replacements) {
    assert.equal(text.split(from).length, 2, `deploy/${name} holds ${from} once`);
    text = text.replace(from, to);
  }
  return text;
}

/** A program's path: Debian puts nginx and haproxy in /usr/sbin, not on every user's PATH. */
async function programPath(name: string): Promise<string> {
  return (await run("sh", ["-c", `command -v ${name} || command -v /usr/sbin/${name}`])).trim();
}

/** Starts a daemon in the foreground and waits until `port` takes connections, or it exits. */
async function startDaemon(name: string, args: string[], port: number): Promise<Child> {
  const child = new Child(await programPath(name), args);
  let exit: Deno.CommandStatus | undefined;
  child.process.status.then((status) => exit = status);
  try {
    await waitUntil(async () => {
      if (exit) throw new Error(`${name} exited (${exit.code}): ${await child.stderr.rest(1000)}`);
      try {
        (await Deno.connect({ hostname: "127.0.0.1", port })).close();
        return true;
      } catch {
        return false; // not listening yet
      }
    }, `${name} to listen on ${port}`);
    return child;
  } catch (error) {
    await child[Symbol.asyncDispose]();
    throw error;
  }
}

/**
 * nginx with deploy/nginx.conf in its http block: on `port`, over TLS with `certificate`, in
 * front of the page on `webPort`. One process (no master), its files in `dir`.
 */
async function startNginx(
  dir: TempDir,
  options: { port: number; webPort: number; certificate: Certificate },
): Promise<Child> {
  const { port, webPort, certificate } = options;
  const site = await dir.write(
    "chat.conf",
    await shipped("nginx.conf", [
      ["listen 443 ssl;", `listen 127.0.0.1:${port} ssl;`],
      ["/etc/letsencrypt/live/chat.example.org/fullchain.pem", certificate.cert],
      ["/etc/letsencrypt/live/chat.example.org/privkey.pem", certificate.key],
      ["proxy_pass http://127.0.0.1:8080;", `proxy_pass http://127.0.0.1:${webPort};`],
    ]),
  );
  const temp = ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"]
    .map((kind) => `    ${kind}_temp_path ${dir.path}/${kind};`);
  const main = await dir.write(
    "nginx.conf",
    [
      "daemon off;",
      "master_process off;",
      `pid ${dir.path}/nginx.pid;`,
      `error_log ${dir.path}/error.log info;`,
      "events { worker_connections 1024; }",
      "http {",
      `    access_log ${dir.path}/access.log;`,
      ...temp,
      `    include ${site};`,
      "}",
      "",
    ].join("\n"),
  );
  return await startDaemon(
    "nginx",
    ["-p", dir.path, "-e", `${dir.path}/error.log`, "-c", main],
    port,
  );
}

/** A Node socket read as a `Deno.Conn` is, for {@linkcode ServerFrames}. */
class SocketReader {
  #chunks: Uint8Array[] = [];
  #isEnded = false;
  #wake: (() => void) | undefined;

  constructor(socket: Socket) {
    const wake = () => (this.#wake?.(), this.#wake = undefined);
    socket.on("data", (chunk: Uint8Array) => (this.#chunks.push(new Uint8Array(chunk)), wake()));
    for (const event of ["end", "close", "error"]) {
      socket.on(event, () => (this.#isEnded = true, wake()));
    }
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#isEnded) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    const chunk = this.#chunks[0]!;
    const count = Math.min(chunk.length, buffer.length);
    buffer.set(chunk.subarray(0, count));
    if (count === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(count);
    return count;
  }
}

/** A browser-less member of the page: a WebSocket from `from`, over TLS when given a CA. */
class SocketMember {
  private constructor(
    readonly tcp: Socket,
    readonly socket: Socket | TLSSocket,
    readonly frames: ServerFrames,
    readonly head: string,
  ) {}

  /** Opens `/chat` on `port` from `from`, with `headers` added to the request. */
  static async open(
    port: number,
    from: string,
    options: { ca?: string; headers?: string[] } = {},
  ): Promise<SocketMember> {
    const tcp = connectTcp({ host: "127.0.0.1", port, localAddress: from });
    // TLS checks the certificate for "localhost", one of its names.
    const socket = options.ca ? connectTls({ socket: tcp, ca: [options.ca] }) : tcp;
    const frames = new ServerFrames(new SocketReader(socket));
    try {
      await withDeadline(
        new Promise((resolve, reject) => {
          socket.once(options.ca ? "secureConnect" : "connect", resolve);
          socket.once("error", reject);
        }),
        "the connection",
      );
      const extra = (options.headers ?? []).map((header) => `${header}\r\n`).join("");
      socket.write(
        upgradeRequest(port, { host: `localhost:${port}` }).replace(/\r\n$/, `${extra}\r\n`),
      );
      const head = await withDeadline(frames.readHead(), "the answer");
      return new SocketMember(tcp, socket, frames, head);
    } catch (error) {
      socket.destroy();
      tcp.destroy();
      throw error;
    }
  }

  /** Its own port, as the server sees it. */
  get port(): number {
    return this.tcp.localPort!;
  }

  /** Sends `name` and reads up to its welcome. */
  async join(name: string): Promise<void> {
    this.socket.write(clientFrame(OPCODE.text, name));
    await withDeadline(this.frames.readUntil(new RegExp(`^\\* Welcome, ${name}! `)), `${name} in`);
  }

  /** Closes it at once. */
  close(): void {
    this.socket.destroy();
    this.tcp.destroy();
  }
}

Deno.test("deploy/nginx.conf: 30 WebSocket members through nginx all join under the default limits, each seen and limited by its own address; forged headers change nothing", async () => {
  await using certificate = await Certificate.make();
  await using dir = await TempDir.make();
  // Loopback is not exempt here: only the forwarded addresses can let 30 in.
  const { child: server } = await startServerProcess([
    "--web",
    "127.0.0.1:0",
    "--trust-proxy",
    "127.0.0.1",
    "--exempt",
    "none",
  ]);
  await using _server = server;
  const webPort = Number(/:(\d+)\/$/.exec(await server.stdout.readUntil(/^web page on /))![1]);
  const nginxPort = unusedPort();
  await using _nginx = await startNginx(dir, { port: nginxPort, webPort, certificate });
  const members: SocketMember[] = [];
  try {
    // 30 members from eight hosts, through nginx, which reaches the chat from 127.0.0.1.
    for (let i = 0; i < 30; i++) {
      const from = `127.0.0.${2 + i % 8}`;
      const member = await SocketMember.open(nginxPort, from, { ca: certificate.pem });
      members.push(member);
      assert.match(member.head, /^HTTP\/1\.1 101 /, `member ${i}`);
      await member.join(`m${i}`);
      const seen = `m${i} \\(${from.replaceAll(".", "\\.")}:${member.port}\\) joined`;
      await server.stdout.readUntil(new RegExp(` ${seen}$`));
    }
    // One host's 21st socket in a minute is refused, by its own address; another's is not.
    for (let i = 0; i < 17; i++) {
      const member = await SocketMember.open(nginxPort, "127.0.0.9", { ca: certificate.pem });
      members.push(member);
      assert.match(member.head, /^HTTP\/1\.1 101 /, `socket ${i}`);
    }
    const refused = await SocketMember.open(nginxPort, "127.0.0.9", { ca: certificate.pem });
    members.push(refused);
    assert.match(refused.head, /^HTTP\/1\.1 429 /);
    const body = await withDeadline(refused.frames.readBody(refused.head), "the refusal");
    assert.match(
      body,
      /^Too many joins from 127\.0\.0\.9: at most 20 a minute; try again in \d+ s\n$/,
    );
    // A client's own Forwarded and X-Forwarded-For: nginx's word about it stands.
    const forged = ["X-Forwarded-For: 203.0.113.9", "Forwarded: for=203.0.113.9"];
    const through = await SocketMember.open(nginxPort, "127.0.0.2", {
      ca: certificate.pem,
      headers: forged,
    });
    members.push(through);
    await through.join("forged1");
    await server.stdout.readUntil(
      new RegExp(` forged1 \\(127\\.0\\.0\\.2:${through.port}\\) joined$`),
    );
    // Straight to the page from an address that is not trusted: the headers mean nothing.
    const direct = await SocketMember.open(webPort, "127.0.0.3", { headers: forged });
    members.push(direct);
    await direct.join("forged2");
    await server.stdout.readUntil(
      new RegExp(` forged2 \\(127\\.0\\.0\\.3:${direct.port}\\) joined$`),
    );
    assert.ok(!server.stdout.seen.some((line) => line.includes("203.0.113.9")));
  } finally {
    for (const member of members) member.close();
  }
});

Deno.test("deploy/haproxy.cfg: members through HAProxy's send-proxy-v2 are logged and limited by their own address; a PROXY header from an address not trusted is refused", async () => {
  await using dir = await TempDir.make();
  const { child: server, port } = await startServerProcess([
    "--proxy-protocol",
    "127.0.0.1",
    "--exempt",
    "none",
  ]);
  await using _server = server;
  const haproxyPort = unusedPort();
  const config = await dir.write(
    "haproxy.cfg",
    await shipped("haproxy.cfg", [
      ["bind :1234", `bind 127.0.0.1:${haproxyPort}`],
      ["server chat 127.0.0.1:1235 send-proxy-v2", `server chat 127.0.0.1:${port} send-proxy-v2`],
    ]),
  );
  await using _haproxy = await startDaemon(
    "haproxy",
    ["-db", "-f", config, "-p", `${dir.path}/haproxy.pid`],
    haproxyPort,
  );
  await using alice = await connectFrom(haproxyPort, "127.0.0.3");
  await alice.expect(/^\* Welcome to chat/);
  await alice.send("alice");
  await alice.expect(/^\* The room contains/);
  while (!(await alice.readLine()).startsWith("* Welcome, alice!"));
  await server.stdout.readUntil(
    new RegExp(` alice \\(127\\.0\\.0\\.3:${alice.conn.localPort}\\) joined$`),
  );
  // 127.0.0.4 fills its 20 connections; its 21st is refused, by its own address, not HAProxy's.
  const held = [];
  try {
    for (let i = 0; i < 20; i++) {
      const client = await connectFrom(haproxyPort, "127.0.0.4");
      held.push(client);
      await client.expect(/^\* Welcome to chat/);
    }
    await using over = await connectFrom(haproxyPort, "127.0.0.4");
    assert.deepEqual(await over.readToEnd(), [
      "* error: Too many connections from 127.0.0.4: at most 20",
    ]);
    await using bob = await connectFrom(haproxyPort, "127.0.0.5");
    await bob.expect(/^\* Welcome to chat/);
    await bob.send("bob");
    await alice.expect("* bob has entered the room");
    const seen = ` bob \\(127\\.0\\.0\\.5:${bob.conn.localPort}\\) joined$`;
    await server.stdout.readUntil(new RegExp(seen));
  } finally {
    for (const client of held) client.close();
  }
  // A PROXY header sent straight to the chat from an address it does not trust is a bad name.
  await using forger = await connectFrom(port, "127.0.0.2");
  await forger.expect(/^\* Welcome to chat/);
  await forger.write("PROXY TCP4 203.0.113.9 127.0.0.1 40000 1234\r\n");
  const [refusal, ...rest] = await forger.readToEnd();
  assert.match(refusal!, /^\* error: Cannot accept name "PROXY TCP4 /);
  assert.deepEqual(rest, []);
  assert.ok(!server.stdout.seen.some((line) => line.includes("203.0.113.9")));
});

/** The values of `key=` in a unit file, in order. */
function unitValues(unit: string, key: string): string[] {
  return unit.split("\n").flatMap((line) =>
    line.startsWith(`${key}=`) ? [line.slice(key.length + 1)] : []
  );
}

Deno.test("deploy/chat.service: systemd-analyze verify finds nothing to say, and its command is the store task's with the store under StateDirectory", async () => {
  // systemd checks that ExecStart's program exists: this Deno's path put in for Debian's.
  await using folder = await TempDir.make();
  const unit = await folder.write(
    "chat.service",
    await shipped("chat.service", [["ExecStart=/usr/bin/deno ", `ExecStart=${Deno.execPath()} `]]),
  );
  const verify = await new Deno.Command(await programPath("systemd-analyze"), {
    args: ["verify", unit],
    stdin: "null",
  }).output();
  const said = new TextDecoder().decode(verify.stdout) + new TextDecoder().decode(verify.stderr);
  assert.deepEqual([verify.code, said], [0, ""]);

  const text = await shipped("chat.service", []);
  const state = "/var/lib/chat/";
  assert.deepEqual(unitValues(text, "StateDirectory"), ["chat"]);
  assert.deepEqual(unitValues(text, "DynamicUser"), ["yes"]);
  assert.deepEqual(unitValues(text, "ExecReload"), ["/bin/kill -HUP $MAINPID"]);
  for (const key of ["NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices"]) {
    assert.deepEqual(unitValues(text, key), ["yes"], key);
  }
  assert.deepEqual(unitValues(text, "ProtectSystem"), ["strict"]);
  assert.deepEqual(unitValues(text, "RestrictAddressFamilies"), ["AF_INET AF_INET6 AF_UNIX"]);
  assert.deepEqual(unitValues(text, "MemoryDenyWriteExecute"), [], "V8's JIT needs W+X pages");
  // The store task's command, with -P=store written out and chat.db under StateDirectory.
  const set = config.permissions.store;
  assert.deepEqual(Object.keys(set).sort(), ["env", "net", "read", "write"]);
  const granted = [
    `--allow-net=${set.net.join(",")}`,
    `--allow-read=${set.read.map((file) => state + file).join(",")}`,
    `--allow-write=${set.write.map((file) => state + file).join(",")}`,
    `--allow-env=${set.env.join(",")}`,
  ];
  const task = config.tasks.store.command.split(" ");
  const expected = task.flatMap((arg) =>
    arg === "-P=store" ? granted : [arg === "chat.db" ? state + arg : arg]
  );
  const [command] = unitValues(text, "ExecStart");
  assert.deepEqual(command?.split(" "), ["/usr/bin/deno", ...expected.slice(1)]);
});

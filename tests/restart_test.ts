/**
 * Resume across a planned restart (`--store`): at SIGTERM the server keeps its kept places and the
 * places of members holding a resume token (the token's hash, never the token) in the store; the
 * next start on the same port holds them, listed in the room, until their deadline, for
 * `/resume NAME TOKEN` to take back unheard. A place not taken back leaves with the normal notice;
 * a member that never asked for a token (nc) is not kept. Real server processes, a real store,
 * raw sockets and the real client.
 */
import assert from "node:assert/strict";
import {
  type Child,
  denoChild,
  joinAs,
  joinWithToken,
  startServerProcess,
  TestClient,
} from "./_helpers.ts";
import { Folder, sqlite } from "./_store.ts";
import { formatResume } from "../protocol.ts";
import { hashToken } from "../server/resume.ts";

/** A server with `--store` in `folder` (on `port`, 0 for any), and a grace of `graceSeconds`. */
async function startStored(
  folder: Folder,
  options: { port?: number; graceSeconds: number },
): Promise<{ child: Child; port: number }> {
  // Any loopback port: the second start takes the first's.
  const net = ["--allow-net=127.0.0.1"];
  const permissions = [
    ...net,
    ...folder.permissions.filter((flag) => !flag.startsWith("--allow-net")),
  ];
  const flags = ["--store", folder.file, "--resume-grace", String(options.graceSeconds)];
  return await startServerProcess([...flags, "--port", String(options.port ?? 0)], permissions);
}

/** SIGTERM, as systemd stops the server: it keeps what it must, then ends. */
async function stop(child: Child, kept: number): Promise<void> {
  child.process.kill("SIGTERM");
  await child.stdout.readUntil(new RegExp(` ${kept} place\\(s\\) kept for the next start$`));
  assert.equal((await child.finish()).code, 0);
}

/**
 * A server on `folder`'s store with a grace of `graceSeconds`, where alice and bob joined with a
 * token, stopped: its port and their tokens.
 */
async function stoppedWithTokens(
  folder: Folder,
  graceSeconds: number,
): Promise<{ port: number; alice: { token: string }; bob: { token: string } }> {
  const first = await startStored(folder, { graceSeconds });
  const alice = await joinWithToken(first.port, formatResume("alice"));
  const bob = await joinWithToken(first.port, formatResume("bob"));
  await using _alice = alice.client;
  await using _bob = bob.client;
  await stop(first.child, 2);
  return { port: first.port, alice: { token: alice.token }, bob: { token: bob.token } };
}

/** The room list a reply holds. */
function roomListOf(lines: string[]): string {
  return lines.find((line) => line.startsWith("* The room contains:")) ?? lines.join("\n");
}

/** What `listener` hears next after `speaker` says `text`: nothing else may come before it. */
async function nextLine(listener: TestClient, speaker: TestClient, text: string): Promise<string> {
  await speaker.send(text);
  return await listener.readLine();
}

Deno.test("restart: members with a token take their places back unheard; the store holds hashes only", async () => {
  await using folder = await Folder.make();
  const first = await startStored(folder, { graceSeconds: 30 });
  const { port } = first;
  const alice = await joinWithToken(port, formatResume("alice"));
  const bob = await joinWithToken(port, formatResume("bob"));
  await using _alice = alice.client;
  await using _bob = bob.client;
  await using carol = await joinAs(port, "carol"); // asks for no token: not kept
  await alice.client.expect("* bob has entered the room");
  await stop(first.child, 2);
  await carol.readToEnd();
  // The store holds each token's hash, never the token.
  const rows = await sqlite(folder.file, "SELECT name, token_hash FROM places ORDER BY name");
  assert.equal(rows.trim(), `alice|${hashToken(alice.token)}\nbob|${hashToken(bob.token)}`);
  const file = await sqlite(folder.file, ".dump");
  assert.ok(!file.includes(alice.token) && !file.includes(bob.token));
  // An operator's `chat admin` meanwhile leaves them for the server.
  const files = [folder.file, `${folder.file}-wal`, `${folder.file}-shm`].join(",");
  await using admin = denoChild(
    ["run", "-q", `--allow-read=${files}`, `--allow-write=${files}`, "main.ts", "admin"]
      .concat(["--store", folder.file, "list"]),
  );
  const made = await admin.finish();
  assert.equal(made.code, 0, made.stderr);
  assert.equal((await sqlite(folder.file, "SELECT count(*) FROM places")).trim(), "2");

  const second = await startStored(folder, { port, graceSeconds: 30 });
  await using _second = second.child;
  assert.equal((await sqlite(folder.file, "SELECT count(*) FROM places")).trim(), "0", "once");
  const bobBack = await joinWithToken(port, formatResume("bob", bob.token));
  await using _bobBack = bobBack.client;
  assert.ok(bobBack.lines.some((line) => line.startsWith("* Resumed:")), bobBack.lines.join("\n"));
  // alice is listed while her place is kept; carol, who asked for nothing, is gone.
  assert.match(roomListOf(bobBack.lines), /^\* The room contains: .*\balice\b/);
  assert.doesNotMatch(roomListOf(bobBack.lines), /carol/);
  const aliceBack = await joinWithToken(port, formatResume("alice", alice.token));
  await using _aliceBack = aliceBack.client;
  assert.ok(aliceBack.lines.some((line) => line.startsWith("* Resumed:")));
  // bob heard no leave and no join: alice's line is the next thing he hears.
  assert.equal(await nextLine(bobBack.client, aliceBack.client, "back"), "[alice] back");
  assert.equal(await nextLine(aliceBack.client, bobBack.client, "welcome"), "[bob] welcome");
});

Deno.test("restart: a place not taken back within the grace leaves with the normal notice, the new run's grace at most", async () => {
  await using folder = await Folder.make();
  // Kept for 30 s by the first run; the second's grace of 3 s bounds it from its start.
  const { port, alice, bob } = await stoppedWithTokens(folder, 30);
  const second = await startStored(folder, { port, graceSeconds: 3 });
  await using _second = second.child;
  const bobBack = await joinWithToken(port, formatResume("bob", bob.token));
  await using _bobBack = bobBack.client;
  assert.match(roomListOf(bobBack.lines), /\balice\b/);
  await bobBack.client.expect("* alice has left the room", 15_000); // not 30 s
  // Her token died with her place.
  const late = await joinWithToken(port, formatResume("alice", alice.token));
  await using _late = late.client;
  assert.ok(
    late.lines.includes("* Could not resume alice: that place is no longer kept; joining anew"),
  );
  await bobBack.client.expect("* alice has entered the room");
});

Deno.test("restart: a kept place past its deadline, or a row this server did not write, is not restored", async () => {
  await using folder = await Folder.make();
  const { port, alice, bob } = await stoppedWithTokens(folder, 30);
  // The restart took longer than alice's grace; and a forged row names no valid name.
  await sqlite(
    folder.file,
    `UPDATE places SET until = 1 WHERE name = 'alice';
     INSERT INTO places VALUES ('x y', 'x y', '${hashToken("x")}', '127.0.0.1', 'tcp', 9e15);`,
  );
  const second = await startStored(folder, { port, graceSeconds: 30 });
  await using _second = second.child;
  const bobBack = await joinWithToken(port, formatResume("bob", bob.token));
  await using _bobBack = bobBack.client;
  assert.equal(roomListOf(bobBack.lines), "* The room contains: bob");
  const late = await joinWithToken(port, formatResume("alice", alice.token));
  await using _late = late.client;
  assert.ok(
    late.lines.includes("* Could not resume alice: that place is no longer kept; joining anew"),
  );
});

Deno.test("restart: the terminal client comes back to its place by itself, and the room hears nothing", async () => {
  await using folder = await Folder.make();
  const first = await startStored(folder, { graceSeconds: 30 });
  const { port } = first;
  const bob = await joinWithToken(port, formatResume("bob"));
  await using _bob = bob.client;
  await using emil = denoChild(
    ["run", "-q", "-N", "client.ts", "Emil", "--port", String(port), "--reconnect", "8"],
    { stdin: true },
  );
  await bob.client.expect("* Emil has entered the room");
  await emil.stdout.readUntil(/^\* Welcome, Emil!/);
  await stop(first.child, 2);
  const second = await startStored(folder, { port, graceSeconds: 30 });
  await using _second = second.child;
  await second.child.stdout.readUntil(/ Emil \(.*\) resumed its place$/, 30_000);
  const bobBack = await joinWithToken(port, formatResume("bob", bob.token));
  await using _bobBack = bobBack.client;
  await emil.write("hello again\n");
  assert.equal(await bobBack.client.readLine(), "[Emil] hello again");
  await emil.closeStdin();
  await bobBack.client.expect("* Emil has left the room");
});

Deno.test("restart: a place whose name or address was banned while the server was down is not restored", async () => {
  await using folder = await Folder.make();
  const { port, alice, bob } = await stoppedWithTokens(folder, 30);
  // `chat admin` bans nothing: an operator who edits the store while the server is down.
  await sqlite(
    folder.file,
    `INSERT INTO bans VALUES ('alice', 'alice', 'name', 'root', 1, NULL, 'trolling');
     INSERT INTO bans VALUES ('127.0.0.2', '127.0.0.2', 'address', 'root', 1, NULL, NULL);
     INSERT INTO places VALUES ('carol', 'carol', '${hashToken("x")}', '127.0.0.2', 'tcp', 9e15);`,
  );
  const second = await startStored(folder, { port, graceSeconds: 30 });
  await using _second = second.child;
  const bobBack = await joinWithToken(port, formatResume("bob", bob.token));
  await using _bobBack = bobBack.client;
  assert.equal(roomListOf(bobBack.lines), "* The room contains: bob");
  await using late = await TestClient.connect(port);
  await late.expect("* Welcome to chat! What shall I call you?");
  await late.send(formatResume("alice", alice.token));
  const lines = await late.readToEnd();
  assert.equal(lines.at(-1), "* error: You are banned: trolling", lines.join("\n"));
  assert.ok(!lines.some((line) => line.startsWith("* Resumed")), lines.join("\n"));
});

/**
 * `chat admin` and moderation kept in the store: an operator made from the machine is seen by the
 * running server at once, bans, mutes and the topic outlive a restart with `--store`, and an
 * `--operators-file` made with `chat admin hash` lets its operators in. Real processes, real files.
 */
import assert from "node:assert/strict";
import {
  ANY_GREETING,
  connectFrom,
  denoChild,
  joinAs,
  joinWithHistory,
  TestClient,
  type TestConn,
} from "./_helpers.ts";
import { Folder, sqlite, startStoreServer } from "./_store.ts";
import { hashPassword } from "../server/passwords.ts";
import { run, startServerProcess } from "./_helpers.ts";

const PASSWORD = "correct horse";

/** Reads lines until one matches, returning it. */
async function until(client: TestClient<TestConn>, expected: string | RegExp): Promise<string> {
  while (true) {
    const line = await client.readLine();
    if (typeof expected === "string" ? line === expected : expected.test(line)) return line;
  }
}

/** `chat admin ARGS` on the folder's store, with the permissions the README gives: its output. */
async function admin(folder: Folder, args: string[]) {
  const files = [folder.file, `${folder.file}-wal`, `${folder.file}-shm`].join(",");
  await using child = denoChild([
    "run",
    "-q",
    `--allow-read=${files}`,
    `--allow-write=${files}`,
    "main.ts",
    "admin",
    "--store",
    folder.file,
    ...args,
  ]);
  return await child.finish();
}

/** Joins as a new name and registers it, through the prompt. */
async function register(port: number, name: string): Promise<TestClient> {
  const client = await joinAs(port, name);
  await client.send(`/register ${PASSWORD}`);
  await until(client, `* ${name} is registered: joining as ${name} now asks for its password`);
  return client;
}

/** Logs in as a registered name; reads up to the welcome. */
async function login(port: number, name: string): Promise<TestClient> {
  const client = await TestClient.connect(port);
  await client.expect(ANY_GREETING);
  await client.send(name);
  await client.expect(`* ${name} is registered: send its password`);
  await client.send(PASSWORD);
  await until(client, new RegExp(`^\\* Welcome, ${name}!`));
  return client;
}

Deno.test("chat admin: op, list and deop in the store, seen by the running server within a second", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startStoreServer(folder);
  await using _server = child;
  await using alice = await register(port, "alice");
  await using bob = await joinAs(port, "bob");
  await until(alice, "* bob has entered the room");
  const refused = await admin(folder, ["op", "bob"]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^error: Cannot make bob an operator: the name is not registered/);
  const made = await admin(folder, ["op", "ALICE"]);
  assert.deepEqual([made.code, made.stdout], [0, "alice is now an operator\n"]);
  // The running server hears of it without a restart, and tells the room.
  await until(bob, "* alice is now an operator (by the server)");
  await until(alice, "* alice is now an operator (by the server)");
  await child.stdout.readUntil(/ moderation: chat admin op alice$/); // the server's log has it too
  await bob.send("/who");
  await until(bob, "* 2 online: @alice, bob");
  await alice.send("/kick bob");
  assert.deepEqual(await bob.readToEnd(), ["* error: You were kicked by alice"]);
  assert.deepEqual((await admin(folder, ["list"])).stdout, "alice\n");
  const unmade = await admin(folder, ["deop", "alice"]);
  assert.deepEqual([unmade.code, unmade.stdout], [0, "alice is no longer an operator\n"]);
  await until(alice, "* alice is no longer an operator (by the server)");
  await alice.send("/kick nobody");
  await until(alice, "* error: /kick is for operators only");
  assert.deepEqual((await admin(folder, ["list"])).stdout, `No operators in ${folder.file}\n`);
  // A name given up is no operator any more.
  assert.equal((await admin(folder, ["op", "alice"])).code, 0);
  await until(alice, "* alice is now an operator (by the server)");
  await alice.send("/unregister");
  await until(
    alice,
    "* Send the current password for alice on the next line (an empty line cancels)",
  );
  await alice.send(PASSWORD);
  await until(alice, /^\* alice is no longer registered/);
  assert.deepEqual((await admin(folder, ["list"])).stdout, `No operators in ${folder.file}\n`);
});

Deno.test("store: bans, mutes, the topic and the operators outlive a restart", async () => {
  await using folder = await Folder.make();
  {
    const { child, port } = await startStoreServer(folder);
    await using _server = child;
    await using alice = await register(port, "alice");
    assert.equal((await admin(folder, ["op", "alice"])).code, 0);
    await until(alice, "* alice is now an operator (by the server)");
    await alice.send("/ban Eve trolling");
    await until(alice, "* Eve was banned by alice: trolling");
    await alice.send("/ban 127.0.0.2 7d");
    await until(alice, /^\* Banned 127\.0\.0\.2 until /);
    await alice.send("/mute mallory 1w");
    await until(alice, /^\* mallory was muted by alice until /);
    await alice.send("/topic Kept across restarts");
    await until(alice, "* alice set the topic: Kept across restarts");
    child.process.kill("SIGTERM");
    assert.equal((await child.finish()).code, 0);
  }
  const { child, port } = await startStoreServer(folder);
  await using _server = child;
  await using eve = await TestClient.connect(port);
  await eve.expect(ANY_GREETING);
  await eve.send("eve");
  assert.deepEqual(await eve.readToEnd(), ["* error: You are banned: trolling"]);
  await using other = await connectFrom(port, "127.0.0.2");
  assert.match((await other.readToEnd())[0]!, /^\* error: You are banned until /);
  await using mallory = await joinAs(port, "mallory");
  await mallory.expect("* Topic: Kept across restarts");
  await mallory.send("hello?");
  await mallory.expect(/^\* error: You are muted until .*: your line was not sent$/);
  await using alice = await login(port, "alice");
  await alice.expect("* Topic: Kept across restarts");
  await alice.expect("* You are an operator: /help lists your commands");
  await alice.send("/bans");
  await alice.expect("* 2 bans:");
  const listed = [await alice.readLine(), await alice.readLine()].sort();
  assert.match(listed[0]!, /^\* 127\.0\.0\.2 by alice until /);
  assert.equal(listed[1], "* Eve by alice: trolling");
});

Deno.test("chat admin hash: its line in --operators-file makes an operator of a server with no store", async () => {
  await using hashing = denoChild(["run", "-q", "main.ts", "admin", "hash", "alice"], {
    stdin: true,
  });
  await hashing.write(`${PASSWORD}\n`);
  await hashing.closeStdin();
  const hashed = await hashing.finish();
  assert.equal(hashed.code, 0, hashed.stderr);
  assert.match(
    hashed.stdout,
    /^alice:\$scrypt\$ln=14,r=8,p=5\$[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+\n$/,
  );
  await using folder = await Folder.make();
  const file = `${folder.path}/operators`;
  {
    // Written by the shell: the tests have no permission to write files themselves.
    await run("sh", ["-c", 'printf "%s" "$1" > "$2"', "sh", `# operators\n${hashed.stdout}`, file]);
    const { child, port } = await startServerProcess(
      ["--operators-file", file],
      ["--allow-net=127.0.0.1:0", `--allow-read=${file}`],
    );
    await using _server = child;
    await using bob = await joinAs(port, "bob");
    await using alice = await login(port, "alice");
    await alice.send("/mute bob");
    await until(bob, "* bob was muted by alice");
    // Nobody else can register on a server that keeps no names.
    await bob.send("/register another-password");
    await until(bob, /^\* error: This server keeps no registered names but its operators'/);
  }
  await using short = denoChild(["run", "-q", "main.ts", "admin", "hash"], { stdin: true });
  await short.write("short\n");
  await short.closeStdin();
  const refused = await short.finish();
  assert.deepEqual([refused.code, refused.stderr], [
    1,
    "error: Cannot use that password: it needs at least 8 characters\n",
  ]);
});

Deno.test("store: a store of the previous schema keeps its names and history, and takes operators", async () => {
  await using folder = await Folder.make();
  const account = await hashPassword("alice", PASSWORD);
  // Schema 1, as the version before moderation wrote it.
  await sqlite(
    folder.file,
    `CREATE TABLE history (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, line TEXT NOT NULL);
     CREATE TABLE accounts (key TEXT PRIMARY KEY, name TEXT NOT NULL, salt TEXT NOT NULL,
       hash TEXT NOT NULL, cost INTEGER NOT NULL, block_size INTEGER NOT NULL,
       parallelism INTEGER NOT NULL) WITHOUT ROWID;
     INSERT INTO history (at, line) VALUES (0, '[bob] kept');
     INSERT INTO accounts VALUES ('alice', 'alice', '${account.salt}', '${account.hash}',
       ${account.cost}, ${account.blockSize}, ${account.parallelism});
     PRAGMA application_id = 1667785076; PRAGMA user_version = 1;`,
  );
  const { child, port } = await startStoreServer(folder);
  await using _server = child;
  assert.equal((await sqlite(folder.file, "PRAGMA user_version")).trim(), "3");
  const made = await admin(folder, ["op", "alice"]);
  assert.deepEqual([made.code, made.stdout], [0, "alice is now an operator\n"]);
  await using alice = await login(port, "alice");
  // The server hears of `chat admin` within its poll: before alice's login, or told to her after it.
  await until(alice, /^\* (You are an operator|alice is now an operator)/);
  await alice.send("/topic migrated");
  await until(alice, "* alice set the topic: migrated");
  const [carol, history] = await joinWithHistory(port, "carol");
  await using _carol = carol;
  assert.deepEqual(history.map((line) => line.replace(/^\* history \S+ /, "")), ["[bob] kept"]);
  await carol.expect("* Topic: migrated");
});

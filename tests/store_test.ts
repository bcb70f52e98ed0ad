/**
 * The store (`--store FILE`): the history outlives the server, `kill -9` under load leaves a sound
 * file, and a read-only, full, locked or foreign file never stops the room. Real files in a folder
 * of the test's own, the server as a process, `sqlite3` to look inside.
 */
import assert from "node:assert/strict";
import {
  ANY_GREETING,
  Child,
  denoChild,
  joinAs,
  joinWithHistory,
  run,
  serverChild,
  startServerProcess,
  TestClient,
  waitUntil,
} from "./_helpers.ts";
import { Folder, sqlite, startStoreServer, storedLines } from "./_store.ts";
import { clusterServer, Redis } from "./_cluster.ts";

/** Reads lines until one matches, returning it. */
async function until(client: TestClient, expected: string | RegExp): Promise<string> {
  while (true) {
    const line = await client.readLine();
    if (typeof expected === "string" ? line === expected : expected.test(line)) return line;
  }
}

/** Sends `count` numbered lines as fast as the socket takes them. */
async function sendLines(
  client: { write(text: string): Promise<void> },
  from: number,
  count: number,
) {
  let text = "";
  for (let n = from; n < from + count; n++) text += `line ${n}\n`;
  await client.write(text);
}

Deno.test("store: the history outlives the server, newest --history lines only, and names nobody registered join as before", async () => {
  await using folder = await Folder.make();
  {
    const { child, port } = await startStoreServer(folder, ["--history", "3"]);
    await using _server = child;
    await using alice = await joinAs(port, "alice");
    await using bob = await joinAs(port, "bob");
    // In two batches at least: the file, not only the batch, keeps the newest 3.
    for (let n = 1; n <= 3; n++) await alice.send(`said ${n}`);
    await waitUntil(
      async () => (await storedLines(folder.file)).at(-1) === "[alice] said 3",
      "the first lines kept",
    );
    for (let n = 4; n <= 5; n++) await alice.send(`said ${n}`);
    await until(bob, "[alice] said 5");
    await alice.send("/msg bob a private word");
    await until(bob, "* private from alice: a private word");
    child.process.kill("SIGTERM");
    assert.equal((await child.finish()).code, 0);
  }
  const { child, port } = await startStoreServer(folder, ["--history", "3"]);
  await using _server = child;
  const [carol, history] = await joinWithHistory(port, "carol");
  await using _carol = carol;
  assert.deepEqual(history.map((line) => line.replace(/^\* history \S+ /, "")), [
    "[alice] said 3",
    "[alice] said 4",
    "[alice] said 5",
  ]);
  // What is kept is what is shown: no private message, nothing older than the history.
  assert.deepEqual(await storedLines(folder.file), [
    "[alice] said 3",
    "[alice] said 4",
    "[alice] said 5",
  ]);
});

Deno.test("store: a history row that holds a line feed, an escape or no name is not replayed to newcomers", async () => {
  await using folder = await Folder.make();
  {
    const { child, port } = await startStoreServer(folder);
    await using _server = child;
    await using alice = await joinAs(port, "alice");
    await alice.send("said before");
    await waitUntil(async () => (await storedLines(folder.file)).length === 1, "the line kept");
    child.process.kill("SIGTERM");
    assert.equal((await child.finish()).code, 0);
  }
  // Rows no server would write, as anyone with the file could add them.
  await sqlite(
    folder.file,
    "INSERT INTO history (at, line) VALUES " +
      "(1, '[eve] hi' || char(10) || '* Server is shutting down, goodbye'), " +
      "(2, '[eve] ' || char(27) || ']0;owned' || char(7) || char(27) || '[2J'), " +
      "(3, '* Server is shutting down, goodbye'), " +
      "(4, '[not a name!] hello')",
  );
  const { child, port } = await startStoreServer(folder);
  await using _server = child;
  await using carol = await TestClient.connect(port);
  await carol.expect(/^\* Welcome to chat/);
  await carol.send("carol");
  const lines: string[] = [];
  for (let line = ""; !line.startsWith("* Limits: ");) lines.push(line = await carol.readLine());
  const history = lines.filter((line) => !/^\* (The room contains|Limits):/.test(line));
  assert.deepEqual(history.map((line) => line.replace(/^\* history \S+ /, "")), [
    "[alice] said before",
  ]);
  assert.ok(!lines.join("").includes("\x1b"), JSON.stringify(lines));
  // Said once, before the server listens.
  assert.match(child.stdout.seen.join("\n"), /store: 4 history line\(s\) in .* skipped/);
});

Deno.test("cluster: the history outlives a server change: every server stopped, a new one shows it from Redis", async () => {
  await using redis = await new Redis().start();
  {
    const { child, port } = await clusterServer(redis, ["--history", "3"]);
    await using _server = child;
    await using alice = await joinAs(port, "alice");
    await using bob = await joinAs(port, "bob");
    for (let n = 1; n <= 4; n++) await alice.send(`said ${n}`);
    await alice.send("/msg bob a private word");
    await until(bob, "* private from alice: a private word");
    child.process.kill("SIGTERM");
    assert.equal((await child.finish()).code, 0);
  }
  // No server of the room is left: only Redis remembers.
  const { child, port } = await clusterServer(redis, ["--history", "3"]);
  await using _server = child;
  const [carol, history] = await joinWithHistory(port, "carol");
  await using _carol = carol;
  assert.deepEqual(history.map((line) => line.replace(/^\* history \S+ /, "")), [
    "[alice] said 2",
    "[alice] said 3",
    "[alice] said 4",
  ]);
});

Deno.test("store: lines are committed as the room goes, and kill -9 under load leaves a file that passes integrity_check and holds an unbroken run of what was said", async () => {
  await using folder = await Folder.make(65536);
  // 2,000 lines a second from one member: the load goes on for seconds, through many batches.
  const flags = ["--history", "10000", "--flood-burst", "100", "--flood-rate", "2000"];
  const { child, port } = await startStoreServer(folder, [...flags, "--flood-limit", "1000000"]);
  await using _server = child;
  await using alice = await joinAs(port, "alice");
  await using bob = await joinAs(port, "bob");
  const burst = sendLines(alice, 0, 40_000).catch(() => {});
  // Committed without a shutdown, while the load goes on: the file fills as the room speaks.
  let committed = 0;
  await waitUntil(async () => {
    const last = (await storedLines(folder.file)).at(-1);
    committed = Number(/line (\d+)$/.exec(last ?? "")?.[1] ?? 0);
    return committed >= 2000;
  }, "line 2000 in the file while the load goes on");
  child.process.kill("SIGKILL");
  const said = Number(/line (\d+)$/.exec((await bob.readToEnd(30_000)).at(-1)!)![1]);
  await burst;
  await child.finish();
  assert.equal((await sqlite(folder.file, "PRAGMA integrity_check")).trim(), "ok");
  const lines = await storedLines(folder.file);
  const numbers = lines.map((line) => Number(/^\[alice\] line (\d+)$/.exec(line)?.[1]));
  // The newest lines, one after another: nothing lost between two kept lines, nothing torn; only
  // what came after the last commit is missing, and everything seen committed is there.
  numbers.forEach((number, i) => assert.equal(number, numbers[0]! + i, `line ${i}: ${lines[i]}`));
  assert.ok(numbers.at(-1)! >= committed, `line ${committed} was committed before the kill`);
  console.log(
    `kill -9 under load: line ${committed} seen committed before it; afterwards the file ends ` +
      `at line ${numbers.at(-1)}, bob had read to line ${said}`,
  );
  // And the server comes back on it, showing its newest lines.
  const again = await startStoreServer(folder, ["--history", "2"]);
  await using _again = again.child;
  const [carol, history] = await joinWithHistory(again.port, "carol");
  await using _carol = carol;
  assert.deepEqual(history.map((line) => line.replace(/^\* history \S+ /, "")), lines.slice(-2));
});

Deno.test("store: a read-only store serves its history and keeps the room chatting, saying so in one log line", async () => {
  await using folder = await Folder.make();
  {
    const { child, port } = await startStoreServer(folder);
    await using _server = child;
    await using alice = await joinAs(port, "alice");
    await alice.send("before");
    await alice.send("/register hunter2hunter2");
    await alice.expect(/^\* alice is registered/);
    child.process.kill("SIGTERM");
    await child.finish();
  }
  await folder.setReadOnly(true);
  const { child, port } = await startStoreServer(folder);
  await using _server = child;
  // Said once, before the server listens.
  const said = child.stdout.seen.filter((line) => /store: .*chat\.db cannot be written/.test(line));
  assert.equal(said.length, 1, JSON.stringify(child.stdout.seen));
  assert.match(said[0]!, /\(.*\); its history and names are served, and nothing new is kept$/);
  const [bob, history] = await joinWithHistory(port, "bob");
  await using _bob = bob;
  assert.deepEqual(history.map((line) => line.replace(/^\* history \S+ /, "")), ["[alice] before"]);
  // The registered name is still protected, and changes are refused in one line.
  await using mallory = await TestClient.connect(port);
  await mallory.expect(ANY_GREETING);
  await mallory.send("alice");
  await mallory.expect("* alice is registered: send its password");
  await bob.send("/register another-password");
  await until(bob, "* error: The server cannot save it: its store is read-only");
  await using carol = await joinAs(port, "carol");
  await bob.send("still chatting");
  await until(carol, "[bob] still chatting");
});

Deno.test("store: a read-only file system with a crash's WAL still on it is seen as read-only at start", async () => {
  await using folder = await Folder.make();
  {
    const { child, port } = await startStoreServer(folder);
    await using _server = child;
    await using alice = await joinAs(port, "alice");
    await alice.send("/register hunter2hunter2");
    await alice.expect(/^\* alice is registered/);
    child.process.kill("SIGKILL"); // the WAL and its index stay behind
    await child.finish();
  }
  await run("test", ["-f", `${folder.file}-wal`]); // throws if it is not there
  await folder.setReadOnly(true);
  const { child } = await startStoreServer(folder);
  await using _server = child;
  assert.ok(
    child.stdout.seen.some((line) => /store: .*chat\.db cannot be written \(/.test(line)),
    JSON.stringify(child.stdout.seen),
  );
});

Deno.test("store: a full disk, then room on it again: one log line each way, the room chats throughout, and the newest lines are kept once it can", async () => {
  await using folder = await Folder.make(1024);
  const { child, port } = folder.isTmpfs
    ? await startStoreServer(folder)
    : await startStoreServer(folder, [], 64);
  await using _server = child;
  await using alice = await joinAs(port, "alice");
  await using bob = await joinAs(port, "bob");
  await alice.send("before the disk filled");
  await waitUntil(async () => (await storedLines(folder.file)).length === 1, "the first line kept");
  if (folder.isTmpfs) await folder.fill();
  // Long lines fill what little room is left, and then some.
  for (let n = 0; n < 40; n++) {
    await alice.send(`full ${n} ${"x".repeat(4000)}`);
    await until(bob, new RegExp(`^\\[alice\\] full ${n} `));
  }
  const failed = await child.stdout.readUntil(/store: cannot write /);
  assert.match(
    failed,
    /\((database or disk is full|disk I\/O error)\); the room goes on from memory/,
  );
  await alice.send("/register hunter2hunter2");
  await until(alice, /^\* error: The server cannot save it now \(.*\): try again later$/);
  await alice.send("said while full");
  await until(bob, "[alice] said while full");
  if (!folder.isTmpfs) return; // under ulimit the file cannot get room again
  await folder.unfill();
  await alice.send("after the disk had room");
  await child.stdout.readUntil(/store: writing .*chat\.db again$/);
  let lines: string[] = [];
  await waitUntil(async () => {
    lines = await storedLines(folder.file);
    return lines.at(-1) === "[alice] after the disk had room";
  }, "the line said after the disk had room, kept");
  // Every line said while writes failed waited in memory and was kept once they worked: the file
  // holds the room's history (50 lines) as newcomers see it.
  assert.deepEqual(lines, [
    "[alice] before the disk filled",
    ...Array.from({ length: 40 }, (_, n) => `[alice] full ${n} ${"x".repeat(4000)}`),
    "[alice] said while full",
    "[alice] after the disk had room",
  ]);
  const failures = child.stdout.seen.filter((line) => line.includes("store: cannot write"));
  assert.equal(failures.length, 1, "said once, however many writes failed");
});

Deno.test("store: a database locked by another process: one log line, the room chats, and writing resumes when the lock goes", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startStoreServer(folder);
  await using _server = child;
  await using alice = await joinAs(port, "alice");
  await using bob = await joinAs(port, "bob");
  await alice.send("first");
  await waitUntil(async () => (await storedLines(folder.file)).length === 1, "the first line kept");
  // sqlite3 takes the write lock and holds it while its input stays open.
  await using locker = new Child("sqlite3", [folder.file], { stdin: true });
  await locker.write("BEGIN EXCLUSIVE;\nSELECT 'locked';\n");
  await locker.stdout.readUntil("locked");
  await alice.send("while locked");
  await until(bob, "[alice] while locked");
  await child.stdout.readUntil(/store: cannot write .*\(database is locked\)/);
  await alice.send("still chatting");
  await until(bob, "[alice] still chatting");
  await locker.write("COMMIT;\n.quit\n");
  await locker.finish();
  await child.stdout.readUntil(/store: writing .* again$/);
  await waitUntil(
    async () => (await storedLines(folder.file)).at(-1) === "[alice] still chatting",
    "the lines said while locked kept",
  );
});

Deno.test("store: a schema from the future, another program's database, or a file that is not one is refused at startup with one line", async () => {
  await using folder = await Folder.make();
  const start = () => serverChild(["--store", folder.file], folder.permissions);
  await sqlite(
    folder.file,
    "CREATE TABLE t (a); PRAGMA user_version = 4; PRAGMA application_id = 1667785076;",
  );
  {
    await using server = start();
    const { code, stdout, stderr } = await server.finish();
    assert.equal(code, 1);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      `error: ${folder.file} has schema version 4, newer than this program's 3: run a newer chat on it, or use another file\n`,
    );
  }
  await sqlite(folder.file, "PRAGMA user_version = 1; PRAGMA application_id = 42;");
  {
    await using server = start();
    const { code, stderr } = await server.finish();
    assert.equal(code, 1);
    assert.equal(
      stderr,
      `error: ${folder.file} is another program's SQLite database, not a chat store\n`,
    );
  }
  await run("sh", ["-c", `printf 'not a database at all %0200d' 0 > ${folder.file}`]);
  {
    await using server = start();
    const { code, stderr } = await server.finish();
    assert.equal(code, 1);
    assert.equal(stderr, `error: Cannot use ${folder.file}: file is not a database\n`);
  }
});

Deno.test("store: a zero-length file is refused at startup with one line, and left as it was", async () => {
  await using folder = await Folder.make();
  await run("truncate", ["-s", "0", folder.file]);
  await using server = serverChild(["--store", folder.file], folder.permissions);
  const { code, stdout, stderr } = await server.finish();
  assert.equal(code, 1);
  assert.equal(stdout, "");
  assert.equal(
    stderr,
    `error: ${folder.file} is empty (0 bytes), not a chat store: its registered names would be ` +
      "lost; remove it to start a new store\n",
  );
  assert.equal((await run("stat", ["-c", "%s", folder.file])).trim(), "0");
});

Deno.test("store: --store with --redis, or without its permissions, is refused with one line; without --store nothing of it is loaded", async () => {
  {
    await using server = serverChild(["--store", "x.db", "--redis", "redis://127.0.0.1:1"]);
    const { code, stderr } = await server.finish();
    assert.equal(code, 2);
    assert.equal(
      stderr,
      "error: --store and --redis do not go together: in a cluster the history and the registered names are kept in Redis (see deno task server --help)\n",
    );
  }
  {
    await using server = serverChild(["--store", "/tmp/x.db"]);
    const { code, stderr } = await server.finish();
    assert.equal(code, 1);
    assert.equal(
      stderr,
      "error: No permission to keep /tmp/x.db (deno task store keeps chat.db); run: deno run --allow-net=127.0.0.1:0 --allow-read=/tmp/x.db,/tmp/x.db-wal,/tmp/x.db-shm --allow-write=/tmp/x.db,/tmp/x.db-wal,/tmp/x.db-shm --v8-flags=--max-semi-space-size=4,--heap-growing-percent=20 main.ts server --host 127.0.0.1 --port 0 --store /tmp/x.db\n",
    );
  }
  // The module graph of a server without --store: SQLite lives only in the worker's source text.
  await using info = denoChild(["info", "--json", "main.ts"]);
  const { stdout } = await info.finish();
  const modules = (JSON.parse(stdout).modules as { specifier: string }[]).map((m) => m.specifier);
  assert.ok(!modules.some((specifier) => specifier.includes("sqlite")), modules.join("\n"));
  // And the server task runs with no file permission at all, as before.
  const { child, port } = await startServerProcess();
  await using _server = child;
  await using alice = await joinAs(port, "alice");
  await alice.send("/register hunter2hunter2");
  await alice.expect(
    "* error: This server keeps no registered names: its operator can start it with --store FILE",
  );
});

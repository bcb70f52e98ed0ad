/**
 * Registered names and private servers, end to end: the server process with a store in a folder
 * of the test's own, `nc`-style raw clients, client.ts piped and in a real terminal, and a cluster
 * on a real `redis-server`.
 */
import assert from "node:assert/strict";
import {
  ANY_GREETING,
  Child,
  connectFrom,
  denoChild,
  joinAs,
  joinWithHistory,
  run,
  startServerProcess,
  TestClient,
  Tmux,
  waitUntil,
} from "./_helpers.ts";
import { Folder, sqlite, startStoreServer } from "./_store.ts";
import { clusterServer, Redis } from "./_cluster.ts";
import {
  GuessBackoff,
  hashPassword,
  isOutdated,
  parseAccount,
  verifyPassword,
} from "../server/passwords.ts";
import {
  GREETING,
  hasRegisteredNames,
  parseNewPassword,
  parsePrompt,
  REGISTERED_GREETING,
} from "../protocol.ts";

const PASSWORD = "correct horse battery";

/** Reads lines until one matches, returning it. */
async function until(client: TestClient, expected: string | RegExp, ms?: number): Promise<string> {
  while (true) {
    const line = await client.readLine(ms);
    if (typeof expected === "string" ? line === expected : expected.test(line)) return line;
  }
}

/** Connects and sends a name, reading the greeting first. */
async function sendName(port: number, name: string, from?: string): Promise<TestClient<never>> {
  const client = from ? await connectFrom(port, from) : await TestClient.connect(port);
  await client.expect(ANY_GREETING);
  await client.send(name);
  return client as TestClient<never>;
}

/** The first line a new connection gets: the greeting. */
async function greetingOf(port: number): Promise<string> {
  await using client = await TestClient.connect(port);
  return await client.readLine();
}

/** Joins as `name` and registers it with `password`, through the prompt as nc users would. */
async function register(port: number, name: string, password = PASSWORD): Promise<TestClient> {
  const client = await joinAs(port, name);
  await client.send("/register");
  await client.expect(/^\* Send the new password for \w+ on the next line: at least 8 characters/);
  await client.send(password);
  await client.expect(`* ${name} is registered: joining as ${name} now asks for its password`);
  return client;
}

Deno.test("registered names: /register claims a name; joining as it asks for the password, and a wrong one gets one error line and a disconnect, unseen by the room", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startStoreServer(folder);
  await using _server = child;
  {
    await using alice = await register(port, "alice");
    await alice.send("/quit");
    await alice.readToEnd();
  }
  await using bob = await joinAs(port, "bob");
  {
    await using mallory = await sendName(port, "ALICE");
    await mallory.expect("* ALICE is registered: send its password");
    await mallory.send("letmeinplease");
    assert.deepEqual(await mallory.readToEnd(), ['* error: Wrong password for "ALICE"']);
  }
  {
    await using alice = await sendName(port, "alice");
    await alice.expect("* alice is registered: send its password");
    await alice.send(PASSWORD);
    await alice.expect("* The room contains: bob");
  }
  // Bob heard alice come and go, never mallory, and nothing of any password.
  const heard = [await bob.readLine(), await bob.readLine()];
  assert.deepEqual(heard, ["* alice has entered the room", "* alice has left the room"]);
  // Neither the log nor the store holds a password: the store keeps a salted scrypt hash.
  await child.stdout.readUntil(/wrong password/);
  const log = child.stdout.seen.join("\n");
  assert.ok(!log.includes(PASSWORD) && !log.includes("letmeinplease"), log);
  assert.match(log, /1 wrong password\(s\), for 1 name\(s\) from 1 address\(es\)/);
  const stored = await sqlite(folder.file, "SELECT * FROM accounts");
  assert.ok(!stored.includes(PASSWORD), stored);
  assert.match(stored, /^alice\|alice\|[A-Za-z0-9+/]{22}==\|[A-Za-z0-9+/]{43}=\|16384\|8\|5$/m);
});

Deno.test("registered names: the greeting says whether any name is registered, in one line a raw client and client.ts read as before", async () => {
  await using folder = await Folder.make();
  {
    const { child, port } = await startStoreServer(folder);
    await using _server = child;
    assert.equal(await greetingOf(port), GREETING);
    assert.equal(hasRegisteredNames(GREETING), false);
    await using alice = await register(port, "alice");
    const registered = await greetingOf(port);
    assert.equal(registered, REGISTERED_GREETING);
    assert.equal(hasRegisteredNames(registered), true);
    // Still one line ending in the question: nc, and client.ts piped, answer it with a name.
    assert.match(registered, /^\* Welcome to chat! .+ What shall I call you\?$/);
    const command = ["run", "-q", "-N", "client.ts", "zoe", "--port", String(port)];
    await using zoe = denoChild(command, { stdin: true });
    await until(alice, "* zoe has entered the room");
    await zoe.write("hello from the terminal\n");
    await until(alice, "[zoe] hello from the terminal");
    await zoe.closeStdin();
    const { code, stdout, stderr } = await zoe.finish();
    assert.deepEqual({ code, stderr }, { code: 0, stderr: "" });
    assert.doesNotMatch(stdout, /registered|password/); // the greeting is not shown
  }
  // The names the store kept count after a restart; giving the last one up makes it plain again.
  const { child, port } = await startStoreServer(folder);
  await using _server = child;
  assert.equal(await greetingOf(port), REGISTERED_GREETING);
  await using alice = await sendName(port, "alice");
  await alice.expect("* alice is registered: send its password");
  await alice.send(PASSWORD);
  await alice.send("/unregister");
  await until(alice, /^\* Send the current password for alice/);
  await alice.send(PASSWORD);
  await until(alice, "* alice is no longer registered: anyone may take it once you leave it");
  assert.equal(await greetingOf(port), GREETING);
});

Deno.test("registered names: /register PASSWORD, /password and /unregister ask for the current password, and a short password is refused", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startStoreServer(folder);
  await using _server = child;
  await using alice = await joinAs(port, "alice");
  await using bob = await joinAs(port, "bob");
  await alice.send("/register short");
  await until(alice, "* error: Cannot use that password: it needs at least 8 characters");
  await alice.send(`/register ${PASSWORD}`);
  await alice.expect("* alice is registered: joining as alice now asks for its password");
  await alice.send("/register again-and-again");
  await alice.expect("* error: alice is registered already: /password changes its password");
  await alice.send("/password");
  await alice.expect(/^\* Send the current password for alice on the next line/);
  await alice.send("not the password");
  await alice.expect('* error: Wrong password for "alice"');
  await alice.send("/password");
  await alice.expect(/^\* Send the current password for alice/);
  await alice.send(PASSWORD);
  await alice.expect(/^\* Send the new password for alice on the next line/);
  await alice.send("a brand new one");
  await alice.expect("* The password for alice is changed");
  await alice.send("/unregister");
  await alice.expect(/^\* Send the current password for alice/);
  await alice.send("");
  await alice.expect("* Cancelled");
  await alice.send("/unregister");
  await alice.expect(/^\* Send the current password for alice/);
  await alice.send("a brand new one");
  await alice.expect(
    "* alice is no longer registered: anyone may take it once you leave it",
  );
  await alice.send("said after all that");
  // Bob saw only the one chat line: no password, no prompt, no answer.
  assert.equal(await bob.readLine(), "[alice] said after all that");
  assert.equal((await sqlite(folder.file, "SELECT count(*) FROM accounts")).trim(), "0");
});

Deno.test("registered names: wrong passwords back off per name and per address, and are logged as counts", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startStoreServer(folder, ["--join-rate", "0", "--exempt", "none"]);
  await using _server = child;
  (await register(port, "alice")).close();
  (await register(port, "carol")).close();
  const attempt = async (name: string, from?: string) => {
    await using client = await sendName(port, name, from);
    return await client.readToEnd();
  };
  const guess = async (name: string, from?: string) => {
    await using client = await sendName(port, name, from);
    await client.expect(`* ${name} is registered: send its password`);
    await client.send("wrong guess");
    return await client.readToEnd();
  };
  // Three typing mistakes are free; the fourth wrong password starts the wait.
  for (let i = 0; i < 4; i++) {
    assert.deepEqual(await guess("alice"), ['* error: Wrong password for "alice"']);
  }
  const refused = ['* error: Too many wrong passwords for "alice": try again in 1 s'];
  assert.deepEqual(await attempt("alice"), refused);
  // The name is held back from every address, and this address for every name.
  assert.deepEqual(await attempt("alice", "127.0.0.2"), refused);
  assert.deepEqual(await attempt("carol"), [
    '* error: Too many wrong passwords for "carol": try again in 1 s',
  ]);
  await child.stdout.readUntil(
    /\d+ wrong password\(s\), \d+ attempt\(s\) refused while backing off, for \d name\(s\) from \d address\(es\)/,
  );
  // After the wait, the right password gets in from elsewhere.
  let lines: string[] = [];
  await waitUntil(async () => {
    await using alice = await sendName(port, "alice", "127.0.0.2");
    lines = [await alice.readLine()];
    if (lines[0] !== "* alice is registered: send its password") return false;
    await alice.send(PASSWORD);
    return (await alice.readLine()).startsWith("* The room contains:");
  }, () => `alice let in again (last: ${lines})`);
  const counts = child.stdout.seen.filter((line) => line.includes("wrong password(s)"));
  assert.ok(counts.length >= 1 && counts.length <= 3, counts.join("\n"));
});

Deno.test("registered names: wrong passwords from an exempt address back off for the name, not for the address", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startStoreServer(folder); // loopback is exempt by default
  await using _server = child;
  (await register(port, "alice")).close();
  (await register(port, "carol")).close();
  for (let i = 0; i < 4; i++) {
    await using client = await sendName(port, "alice");
    await client.expect("* alice is registered: send its password");
    await client.send("wrong guess");
    assert.deepEqual(await client.readToEnd(), ['* error: Wrong password for "alice"']);
  }
  {
    await using again = await sendName(port, "alice");
    assert.deepEqual(await again.readToEnd(), [
      '* error: Too many wrong passwords for "alice": try again in 1 s',
    ]);
  }
  await using carol = await sendName(port, "carol");
  await carol.expect("* carol is registered: send its password");
  await carol.send(PASSWORD);
  await carol.expect(/^\* The room contains:/);
});

/** Open file descriptors of process `pid`, read from /proc by `ls` (the tests may run commands). */
async function openFds(pid: number): Promise<number> {
  return (await run("ls", [`/proc/${pid}/fd`])).trim().split("\n").length;
}

/**
 * Sends one wrong guess at `name` from each address, all together: every connection gets its
 * password prompt first, then every guess is written before any answer is read. Returns the
 * answers, one string per connection.
 */
async function guessTogether(port: number, name: string, addresses: string[]): Promise<string[]> {
  const clients: TestClient<never>[] = [];
  try {
    for (const from of addresses) {
      const client = await sendName(port, name, from);
      clients.push(client);
      await client.expect(`* ${name} is registered: send its password`);
    }
    await Promise.all(clients.map((client) => client.send("a wrong guess")));
    // Long enough for every guess to be hashed, two at a time, on a busy machine.
    const answers = await Promise.all(clients.map((client) => client.readToEnd(60_000)));
    return answers.map((lines) => lines.join("\n"));
  } finally {
    for (const client of clients) client.close();
  }
}

Deno.test("registered names: 20 guesses sent at once, from one address or at one name from many, are hashed no more than the free ones; the rest are refused unhashed", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startStoreServer(folder, [
    "--max-per-address",
    "50",
    "--exempt",
    "none",
  ]);
  await using _server = child;
  (await register(port, "alice")).close();
  (await register(port, "carol")).close();
  const fds = await openFds(child.process.pid);
  const count = (answers: string[], name: string) => ({
    wrong: answers.filter((answer) => answer === `* error: Wrong password for "${name}"`).length,
    refused:
      answers.filter((answer) =>
        answer.startsWith(`* error: Too many wrong passwords for "${name}": try again in `)
      ).length,
  });
  // One address, one name: the three free guesses are checked, the other 17 are not.
  const fromOne = count(await guessTogether(port, "alice", Array(20).fill("127.0.0.1")), "alice");
  assert.deepEqual(fromOne, { wrong: 3, refused: 17 });
  // One name from eight fresh addresses: the name's three free guesses, whatever the address.
  const addresses = Array.from({ length: 20 }, (_, i) => `127.0.0.${2 + i % 8}`);
  const fromMany = count(await guessTogether(port, "carol", addresses), "carol");
  assert.deepEqual(fromMany, { wrong: 3, refused: 17 });
  // The log counts them, once a second at most: 6 hashed and wrong, 34 refused.
  const total = (pattern: RegExp) =>
    child.stdout.seen.reduce((sum, line) => sum + Number(pattern.exec(line)?.[1] ?? 0), 0);
  while (total(/(\d+) wrong password/) < 6 || total(/(\d+) attempt\(s\) refused/) < 34) {
    await child.stdout.readLine();
  }
  assert.deepEqual([total(/(\d+) wrong password/), total(/(\d+) attempt\(s\) refused/)], [6, 34]);
  // Every connection is gone from the server's descriptors.
  await waitUntil(async () => await openFds(child.process.pid) <= fds, () => `fds back to ${fds}`);
});

Deno.test("registered names: a spam of /register from one address is refused past 10 an hour, and 3 a connection; another address still registers", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startStoreServer(folder, ["--exempt", "none"]);
  await using _server = child;
  const answers: string[] = [];
  // Four connections from one address, each registering three names in turn, as a spammer would.
  for (let connection = 0; connection < 4; connection++) {
    await using spammer = await joinAs(port, `spam${connection}x0`);
    for (let i = 0; i < 3; i++) {
      if (i > 0) {
        await spammer.send(`/nick spam${connection}x${i}`);
        await until(spammer, /^\* spam\w+ is now known as /);
      }
      await spammer.send(`/register ${PASSWORD}`);
      answers.push(await until(spammer, /^\* (spam\w+ is registered|error: )/));
    }
    // A fourth on one connection is over that connection's budget.
    await spammer.send(`/nick spam${connection}x3`);
    await until(spammer, /^\* spam\w+ is now known as /);
    await spammer.send(`/register ${PASSWORD}`);
    answers.push(await until(spammer, /^\* (spam\w+ is registered|error: )/));
  }
  const registered = answers.filter((answer) => answer.endsWith("now asks for its password"));
  assert.equal(registered.length, 10, answers.join("\n"));
  const refused = answers.filter((answer) => answer.startsWith("* error: "));
  assert.deepEqual(
    new Set(refused.map((answer) => answer.replace(/\d+ min$/, "N min"))),
    new Set([
      "* error: Too many registrations on this connection: at most 3 an hour; try again in N min",
      "* error: Too many registrations from 127.0.0.1: at most 10 an hour; try again in N min",
    ]),
  );
  assert.equal((await sqlite(folder.file, "SELECT count(*) FROM accounts")).trim(), "10");
  // Another address is not held back.
  await using other = await sendName(port, "carol", "127.0.0.2");
  await until(other, /^\* Welcome, /);
  await other.send(`/register ${PASSWORD}`);
  await other.expect("* carol is registered: joining as carol now asks for its password");
});

Deno.test("registered names: the password has the name's deadline; the owner logging in takes the name from a connection still holding it; /nick to a registered name asks for its password", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startStoreServer(folder, ["--name-timeout", "1"]);
  await using _server = child;
  await using ghost = await register(port, "alice");
  {
    await using slow = await sendName(port, "alice");
    await slow.expect("* alice is registered: send its password");
    assert.deepEqual(await slow.readToEnd(), ["* error: No password within 1 seconds"]);
  }
  await using alice = await sendName(port, "alice");
  await alice.expect("* alice is registered: send its password");
  await alice.send(PASSWORD);
  await alice.expect("* The room contains:");
  assert.deepEqual(await ghost.readToEnd(), [
    "* error: alice logged in from elsewhere with its password",
  ]);
  await using bob = await joinAs(port, "bob");
  await until(alice, "* bob has entered the room");
  await alice.send("/nick alicia");
  await until(bob, "* alice is now known as alicia");
  await bob.send("/nick alice");
  await bob.expect("* alice is registered: send its password");
  await bob.send("a wrong guess");
  await bob.expect('* error: Wrong password for "alice"');
  await bob.send("/nick alice");
  await bob.expect("* alice is registered: send its password");
  await bob.send(PASSWORD);
  await until(alice, "* bob is now known as alice");
});

Deno.test("private server: --password-file asks every connection for the server's password before its name; a wrong one is told and closed", async () => {
  await using folder = await Folder.make();
  await run("sh", ["-c", `printf 'our secret room\\n' > ${folder.path}/password`]);
  const { child, port } = await startServerProcess(["--password-file", `${folder.path}/password`], [
    "--allow-net=127.0.0.1:0",
    `--allow-read=${folder.path}/password`,
  ]);
  await using _server = child;
  {
    await using guest = await TestClient.connect(port);
    await guest.expect("* Welcome to chat! This server is private: send its password");
    await guest.send("alice"); // a name is not the password
    assert.deepEqual(await guest.readToEnd(), ["* error: Wrong server password"]);
  }
  await using alice = await TestClient.connect(port);
  await alice.expect("* Welcome to chat! This server is private: send its password");
  await alice.send("our secret room");
  await alice.expect("* What shall I call you?");
  await alice.send("alice");
  await alice.expect("* The room contains:");
  // client.ts gives it from CHAT_SERVER_PASSWORD, and waits for the server to ask.
  const command = ["run", "-q", "-N", "--allow-env", "client.ts", "bob", "--port", String(port)];
  await using bob = new Child(Deno.execPath(), command, {
    stdin: true,
    env: { CHAT_SERVER_PASSWORD: "our secret room" },
  });
  await bob.stdout.readUntil("* The room contains: alice");
  assert.ok(!bob.stdout.seen.some((line) => line.includes("our secret room")));
});

Deno.test("client: a registered name's password from CHAT_PASSWORD when piped, and typed unseen at a terminal", async () => {
  await using folder = await Folder.make();
  const { child, port } = await startStoreServer(folder);
  await using _server = child;
  (await register(port, "emil")).close();
  await using anna = await joinAs(port, "anna");
  // Piped: from the environment.
  {
    const env = { CHAT_PASSWORD: PASSWORD };
    const command = [
      "run",
      "-q",
      "-N",
      "--allow-env=CHAT_PASSWORD",
      "client.ts",
      "emil",
      "--port",
      String(port),
    ];
    await using emil = new Child(Deno.execPath(), command, { stdin: true, env });
    await emil.stdout.readUntil("* The room contains: anna");
    await emil.write("piped in\n");
    await until(anna, "[emil] piped in");
    await emil.closeStdin();
    // Over loopback nothing crosses a network: no warning about the password.
    const { code, stderr } = await emil.finish();
    assert.deepEqual({ code, stderr }, { code: 0, stderr: "" });
  }
  // A wrong one from the environment: one error line, exit 1, and no retry with it.
  {
    const env = { CHAT_PASSWORD: "not the password" };
    const command = ["run", "-q", "-N", "--allow-env=CHAT_PASSWORD", "client.ts", "emil"];
    await using emil = new Child(Deno.execPath(), [...command, "--port", String(port)], {
      stdin: true,
      env,
    });
    const { code, stderr } = await emil.finish();
    assert.equal(code, 1);
    assert.equal(stderr, 'error: Wrong password for "emil"\n');
  }
  // Piped without it: one line saying how to give it.
  {
    await using emil = denoChild(["run", "-q", "-N", "client.ts", "emil", "--port", String(port)], {
      stdin: true,
    });
    const { code, stderr } = await emil.finish();
    assert.equal(code, 1);
    assert.equal(
      stderr,
      "error: emil is registered: give its password with CHAT_PASSWORD or --password-file FILE\n",
    );
  }
  // At a terminal: asked, shown as stars, never kept for the up arrow.
  await using tmux = await Tmux.start([
    Deno.execPath(),
    "run",
    "-q",
    "-N",
    "client.ts",
    "emil",
    "--port",
    String(port),
  ]);
  await tmux.waitFor(/Password for emil:$/m);
  await tmux.type(PASSWORD);
  await tmux.waitFor(/Password for emil: \*{21}$/m);
  assert.ok(!(await tmux.screen()).includes(PASSWORD));
  await tmux.type("", "Enter");
  await tmux.waitFor(/In the room: anna/);
  await tmux.type("/register", "Enter");
  await tmux.waitFor(/! emil is registered already/);
  await tmux.type("/password", "Enter");
  await tmux.waitFor(/Current password for emil:$/m);
  await tmux.type(PASSWORD, "Enter");
  await tmux.waitFor(/New password for emil:$/m);
  await tmux.type("another password", "Enter");
  await tmux.waitFor(/New password for emil again:$/m); // typed unseen, so typed twice
  await tmux.type("another password", "Enter");
  await tmux.waitFor(/The password for emil is changed/);
  await tmux.type("", "Up");
  await tmux.waitFor(/^> \/password$/m);
  const everything = await tmux.scrollback();
  assert.ok(!everything.includes(PASSWORD) && !everything.includes("another password"), everything);
});

/** An IPv4 address of this machine that is not loopback, where a password would cross a network. */
async function networkAddress(): Promise<string> {
  const out = await run("ip", ["-4", "-o", "addr", "show", "scope", "global"]);
  const address = /\binet (\d+\.\d+\.\d+\.\d+)\//.exec(out)?.[1];
  if (!address) throw new Error(`This test needs an IPv4 address other than loopback:\n${out}`);
  return address;
}

Deno.test("client: over plain TCP to an address that is not loopback, it warns once that passwords cross in clear", async () => {
  const address = await networkAddress();
  await using folder = await Folder.make();
  await run("sh", ["-c", `printf 'our secret room\\n' > ${folder.path}/password`]);
  // The server on every address, private and keeping names: two passwords to send, one warning.
  await using server = denoChild([
    "run",
    "-q",
    "--allow-net=0.0.0.0:0",
    ...folder.permissions.filter((flag) => !flag.startsWith("--allow-net")).map((flag) =>
      flag.startsWith("--allow-read") ? `${flag},${folder.path}/password` : flag
    ),
    "main.ts",
    "server",
    "--host",
    "0.0.0.0",
    "--port",
    "0",
    "--store",
    folder.file,
    "--password-file",
    `${folder.path}/password`,
  ]);
  const port = Number(/0\.0\.0\.0:(\d+)/.exec(await server.stdout.readUntil(/^listening on /))![1]);
  const join = async (name: string) => {
    const client = await TestClient.connect(port);
    await client.expect("* Welcome to chat! This server is private: send its password");
    await client.send("our secret room");
    await client.expect("* What shall I call you?");
    await client.send(name);
    await until(client, new RegExp(`^\\* Welcome, ${name}!`));
    return client;
  };
  {
    await using emil = await join("emil");
    await emil.send(`/register ${PASSWORD}`);
    await emil.expect("* emil is registered: joining as emil now asks for its password");
  }
  await using anna = await join("anna");
  const env = { CHAT_PASSWORD: PASSWORD, CHAT_SERVER_PASSWORD: "our secret room" };
  await using emil = new Child(Deno.execPath(), [
    "run",
    "-q",
    `--allow-net=${address}`,
    "--allow-env=CHAT_PASSWORD,CHAT_SERVER_PASSWORD",
    "client.ts",
    "emil",
    "--host",
    address,
    "--port",
    String(port),
  ], { stdin: true, env });
  await emil.stdout.readUntil("* The room contains: anna");
  await emil.write("over the network\n");
  await until(anna, "[emil] over the network");
  await emil.closeStdin();
  const { code, stderr } = await emil.finish();
  assert.equal(code, 0);
  assert.equal(
    stderr,
    "error: Your password crosses the network in clear: connect with --tls to protect it\n",
  );
});

Deno.test("cluster: a name registered on one server asks for its password on another, also while that one is cut off from Redis", async () => {
  await using redis = await new Redis().start();
  const [a, b] = await Promise.all([clusterServer(redis), clusterServer(redis)]);
  await using _a = a.child;
  await using _b = b.child;
  assert.equal(await greetingOf(b.port), GREETING);
  (await register(a.port, "alice")).close();
  assert.match(await redis.cli("GET", "chat:account:alice"), /"hash":"[A-Za-z0-9+/]{43}="/);
  // Told to the other server on the channel: it asks for the password at once.
  await waitUntil(async () => {
    await using mallory = await sendName(b.port, "alice");
    return (await mallory.readLine()) === "* alice is registered: send its password";
  }, "server b asking alice's password");
  assert.equal(await greetingOf(b.port), REGISTERED_GREETING); // its greeting says so too
  await redis.stop(); // b is partitioned now: its copy of the names still answers
  {
    await using mallory = await sendName(b.port, "alice");
    await mallory.expect("* alice is registered: send its password");
    await mallory.send("a wrong guess");
    assert.deepEqual(await mallory.readToEnd(), ['* error: Wrong password for "alice"']);
  }
  await using alice = await sendName(b.port, "alice");
  await alice.expect("* alice is registered: send its password");
  await alice.send(PASSWORD);
  await alice.expect("* The room contains:");
  await alice.send("/unregister");
  await until(alice, /^\* Send the current password for alice/);
  await alice.send(PASSWORD);
  await until(
    alice,
    "* error: The room is partitioned: registered names cannot change until it is whole again",
  );
  const [bob] = await joinWithHistory(b.port, "bob");
  bob.close();
});

Deno.test("cluster: a Redis restarted empty is said loudly, and the registered names a server knew stay protected, on it and on a server started after", async () => {
  await using redis = await new Redis().start();
  const { child, port } = await clusterServer(redis);
  await using _server = child;
  (await register(port, "alice")).close();
  await redis.stop();
  await child.stdout.readUntil(/redis: lost /);
  await redis.start(); // with nothing saved (--save "", no append-only file): empty
  const lost = await child.stdout.readUntil(/redis: error: /);
  assert.match(lost, /lost the chat's data/);
  assert.match(lost, /1 registered name\(s\)/);
  await child.stdout.readUntil(/redis: connected to .* again/);
  {
    await using mallory = await sendName(port, "alice");
    await mallory.expect("* alice is registered: send its password");
  }
  // Written back to Redis, so that a server that never knew them protects them too.
  assert.match(await redis.cli("GET", "chat:account:alice"), /"name":"alice"/);
  const fresh = await clusterServer(redis);
  await using _fresh = fresh.child;
  await using mallory = await sendName(fresh.port, "alice");
  await mallory.expect("* alice is registered: send its password");
});

Deno.test("cluster: /register while Redis is frozen answers what happened: told to try again later, the name is not registered once Redis resumes", async () => {
  await using redis = await new Redis().start();
  const { child, port } = await clusterServer(redis);
  await using _server = child;
  await using alice = await joinAs(port, "alice");
  redis.pause();
  try {
    await alice.send(`/register ${PASSWORD}`);
    const answer = await until(alice, /^\* (error: |alice is registered)/);
    assert.match(answer, /^\* error: .*try again later$/);
  } finally {
    redis.resume();
  }
  // Once the server is back in the room, Redis holds no account for alice, and the server none.
  await child.stdout.readUntil(/redis: connected to .* again/);
  assert.equal((await redis.cli("GET", "chat:account:alice")).trim(), "");
  await alice.send("/password");
  await until(alice, "* error: alice is not registered: /register does it");
  // Registering again works, and is then what both say.
  await alice.send(`/register ${PASSWORD}`);
  await alice.expect("* alice is registered: joining as alice now asks for its password");
  assert.match(await redis.cli("GET", "chat:account:alice"), /"name":"alice"/);
});

Deno.test("GuessBackoff lets 3 wrong passwords pass, then doubles the wait from 1 s to 60 s, per name and per address", () => {
  const backoff = new GuessBackoff();
  const t = 1_000_000;
  for (let i = 0; i < 3; i++) backoff.fail("alice", "10.0.0.1", t);
  assert.equal(backoff.wait("alice", "10.0.0.9", t), 0);
  const waits = [];
  for (let i = 0; i < 8; i++) {
    backoff.fail("alice", "10.0.0.1", t);
    waits.push(backoff.wait("ALICE", "10.0.0.9", t)); // the name, from anywhere, any case
  }
  assert.deepEqual(waits, [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000]);
  assert.equal(backoff.wait("bob", "10.0.0.1", t), 60_000, "the address, for any name");
  backoff.succeed("alice");
  assert.equal(backoff.wait("alice", "10.0.0.9", t), 0, "the right password clears the name");
  assert.equal(backoff.wait("alice", "10.0.0.1", t), 60_000, "not the address");
  assert.equal(backoff.wait("bob", "10.0.0.1", t + 120_001), 0, "forgotten after two waits");
});

Deno.test("GuessBackoff counts the wrong passwords of an exempt address (none given) against the name alone", () => {
  const backoff = new GuessBackoff();
  const t = 1_000_000;
  for (let i = 0; i < 4; i++) {
    assert.equal(backoff.admit("alice", undefined, t), 0);
    backoff.settle("alice", undefined, false, t);
  }
  assert.equal(backoff.wait("alice", undefined, t), 1000);
  assert.equal(backoff.wait("alice", "10.0.0.1", t), 1000, "the name, from anywhere");
  assert.equal(backoff.wait("bob", undefined, t), 0, "no address held back");
  assert.equal(backoff.admit("bob", undefined, t), 0);
});

Deno.test("GuessBackoff.admit reserves an attempt before it is checked: as many at once as free guesses are left, then one at a time", () => {
  const backoff = new GuessBackoff();
  const t = 1_000_000;
  const admitted = Array.from({ length: 5 }, () => backoff.admit("alice", "10.0.0.1", t));
  assert.deepEqual(admitted, [0, 0, 0, 1000, 1000]);
  assert.equal(backoff.admit("ALICE", "10.0.0.2", t), 1000, "the name, from any address");
  assert.equal(backoff.admit("bob", "10.0.0.1", t), 1000, "the address, for any name");
  for (let i = 0; i < 3; i++) backoff.settle("alice", "10.0.0.1", false, t);
  // The free guesses are spent: one attempt at a time, and after a wrong one the wait.
  assert.deepEqual([backoff.admit("alice", "10.0.0.3", t), backoff.admit("alice", "10.0.0.4", t)], [
    0,
    1000,
  ]);
  backoff.settle("alice", "10.0.0.3", undefined, t); // not checked (a busy server): not counted
  assert.equal(backoff.admit("alice", "10.0.0.3", t), 0);
  backoff.settle("alice", "10.0.0.3", false, t);
  assert.equal(backoff.admit("alice", "10.0.0.3", t), 1000);
  assert.equal(backoff.wait("alice", "10.0.0.3", t), 1000);
});

Deno.test("hashPassword salts each hash and keeps its parameters; verifyPassword tells right from wrong", async () => {
  const [one, two] = await Promise.all([
    hashPassword("alice", PASSWORD),
    hashPassword("alice", PASSWORD),
  ]);
  assert.notEqual(one.salt, two.salt);
  assert.notEqual(one.hash, two.hash);
  assert.deepEqual([one.cost, one.blockSize, one.parallelism], [16384, 8, 5]);
  assert.equal(await verifyPassword(one, PASSWORD), true);
  assert.equal(await verifyPassword(one, `${PASSWORD} `), false);
  // A hash made with other parameters is marked for hashing again; a forged cost is refused.
  assert.equal(isOutdated(one), false);
  assert.equal(isOutdated({ ...one, cost: 2 ** 15 }), true);
  assert.equal(parseAccount({ ...one, cost: 2 ** 21 }), undefined, "a cost no server would use");
  assert.deepEqual(parseAccount(JSON.parse(JSON.stringify(one))), one);
});

Deno.test("password checks run two at a time with 64 waiting; more are refused at once as a busy server, burst after burst", async () => {
  // scrypt's cheapest parameters: the queue is under test, not the hash.
  const cheap = { name: "alice", salt: "c2FsdA==", hash: "aGFzaA==", cost: 2, blockSize: 1 };
  const account = { ...cheap, parallelism: 1 };
  for (let burst = 0; burst < 3; burst++) {
    const outcomes = await Promise.allSettled(
      Array.from({ length: 2 + 64 + 3 }, () => verifyPassword(account, PASSWORD)),
    );
    const refused = outcomes.flatMap((outcome) =>
      outcome.status === "rejected" ? [String(outcome.reason.message)] : []
    );
    assert.deepEqual(
      refused,
      Array(3).fill("The server is busy checking passwords: try again in a moment"),
      `burst ${burst}`,
    );
    assert.ok(outcomes.every((outcome) => outcome.status === "rejected" || !outcome.value));
  }
});

Deno.test("an owner's password check goes ahead of registrations waiting to be hashed", async () => {
  const registrations = Array.from({ length: 12 }, () => hashPassword("spam", PASSWORD));
  let hashed = 0;
  for (const registration of registrations) registration.then(() => hashed++);
  // scrypt's cheapest parameters for the login: its place in the queue is under test.
  const account = { name: "alice", salt: "c2FsdA==", hash: "aGFzaA==", cost: 2, blockSize: 1 };
  assert.equal(await verifyPassword({ ...account, parallelism: 1 }, PASSWORD), false);
  // Two were being hashed when it came, and one more may have finished meanwhile.
  assert.ok(hashed <= 3, `${hashed} registrations were hashed before the login`);
  await Promise.all(registrations);
});

Deno.test("parsePrompt knows the server's prompts for secrets, and nothing a user could say; parseNewPassword", () => {
  assert.deepEqual(parsePrompt("* alice is registered: send its password"), {
    kind: "login",
    name: "alice",
  });
  assert.deepEqual(parsePrompt("* Welcome to chat! This server is private: send its password"), {
    kind: "server",
  });
  assert.equal(parsePrompt("[alice] * bob is registered: send its password"), undefined);
  assert.equal(parsePrompt("* [alice] is registered: send its password"), undefined);
  // The same characters typed composed or not are one password.
  assert.equal(parseNewPassword("e\u0301".repeat(8)), "\u00e9".repeat(8));
  assert.throws(() => parseNewPassword("seven!!"), /at least 8 characters/);
  assert.throws(() => parseNewPassword("x".repeat(1025)), /more than 1024 bytes/);
});

/**
 * Resume tokens, from raw sockets: a client that asks (`/resume NAME`) keeps its place for the
 * grace period when its connection drops, and comes back with `/resume NAME TOKEN` without the room
 * hearing a leave or a join. The token's rules: good once, for its name only, dead after the grace,
 * a `/quit`, a kick, a ban or a take-over. A client that never asks (nc) sees nothing of it.
 */
import assert from "node:assert/strict";
import {
  ANY_GREETING,
  connectFrom,
  joinAs,
  startTestServer,
  type TestClient,
  type TestConn,
  waitUntil,
} from "./_helpers.ts";
import { TestClient as Client } from "./_helpers.ts";
import { hashPassword } from "../server/passwords.ts";
import { FixedAccounts } from "../server/operators_file.ts";
import { MemoryModerationStore } from "../server/moderation_store.ts";
import type { ChatServer, ServerOptions } from "../server.ts";
import { formatResume, parseResume, parseResumeToken } from "../protocol.ts";
import { Resume } from "../server/resume.ts";
import { Peer } from "../server/peer.ts";
import { Admission } from "../server/admission.ts";
import { resolveLimits } from "../server/limits.ts";
import { AddressSet } from "../server/cidr.ts";
import { Tally } from "../server/metrics.ts";

const PASSWORD = "correct horse";
/** olga is an operator, rita is registered. */
const ACCOUNTS = await Promise.all(["olga", "rita"].map((name) => hashPassword(name, PASSWORD)));

function startRoom(options: ServerOptions = {}): ChatServer {
  return startTestServer({
    accounts: new FixedAccounts(ACCOUNTS),
    moderation: new MemoryModerationStore(["olga"]),
    floodRate: 0,
    ...options,
  });
}

/** Reads lines until one matches, returning it with the lines before it. */
async function readUntil(client: TestClient<TestConn>, pattern: RegExp): Promise<string[]> {
  const lines: string[] = [];
  for (;;) {
    const line = await client.readLine();
    lines.push(line);
    if (pattern.test(line)) return lines;
  }
}

/** Sends `first` as the first line (and `password`, when asked); the reply up to its token line. */
async function enter(
  client: TestClient<TestConn>,
  first: string,
  password?: string,
): Promise<{ lines: string[]; token: string }> {
  await client.expect(ANY_GREETING);
  await client.send(first);
  if (password) {
    await client.expect(/is registered: send its password$/);
    await client.send(password);
  }
  const lines = await readUntil(client, /^\* Resume token: /);
  return { lines, token: parseResumeToken(lines.at(-1)!)! };
}

/** Connects and joins as `name`, asking for a token. */
async function joinWithToken(port: number, name: string, password?: string) {
  const client = await Client.connect(port);
  const { lines, token } = await enter(client, formatResume(name), password);
  return { client, lines, token };
}

/** What `listener` hears next, but for the lines it must not (checked by what comes after). */
async function nextLine(listener: TestClient<TestConn>, probe: TestClient<TestConn>, text: string) {
  await probe.send(text);
  return await listener.readLine();
}

Deno.test("resume: parseResume reads the first line a client sends; a name alone is no request", () => {
  assert.deepEqual(parseResume("/resume alice"), { name: "alice" });
  assert.deepEqual(parseResume("/resume alice abc"), { name: "alice", token: "abc" });
  assert.equal(parseResume("alice"), undefined);
  assert.equal(parseResume("/resume"), undefined);
  assert.throws(() => parseResume("/resume al!ce"), /Cannot accept name/);
  // A bad name goes alone, so the server refuses it as typed rather than read part of it.
  assert.equal(formatResume("bad name!", "x"), "bad name!");
  assert.equal(formatResume(" alice ", "tok"), "/resume alice tok");
});

Deno.test("resume: a dropped member comes back with its token, and the room hears nothing", async () => {
  await using server = startRoom();
  const port = server.addr.port;
  await using bob = await joinAs(port, "bob");
  const first = await joinWithToken(port, "alice");
  assert.match(first.token, /^[A-Za-z0-9_-]{24}$/);
  await bob.expect("* alice has entered the room");
  first.client.close(); // a reload, a phone asleep
  // Still listed while its place is kept; a private message for it is kept too.
  await bob.send("/who");
  await bob.expect(/^\* Online \(2\): alice, bob$|^\* .*alice.*bob/);
  await bob.send("/msg alice are you there?");
  await bob.expect(/^\* \(to alice\)|^→|alice/);
  await using again = await Client.connect(port);
  const back = await enter(again, formatResume("alice", first.token));
  assert.ok(
    back.lines.some((line) => line.startsWith("* Resumed: the room did not see you leave")),
    back.lines.join("\n"),
  );
  assert.ok(back.lines.some((line) => line.includes("are you there?")), back.lines.join("\n"));
  assert.notEqual(back.token, first.token, "a new token at each resume");
  // bob heard no leave and no join: alice's next line is the next thing he hears.
  assert.equal(await nextLine(bob, again, "hi again"), "[alice] hi again");
  // The token was good once.
  await using thief = await Client.connect(port);
  await thief.expect(ANY_GREETING);
  await thief.send(formatResume("alice", first.token));
  await thief.expect("* Could not resume alice: that place is no longer kept; joining anew");
  await thief.expect(/^\* error: .*alice.*taken/);
});

Deno.test("resume: a token is for its own name only", async () => {
  await using server = startRoom();
  const port = server.addr.port;
  await using bob = await joinAs(port, "bob");
  const alice = await joinWithToken(port, "alice");
  await bob.expect("* alice has entered the room");
  alice.client.close();
  await using eve = await Client.connect(port);
  await eve.expect(ANY_GREETING);
  await eve.send(formatResume("eve", alice.token));
  await eve.expect("* Could not resume eve: that place is no longer kept; joining anew");
  await readUntil(eve, /^\* Welcome, eve!/);
  await bob.expect("* eve has entered the room");
  // alice's place is still hers.
  await using back = await Client.connect(port);
  await enter(back, formatResume("alice", alice.token));
  assert.equal(await nextLine(bob, back, "still me"), "[alice] still me");
});

Deno.test("resume: a token is dead after /quit, and the room heard the quit", async () => {
  await using server = startRoom();
  const port = server.addr.port;
  await using bob = await joinAs(port, "bob");
  const alice = await joinWithToken(port, "alice");
  await bob.expect("* alice has entered the room");
  await alice.client.send("/quit bye");
  // Tried at once, while the quit connection is still closing (it is not read to its end).
  await bob.expect(/^\* alice has left the room: bye$/);
  await using again = await Client.connect(port);
  await again.expect(ANY_GREETING);
  await again.send(formatResume("alice", alice.token));
  await again.expect("* Could not resume alice: that place is no longer kept; joining anew");
  await bob.expect("* alice has entered the room");
  alice.client.close();
});

Deno.test("resume: after the grace period the room hears the leave, and the token is dead", async () => {
  await using server = startRoom({ resumeGraceMs: 300 });
  const port = server.addr.port;
  await using bob = await joinAs(port, "bob");
  const alice = await joinWithToken(port, "alice");
  assert.match(alice.lines.at(-1)!, /kept 0\.3 s/);
  await bob.expect("* alice has entered the room");
  alice.client.close();
  await bob.expect("* alice has left the room");
  await using again = await Client.connect(port);
  await again.expect(ANY_GREETING);
  await again.send(formatResume("alice", alice.token));
  await again.expect("* Could not resume alice: that place is no longer kept; joining anew");
  await bob.expect("* alice has entered the room");
});

Deno.test("resume: a registered name resumes without its password", async () => {
  await using server = startRoom();
  const port = server.addr.port;
  await using bob = await joinAs(port, "bob");
  const rita = await joinWithToken(port, "rita", PASSWORD);
  await bob.expect("* rita has entered the room");
  rita.client.close();
  await using again = await Client.connect(port);
  const back = await enter(again, formatResume("rita", rita.token));
  assert.ok(!back.lines.some((line) => line.includes("send its password")), back.lines.join("\n"));
  assert.equal(await nextLine(bob, again, "back"), "[rita] back");
});

Deno.test("resume: a connection not yet seen lost gives way to its token, with no leave", async () => {
  await using server = startRoom();
  const port = server.addr.port;
  await using bob = await joinAs(port, "bob");
  const alice = await joinWithToken(port, "alice");
  await bob.expect("* alice has entered the room");
  await using again = await Client.connect(port);
  await enter(again, formatResume("alice", alice.token));
  const old = await alice.client.readToEnd();
  alice.client.close();
  assert.equal(old.at(-1), "* You resumed this place on another connection");
  assert.equal(await nextLine(bob, again, "moved"), "[alice] moved");
});

Deno.test("resume: a /nick whose password is being checked as the place is resumed elsewhere is dropped", async () => {
  await using server = startRoom();
  const port = server.addr.port;
  await using bob = await joinAs(port, "bob");
  const alice = await joinWithToken(port, "alice");
  await bob.expect("* alice has entered the room");
  await alice.client.send("/nick rita");
  await alice.client.expect("* rita is registered: send its password");
  await using again = await Client.connect(port);
  await again.expect(ANY_GREETING);
  // The password's check takes a while: the resume comes in meanwhile.
  await alice.client.send(PASSWORD);
  await again.send(formatResume("alice", alice.token));
  await readUntil(again, /^\* Resume token: /);
  const old = await alice.client.readToEnd();
  alice.client.close();
  assert.equal(old.at(-1), "* You resumed this place on another connection");
  // The old connection's rename never happens, once its password is checked: alice is still alice.
  await waitUntil(() => server.tally.passwordChecks === 1, "the password's check");
  assert.equal(await nextLine(bob, again, "moved"), "[alice] moved");
  await again.send("/who");
  assert.equal(await again.readLine(), "* 2 online: alice, bob");
});

Deno.test("resume: a kick, a ban of the name or of the address ends the token", async (t) => {
  await using server = startRoom();
  const port = server.addr.port;
  await using olga = await Client.connect(port);
  await olga.expect(ANY_GREETING);
  await olga.send("olga");
  await olga.expect("* olga is registered: send its password");
  await olga.send(PASSWORD);
  await readUntil(olga, /^\* Welcome, olga!/);

  await t.step("a kick", async () => {
    const eve = await joinWithToken(port, "eve");
    await readUntil(olga, /^\* eve has entered the room$/);
    await olga.send("/kick eve enough");
    await olga.expect(/^\* eve was kicked by olga/);
    await eve.client.readToEnd();
    eve.client.close();
    await using again = await Client.connect(port);
    await again.expect(ANY_GREETING);
    await again.send(formatResume("eve", eve.token));
    await again.expect("* Could not resume eve: that place is no longer kept; joining anew");
    await readUntil(again, /^\* Welcome, eve!/);
    await readUntil(olga, /^\* eve has entered the room$/);
    await again.send("/quit");
    await olga.expect("* eve has left the room");
  });

  await t.step("a kick of a member whose place is kept", async () => {
    const kay = await joinWithToken(port, "kay");
    await readUntil(olga, /^\* kay has entered the room$/);
    kay.client.close();
    await waitUntil(() => server.connectionCount === 1, "kay's connection to end (olga's stays)");
    await olga.send("/kick kay away");
    await olga.expect("* kay was kicked by olga: away");
    await using again = await Client.connect(port);
    await again.expect(ANY_GREETING);
    await again.send(formatResume("kay", kay.token));
    await again.expect("* Could not resume kay: that place is no longer kept; joining anew");
    await readUntil(olga, /^\* kay has entered the room$/);
    await again.send("/quit");
    await olga.expect("* kay has left the room");
  });

  await t.step("a ban of the name while its place is kept", async () => {
    const mal = await joinWithToken(port, "mal");
    await readUntil(olga, /^\* mal has entered the room$/);
    mal.client.close();
    await olga.send("/ban mal 1h");
    await readUntil(olga, /^\* mal was banned by olga/);
    await using again = await Client.connect(port);
    await again.expect(ANY_GREETING);
    await again.send(formatResume("mal", mal.token));
    const refused = await again.readToEnd();
    assert.match(refused.join("\n"), /banned/);
    assert.ok(!refused.some((line) => line.startsWith("* Welcome, mal")), refused.join("\n"));
  });

  await t.step("a ban of the lost connection's address, resumed from another", async () => {
    const zed = await connectFrom(port, "127.0.0.9");
    const { token } = await enter(zed, formatResume("zed"));
    await readUntil(olga, /^\* zed has entered the room$/);
    zed.close();
    await olga.send("/ban 127.0.0.9 1h");
    await readUntil(olga, /^\* zed was banned by olga/); // the kept place, put out and named
    await using again = await Client.connect(port);
    await again.expect(ANY_GREETING);
    await again.send(formatResume("zed", token));
    // The place was put out with the ban: from an address no ban holds for, zed joins anew.
    await again.expect("* Could not resume zed: that place is no longer kept; joining anew");
    await readUntil(olga, /^\* zed has entered the room$/);
  });
});

Deno.test("resume: a take-over with the password gives up the kept place", async () => {
  await using server = startRoom();
  const port = server.addr.port;
  await using bob = await joinAs(port, "bob");
  const rita = await joinWithToken(port, "rita", PASSWORD);
  await bob.expect("* rita has entered the room");
  rita.client.close();
  await using other = await Client.connect(port);
  await other.expect(ANY_GREETING);
  await other.send("rita");
  await other.send(PASSWORD);
  await readUntil(other, /^\* Welcome, rita!/);
  await bob.expect("* rita has left the room (logged in elsewhere)");
  await bob.expect("* rita has entered the room");
  await using again = await Client.connect(port);
  await again.expect(ANY_GREETING);
  await again.send(formatResume("rita", rita.token));
  await again.expect("* Could not resume rita: that place is no longer kept; joining anew");
});

Deno.test("resume: a client that never asks gets no token and leaves at once", async () => {
  await using server = startRoom();
  const port = server.addr.port;
  await using bob = await joinAs(port, "bob");
  const alice = await joinAs(port, "alice");
  await bob.expect("* alice has entered the room");
  await alice.send("/who");
  assert.match(await alice.readLine(), /alice/); // the line after the welcome is the reply
  alice.close();
  await bob.expect("* alice has left the room");
});

Deno.test("resume: --resume-grace 0 gives no token; /resume NAME then just joins", async () => {
  await using server = startRoom({ resumeGraceMs: 0 });
  const port = server.addr.port;
  await using alice = await Client.connect(port);
  await alice.expect(ANY_GREETING);
  await alice.send(formatResume("alice"));
  await readUntil(alice, /^\* Welcome, alice!/);
  await alice.send("/who");
  assert.match(await alice.readLine(), /alice/);
});

Deno.test("resume: kept places count as their address's connections, and end at the grace", async () => {
  await using server = startRoom({ maxPerAddress: 2, exempt: [], resumeGraceMs: 400 });
  const port = server.addr.port;
  await using bob = await connectFrom(port, "127.0.0.2");
  await bob.expect(ANY_GREETING);
  await bob.send("bob");
  await readUntil(bob, /^\* Welcome, bob!/);
  const a = await joinWithToken(port, "a1");
  const b = await joinWithToken(port, "a2");
  a.client.close();
  b.client.close();
  await waitUntil(() => server.connectionCount === 1, "the two connections to end");
  // Two places kept from 127.0.0.1: a third connection from it is over the limit.
  await using third = await Client.connect(port);
  assert.match((await third.readToEnd()).join("\n"), /Too many connections/);
  // Once the grace is over, the places are given up and the address may connect again.
  await readUntil(bob, /^\* a1 has left the room$/);
  await readUntil(bob, /^\* a2 has left the room$/);
  await using next = await Client.connect(port);
  await next.expect(ANY_GREETING);
});

Deno.test("resume: Resume refuses a kept place's token from its expiry on, before any sweep", async () => {
  // A real connection for the peer, as the server would have.
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const conn = await listener.accept();
  const peer = new Peer(conn, {
    maxBacklogBytes: 1024,
    address: new Admission(resolveLimits({}), {
      exempt: new AddressSet([]),
      tally: new Tally(),
      log: () => {},
    }).address("127.0.0.1"),
  });
  try {
    peer.name = "alice";
    peer.isJoined = true;
    const resume = new Resume({ graceMs: 30_000, maxHeld: 10 });
    const token = resume.issue(peer)!;
    const place = resume.hold(peer, 1_000)!;
    assert.equal(place.expiresAt, 31_000);
    assert.equal(resume.take("alice", token, 31_000), "past grace");
    assert.equal(resume.take("bob", token, 30_999), "other name");
    assert.equal(resume.take("alice", token, 30_999), place, "within the grace");
    assert.equal(resume.take("alice", token, 30_999), "unknown token", "good once");
    assert.equal(resume.tokenCount, 0);
    assert.equal(resume.heldCount, 0);
  } finally {
    peer.close();
    client.close();
  }
});

Deno.test("resume: Resume's token is dead once its member is out of the room, and once its kept place was put out", async () => {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  using client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const conn = await listener.accept();
  const peer = new Peer(conn, {
    maxBacklogBytes: 1024,
    address: new Admission(resolveLimits({}), {
      exempt: new AddressSet([]),
      tally: new Tally(),
      log: () => {},
    }).address("127.0.0.1"),
  });
  try {
    peer.name = "alice";
    peer.isJoined = true;
    const resume = new Resume({ graceMs: 30_000, maxHeld: 10 });
    // Its member quit (or was put out) and its connection is closing: nothing to take.
    const quitToken = resume.issue(peer)!;
    peer.isJoined = false;
    assert.equal(resume.take("alice", quitToken, 0), "unknown token");
    // A place kept, then put out (a kick from another server ends it): its token takes nothing.
    peer.isJoined = true;
    const keptToken = resume.issue(peer)!;
    const place = resume.hold(peer, 0)!;
    place.end();
    assert.equal(resume.take("alice", keptToken, 1), "unknown token");
    assert.equal(resume.tokenCount, 0);
    assert.equal(resume.heldCount, 0);
  } finally {
    peer.close();
    client.close();
  }
});

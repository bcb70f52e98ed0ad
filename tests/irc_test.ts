/** The IRC door over real sockets: registration, the room's lines both ways, commands, limits. */
import assert from "node:assert/strict";
import { Certificate, CLOSE_DEADLINE_MS, joinAs, TestClient, waitUntil } from "./_helpers.ts";
import { IrcSite, readUntil } from "./_irc.ts";
import { type Accounts, LocalHub } from "../server/hub.ts";
import { type Account, hashPassword } from "../server/passwords.ts";
import { nameKey } from "../protocol.ts";
import { IrcSession } from "../server/irc_session.ts";

/** Registered names kept in memory, for a room with accounts and no store. */
class MemoryAccounts implements Accounts {
  #accounts = new Map<string, Account>();
  get(name: string): Account | undefined {
    return this.#accounts.get(nameKey(name));
  }
  get size(): number {
    return this.#accounts.size;
  }
  save(account: Account): Promise<void> {
    this.#accounts.set(nameKey(account.name), account);
    return Promise.resolve();
  }
  remove(account: Account): Promise<void> {
    this.#accounts.delete(nameKey(account.name));
    return Promise.resolve();
  }
}

const encoder = new TextEncoder();

Deno.test("irc registration gives 001 to 005, the MOTD or 422, and JOIN #chat with its names", async () => {
  await using site = new IrcSite();
  await using bob = await joinAs(site.port, "bob");
  const [alice, lines] = await site.join("alice");
  await using _ = alice;
  const codes = lines.map((line) => line.split(" ")[1]);
  assert.deepEqual(codes.slice(0, 5), ["001", "002", "003", "004", "005"]);
  assert.ok(codes.includes("422") || codes.includes("376"), `no MOTD end: ${codes}`);
  const isupport = lines.find((line) => line.includes(" 005 "))!;
  for (const token of ["CHANTYPES=#", "NICKLEN=32", "CHANNELLEN=50", "LINELEN=512"]) {
    assert.ok(isupport.includes(token), `005 lacks ${token}: ${isupport}`);
  }
  const join = lines.indexOf(":alice!alice@chat JOIN #chat");
  assert.ok(join > codes.indexOf("005"), `JOIN after the welcome: ${JSON.stringify(lines)}`);
  assert.match(lines.at(-2)!, /^:chat 353 alice = #chat :alice bob$/);
  assert.equal(lines.at(-1), ":chat 366 alice #chat :End of /NAMES list");
  await bob.expect("* alice has entered the room");
  // The metrics count it by its door.
  assert.deepEqual(site.server.census().members, { tcp: 1, tls: 0, websocket: 0, irc: 1 });
});

Deno.test("irc lines reach nc members and theirs reach IRC, actions as CTCP ACTION", async () => {
  await using site = new IrcSite();
  await using bob = await joinAs(site.port, "bob");
  const [alice] = await site.join("alice");
  await using _ = alice;
  await bob.expect("* alice has entered the room");
  await alice.write("PRIVMSG #chat :hello from irc\r\n");
  await bob.expect("[alice] hello from irc");
  await alice.write("PRIVMSG #chat :\x01ACTION waves\x01\r\n");
  await bob.expect("* [alice] waves");
  await alice.write("NOTICE #chat :/not a command\r\n");
  await bob.expect("[alice] /not a command");
  await bob.send("hi irc");
  await alice.expect(":bob!bob@chat PRIVMSG #chat :hi irc");
  await bob.send("/me nods");
  await alice.expect(":bob!bob@chat PRIVMSG #chat :\x01ACTION nods\x01");
});

Deno.test("irc private messages go both ways with members of other doors", async () => {
  await using site = new IrcSite();
  await using bob = await joinAs(site.port, "bob");
  const [alice] = await site.join("alice");
  await using _ = alice;
  await bob.expect("* alice has entered the room");
  await alice.write("PRIVMSG bob :just you\r\n");
  await bob.expect("* private from alice: just you");
  await bob.send("/msg alice and you");
  await alice.expect(":bob!bob@chat PRIVMSG alice :and you");
  await alice.write("PRIVMSG nobody :hello?\r\n");
  await alice.expect(/^:chat 401 alice nobody :No such nick/);
});

Deno.test("irc joins, renames and quits are JOIN, NICK and QUIT for everyone", async () => {
  await using site = new IrcSite();
  const [alice] = await site.join("alice");
  await using _ = alice;
  const carol = await joinAs(site.port, "carol");
  await alice.expect(":carol!carol@chat JOIN #chat");
  await carol.send("/nick caroline");
  await alice.expect(":carol!carol@chat NICK caroline");
  await carol.expect("* carol is now known as caroline");
  await alice.write("NICK alicia\r\n");
  await alice.expect(":alice!alice@chat NICK alicia");
  await carol.expect("* alice is now known as alicia");
  await carol.send("/quit bye now");
  await alice.expect(":caroline!caroline@chat QUIT :bye now");
  carol.close();
  await alice.write("QUIT :done\r\n");
  const end = await alice.readToEnd(CLOSE_DEADLINE_MS);
  assert.match(end.at(-1)!, /^ERROR :Closing link/);
});

Deno.test("irc QUIT and PART are a leave for the room", async () => {
  await using site = new IrcSite();
  await using bob = await joinAs(site.port, "bob");
  const [alice] = await site.join("alice");
  await using _ = alice;
  await bob.expect("* alice has entered the room");
  await alice.write("QUIT :see you\r\n");
  await bob.expect("* alice has left the room: see you");
  const [dave] = await site.join("dave");
  await using __ = dave;
  await bob.expect("* dave has entered the room");
  await dave.write("PART #chat :off\r\n");
  await dave.expect(":dave!dave@chat PART #chat :off");
  await bob.expect("* dave has left the room: off");
  assert.match((await dave.readToEnd()).at(-1)!, /^ERROR /);
});

Deno.test("irc PART closes with ERROR saying the member left, not the last error it was told", async () => {
  await using site = new IrcSite();
  await using bob = await joinAs(site.port, "bob");
  const [alice] = await site.join("alice");
  await using _ = alice;
  await bob.expect("* alice has entered the room");
  // The room refuses the rename (the same name) after the PART is read, before it is done.
  await alice.write("NICK alice\r\nPART #chat\r\n");
  await bob.expect("* alice has left the room");
  const end = await alice.readToEnd();
  assert.ok(end.some((line) => line.includes("Your name is already")), end.join("\n"));
  assert.equal(end.at(-1), "ERROR :Closing link: Left");
  const [dave] = await site.join("dave");
  await using __ = dave;
  await dave.write("PART #chat :off\r\n");
  assert.equal((await dave.readToEnd()).at(-1), "ERROR :Closing link: Left: off");
});

Deno.test("irc CAP LS 302 holds the registration until CAP END, and REQ is refused", async () => {
  await using site = new IrcSite();
  await using client = await site.connect();
  await client.write("CAP LS 302\r\nNICK alice\r\nUSER a 0 * :A\r\n");
  await client.expect(":chat CAP * LS :");
  await client.write("CAP REQ :server-time\r\n");
  await client.expect(":chat CAP alice NAK :server-time");
  await client.write("CAP END\r\n");
  await client.expect(/^:chat 001 alice /);
});

Deno.test("irc commands before registering get 451, and a client that never registers is closed", async () => {
  await using site = new IrcSite({ server: { nameTimeoutMs: 300 } });
  await using client = await site.connect();
  await client.write("PRIVMSG #chat :hi\r\nPING :x\r\n");
  await client.expect(":chat 451 * :You have not registered");
  await client.expect(":chat PONG chat :x");
  const end = await client.readToEnd();
  assert.match(end.join("\n"), /No valid name within 0\.3 seconds/);
  assert.match(end.at(-1)!, /^ERROR :Closing link/);
});

Deno.test("irc client that sends too much before registering is closed", async () => {
  await using site = new IrcSite();
  await using client = await site.connect();
  await client.write("PING :x\r\n".repeat(100));
  const end = await client.readToEnd();
  assert.equal(end.at(-1), "ERROR :Closing link: Too many commands before registering");
});

Deno.test("irc PASS is the password of a private server", async () => {
  await using site = new IrcSite({ server: { serverPassword: "let me in please" } });
  await using without = await site.connect();
  await without.write("NICK alice\r\nUSER a 0 * :A\r\n");
  const refused = await without.readToEnd();
  assert.ok(refused.some((line) => / 464 /.test(line)), JSON.stringify(refused));
  await using wrong = await site.connect();
  await wrong.write("PASS :not it\r\nNICK alice\r\nUSER a 0 * :A\r\n");
  const wrongLines = await wrong.readToEnd();
  assert.ok(wrongLines.some((line) => / 464 .*Wrong server password/.test(line)));
  await using right = await site.connect();
  await right.write("PASS :let me in please\r\nNICK alice\r\nUSER a 0 * :A\r\n");
  await readUntil(right, / 366 alice #chat /);
});

Deno.test("irc nick the room refuses gets 432, a taken one 433, and another may follow", async () => {
  await using site = new IrcSite();
  await using _bob = await joinAs(site.port, "bob");
  await using client = await site.connect();
  await client.write("NICK b@d\r\nUSER a 0 * :A\r\n");
  await client.expect(/^:chat 432 \* b@d :Erroneous nickname/);
  await client.write("NICK BOB\r\n");
  await client.expect(":chat 433 BOB BOB :Nickname is already in use");
  await client.write("NICK alice\r\n");
  await readUntil(client, / 366 alice /);
  await client.write("NICK bob\r\n");
  await client.expect(":chat 433 alice bob :Nickname is already in use");
});

Deno.test("irc WHO, WHOIS and NAMES answer from the room", async () => {
  await using site = new IrcSite();
  await using _bob = await joinAs(site.port, "bob");
  const [alice] = await site.join("alice");
  await using _ = alice;
  await alice.write("WHO #chat\r\n");
  const who = await readUntil(alice, / 315 /);
  assert.deepEqual(who, [
    ":chat 352 alice #chat alice chat chat alice H :0 alice",
    ":chat 352 alice #chat bob chat chat bob H :0 bob",
    ":chat 315 alice #chat :End of WHO list",
  ]);
  await alice.write("WHOIS bob\r\n");
  const whois = await readUntil(alice, / 318 /);
  assert.equal(whois[0], ":chat 311 alice bob bob chat * :bob");
  await alice.write("WHOIS nobody\r\n");
  assert.deepEqual(await readUntil(alice, / 318 /), [
    ":chat 401 alice nobody :No such nick/channel",
    ":chat 318 alice nobody :End of /WHOIS list",
  ]);
  await alice.write("NAMES #chat\r\n");
  assert.deepEqual(await readUntil(alice, / 366 /), [
    ":chat 353 alice = #chat :alice bob",
    ":chat 366 alice #chat :End of /NAMES list",
  ]);
});

Deno.test("irc TOPIC, MODE, JOIN of another channel and unknown commands are answered", async () => {
  await using site = new IrcSite();
  const [alice] = await site.join("alice");
  await using _ = alice;
  await alice.write("TOPIC #chat\r\n");
  await alice.expect(":chat 331 alice #chat :No topic is set");
  await alice.write("MODE #chat\r\n");
  await alice.expect(":chat 324 alice #chat :+nt");
  await alice.write("MODE #chat b\r\n");
  await alice.expect(":chat 368 alice #chat :End of channel ban list");
  await alice.write("MODE alice +i\r\n");
  await alice.expect(":chat 221 alice :+i");
  await alice.write("JOIN #other\r\n");
  await alice.expect(/^:chat 403 alice #other :No such channel/);
  await alice.write("JOIN #chat\r\nFROB x\r\n");
  await alice.expect(":chat 421 alice FROB :Unknown command");
});

Deno.test("irc PING is answered, and a client that does not answer ours is closed", async () => {
  await using site = new IrcSite({ irc: { pingSeconds: 0.2 } });
  await using bob = await joinAs(site.port, "bob");
  const [alice] = await site.join("alice");
  await using _ = alice;
  await alice.write("PING :abc\r\n");
  await alice.expect(":chat PONG chat :abc");
  await alice.expect("PING :chat");
  await alice.write("PONG :chat\r\n");
  await alice.expect("PING :chat");
  const end = await alice.readToEnd();
  assert.equal(end.at(-1), "ERROR :Closing link: Ping timeout: 0.2 seconds");
  await bob.expect("* alice has entered the room");
  await bob.expect("* alice has left the room");
});

Deno.test("irc lines keep to 512 bytes: a long room line is split, a long client line refused", async () => {
  await using site = new IrcSite();
  await using bob = await joinAs(site.port, "bob");
  const [alice] = await site.join("alice");
  await using _ = alice;
  await bob.expect("* alice has entered the room");
  const text = "é".repeat(300) + " " + "x".repeat(900);
  await bob.send(text);
  const head = ":bob!bob@chat PRIVMSG #chat :";
  let joined = "";
  while (joined.length < text.length) {
    const line = await alice.readLine();
    assert.ok(encoder.encode(line).length + 2 <= 512, `over 512 bytes: ${line.length}`);
    assert.ok(line.startsWith(head));
    joined += line.slice(head.length);
  }
  assert.equal(joined, text);
  await alice.write(`PRIVMSG #chat :${"y".repeat(500)}\r\n`);
  await alice.expect(":chat 417 alice :Input line was too long");
  await alice.write(`PRIVMSG #chat :${"y".repeat(400)}\r\n`);
  await bob.expect(`[alice] ${"y".repeat(400)}`);
});

Deno.test("irc malformed input is answered, and nothing else breaks", async () => {
  await using site = new IrcSite();
  await using bob = await joinAs(site.port, "bob");
  const [alice] = await site.join("alice");
  await using _ = alice;
  await alice.write(":onlyasource\r\n@tags-only\r\n\r\n!!! x\r\nPRIVMSG\r\nPRIVMSG #chat\r\n");
  for (let i = 0; i < 3; i++) {
    await alice.expect(":chat NOTICE alice :Cannot read that line: it is not an IRC message");
  }
  await alice.expect(":chat 411 alice :No recipient given");
  await alice.expect(":chat 412 alice :No text to send");
  await alice.write("PRIVMSG #chat :still here\r\n");
  await bob.expect("* alice has entered the room");
  await bob.expect("[alice] still here");
});

Deno.test("irc room list of a big room comes in as many 353 lines as it needs", async () => {
  await using site = new IrcSite();
  const members: TestClient[] = [];
  try {
    for (let i = 0; i < 40; i++) {
      members.push(await joinAs(site.port, `member${i}`.padEnd(30, "x")));
    }
    const [alice, lines] = await site.join("alice");
    await using _ = alice;
    const names = lines.filter((line) => / 353 /.test(line));
    assert.ok(names.length >= 3, `${names.length} lines`);
    const listed = names.flatMap((line) => line.split(" :")[1]!.split(" "));
    assert.equal(listed.length, 41);
    for (const line of names) assert.ok(encoder.encode(line).length + 2 <= 512);
  } finally {
    for (const member of members) member.close();
  }
});

Deno.test("irc registered nick is refused without its password, and PASS logs in with it", async () => {
  const accounts = new MemoryAccounts();
  await accounts.save(await hashPassword("alice", "correct horse battery"));
  const isRegistered = (name: string) => accounts.get(name) !== undefined;
  await using site = new IrcSite({
    server: { hub: new LocalHub({ accounts }) },
    irc: { isRegistered },
  });
  await using stranger = await site.connect();
  await stranger.write("NICK Alice\r\nUSER a 0 * :A\r\n");
  await stranger.expect(/^:chat 433 \* Alice :Nickname is registered: connect with its password/);
  await stranger.write("NICK mallory\r\n");
  await readUntil(stranger, / 366 mallory /);
  await stranger.write("NICK alice\r\n");
  await stranger.expect(/^:chat 433 mallory alice :Nickname is registered/);
  await using wrong = await site.connect();
  await wrong.write("PASS :not the password\r\nNICK alice\r\nUSER a 0 * :A\r\n");
  const refused = await wrong.readToEnd();
  assert.ok(refused.some((line) => / 464 .*Wrong password/.test(line)), JSON.stringify(refused));
  await using owner = await site.connect();
  await owner.write("PASS :correct horse battery\r\nNICK alice\r\nUSER a 0 * :A\r\n");
  await readUntil(owner, / 366 alice /);
  await stranger.expect(":alice!alice@chat JOIN #chat");
});

Deno.test("irc commands answered by the door count for flood control as any door's lines", async () => {
  await using site = new IrcSite({ server: { floodLimit: 2 } });
  await using bob = await joinAs(site.port, "bob");
  const [alice] = await site.join("alice");
  await using _ = alice;
  await bob.expect("* alice has entered the room");
  await alice.write("PING :x\r\n".repeat(200));
  const end = await alice.readToEnd(3 * CLOSE_DEADLINE_MS);
  assert.equal(end.at(-1), "ERROR :Closing link: Disconnected for flooding");
  await bob.expect("* alice has left the room (flooding)");
});

Deno.test("irc member of a busy room gets every line once and in order, its own skipped", async () => {
  await using site = new IrcSite({ server: { floodRate: 0 } });
  const [alice] = await site.join("alice");
  await using _ = alice;
  const senders = await Promise.all(
    ["bob", "carol", "dave"].map((name) => joinAs(site.port, name)),
  );
  try {
    for (const name of ["bob", "carol", "dave"]) {
      await alice.expect(`:${name}!${name}@chat JOIN #chat`);
    }
    const count = 60;
    const writes = senders.map((sender, s) =>
      sender.write(Array.from({ length: count }, (_, k) => `line ${s}.${k}\n`).join(""))
    );
    await alice.write(
      Array.from({ length: count }, (_, k) => `PRIVMSG #chat :mine ${k}\r\n`).join(""),
    );
    await Promise.all(writes);
    const next = [0, 0, 0];
    for (let seen = 0; seen < 3 * count; seen++) {
      const match = /^:(\w+)!\1@chat PRIVMSG #chat :line (\d)\.(\d+)$/.exec(await alice.readLine());
      assert.ok(match, "a line of the others, never one of alice's own");
      const s = Number(match[2]);
      assert.equal(Number(match[3]), next[s]!++, `sender ${s} in order`);
    }
  } finally {
    for (const sender of senders) sender.close();
  }
});

Deno.test("irc door speaks TLS with the chat's certificate", async () => {
  await using certificate = await Certificate.make();
  await using site = new IrcSite({
    irc: { tls: { cert: certificate.pem, key: await certificate.keyPem() } },
  });
  await using bob = await joinAs(site.port, "bob");
  const conn = await Deno.connectTls({
    hostname: "127.0.0.1",
    port: site.ircPort,
    caCerts: [certificate.pem],
  });
  await using alice = new TestClient(conn);
  await alice.write("NICK alice\r\nUSER a 0 * :A\r\n");
  await readUntil(alice, / 366 alice /);
  await bob.expect("* alice has entered the room");
  await alice.write("PRIVMSG #chat :over TLS\r\n");
  await bob.expect("[alice] over TLS");
});

Deno.test("irc member behind on the room's lines is not cut for asking (PING) meanwhile", async () => {
  await using site = new IrcSite({ server: { floodRate: 0 } });
  await using bob = await joinAs(site.port, "bob");
  const [alice] = await site.join("alice");
  await using _ = alice;
  await bob.expect("* alice has entered the room");
  // Megabytes alice does not read yet: a room write to her waits in flight.
  const line = "z".repeat(4000);
  await bob.write(`${line}\n`.repeat(3000));
  await waitUntil(() => site.server.census().logFill > 8_000_000, "alice to fall behind");
  await alice.write("PING :still here\r\n");
  let last = "";
  while (!last.startsWith(":chat PONG")) {
    last = await alice.readLine();
    assert.ok(!last.startsWith("ERROR"), last);
  }
});

Deno.test("irc member that sends commands and never reads the replies is closed, its replies bounded", async () => {
  await using site = new IrcSite({ server: { floodRate: 0 } });
  await using bob = await joinAs(site.port, "bob");
  const [alice] = await site.join("alice");
  await using _ = alice;
  await bob.expect("* alice has entered the room");
  const pings = encoder.encode("PING :are you there\r\n".repeat(10_000));
  let isWriting = true;
  const writing = (async () => {
    try {
      while (isWriting) await alice.write(pings);
    } catch {
      // The server closed the connection: what the test waits for.
    }
  })();
  try {
    await bob.expect("* alice has left the room");
  } finally {
    isWriting = false;
    alice.close();
    await writing;
  }
});

Deno.test("irc member is told of a shutdown and closed with ERROR", async () => {
  const site = new IrcSite();
  const [alice] = await site.join("alice");
  await using _ = alice;
  const closing = site[Symbol.asyncDispose]();
  const end = await alice.readToEnd();
  await closing;
  assert.deepEqual(end.slice(-2), [
    ":chat NOTICE #chat :Server is shutting down, goodbye",
    "ERROR :Closing link: Server is shutting down",
  ]);
});

Deno.test("irc SASL PLAIN logs a registered name in, on a private server beside its PASS", async () => {
  const accounts = new MemoryAccounts();
  await accounts.save(await hashPassword("alice", "correct horse battery"));
  await using site = new IrcSite({
    server: { hub: new LocalHub({ accounts }), serverPassword: "let me in please" },
    irc: { isRegistered: (name) => accounts.get(name) !== undefined },
  });
  const plain = (text: string) => btoa(text);
  await using alice = await site.connect();
  await alice.write("CAP LS 302\r\nPASS :let me in please\r\nNICK ally\r\nUSER a 0 * :A\r\n");
  await alice.expect(":chat CAP * LS :sasl=PLAIN");
  await alice.write("CAP REQ :sasl\r\n");
  await alice.expect(":chat CAP ally ACK :sasl");
  await alice.write("AUTHENTICATE PLAIN\r\n");
  await alice.expect("AUTHENTICATE +");
  await alice.write(`AUTHENTICATE ${plain("\0alice\0correct horse battery")}\r\n`);
  await alice.expect(":chat 900 alice alice!alice@chat alice :You are now logged in as alice");
  await alice.expect(":chat 903 alice :SASL authentication successful");
  await alice.write("CAP END\r\n");
  const lines = await readUntil(alice, / 366 alice /);
  assert.match(lines[0]!, /^:chat 001 alice /);

  await using wrong = await site.connect();
  await wrong.write("CAP LS 302\r\nPASS :let me in please\r\nNICK x\r\nUSER a 0 * :A\r\n");
  await wrong.write(`CAP REQ :sasl\r\nAUTHENTICATE PLAIN\r\n`);
  await wrong.write(`AUTHENTICATE ${plain("\0alice\0not it at all")}\r\n`);
  const refused = await wrong.readToEnd();
  assert.ok(refused.some((line) => / 904 .*Wrong password/.test(line)), JSON.stringify(refused));

  await using stranger = await site.connect();
  await stranger.write("CAP LS 302\r\nPASS :let me in please\r\nNICK bob\r\nUSER b 0 * :B\r\n");
  await stranger.write(`CAP REQ :sasl\r\nAUTHENTICATE PLAIN\r\n`);
  await stranger.write(`AUTHENTICATE ${plain("\0bob\0whatever it is")}\r\n`);
  await readUntil(stranger, / 904 bob :SASL authentication failed: no such registered name/);
  await stranger.write("AUTHENTICATE PLAIN\r\nAUTHENTICATE bm90IGJhc2U2NA==\r\nCAP END\r\n");
  await readUntil(stranger, / 904 bob :SASL authentication failed: SASL PLAIN needs/);
  await readUntil(stranger, / 366 bob /);
});

/** A session joined as "me" in a room with `@op` and `bob`, with nothing to say yet. */
function joinedSession(): IrcSession {
  const session = new IrcSession({ channel: "#chat", version: "1", motd: [] });
  session.fromClient("NICK me");
  session.fromClient("USER me 0 * :me");
  session.fromRoom("* Welcome to chat! What shall I call you?");
  session.fromRoom("* The room contains: @op, bob");
  session.fromRoom("* Welcome, me! 3 users online; /help lists the commands");
  return session;
}

/** What the session answers to `line` from the client, and the line it gives the room. */
function ask(session: IrcSession, line: string): string {
  session.input = "";
  session.replies = [];
  session.fromClient(line);
  return session.input;
}

/** What the session tells the client of the room's `lines`. */
function told(session: IrcSession, ...lines: string[]): string[] {
  session.replies = [];
  for (const line of lines) session.fromRoom(line);
  return session.replies;
}

Deno.test("IrcSession tells moderation's topic, operators and kicks as IRC, and keeps its answers in order", () => {
  const session = joinedSession();
  assert.ok(session.replies.includes(":chat 353 me = #chat :me @op bob"));
  assert.deepEqual(told(session, "* Topic: be nice"), [":chat 332 me #chat :be nice"]);
  assert.equal(ask(session, "TOPIC #chat :new one"), "/topic new one\n");
  assert.deepEqual(told(session, "* error: /topic is for operators only"), [
    ":chat 482 me #chat :/topic is for operators only",
  ]);
  assert.equal(ask(session, "TOPIC #chat"), "/topic\n");
  assert.deepEqual(told(session, "* No topic is set"), [":chat 331 me #chat :No topic is set"]);
  // An operator's TOPIC is settled by the room's line, and a WHO after it gets its own answer.
  ask(session, "TOPIC #chat :fresh");
  assert.deepEqual(told(session, "* me set the topic: fresh"), [
    ":me!me@chat TOPIC #chat :fresh",
  ]);
  assert.equal(ask(session, "WHO #chat"), "/who\n");
  assert.deepEqual(told(session, "* 3 online: bob, me, @op"), [
    ":chat 352 me #chat bob chat chat bob H :0 bob",
    ":chat 352 me #chat me chat chat me H :0 me",
    ":chat 352 me #chat op chat chat op H@ :0 op",
    ":chat 315 me #chat :End of WHO list",
  ]);
  assert.deepEqual(told(session, "* bob was kicked by op: spam"), [
    ":op!op@chat KICK #chat bob :spam",
  ]);
  assert.deepEqual(told(session, "* op cleared the topic"), [":op!op@chat TOPIC #chat :"]);
});

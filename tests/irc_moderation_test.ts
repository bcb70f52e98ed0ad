/**
 * Moderation through the IRC door over real sockets: a kick is a KICK, an IRC operator's KICK,
 * TOPIC and MODE (+b, -b, +o, -o) are the operator commands, anyone else gets 482, a mute is 404,
 * a ban is refused at the door, and the room's notices of it all reach IRC members.
 */
import assert from "node:assert/strict";
import { ANY_GREETING, connectFrom, joinAs, TestClient, type TestConn } from "./_helpers.ts";
import { IrcSite, readUntil } from "./_irc.ts";
import { hashPassword } from "../server/passwords.ts";
import { FixedAccounts } from "../server/operators_file.ts";
import { MemoryModerationStore } from "../server/moderation_store.ts";
import { banMask, IrcModeration } from "../server/irc_moderation.ts";

const PASSWORD = "correct horse";
/** op and carol are operators; dave is registered, and no operator. */
const ACCOUNTS = await Promise.all(
  ["op", "carol", "dave"].map((name) => hashPassword(name, PASSWORD)),
);

/** A server with operators and its IRC door; `store` to act on moderation from outside. */
function moderatedSite(store = new MemoryModerationStore(["op", "carol"])): IrcSite {
  const accounts = new FixedAccounts(ACCOUNTS);
  return new IrcSite({
    server: { accounts, moderation: store, floodRate: 0 },
    irc: { isRegistered: (name) => accounts.get(name) !== undefined },
  });
}

/** Registers on the IRC door as a registered name, its password as PASS; lines up to the 366. */
async function ircLogin(site: IrcSite, nick: string): Promise<[TestClient, string[]]> {
  const client = await site.connect();
  await client.write(`PASS :${PASSWORD}\r\nNICK ${nick}\r\nUSER ${nick} 0 * :${nick}\r\n`);
  return [client, await readUntil(client, / 366 /)];
}

/** Joins by nc as a registered name, with its password; reads up to the welcome. */
async function ncLogin(port: number, name: string): Promise<TestClient> {
  const client = await TestClient.connect(port);
  await client.expect(ANY_GREETING);
  await client.send(name);
  await client.expect(`* ${name} is registered: send its password`);
  await client.send(PASSWORD);
  await skipTo(client, new RegExp(`^\\* Welcome, ${name}!`));
  return client;
}

/** Reads lines until one matches, returning it (the others are skipped). */
async function skipTo(client: TestClient<TestConn>, pattern: RegExp): Promise<string> {
  for (;;) {
    const line = await client.readLine();
    if (pattern.test(line)) return line;
  }
}

Deno.test("irc member kicked by an operator gets KICK and is closed; IRC members see KICK, not QUIT", async () => {
  await using site = moderatedSite();
  await using op = await ncLogin(site.port, "op");
  const [bob] = await site.join("bob");
  await using _bob = bob;
  const [eve] = await site.join("eve");
  await using _eve = eve;
  await skipTo(op, /^\* eve has entered the room$/);
  await op.send("/kick bob spamming");
  const end = await bob.readToEnd();
  assert.deepEqual(end.slice(-2), [
    ":op!op@chat KICK #chat bob :spamming",
    "ERROR :Closing link: You were kicked by op: spamming",
  ]);
  assert.equal(await skipTo(eve, / KICK | QUIT /), ":op!op@chat KICK #chat bob :spamming");
  await op.expect("* bob was kicked by op: spamming");
  // No reason: the kicker's name is the KICK's comment, as IRC servers give it.
  const [ann] = await site.join("ann");
  await using _ann = ann;
  await op.send("/kick ann");
  assert.equal((await ann.readToEnd()).at(-2), ":op!op@chat KICK #chat ann :op");
});

Deno.test("irc operator's KICK, TOPIC and MODE +o/-o are the operator commands, and it shows as @", async () => {
  await using site = moderatedSite();
  await using bob = await joinAs(site.port, "bob");
  const [eve] = await site.join("eve");
  await using _eve = eve;
  const [op] = await ircLogin(site, "op");
  await using _op = op;
  await op.expect(":chat MODE #chat +o op");
  await eve.expect(":op!op@chat JOIN #chat");
  await eve.expect(":chat MODE #chat +o op"); // its client marks it at once, as NAMES would
  await op.write("NAMES #chat\r\n");
  assert.match((await readUntil(op, / 366 /))[0]!, /^:chat 353 op = #chat :.*@op/);
  await op.write("TOPIC #chat :be nice\r\n");
  await op.expect(":op!op@chat TOPIC #chat :be nice");
  await eve.expect(":op!op@chat TOPIC #chat :be nice");
  await skipTo(bob, /^\* op set the topic: be nice$/);
  // The TOPIC is answered by the room's line: a WHO after it gets its own answer.
  await op.write("WHO #chat\r\n");
  const who = await readUntil(op, / 315 /);
  assert.ok(who.includes(":chat 352 op #chat op chat chat op H@ :0 op"), JSON.stringify(who));
  await op.write("KICK #chat bob :bye now\r\n");
  await op.expect(":op!op@chat KICK #chat bob :bye now");
  await eve.expect(":op!op@chat KICK #chat bob :bye now");
  assert.ok((await bob.readToEnd()).includes("* error: You were kicked by op: bye now"));
  await op.write("MODE #chat +o dave\r\n");
  await eve.expect(":chat NOTICE #chat :dave is now an operator (by op)");
  await eve.expect(":op!op@chat MODE #chat +o dave");
  await op.write("MODE #chat -o dave\r\n");
  await skipTo(eve, /^:op!op@chat MODE #chat -o dave$/);
});

Deno.test("irc member who is no operator gets 482 with the server's reason, and an operator is protected", async () => {
  await using site = moderatedSite();
  const [op] = await ircLogin(site, "op");
  await using _op = op;
  const [eve] = await site.join("eve");
  await using _eve = eve;
  await eve.write("KICK #chat op :go\r\n");
  await eve.expect(":chat 482 eve #chat :/kick is for operators only");
  await eve.write("TOPIC #chat :mine\r\nMODE #chat +b op\r\nMODE #chat -o op\r\n");
  await eve.expect(":chat 482 eve #chat :/topic is for operators only");
  await eve.expect(":chat 482 eve #chat :/ban is for operators only");
  await eve.expect(":chat 482 eve #chat :/deop is for operators only");
  // A client asks for the ban list as a matter of course: the list is empty to a member.
  await eve.write("MODE #chat b\r\n");
  await eve.expect(":chat 368 eve #chat :End of channel ban list");
  const [carol] = await ircLogin(site, "carol");
  await using _carol = carol;
  await op.write("KICK #chat carol :no\r\nKICK #chat op\r\n");
  await skipTo(op, / 482 /).then((line) =>
    assert.equal(
      line,
      ':chat 482 op #chat :Cannot kick "carol": an operator cannot kick an operator',
    )
  );
  await op.expect(":chat 482 op #chat :You cannot kick yourself");
});

Deno.test("irc MODE +b and -b ban and lift by nick, nick!*@*, address, CIDR or *!*@address, and +b lists them", async () => {
  await using site = moderatedSite();
  const [op] = await ircLogin(site, "op");
  await using _op = op;
  await op.expect(":chat MODE #chat +o op");
  await op.write("MODE #chat +b mallory!*@*\r\n");
  await op.expect(":chat NOTICE #chat :mallory was banned by op");
  await op.expect(":op!op@chat KICK #chat mallory :Banned");
  await op.write("MODE #chat +bb *!*@203.0.113.0/24 198.51.100.7\r\n");
  await op.expect(":chat NOTICE #chat :Banned 203.0.113.0/24");
  await op.expect(":chat NOTICE #chat :Banned 198.51.100.7");
  await op.write("MODE #chat +b\r\n");
  const list = await readUntil(op, / 368 /);
  assert.deepEqual(list.slice(0, -1).sort(), [
    ":chat 367 op #chat *!*@198.51.100.7 op",
    ":chat 367 op #chat *!*@203.0.113.0/24 op",
    ":chat 367 op #chat mallory!*@* op",
  ]);
  assert.equal(list.at(-1), ":chat 368 op #chat :End of channel ban list");
  await op.write("MODE #chat -b mallory\r\nMODE #chat -b *!*@198.51.100.7\r\nMODE #chat b\r\n");
  await op.expect(":chat NOTICE #chat :mallory was unbanned by op");
  await op.expect(":chat NOTICE #chat :Unbanned 198.51.100.7");
  assert.deepEqual(await readUntil(op, / 368 /), [
    ":chat 367 op #chat *!*@203.0.113.0/24 op",
    ":chat 368 op #chat :End of channel ban list",
  ]);
  await op.write("MODE #chat +b *!eve@*\r\n");
  await op.expect(/^:chat 696 op #chat b \*!eve@\* :Cannot ban that mask/);
});

Deno.test("irc member banned is put out with KICK, refused at NICK with 465, and its address at the door", async () => {
  await using site = moderatedSite();
  await using op = await ncLogin(site.port, "op");
  const [eve] = await site.join("eve");
  await using _eve = eve;
  const [ann] = await site.join("ann");
  await using _ann = ann;
  await op.send("/ban eve 1h spam");
  const end = await eve.readToEnd();
  assert.match(end.at(-2)!, /^:chat KICK #chat eve :You are banned until .* UTC: spam$/);
  assert.match(end.at(-1)!, /^ERROR :Closing link: You are banned until .*: spam$/);
  assert.match(
    await skipTo(ann, / KICK /),
    /^:op!op@chat KICK #chat eve :Banned until .* UTC: spam$/,
  );
  // The name, at the next registration: 465 and closed.
  await using again = await site.connect();
  await again.write("NICK Eve\r\nUSER e 0 * :E\r\n");
  const refused = await again.readToEnd();
  assert.match(refused.at(-2)!, /^:chat 465 Eve :You are banned until .*: spam$/);
  assert.match(refused.at(-1)!, /^ERROR :Closing link: You are banned until/);
  // A NICK to it: 432, and the member stays.
  await ann.write("NICK eve\r\n");
  await ann.expect(/^:chat 432 ann eve :You are banned until .*: spam$/);
  // An address: refused at the IRC port before anything else.
  await op.send("/ban 127.0.0.2 1h no bots");
  await skipTo(op, /^\* Banned 127\.0\.0\.2 until/);
  await using bot = await connectFrom(site.ircPort, "127.0.0.2");
  const door = await bot.readToEnd();
  assert.match(door[0]!, /^:chat 465 \* :You are banned until .*: no bots$/);
  assert.match(door.at(-1)!, /^ERROR :Closing link: You are banned until .*: no bots$/);
});

Deno.test("irc member muted gets 404 for its lines, and hears mutes, unmutes and op changes as NOTICE and MODE", async () => {
  const store = new MemoryModerationStore(["op", "carol"]);
  await using site = moderatedSite(store);
  const [op] = await ircLogin(site, "op");
  await using _op = op;
  await using bob = await joinAs(site.port, "bob");
  const [eve] = await site.join("eve");
  await using _eve = eve;
  await op.write("MUTE eve 1h flooding\r\n");
  await eve.expect(/^:chat NOTICE #chat :eve was muted by op until .* UTC: flooding$/);
  await eve.write("PRIVMSG #chat :hello?\r\n");
  await eve.expect(/^:chat 404 eve #chat :You are muted until .* UTC: your line was not sent$/);
  await op.write("UNMUTE eve\r\n");
  await eve.expect(":chat NOTICE #chat :eve was unmuted by op");
  await eve.write("PRIVMSG #chat :now?\r\n");
  assert.equal(await skipTo(bob, /^\[eve\]/), "[eve] now?"); // the line muted never went out
  // chat admin's change, as the store tells it: the server is the MODE's source.
  await store.setOperator("dave", true);
  store.onChange?.({ kind: "operator", name: "dave", isOperator: true });
  await eve.expect(":chat NOTICE #chat :dave is now an operator (by the server)");
  await eve.expect(":chat MODE #chat +o dave");
});

Deno.test("IrcModeration answers KICK and MODE's odd cases without asking the room", () => {
  const moderation = new IrcModeration("#chat");
  assert.deepEqual(moderation.kick("me", ["#chat"]), {
    input: "",
    replies: [":chat 461 me KICK :Not enough parameters"],
  });
  assert.equal(moderation.kick("me", ["#other", "bob"]).replies[0]?.split(" ")[1], "403");
  assert.equal(moderation.kick("me", ["#CHAT", "bob,eve", " "]).input, "/kick bob\n/kick eve\n");
  assert.deepEqual(moderation.mode("me", ["#chat"]).replies, [":chat 324 me #chat :+nt"]);
  assert.deepEqual(moderation.mode("me", ["#chat", "+ntx"]).replies, [
    ":chat 472 me x :is unknown mode char to me",
  ]);
  assert.deepEqual(moderation.mode("me", ["#chat", "+o"]).replies, [
    ":chat 461 me MODE :Not enough parameters",
  ]);
  const mixed = moderation.mode("me", ["#chat", "+b-b+o", "*@10.0.0.0/8", "Eve!*@*", "dave"]);
  assert.equal(mixed.input, "/ban 10.0.0.0/8\n/unban Eve\n/op dave\n");
  assert.equal(banMask("2001:db8::/64"), "*!*@2001:db8::/64");
  // An error moderation has no word for is the session's to tell.
  assert.equal(moderation.error("me", 'No user named "x" is online', true), undefined);
});

/**
 * Moderation through the IRC door over real sockets: a kick is a KICK, an IRC operator's KICK,
 * TOPIC and MODE (+b, -b, +o, -o) are the operator commands, anyone else gets 482, a mute is 404,
 * a ban is refused at the door, and the room's notices of it all reach IRC members.
 */
import assert from "node:assert/strict";
import { connectFrom, TestClient, type TestConn } from "./_helpers.ts";
import { IrcSite, readUntil } from "./_irc.ts";
import { hashPassword } from "../server/passwords.ts";
import { FixedAccounts } from "../server/operators_file.ts";
import { MemoryModerationStore } from "../server/moderation_store.ts";

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
  await client.expect("* Welcome to chat! What shall I call you?");
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

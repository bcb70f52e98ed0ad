/**
 * The IRC door with real IRC clients no one here wrote, installed by .ci/packages.sh: Debian's
 * irssi in a real terminal (tmux), and weechat-headless driven through its FIFO, in the same room
 * as an nc member and a member of the page's door (a WebSocket, as the page speaks it), all against
 * the server as a process; and IRC members in a cluster's room.
 */
import assert from "node:assert/strict";
import {
  Child,
  joinAs,
  run,
  startServerProcess,
  TestClient,
  Tmux,
  waitUntil,
  withDeadline,
} from "./_helpers.ts";
import { clusterServer, Redis } from "./_cluster.ts";
import { IrcSite, readUntil } from "./_irc.ts";
import { Folder, startStoreServer } from "./_store.ts";
import { hashPassword } from "../server/passwords.ts";
import { FixedAccounts } from "../server/operators_file.ts";
import { MemoryModerationStore } from "../server/moderation_store.ts";

/** A member of the page's door: one line per WebSocket message, as the page sends and gets them. */
class PageMember implements AsyncDisposable {
  #socket: WebSocket;
  #lines: string[] = [];
  #waiting: (() => void) | undefined;
  #closed: Promise<void>;

  private constructor(socket: WebSocket) {
    this.#socket = socket;
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#closed = promise;
    socket.onclose = () => resolve();
    socket.onmessage = (event) => {
      this.#lines.push(...String(event.data).split("\n").filter((line) => line !== ""));
      this.#waiting?.();
    };
  }

  static async join(url: string, name: string): Promise<PageMember> {
    const socket = new WebSocket(url);
    const member = new PageMember(socket);
    await withDeadline(
      new Promise((resolve, reject) => {
        socket.onopen = resolve;
        socket.onerror = () => reject(new Error("The socket did not open"));
      }),
      "the page's socket",
    );
    socket.send(name);
    await member.expect(new RegExp(`^\\* Welcome, ${name}!`));
    return member;
  }

  send(line: string): void {
    this.#socket.send(line);
  }

  /** Waits for a line matching `pattern`, dropping those before it. */
  async expect(pattern: RegExp): Promise<string> {
    return await withDeadline(
      (async () => {
        while (true) {
          const index = this.#lines.findIndex((line) => pattern.test(line));
          if (index !== -1) return this.#lines.splice(0, index + 1).at(-1)!;
          await new Promise<void>((resolve) => this.#waiting = resolve);
        }
      })(),
      `${pattern} on the page's socket, after ${JSON.stringify(this.#lines)}`,
    );
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.#socket.close();
    await this.#closed;
  }
}

/** Reads lines from nc's member until one matches. */
async function expectLine(client: TestClient, pattern: RegExp): Promise<string> {
  while (true) {
    const line = await client.readLine();
    if (pattern.test(line)) return line;
  }
}

Deno.test("irssi joins #chat beside nc and the page: lines, /me, /msg, /nick and /quit reach all", async () => {
  const home = (await run("mktemp", ["-d", "-t", "chat-irssi-XXXXXX"])).trim();
  try {
    const { child, port } = await startServerProcess(["--irc", "0", "--web", "0"]);
    await using _server = child;
    const webPort = Number(/:(\d+)\//.exec(await child.stdout.readUntil(/^web page on /))![1]);
    const ircPort = Number(/:(\d+) as #chat$/.exec(await child.stdout.readUntil(/^irc on /))![1]);
    await using bob = await joinAs(port, "bob");
    await using carol = await PageMember.join(`ws://127.0.0.1:${webPort}/chat`, "carol");
    await using irssi = await Tmux.start(
      ["irssi", `--home=${home}`, "-c", "127.0.0.1", "-p", String(ircPort), "-n", "alice"],
      { width: 120, height: 30 },
    );
    await expectLine(bob, /^\* alice has entered the room$/);
    await carol.expect(/^\* alice has entered the room$/);
    await irssi.type("/window 2", "Enter");
    await irssi.waitFor(/Total of 3 nicks/);
    bob.send("hello from nc");
    await irssi.waitFor(/< bob> hello from nc/);
    carol.send("hello from the page");
    await irssi.waitFor(/< carol> hello from the page/);
    await irssi.type("hi both", "Enter");
    await expectLine(bob, /^\[alice\] hi both$/);
    await carol.expect(/^\[alice\] hi both$/);
    await irssi.type("/me waves", "Enter");
    await expectLine(bob, /^\* \[alice\] waves$/);
    await irssi.type("/msg bob just you", "Enter");
    await expectLine(bob, /^\* private from alice: just you$/);
    carol.send("/msg alice and you");
    await irssi.waitFor(/Act: .*4/); // irssi opens a query window for carol
    await irssi.type("/window goto carol", "Enter");
    await irssi.waitFor(/<carol> and you/);
    await irssi.type("/window goto #chat", "Enter");
    await irssi.type("/nick alicia", "Enter");
    await expectLine(bob, /^\* alice is now known as alicia$/);
    await carol.expect(/^\* alice is now known as alicia$/);
    await irssi.waitFor(/You're now known as alicia/);
    await irssi.type("/quit see you", "Enter");
    await expectLine(bob, /^\* alicia has left the room: see you$/);
    await carol.expect(/^\* alicia has left the room: see you$/);
  } finally {
    await run("rm", ["-rf", home]);
  }
});

Deno.test("irc members are in the cluster's room: lines and /msg cross servers both ways", async () => {
  await using redis = await new Redis().start();
  const first = await clusterServer(redis, ["--irc", "0"]);
  await using _first = first.child;
  const ircPort = Number(
    /:(\d+) as #chat$/.exec(await first.child.stdout.readUntil(/^irc on /))![1],
  );
  const second = await clusterServer(redis);
  await using _second = second.child;
  await using bob = await joinAs(second.port, "bob");
  await using alice = await TestClient.connect(ircPort);
  await alice.write("NICK alice\r\nUSER a 0 * :A\r\n");
  const names = (await readUntil(alice, / 366 alice /)).filter((line) => / 353 /.test(line));
  assert.ok(names.some((line) => / :alice bob$/.test(line)), JSON.stringify(names));
  await expectLine(bob, /^\* alice has entered the room$/);
  await alice.write("PRIVMSG #chat :across servers\r\nPRIVMSG bob :just you\r\n");
  await expectLine(bob, /^\[alice\] across servers$/);
  await expectLine(bob, /^\* private from alice: just you$/);
  bob.send("and back");
  await alice.expect(":bob!bob@chat PRIVMSG #chat :and back");
  bob.send("/msg alice privately");
  await alice.expect(":bob!bob@chat PRIVMSG alice :privately");
});

Deno.test("irssi logs a registered name in with SASL PLAIN", async () => {
  await using folder = await Folder.make();
  const home = (await run("mktemp", ["-d", "-t", "chat-irssi-XXXXXX"])).trim();
  try {
    const { child, port } = await startStoreServer(folder, ["--irc", "0"]);
    await using _server = child;
    const ircPort = Number(/:(\d+) as #chat$/.exec(await child.stdout.readUntil(/^irc on /))![1]);
    await using bob = await joinAs(port, "bob");
    await bob.send("/register correct horse battery");
    await expectLine(bob, /^\* bob is registered/);
    // irssi's configuration, written by sh: the tests write no file themselves.
    const config = `servers = ({ address = "127.0.0.1"; port = "${ircPort}"; chatnet = "chat"; ` +
      `autoconnect = "yes"; });\n` +
      `chatnets = { chat = { type = "IRC"; sasl_mechanism = "PLAIN"; sasl_username = "bob"; ` +
      `sasl_password = "correct horse battery"; }; };\n` +
      `settings = { core = { nick = "bobby"; user_name = "bob"; real_name = "Bob"; }; };\n`;
    await run("sh", ["-c", 'printf "%s" "$1" > "$2/config"', "sh", config, home]);
    await using irssi = await Tmux.start(["irssi", `--home=${home}`], { width: 120, height: 30 });
    // The owner's login takes the name over from the nc connection that holds it.
    await expectLine(bob, /^\* error: bob logged in from elsewhere with its password$/);
    await irssi.waitFor(/You are now logged in as bob/, { scrollback: true });
    await irssi.type("/window goto #chat", "Enter");
    await irssi.waitFor(/Total of 1 nicks/);
  } finally {
    await run("rm", ["-rf", home]);
  }
});

Deno.test("irssi kicked by an operator on nc sees the kick in #chat, and its link closed", async () => {
  const home = (await run("mktemp", ["-d", "-t", "chat-irssi-XXXXXX"])).trim();
  try {
    const accounts = new FixedAccounts([await hashPassword("op", "correct horse")]);
    await using site = new IrcSite({
      server: { accounts, moderation: new MemoryModerationStore(["op"]) },
      irc: { isRegistered: (name) => accounts.get(name) !== undefined },
    });
    await using op = await TestClient.connect(site.port);
    await op.send("op");
    await op.send("correct horse");
    await expectLine(op, /^\* Welcome, op!/);
    await using irssi = await Tmux.start(
      ["irssi", `--home=${home}`, "-c", "127.0.0.1", "-p", String(site.ircPort), "-n", "alice"],
      { width: 120, height: 30 },
    );
    await expectLine(op, /^\* alice has entered the room$/);
    await irssi.type("/window 2", "Enter");
    await irssi.waitFor(/Total of 2 nicks \[1 ops/);
    await op.send("/kick alice be nice");
    await irssi.waitFor(/alice was kicked from #chat by op \[be nice\]/);
    await irssi.type("/window 1", "Enter");
    await irssi.waitFor(/Closing link: You were kicked by op: be nice/, { scrollback: true });
  } finally {
    await run("rm", ["-rf", home]);
  }
});

/** What weechat-headless logged of the channel so far (read by cat: the tests read no file). */
function weechatLog(home: string): Promise<string> {
  return run("sh", [
    "-c",
    'cat "$1/logs/irc.chat.#chat.weechatlog" 2>/dev/null || true',
    "sh",
    home,
  ]);
}

Deno.test("weechat-headless joins #chat beside nc: lines both ways, and its quit is a leave", async () => {
  const home = (await run("mktemp", ["-d", "-t", "chat-weechat-XXXXXX"])).trim();
  try {
    const { child, port } = await startServerProcess(["--irc", "0"]);
    await using _server = child;
    const ircPort = Number(/:(\d+) as #chat$/.exec(await child.stdout.readUntil(/^irc on /))![1]);
    await using bob = await joinAs(port, "bob");
    const commands = [
      "/set logger.file.flush_delay 0",
      "/set irc.server_default.nicks carol",
      `/server add chat 127.0.0.1/${ircPort}`,
      "/connect chat",
    ];
    await using _weechat = new Child("weechat-headless", ["--dir", home, "-r", commands.join(";")]);
    await expectLine(bob, /^\* carol has entered the room$/);
    bob.send("hello weechat");
    await waitUntil(
      async () => /\tbob\thello weechat$/m.test(await weechatLog(home)),
      "bob's line in weechat's log",
    );
    // weechat's FIFO takes commands for a buffer: what carol types in #chat.
    const fifo = (await run("sh", ["-c", 'echo "$1"/weechat_fifo_*', "sh", home])).trim();
    const say = (text: string) =>
      run("sh", ["-c", 'printf "%s\\n" "$1" > "$2"', "sh", `irc.chat.#chat *${text}`, fifo]);
    await say("hi from weechat");
    await expectLine(bob, /^\[carol\] hi from weechat$/);
    await say("/quit bye");
    await expectLine(bob, /^\* carol has left the room: bye$/);
  } finally {
    await run("rm", ["-rf", home]);
  }
});

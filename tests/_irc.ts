/** Helpers for the IRC door's tests: a server with the door, and a raw IRC client over a socket. */
import { type ChatServer, type ServerOptions, startServer } from "../server.ts";
import { type IrcOptions, type IrcServer, startIrc } from "../server/irc_door.ts";
import { TestClient, type TestConn } from "./_helpers.ts";

/** A chat server on a free loopback port with the IRC door on another. */
export class IrcSite implements AsyncDisposable {
  readonly server: ChatServer;
  readonly irc: IrcServer;

  constructor(options: { server?: ServerOptions; irc?: IrcOptions } = {}) {
    this.server = startServer({ hostname: "127.0.0.1", port: 0, ...options.server });
    this.irc = startIrc(this.server, { hostname: "127.0.0.1", port: 0, ...options.irc });
  }

  get port(): number {
    return this.server.addr.port;
  }

  get ircPort(): number {
    return this.irc.addr.port;
  }

  /** Connects a raw IRC client (lines end in CRLF; read back without it). */
  connect(): Promise<TestClient> {
    return TestClient.connect(this.ircPort);
  }

  /** Connects and registers as `nick`; returns the client and every line up to the 366. */
  async join(nick: string): Promise<[TestClient, string[]]> {
    const client = await this.connect();
    try {
      await client.write(`NICK ${nick}\r\nUSER ${nick} 0 * :${nick}\r\n`);
      return [client, await readUntil(client, / 366 /)];
    } catch (error) {
      client.close();
      throw error;
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.server.close();
    await this.irc.close();
  }
}

/** Lines up to and with the first that matches `pattern`; fails at the deadline with them. */
export async function readUntil<C extends TestConn>(
  client: TestClient<C>,
  pattern: RegExp,
): Promise<string[]> {
  const lines: string[] = [];
  while (true) {
    let line: string;
    try {
      line = await client.readLine();
    } catch (error) {
      throw new Error(`${(error as Error).message}; before ${pattern}: ${JSON.stringify(lines)}`);
    }
    lines.push(line);
    if (pattern.test(line)) return lines;
  }
}

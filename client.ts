/**
 * Terminal chat client: sends your name, then your lines, while printing what the room says.
 *
 * Run it with `deno run -N client.ts NAME [--host HOST] [--port PORT]`; end with Ctrl+D or `/quit`.
 */
import {
  cleanText,
  DEFAULT_PORT,
  encodeLine,
  LineSplitter,
  LineTooLongError,
  parseName,
  parseServerLine,
  ProtocolError,
} from "./protocol.ts";

/** Where the client connects when no host is given. */
export const DEFAULT_CLIENT_HOST = "127.0.0.1";
/** Longest line accepted from the server: its own lines are far shorter, a hostile one is cut off. */
const MAX_SERVER_LINE_BYTES = 64 * 1024;

/** An expected way for a chat session to fail (refused, rejected, lost); its message is for the user. */
export class ClientError extends Error {
  override name = "ClientError";
}

/** Options for {@linkcode runClient}. */
export interface ClientOptions {
  /** The name to join with. */
  name: string;
  /** Server host (default 127.0.0.1). */
  hostname?: string;
  /** Server port (default 1234). */
  port?: number;
  /** What the user types, one message per line (default stdin). */
  input?: ReadableStream<Uint8Array>;
  /** Where the room's lines go (default stdout). */
  output?: (line: string) => void;
}

/**
 * Joins the room and chats until the user leaves (end of input or `/quit`). Throws a
 * {@linkcode ClientError} when the server cannot be reached, rejects the name or goes away.
 */
export async function runClient(options: ClientOptions): Promise<void> {
  const name = checkName(options.name);
  const hostname = options.hostname ?? DEFAULT_CLIENT_HOST;
  const port = options.port ?? DEFAULT_PORT;
  const output = options.output ?? ((line: string) => console.log(line));
  using conn = await connect(hostname, port);
  conn.setNoDelay(true);
  const session = new Session(conn, output);
  await session.send(name);
  const input = (options.input ?? Deno.stdin.readable).pipeThrough(
    new LineSplitter({ keepPartialLine: true }),
  );
  const sending = session.sendInput(input);
  try {
    await session.receive(conn.readable);
  } finally {
    session.stop();
    await sending;
  }
}

function checkName(name: string): string {
  try {
    return parseName(name);
  } catch (error) {
    if (error instanceof ProtocolError) throw new ClientError(error.message);
    throw error;
  }
}

async function connect(hostname: string, port: number): Promise<Deno.TcpConn> {
  try {
    return await Deno.connect({ hostname, port });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new ClientError(
        `Cannot connect to ${hostname}:${port}: no network permission (run with -N)`,
      );
    }
    const reason = error instanceof Deno.errors.ConnectionRefused
      ? "connection refused"
      : String(error);
    throw new ClientError(`Cannot connect to ${hostname}:${port}: ${reason}`);
  }
}

/** One chat session: the server's lines go to the output, the user's lines to the server. */
class Session {
  #conn: Deno.TcpConn;
  #output: (line: string) => void;
  #joined = Promise.withResolvers<boolean>();
  #isJoined = false;
  #isLeaving = false;
  #isStopped = false;
  #inputReader: ReadableStreamDefaultReader<string | LineTooLongError> | undefined;

  constructor(conn: Deno.TcpConn, output: (line: string) => void) {
    this.#conn = conn;
    this.#output = output;
  }

  /** Sends one line, all of it: a write may take only part of the buffer. */
  async send(line: string): Promise<void> {
    const bytes = encodeLine(line);
    for (let offset = 0; offset < bytes.length;) {
      offset += await this.#conn.write(bytes.subarray(offset));
    }
  }

  /** Prints the room's lines until the server closes; throws a ClientError unless the user left. */
  async receive(readable: ReadableStream<Uint8Array>): Promise<void> {
    let rejection: string | undefined;
    let lastLine = "";
    try {
      for await (
        const line of readable.pipeThrough(
          new LineSplitter({ maxLineBytes: MAX_SERVER_LINE_BYTES }),
        )
      ) {
        if (line instanceof LineTooLongError) continue;
        lastLine = cleanText(line);
        const parsed = parseServerLine(lastLine);
        if (this.#isJoined) {
          this.#output(lastLine);
        } else if (parsed?.kind === "system" && parsed.text.startsWith("error: ")) {
          rejection = parsed.text.slice("error: ".length);
        } else if (parsed?.kind === "system" && parsed.text.startsWith("The room contains")) {
          this.#isJoined = true;
          this.#joined.resolve(true);
          this.#output(lastLine);
        }
      }
    } catch (error) {
      if (this.#isLeaving) return;
      throw new ClientError(
        `Connection to the server lost: ${error instanceof Error ? error.message : error}`,
      );
    }
    if (this.#isLeaving) return;
    if (!this.#isJoined) {
      throw new ClientError(rejection ?? "The server closed the connection before we joined");
    }
    throw new ClientError(
      lastLine.includes("shutting down")
        ? "The server shut down"
        : "The server closed the connection",
    );
  }

  /** Sends each input line once joined; at the end of input or `/quit`, leaves the room. */
  async sendInput(input: ReadableStream<string | LineTooLongError>): Promise<void> {
    if (!await this.#joined.promise) return;
    this.#inputReader = input.getReader();
    try {
      while (true) {
        const { value: line, done } = await this.#inputReader.read();
        if (this.#isStopped) return;
        if (done || line === "/quit") break;
        if (line instanceof LineTooLongError) {
          console.error(`error: ${line.message}; it was not sent`);
          continue;
        }
        await this.send(line);
      }
      this.#isLeaving = true;
      this.#conn.closeWrite(); // the server sees us leave, sends what is left, then closes
    } catch {
      // The connection ended while sending: receive() reports how.
    } finally {
      this.#inputReader.releaseLock();
    }
  }

  /** Stops reading input once the connection is over. */
  stop(): void {
    this.#isStopped = true;
    this.#joined.resolve(false);
    this.#inputReader?.cancel().catch(() => {});
  }
}

if (import.meta.main) {
  // No top-level await here: main.ts imports this module, which must finish loading first.
  import("./main.ts").then(({ main }) => main(["client", ...Deno.args])).then(Deno.exit);
}

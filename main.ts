/** The `chat` command line: `chat server ...` and `chat client NAME ...`, the compiled binary's entry. */
import { parseArgs } from "node:util";
import { ClientError, DEFAULT_CLIENT_HOST, runClient } from "./client.ts";
import { DEFAULT_HISTORY_SIZE } from "./hub.ts";
import {
  DEFAULT_HOST,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_PORT,
  HELP_LINES,
  MIN_MAX_LINE_BYTES,
} from "./protocol.ts";
import { type ChatServer, DEFAULT_MAX_BACKLOG_BYTES, startServer } from "./server.ts";

const HELP = `chat: a group chat server and terminal client over plain TCP lines

Usage:
  chat server [options]         run the server
  chat client NAME [options]    join the room as NAME (1 to 32 letters, digits, _ or -)
  chat help                     show this help

Server options:
  --host HOST          address to listen on (default ${DEFAULT_HOST})
  --port PORT          port to listen on, 0 for any free one (default ${DEFAULT_PORT})
  --max-line BYTES     longest line accepted, at least ${MIN_MAX_LINE_BYTES} (default ${DEFAULT_MAX_LINE_BYTES})
  --max-backlog BYTES  output queued for one client before it is dropped as not reading
                       (default ${DEFAULT_MAX_BACKLOG_BYTES})
  --history LINES      lines of chat shown to newcomers, 0 for none (default ${DEFAULT_HISTORY_SIZE})

Client options:
  --host HOST          server address (default ${DEFAULT_CLIENT_HOST})
  --port PORT          server port (default ${DEFAULT_PORT})
  Type a line and press Enter to send it; Ctrl+D or /quit leaves. At a terminal you get line
  editing, your own history (up and down arrows), time stamps and a color per name (none when
  NO_COLOR is set); when stdout is not a terminal the server's lines are printed exactly.

Commands (answered by the server, so they work from nc too):
${HELP_LINES.map((line) => `  ${line.slice(2)}`).join("\n")}

Any client works: nc 127.0.0.1 ${DEFAULT_PORT}, then type your name as the first line.`;

/** A command-line mistake: reported in one line with a pointer to the help, exit code 2. */
class UsageError extends Error {
  override name = "UsageError";
}

/** Runs the command line `args` and returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "server":
        return await serverCommand(rest);
      case "client":
        return await clientCommand(rest);
      case undefined:
      case "help":
      case "-h":
      case "--help":
        console.log(HELP);
        return 0;
      default:
        throw new UsageError(
          `Unknown command ${JSON.stringify(command)}: use "server" or "client"`,
        );
    }
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message} (see chat --help)`);
      return 2;
    }
    if (error instanceof ClientError) {
      console.error(`error: ${error.message}`);
      return 1;
    }
    // Not expected, so not pretty, but still one line: the name says where to look.
    console.error(
      `error: unexpected ${error instanceof Error ? `${error.name}: ${error.message}` : error}`,
    );
    return 1;
  }
}

const CLIENT_OPTIONS = {
  host: { type: "string" },
  port: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

const SERVER_OPTIONS = {
  host: { type: "string" },
  port: { type: "string" },
  help: { type: "boolean", short: "h" },
  "max-line": { type: "string" },
  "max-backlog": { type: "string" },
  history: { type: "string" },
} as const;

/** Runs a `parseArgs` call, turning its complaints into usage errors. */
function parse<T>(parser: () => T): T {
  try {
    return parser();
  } catch (error) {
    throw new UsageError(error instanceof Error ? error.message : String(error));
  }
}

/** A whole-number flag's name, range and default. */
interface IntegerFlag {
  flag: string;
  fallback: number;
  min: number;
  max: number;
}

function integer(value: string | undefined, { flag, fallback, min, max }: IntegerFlag): number {
  if (value === undefined) return fallback;
  const number = Number(value);
  if (!(/^\d+$/.test(value) && number >= min && number <= max)) {
    throw new UsageError(
      `Invalid --${flag} ${JSON.stringify(value)}: use a whole number from ${min} to ${max}`,
    );
  }
  return number;
}

async function serverCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({ args, options: SERVER_OPTIONS, allowPositionals: true, strict: true })
  );
  if (values.help) return console.log(HELP), 0;
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument ${JSON.stringify(positionals[0])}`);
  }
  const hostname = values.host ?? DEFAULT_HOST;
  const port = integer(values.port, { flag: "port", fallback: DEFAULT_PORT, min: 0, max: 65535 });
  const maxLineBytes = integer(values["max-line"], {
    flag: "max-line",
    fallback: DEFAULT_MAX_LINE_BYTES,
    min: MIN_MAX_LINE_BYTES,
    max: 2 ** 24,
  });
  const maxBacklogBytes = integer(values["max-backlog"], {
    flag: "max-backlog",
    fallback: DEFAULT_MAX_BACKLOG_BYTES,
    min: maxLineBytes,
    max: 2 ** 30,
  });
  const historySize = integer(values.history, {
    flag: "history",
    fallback: DEFAULT_HISTORY_SIZE,
    min: 0,
    max: 10_000,
  });

  let server: ChatServer;
  try {
    server = startServer({ hostname, port, maxLineBytes, maxBacklogBytes, historySize, log });
  } catch (error) {
    console.error(`error: ${listenFailure(error, { hostname, port })}`);
    return 1;
  }
  console.log(`listening on ${hostPort(server.addr.hostname, server.addr.port)}`);
  await closeOnSignal(server);
  return 0;
}

function log(message: string): void {
  console.log(`${new Date().toISOString()} ${message}`);
}

/** `HOST:PORT`, with an IPv6 host in brackets as URLs and `--allow-net` want it. */
function hostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

function listenFailure(error: unknown, where: { hostname: string; port: number }): string {
  const address = hostPort(where.hostname, where.port);
  if (error instanceof Deno.errors.NotCapable) {
    return `No permission to listen on ${address} (deno task server allows ${DEFAULT_HOST}:${DEFAULT_PORT} only); ` +
      `run: deno run --allow-net=${address} main.ts server --host ${where.hostname} --port ${where.port}`;
  }
  if (error instanceof Deno.errors.AddrInUse) {
    return `Cannot listen on ${address}: the address is already in use`;
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `Cannot listen on ${address}: no such local address`;
  }
  return `Cannot listen on ${address}: ${error instanceof Error ? error.message : error}`;
}

/** Closes the server cleanly at the first SIGINT or SIGTERM; a second one exits at once. */
async function closeOnSignal(server: ChatServer): Promise<void> {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const { promise: signalled, resolve } = Promise.withResolvers<void>();
  let isClosing = false;
  const onSignal = () => {
    if (isClosing) Deno.exit(130);
    isClosing = true;
    resolve();
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  try {
    await signalled;
    log("shutting down");
    await server.close();
  } finally {
    for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
  }
}

async function clientCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({ args, options: CLIENT_OPTIONS, allowPositionals: true, strict: true })
  );
  if (values.help) return console.log(HELP), 0;
  const [name, ...extra] = positionals;
  if (name === undefined) throw new UsageError("Missing NAME: chat client NAME");
  if (extra.length > 0) throw new UsageError(`Unexpected argument ${JSON.stringify(extra[0])}`);
  const port = integer(values.port, { flag: "port", fallback: DEFAULT_PORT, min: 1, max: 65535 });
  await runClient({ name, hostname: values.host ?? DEFAULT_CLIENT_HOST, port });
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

/** The `chat` command line: `chat server ...` and `chat client NAME ...`, the compiled binary's entry. */
import { parseArgs } from "node:util";
import {
  ClientError,
  DEFAULT_CLIENT_HOST,
  DEFAULT_JOIN_TIMEOUT_MS,
  DEFAULT_RECONNECT_TRIES,
  runClient,
} from "./client.ts";
import { ClusterHub, DEFAULT_CLAIM_TTL_MS, redact, RedisRefusedError } from "./cluster.ts";
import { DEFAULT_HISTORY_SIZE, type Hub, LocalHub } from "./hub.ts";
import { SqliteStore, StoreRefusedError } from "./store.ts";
import {
  DEFAULT_HOST,
  DEFAULT_PORT,
  HELP_LINES,
  MAX_MAX_LINE_BYTES,
  MIN_MAX_LINE_BYTES,
  parseNewPassword,
  ProtocolError,
} from "./protocol.ts";
import {
  type ChatServer,
  DEFAULT_LIMITS,
  type Limits,
  resolveLimits,
  startServer,
} from "./server.ts";
import { DEFAULT_WEB_PORT, parseOrigin, startWeb, type WebServer } from "./web.ts";

/** A numeric server flag: the limit it sets, its unit on the command line, and its range. */
interface LimitFlag {
  flag: string;
  limit: keyof Limits;
  /** Seconds on the command line, milliseconds in the limit. */
  isSeconds?: boolean;
  min: number;
  max: number;
  help: string;
}

/** Every limit, as a flag; the help text below is made from this table. */
const LIMIT_FLAGS: LimitFlag[] = [
  {
    flag: "max-line",
    limit: "maxLineBytes",
    min: MIN_MAX_LINE_BYTES,
    max: MAX_MAX_LINE_BYTES,
    help: "longest line in bytes",
  },
  {
    flag: "log-size",
    limit: "logSize",
    min: 0,
    max: 2 ** 32,
    help: "bytes of the room log: how far a client may fall behind (at least 16 lines unless set)",
  },
  {
    flag: "max-backlog",
    limit: "maxBacklogBytes",
    min: 0,
    max: 2 ** 30,
    help: "bytes of replies and private messages queued for a client before it is dropped",
  },
  {
    flag: "max-connections",
    limit: "maxConnections",
    min: 0,
    max: 1_000_000,
    help: "connections at once, 0 for no limit",
  },
  {
    flag: "max-per-address",
    limit: "maxPerAddress",
    min: 0,
    max: 1_000_000,
    help: "connections at once from one address (an IPv6 /64), 0 for no per-address limits",
  },
  {
    flag: "join-rate",
    limit: "joinRate",
    min: 0,
    max: 1_000_000,
    help: "joins a minute from one address, 0 for no limit",
  },
  {
    flag: "handshake-timeout",
    limit: "handshakeTimeoutMs",
    isSeconds: true,
    min: 0,
    max: 86_400,
    help: "seconds for a TLS handshake, 0 for none",
  },
  {
    flag: "name-timeout",
    limit: "nameTimeoutMs",
    isSeconds: true,
    min: 0,
    max: 86_400,
    help: "seconds to send a valid name, 0 for none",
  },
  {
    flag: "idle-timeout",
    limit: "idleTimeoutMs",
    isSeconds: true,
    min: 0,
    max: 86_400 * 30,
    help: "seconds without a line before a client is closed, 0 for none",
  },
  {
    flag: "write-timeout",
    limit: "writeTimeoutMs",
    isSeconds: true,
    min: 0,
    max: 86_400,
    help: "seconds a write to a client may stall before it is dropped, 0 for none",
  },
  {
    flag: "flood-burst",
    limit: "floodBurst",
    min: 1,
    max: 1_000_000,
    help: "lines a client may send at once",
  },
  {
    flag: "flood-rate",
    limit: "floodRate",
    min: 0,
    max: 1_000_000,
    help: "lines a second a client may send on average, 0 to turn flood control off",
  },
  {
    flag: "flood-limit",
    limit: "floodLimit",
    min: 0,
    max: 1_000_000,
    help: "lines delayed by flood control before the client is disconnected",
  },
];

function limitHelp({ flag, limit, isSeconds, help }: LimitFlag): string {
  const value = DEFAULT_LIMITS[limit] / (isSeconds ? 1000 : 1);
  return `  --${`${flag} ${isSeconds ? "SECONDS" : "N"}`.padEnd(22)} ${help} (default ${value})`;
}

const HELP = `chat: a group chat server and terminal client over plain TCP lines

Usage:
  chat server [options]         run the server
  chat client NAME [options]    join the room as NAME (1 to 32 letters, digits, _ or -)
  chat help                     show this help

Server options:
  --host HOST              address to listen on (default ${DEFAULT_HOST})
  --port PORT              port to listen on, 0 for any free one (default ${DEFAULT_PORT})
  --cert FILE --key FILE   speak TLS with this PEM certificate chain and private key
  --history N              lines of chat shown to newcomers, 0 for none (default ${DEFAULT_HISTORY_SIZE})
  --store FILE             keep the history and the registered names in this SQLite file, to
                           outlive restarts (needs read and write permission for FILE, FILE-wal
                           and FILE-shm; deno task store keeps chat.db)
  --password-file FILE     make the server private: every connection must first send the
                           password in FILE's first line
  --redis URL              form one room with every server on this Redis, redis://HOST:PORT
                           (default: the CHAT_REDIS_URL environment variable, else no cluster)
  --claim-ttl SECONDS      with --redis: how long a dead server's names stay taken (default ${
  DEFAULT_CLAIM_TTL_MS / 1000
})
  --web [HOST:]PORT        also serve the chat as a web page on this port (HOST defaults to --host),
                           over HTTPS with --cert and --key; deno task web serves it on ${DEFAULT_WEB_PORT}
  --web-origin ORIGIN      with --web: let pages from ORIGIN (https://chat.example) join too; the
                           page's own origin always may (repeat for more)
${LIMIT_FLAGS.map(limitHelp).join("\n")}

Client options:
  --host HOST              server address (default ${DEFAULT_CLIENT_HOST})
  --port PORT              server port (default ${DEFAULT_PORT})
  --tls                    connect with TLS
  --ca FILE                trust this PEM certificate too (for a self-signed server)
  --password-file FILE     your name's password, if it is registered (else CHAT_PASSWORD, or
                           asked at the terminal)
  --server-password-file FILE  a private server's password (else CHAT_SERVER_PASSWORD, or asked)
  --join-timeout SECONDS   how long the server may take to let you in (default ${
  DEFAULT_JOIN_TIMEOUT_MS / 1000
})
  --reconnect N            attempts to reconnect when the server is lost, 0 for none
                           (default ${DEFAULT_RECONNECT_TRIES} at a terminal, 0 when stdout is not one)
  Type a line and press Enter to send it; Ctrl+D, /quit, or Ctrl+C on an empty line leaves
  (exit code 0). Lines go out as fast as the server allows; the rest wait, shown dimmed. At a
  terminal: Tab completes names, Up and Down bring back what you sent, Ctrl+R searches it; each
  line has a time stamp and each name a color (none when NO_COLOR is set or TERM=dumb). When
  stdout is not a terminal, the server's lines are printed exactly.

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
  tls: { type: "boolean" },
  ca: { type: "string" },
  "join-timeout": { type: "string" },
  reconnect: { type: "string" },
  "password-file": { type: "string" },
  "server-password-file": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

const SERVER_OPTIONS = {
  host: { type: "string" },
  port: { type: "string" },
  help: { type: "boolean", short: "h" },
  cert: { type: "string" },
  key: { type: "string" },
  history: { type: "string" },
  store: { type: "string" },
  "password-file": { type: "string" },
  redis: { type: "string" },
  "claim-ttl": { type: "string" },
  web: { type: "string" },
  "web-origin": { type: "string", multiple: true },
  ...Object.fromEntries(LIMIT_FLAGS.map(({ flag }) => [flag, { type: "string" }])),
} as const;

/** Runs a `parseArgs` call, turning its complaints into usage errors in our own words. */
function parse<T>(parser: () => T): T {
  try {
    return parser();
  } catch (error) {
    throw new UsageError(parseArgsComplaint(error));
  }
}

/** `parseArgs`' complaint, said in one short line (its own sentences give advice that misleads). */
function parseArgsComplaint(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const option = /'(-[^' ]*)/.exec(message)?.[1];
  const code = (error as { code?: string }).code;
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option) {
    return `Unknown option ${JSON.stringify(option)}`;
  }
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && option) {
    return message.includes("does not take")
      ? `${option} takes no value`
      : `${option} needs a value`;
  }
  const argument = /^Unexpected argument '(.*)'/.exec(message)?.[1];
  if (argument !== undefined) return `Unexpected argument ${JSON.stringify(argument)}`;
  return message.split("\n")[0]!;
}

/** A number flag's value: whole unless `isSeconds`, where a fraction is fine, within its range. */
function number(
  value: string | undefined,
  spec: { flag: string; min: number; max: number; isSeconds?: boolean },
) {
  const pattern = spec.isSeconds ? /^\d+(\.\d+)?$/ : /^\d+$/;
  const parsed = Number(value);
  if (value === undefined || !pattern.test(value) || parsed < spec.min || parsed > spec.max) {
    const kind = spec.isSeconds ? "a number of seconds" : "a whole number";
    throw new UsageError(
      `Invalid --${spec.flag} ${
        JSON.stringify(value)
      }: use ${kind} from ${spec.min} to ${spec.max}`,
    );
  }
  return parsed;
}

async function serverCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(() =>
    parseArgs({ args, options: SERVER_OPTIONS, allowPositionals: true, strict: true })
  );
  const flags = values as Record<string, string | boolean | undefined>;
  if (values.help) return console.log(HELP), 0;
  if (positionals.length > 0) {
    throw new UsageError(`Unexpected argument ${JSON.stringify(positionals[0])}`);
  }
  const hostname = values.host ?? DEFAULT_HOST;
  const port = values.port === undefined
    ? DEFAULT_PORT
    : number(values.port, { flag: "port", min: 0, max: 65535 });
  const historySize = values.history === undefined
    ? DEFAULT_HISTORY_SIZE
    : number(values.history, { flag: "history", min: 0, max: 10_000 });
  const asked: Partial<Limits> = {};
  for (const spec of LIMIT_FLAGS) {
    const value = flags[spec.flag];
    if (typeof value === "string") {
      asked[spec.limit] = number(value, spec) * (spec.isSeconds ? 1000 : 1);
    }
  }
  const limits = parse(() => resolveLimits(asked)); // a combination that cannot work is a usage error
  if (values.cert === undefined !== (values.key === undefined)) {
    throw new UsageError("TLS needs both --cert FILE and --key FILE");
  }
  const tls = values.cert && values.key
    ? { cert: await readPem(values.cert, values), key: await readPem(values.key, values) }
    : undefined;
  const serverPassword = values["password-file"] === undefined
    ? undefined
    : await readPassword(values["password-file"], "--password-file");
  const redisUrl = values.redis ?? readEnv("CHAT_REDIS_URL");
  if (values.store !== undefined && redisUrl) {
    throw new UsageError(
      "--store and --redis do not go together: in a cluster the history and the registered " +
        "names are kept in Redis",
    );
  }
  if (values["claim-ttl"] !== undefined && !redisUrl) {
    throw new UsageError("--claim-ttl goes with --redis");
  }
  const web = values.web === undefined ? undefined : webAddress(values.web, hostname);
  const origins = (values["web-origin"] ?? []).map((origin) => {
    if (!web) throw new UsageError("--web-origin goes with --web");
    return parse(() => parseOrigin(origin));
  });
  const claimTtlMs = values["claim-ttl"] === undefined
    ? DEFAULT_CLAIM_TTL_MS
    : number(values["claim-ttl"], { flag: "claim-ttl", min: 1, max: 3600, isSeconds: true }) *
      1000;

  const storeFiles = values.store === undefined
    ? []
    : [values.store, `${values.store}-wal`, `${values.store}-shm`];
  const redisHost = redisUrl ? redisAddress(redisUrl) : undefined;
  const rerun = rerunCommand(args, {
    net: [
      hostPort(hostname, port),
      ...web ? [hostPort(web.hostname, web.port)] : [],
      ...redisHost ? [redisHost] : [],
    ],
    read: [values.cert, values.key, values["password-file"], ...storeFiles].filter((path) =>
      path !== undefined
    ),
    write: storeFiles,
    env: redisHost ? ["CHAT_REDIS_URL", ...REDIS_ENV] : [],
  });

  let hub: Hub | undefined;
  let store: SqliteStore | undefined;
  if (values.store !== undefined) {
    store = await openStore(values.store, { historySize, rerun });
    if (!store) return 1;
    hub = new LocalHub({
      historySize,
      logSize: limits.logSize,
      history: store.history,
      store,
      accounts: store,
    });
  } else if (redisUrl) {
    await checkRedisPermission(redisUrl, rerun);
    const cluster = new ClusterHub({
      url: redisUrl,
      historySize,
      claimTtlMs,
      maxLineBytes: limits.maxLineBytes,
      logSize: limits.logSize,
      log,
    });
    try {
      await cluster.start();
    } catch (error) {
      // A wrong password or the like: waiting will not help, so the server does not start.
      if (!(error instanceof RedisRefusedError)) throw error;
      await cluster.close();
      console.error(`error: ${error.message}`);
      return 1;
    }
    if (!cluster.isWhole) {
      log(`redis: cannot reach ${redact(redisUrl)} yet; serving alone meanwhile`);
    }
    hub = cluster;
  }
  let server: ChatServer;
  try {
    server = startServer({
      hostname,
      port,
      historySize,
      ...limits,
      ...(tls ? { tls } : {}),
      ...(hub ? { hub } : {}),
      ...(serverPassword === undefined ? {} : { serverPassword }),
      log,
    });
  } catch (error) {
    await hub?.close();
    await store?.close();
    console.error(
      `error: ${listenFailure(error, { hostname, port, isTls: tls !== undefined, rerun })}`,
    );
    return 1;
  }
  let page: WebServer | undefined;
  if (web) {
    try {
      page = startWeb(server, {
        ...web,
        origins,
        ...(tls ? { tls } : {}),
        log,
      });
    } catch (error) {
      await server.close();
      await store?.close();
      const failure = listenFailure(error, { ...web, isTls: tls !== undefined, rerun });
      console.error(`error: ${webFailure(error, failure, { web, rerun })}`);
      return 1;
    }
  }
  console.log(
    `listening on ${hostPort(server.addr.hostname, server.addr.port)}${tls ? " (TLS)" : ""}${
      redisUrl ? ` in the cluster on ${redact(redisUrl)}` : ""
    }${serverPassword === undefined ? "" : " (private)"}${
      store ? ` keeping the room in ${store.path}` : ""
    }`,
  );
  if (page) console.log(`web page on ${page.url}${localUrl(page)}`);
  await closeOnSignal(server, page);
  await store?.close(); // what waits to be kept is committed before the process ends
  return 0;
}

/**
 * Opens the store, after checking the permissions it needs (read and write for the file and its
 * WAL companions); a file that cannot be used is said in one line, and undefined returned.
 */
async function openStore(
  path: string,
  options: { historySize: number; rerun: string },
): Promise<SqliteStore | undefined> {
  const files = [path, `${path}-wal`, `${path}-shm`];
  const statuses = await Promise.all(
    files.flatMap((file) => [
      Deno.permissions.query({ name: "read", path: file }),
      Deno.permissions.query({ name: "write", path: file }),
    ]),
  );
  if (statuses.some((status) => status.state !== "granted")) {
    throw new ClientError(
      `No permission to keep ${path} (deno task store keeps chat.db); run: ${options.rerun}`,
    );
  }
  try {
    return await SqliteStore.open(path, { historySize: options.historySize, log });
  } catch (error) {
    if (!(error instanceof StoreRefusedError)) throw error;
    console.error(`error: ${error.message}`);
    return undefined;
  }
}

/** The password in the first line of a file (`--password-file`), checked as a new password is. */
async function readPassword(path: string, flag: string): Promise<string> {
  const line = await readSecret(path);
  try {
    return parseNewPassword(line);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    throw new UsageError(
      `${flag} ${path}: ${error.message.replace("that password", "its first line")}`,
    );
  }
}

/** The first line of a file that holds a password, without its line end. */
async function readSecret(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new ClientError(`No permission to read ${path}; run with --allow-read=${path}`);
    }
    throw new ClientError(`Cannot read ${path}: ${error instanceof Error ? error.message : error}`);
  }
  return text.split("\n")[0]!.replace(/\r$/, "");
}

/** `--web [HOST:]PORT`: the page's address, on the chat's host when none is given. */
function webAddress(value: string, defaultHost: string): { hostname: string; port: number } {
  const match = /^(?:(\[[^\]]+\]|[^:\[\]]+):)?([^:]*)$/.exec(value);
  if (!match) {
    throw new UsageError(`Invalid --web ${JSON.stringify(value)}: use [HOST:]PORT, as 8080`);
  }
  const [, host, port] = match;
  return {
    hostname: host?.replace(/^\[(.*)\]$/, "$1") ?? defaultHost,
    port: number(port, { flag: "web", min: 0, max: 65535 }),
  };
}

/** For a page on every address, the address to open it at on this machine. */
function localUrl(page: WebServer): string {
  const { hostname, port } = page.addr;
  if (hostname !== "0.0.0.0" && hostname !== "::") return "";
  return ` (on this machine: ${page.url.split(":")[0]}://localhost:${port}/)`;
}

/** Why the page could not start, with the command that grants both addresses when permission is missing. */
function webFailure(
  error: unknown,
  failure: string,
  where: { web: { hostname: string; port: number }; rerun: string },
): string {
  if (!(error instanceof Deno.errors.NotCapable)) return `the web page: ${failure}`;
  const page = hostPort(where.web.hostname, where.web.port);
  return `No permission to listen on ${page} for the web page (deno task web allows ${DEFAULT_HOST}:${DEFAULT_WEB_PORT}); ` +
    `run: ${where.rerun}`;
}

/** An environment variable, or undefined when it is unset or not ours to read. */
function readEnv(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return;
  return Deno.env.get(name) || undefined;
}

/**
 * Cluster mode needs network permission for the Redis address (and the Redis client reads two
 * environment variables of its own). Without it, one line says how to run instead.
 */
async function checkRedisPermission(url: string, rerun: string): Promise<void> {
  const host = redisAddress(url);
  const granted = (await Deno.permissions.query({ name: "net", host })).state === "granted" &&
    (await Promise.all(
      REDIS_ENV.map((variable) => Deno.permissions.query({ name: "env", variable })),
    )).every((status) => status.state === "granted");
  if (!granted) {
    throw new ClientError(
      `No permission to reach Redis at ${host} (deno task cluster allows Redis on ` +
        `127.0.0.1:6379); run: ${rerun}`,
    );
  }
}

/** Environment variables the Redis client reads of its own. */
const REDIS_ENV = ["REDIS_DEBUG_MAINTENANCE", "REDIS_EMIT_DIAGNOSTICS"];

/** HOST:PORT of a Redis URL; a URL that is not one is a usage error. */
function redisAddress(url: string): string {
  let redis: URL;
  try {
    redis = new URL(url);
  } catch {
    throw new UsageError(`Invalid Redis URL ${JSON.stringify(redact(url))}: use redis://HOST:PORT`);
  }
  if (redis.protocol !== "redis:" && redis.protocol !== "rediss:") {
    throw new UsageError(`Invalid Redis URL ${JSON.stringify(redact(url))}: use redis://HOST:PORT`);
  }
  return `${redis.hostname || "localhost"}:${redis.port || 6379}`;
}

/**
 * The command that runs this server again with every option it was given and every permission
 * they need, for a permission error to suggest: pasted, it works the first time (a command that
 * named only the missing permission would fail again on the next one, or drop the other options).
 */
function rerunCommand(
  args: string[],
  needs: { net: string[]; read: string[]; write: string[]; env: string[] },
): string {
  const flags = Object.entries(needs).flatMap(([name, list]) =>
    list.length > 0 ? [`--allow-${name}=${[...new Set(list)].join(",")}`] : []
  );
  const words = ["server", ...args].map((word) => redactArgument(word)).map(shellQuote);
  return `deno run ${flags.join(" ")} main.ts ${words.join(" ")}`;
}

/** A Redis URL's password is never printed back. */
function redactArgument(word: string): string {
  return /^rediss?:\/\//.test(word) ? redact(word) : word;
}

/** A word as a POSIX shell reads it back: quoted only when it has to be. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/** Reads a PEM file named on the command line; a missing permission or file is a client error. */
async function readPem(
  path: string,
  files: { cert?: string; key?: string; ca?: string },
): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      const all = [files.cert, files.key, files.ca].filter(Boolean).join(",");
      throw new ClientError(`No permission to read ${path}; run with --allow-read=${all}`);
    }
    throw new ClientError(`Cannot read ${path}: ${error instanceof Error ? error.message : error}`);
  }
}

function log(message: string): void {
  console.log(`${new Date().toISOString()} ${message}`);
}

/** `HOST:PORT`, with an IPv6 host in brackets as URLs and `--allow-net` want it. */
function hostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

function listenFailure(
  error: unknown,
  where: { hostname: string; port: number; isTls: boolean; rerun: string },
): string {
  const address = hostPort(where.hostname, where.port);
  if (error instanceof Deno.errors.NotCapable) {
    return `No permission to listen on ${address}; run: ${where.rerun}`;
  }
  if (error instanceof Deno.errors.AddrInUse) {
    return `Cannot listen on ${address}: the address is already in use`;
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `Cannot listen on ${address}: no such local address`;
  }
  const message = error instanceof Error ? error.message : String(error);
  if (where.isTls) return `Cannot use the TLS certificate and key: ${message}`;
  return `Cannot listen on ${address}: ${message}`;
}

/**
 * Closes the server cleanly at the first SIGINT or SIGTERM, then the page's server (so that the
 * goodbye reaches the page's members first); a second signal exits at once.
 */
async function closeOnSignal(server: ChatServer, page?: WebServer): Promise<void> {
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
    await page?.close();
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
  const port = values.port === undefined
    ? DEFAULT_PORT
    : number(values.port, { flag: "port", min: 1, max: 65535 });
  if (values.ca !== undefined && !values.tls) throw new UsageError("--ca goes with --tls");
  const joinTimeout = values["join-timeout"];
  const joinTimeoutMs = joinTimeout === undefined
    ? DEFAULT_JOIN_TIMEOUT_MS
    : number(joinTimeout, { flag: "join-timeout", min: 0.1, max: 3600, isSeconds: true }) * 1000;
  const reconnectTries = values.reconnect === undefined
    ? undefined
    : number(values.reconnect, { flag: "reconnect", min: 0, max: 1000 });
  const caCerts = values.ca === undefined ? [] : [await readPem(values.ca, values)];
  const tls = values.tls ? { caCerts } : undefined;
  const password = values["password-file"] === undefined
    ? readEnv("CHAT_PASSWORD")
    : await readSecret(values["password-file"]);
  const serverPassword = values["server-password-file"] === undefined
    ? readEnv("CHAT_SERVER_PASSWORD")
    : await readSecret(values["server-password-file"]);
  await runClient({
    ...(password === undefined ? {} : { password }),
    ...(serverPassword === undefined ? {} : { serverPassword }),
    name,
    hostname: values.host ?? DEFAULT_CLIENT_HOST,
    port,
    joinTimeoutMs,
    ...(reconnectTries === undefined ? {} : { reconnectTries }),
    ...(tls ? { tls } : {}),
  });
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

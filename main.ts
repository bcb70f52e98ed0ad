/** The command line: `main.ts server ...` and `main.ts client NAME ...`, the compiled binary's entry. */
import { parseArgs } from "node:util";
import { ClientError, DEFAULT_CLIENT_HOST, DEFAULT_JOIN_TIMEOUT_MS, runClient } from "./client.ts";
import {
  ClusterHub,
  DEFAULT_CLAIM_TTL_MS,
  redact,
  RedisRefusedError,
} from "./cluster/cluster_hub.ts";
import { DEFAULT_HISTORY_SIZE, type Hub, LocalHub } from "./server/hub.ts";
import { SqliteStore, StoreRefusedError } from "./server/store.ts";
import {
  DEFAULT_HOST,
  DEFAULT_PORT,
  describe,
  hostPort,
  MAX_MAX_LINE_BYTES,
  messageOf,
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
import { CLIENT_HELP, HELP, type OptionRow, serverHelp, unbroken, VERSION } from "./cli/help.ts";
import { tlsContext } from "./server/tls_conn.ts";
import { DEFAULT_WEB_PORT, parseOrigin, startWeb, type WebServer } from "./server/web.ts";

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
    flag: "register-rate",
    limit: "registerRate",
    min: 0,
    max: 1_000_000,
    help:
      "registrations and new passwords an hour from one address (3 a connection), 0 for no limit",
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

/** A limit flag as a row of the server's help. */
function limitRow({ flag, limit, isSeconds, help }: LimitFlag): OptionRow {
  const value = DEFAULT_LIMITS[limit] / (isSeconds ? 1000 : 1);
  return [`--${flag} ${isSeconds ? "SECONDS" : "N"}`, `${help} ${unbroken(`(default ${value})`)}`];
}

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
      case "--version":
      case "-V":
        console.log(`chat ${VERSION}`);
        return 0;
      default:
        throw new UsageError(
          `Unknown command ${JSON.stringify(command)}: use "server" or "client"`,
        );
    }
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message} (see ${helpCommand(command)})`);
      return 2;
    }
    if (error instanceof ClientError) {
      console.error(`error: ${error.message}`);
      return 1;
    }
    // Not expected, so not pretty, but still one line: the name says where to look.
    console.error(`error: unexpected ${describe(error)}`);
    return 1;
  }
}

/** The README's command for the help of `command` (how the user ran it, the program cannot know). */
function helpCommand(command: string | undefined): string {
  return command === "server" || command === "client"
    ? `deno task ${command} --help`
    : "deno run main.ts --help";
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

/**
 * `--history -1` as `--history=-1`: `parseArgs` takes a word that starts with "-" for an option, and
 * would say the flag needs a value, where the value is there but out of range.
 */
function joinNegatives(args: string[], options: Record<string, { type: string }>): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const [word, next] = [args[i]!, args[i + 1]];
    if (word === "--") return [...joined, ...args.slice(i)];
    const isString = word.startsWith("--") && options[word.slice(2)]?.type === "string";
    if (isString && next !== undefined && /^-\d/.test(next)) joined.push(`${word}=${next}`), i++;
    else joined.push(word);
  }
  return joined;
}

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
  const message = messageOf(error);
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

async function serverCommand(given: string[]): Promise<number> {
  const args = joinNegatives(given, SERVER_OPTIONS);
  const { values, positionals } = parse(() =>
    parseArgs({ args, options: SERVER_OPTIONS, allowPositionals: true, strict: true })
  );
  const flags = values as Record<string, string | boolean | undefined>;
  if (values.help) return console.log(serverHelp(LIMIT_FLAGS.map(limitRow))), 0;
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
  const web = values.web === undefined ? undefined : webAddress(values.web, { hostname, port });
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
    const claimed = claimAddresses({ hostname, port }, { ...web ? { web } : {}, tls, rerun });
    if (typeof claimed === "string") return console.error(`error: ${claimed}`), 1;
    try {
      store = await openStore(values.store, { historySize, rerun });
    } finally {
      for (const listener of claimed) listener.close(); // the server listens on them next
    }
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
  console.log(connectHint(server.addr, tls !== undefined));
  await closeOnSignal(server, page);
  await store?.close(); // what waits to be kept is committed before the process ends
  return 0;
}

/**
 * Checks the certificate and binds the addresses the server will listen on, so that a server that
 * cannot run says so before `--store` creates its file. Returns the listeners, to close just
 * before the server listens for real, or the line that says why it cannot run.
 */
function claimAddresses(
  chat: { hostname: string; port: number },
  options: { web?: { hostname: string; port: number }; tls?: TlsFiles | undefined; rerun: string },
): Deno.Listener[] | string {
  const { web, tls, rerun } = options;
  const listeners: Deno.Listener[] = [];
  const where = { isTls: tls !== undefined, rerun };
  const refuse = (line: string) => {
    for (const listener of listeners) listener.close();
    return line;
  };
  try {
    if (tls) tlsContext(tls);
    listeners.push(Deno.listen(chat));
    if (web) listeners.push(Deno.listen(web));
  } catch (error) {
    if (listeners.length === 0) return refuse(listenFailure(error, { ...chat, ...where }));
    const page = web!; // only the page's listen comes after the chat's
    return refuse(
      webFailure(error, listenFailure(error, { ...page, ...where }), { web: page, rerun }),
    );
  }
  return listeners;
}

/** A certificate chain and its private key, as PEM text. */
type TlsFiles = { cert: string; key: string };

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
  const isNew = await Deno.lstat(path).then(() => false, () => true);
  try {
    return await SqliteStore.open(path, { historySize: options.historySize, log });
  } catch (error) {
    if (!(error instanceof StoreRefusedError)) throw error;
    // SQLite says only "unable to open database file" when it cannot create one.
    const folder = path.includes("/") ? path.replace(/\/[^/]*$/, "") || "/" : ".";
    const isFolder = isNew && /unable to open database file/.test(error.message);
    console.error(
      `error: ${
        isFolder
          ? `Cannot create ${path}: the folder ${folder} does not exist or cannot be written`
          : error.message
      }`,
    );
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
  const text = await readFile(path, [path]);
  return text.split("\n")[0]!.replace(/\r$/, "");
}

/**
 * `--web [HOST:]PORT`: the page's address, on the chat's host when none is given; the chat's own
 * port is a usage error (else it would be reported as an address in use).
 */
function webAddress(
  value: string,
  chat: { hostname: string; port: number },
): { hostname: string; port: number } {
  const match = /^(?:(\[[^\]]+\]|[^:\[\]]+):)?([^:]*)$/.exec(value);
  if (!match) {
    throw new UsageError(`Invalid --web ${JSON.stringify(value)}: use [HOST:]PORT, as 8080`);
  }
  const [, host, text] = match;
  const hostname = host?.replace(/^\[(.*)\]$/, "$1") ?? chat.hostname;
  const port = number(text, { flag: "web", min: 0, max: 65535 });
  const isEveryAddress = (name: string) => name === "0.0.0.0" || name === "::";
  const isSameHost = hostname === chat.hostname || [hostname, chat.hostname].some(isEveryAddress);
  if (port !== 0 && port === chat.port && isSameHost) {
    throw new UsageError(
      `--web ${value} is the chat's own port: give the page a port of its own, as --web ${DEFAULT_WEB_PORT}`,
    );
  }
  return { hostname, port };
}

/** How to join the room just started, from this machine: our client's command, and nc's. */
function connectHint(addr: { hostname: string; port: number }, isTls: boolean): string {
  const isEvery = addr.hostname === "0.0.0.0" || addr.hostname === "::";
  const host = isEvery ? DEFAULT_CLIENT_HOST : addr.hostname;
  const flags = [
    ...isTls ? ["--tls"] : [],
    ...host === DEFAULT_CLIENT_HOST ? [] : ["--host", shellQuote(host)],
    ...addr.port === DEFAULT_PORT ? [] : ["--port", String(addr.port)],
  ];
  const nc = `${isTls ? "ncat --ssl" : "nc"} ${shellQuote(host)} ${addr.port}`;
  return `connect with: deno task client NAME${flags.map((flag) => ` ${flag}`).join("")}, or ${nc}`;
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
  const words = ["server", ...lastOfEach(args)].map((word) => redactArgument(word)).map(shellQuote);
  return `deno run ${flags.join(" ")} --v8-flags=${SERVER_V8_FLAGS} main.ts ${words.join(" ")}`;
}

/**
 * The V8 flags of the server tasks in deno.json (a test holds them equal): a young generation of
 * at most 4 MiB and the heap grown by 20% after each full collection (BENCHMARKS.md, "The young
 * generation").
 */
export const SERVER_V8_FLAGS = "--max-semi-space-size=4,--heap-growing-percent=20";

/**
 * The server's arguments with only the last of an option given twice (a task's `--web 8080` and
 * the user's `--web 28001`: the one that counts), as `--name value` words.
 */
function lastOfEach(args: string[]): string[] {
  const { tokens } = parseArgs({
    args,
    options: SERVER_OPTIONS,
    allowPositionals: true,
    strict: true,
    tokens: true,
  });
  return tokens.flatMap((token, i) => {
    if (token.kind === "positional") return [token.value];
    if (token.kind === "option-terminator") return ["--"];
    const isMultiple = (SERVER_OPTIONS as Record<string, { multiple?: boolean }>)[token.name]
      ?.multiple;
    const isRepeated = tokens.slice(i + 1).some((later) =>
      later.kind === "option" && later.name === token.name
    );
    if (isRepeated && !isMultiple) return [];
    return [`--${token.name}`, ...token.value === undefined ? [] : [token.value]];
  });
}

/** A Redis URL's password is never printed back. */
function redactArgument(word: string): string {
  return /^rediss?:\/\//.test(word) ? redact(word) : word;
}

/** A word as a POSIX shell reads it back: quoted only when it has to be. */
function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/** Reads a PEM file named on the command line, one of `files` (all of which need reading). */
function readPem(
  path: string,
  files: { cert?: string; key?: string; ca?: string },
): Promise<string> {
  return readFile(path, [files.cert, files.key, files.ca]);
}

/**
 * Reads a file named on the command line; a missing permission or file is a client error, whose
 * advice grants reading all of `together` (the files the command needs with it) at once.
 */
async function readFile(path: string, together: (string | undefined)[]): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      const all = [...new Set(together.filter(Boolean))].join(",");
      throw new ClientError(`No permission to read ${path}; run with --allow-read=${all}`);
    }
    throw new ClientError(`Cannot read ${path}: ${fileProblem(error)}`);
  }
}

/** What is wrong with a file that could not be read, in a few words (Deno's own repeat the path). */
function fileProblem(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied) return "the file system does not allow it";
  if (error instanceof Deno.errors.IsADirectory) return "it is a folder";
  return messageOf(error).replace(/ \(os error \d+\)/, "").replace(/: \w+ '.*'$/, "");
}

function log(message: string): void {
  console.log(`${new Date().toISOString()} ${message}`);
}

function listenFailure(
  error: unknown,
  where: { hostname: string; port: number; isTls: boolean; rerun: string },
): string {
  const address = hostPort(where.hostname, where.port);
  if (error instanceof Deno.errors.NotCapable) {
    return `No permission to listen on ${address} (the deno tasks allow ${
      hostPort(DEFAULT_HOST, DEFAULT_PORT)
    } only); run: ${where.rerun}`;
  }
  if (error instanceof Deno.errors.AddrInUse) {
    return `Cannot listen on ${address}: the address is already in use`;
  }
  if (error instanceof Deno.errors.AddrNotAvailable) {
    return `Cannot listen on ${address}: no such local address`;
  }
  const message = messageOf(error);
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

async function clientCommand(given: string[]): Promise<number> {
  const args = joinNegatives(given, CLIENT_OPTIONS);
  const { values, positionals } = parse(() =>
    parseArgs({ args, options: CLIENT_OPTIONS, allowPositionals: true, strict: true })
  );
  if (values.help) return console.log(CLIENT_HELP), 0;
  const [name, ...extra] = positionals;
  if (name === undefined) throw new UsageError("Missing NAME: deno task client NAME");
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

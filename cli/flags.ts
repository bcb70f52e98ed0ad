/**
 * The command line's flags, read with no I/O: each `chat server` flag checked into a plan of what
 * to start, and the client's into what to connect to. A mistake is a {@linkcode UsageError}.
 */
import { LOG_FORMATS, type LogFormat } from "../server/log.ts";
import { parseArgs } from "node:util";
import { DEFAULT_CLIENT_HOST, DEFAULT_JOIN_TIMEOUT_MS } from "../client.ts";
import { DEFAULT_CLAIM_TTL_MS } from "../cluster/cluster_hub.ts";
import { redact } from "../cluster/redis_link.ts";
import { DEFAULT_HISTORY_SIZE } from "../server/hub.ts";
import { DEFAULT_LIMITS, type Limits, resolveLimits } from "../server/limits.ts";
import { DEFAULT_WEB_PORT, parseOrigin } from "../server/web.ts";
import { channelProblem, DEFAULT_IRC_PORT } from "../server/irc_door.ts";
import { DEFAULT_CHANNEL } from "../server/irc.ts";
import { LOOPBACK, parseBlock } from "../server/cidr.ts";
import {
  DEFAULT_HOST,
  DEFAULT_PORT,
  hostPort,
  MAX_MAX_LINE_BYTES,
  messageOf,
  MIN_MAX_LINE_BYTES,
} from "../protocol.ts";
import { type OptionRow, unbroken } from "./help.ts";

/** A numeric server flag: the limit it sets, its unit on the command line, and its range. */
export interface LimitFlag {
  flag: string;
  limit: keyof Limits;
  /** Seconds on the command line, milliseconds in the limit. */
  isSeconds?: boolean;
  min: number;
  max: number;
  help: string;
}

/** Every limit, as a flag; the help text below is made from this table. */
export const LIMIT_FLAGS: LimitFlag[] = [
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
    flag: "resume-grace",
    limit: "resumeGraceMs",
    isSeconds: true,
    min: 0,
    max: 3600,
    help: "seconds a member whose client asked for a resume token keeps its place, 0 for none",
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
export function limitRow({ flag, limit, isSeconds, help }: LimitFlag): OptionRow {
  const value = DEFAULT_LIMITS[limit] / (isSeconds ? 1000 : 1);
  return [`--${flag} ${isSeconds ? "SECONDS" : "N"}`, `${help} ${unbroken(`(default ${value})`)}`];
}

/** A command-line mistake: reported in one line with a pointer to the help, exit code 2. */
export class UsageError extends Error {
  override name = "UsageError";
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
  "no-bell": { type: "boolean" },
  log: { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
} as const;

const SERVER_OPTIONS = {
  host: { type: "string" },
  port: { type: "string" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
  cert: { type: "string" },
  key: { type: "string" },
  history: { type: "string" },
  store: { type: "string" },
  "password-file": { type: "string" },
  "operators-file": { type: "string" },
  redis: { type: "string" },
  "claim-ttl": { type: "string" },
  web: { type: "string" },
  "web-origin": { type: "string", multiple: true },
  irc: { type: "string" },
  "irc-channel": { type: "string" },
  exempt: { type: "string", multiple: true },
  "trust-proxy": { type: "string", multiple: true },
  "proxy-protocol": { type: "string", multiple: true },
  "log-format": { type: "string" },
  metrics: { type: "string" },
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

/**
 * `--web [HOST:]PORT`: the page's address, on the chat's host when none is given; the chat's own
 * port is a usage error (else it would be reported as an address in use).
 */
function webAddress(
  value: string,
  chat: { hostname: string; port: number },
  door: { flag: "web" | "irc"; what: string; example: number } = {
    flag: "web",
    what: "the page",
    example: DEFAULT_WEB_PORT,
  },
): { hostname: string; port: number } {
  const { flag, what, example } = door;
  const match = /^(?:(\[[^\]]+\]|[^:\[\]]+):)?([^:]*)$/.exec(value);
  if (!match) {
    throw new UsageError(
      `Invalid --${flag} ${JSON.stringify(value)}: use [HOST:]PORT, as ${example}`,
    );
  }
  const [, host, text] = match;
  const hostname = host?.replace(/^\[(.*)\]$/, "$1") ?? chat.hostname;
  const port = number(text, { flag, min: 0, max: 65535 });
  const isEveryAddress = (name: string) => name === "0.0.0.0" || name === "::";
  const isSameHost = hostname === chat.hostname || [hostname, chat.hostname].some(isEveryAddress);
  if (port !== 0 && port === chat.port && isSameHost) {
    throw new UsageError(
      `--${flag} ${value} is the chat's own port: give ${what} a port of its own, as --${flag} ${example}`,
    );
  }
  return { hostname, port };
}

/** `--irc [HOST:]PORT` and `--irc-channel NAME`: the IRC door's address and the room's channel. */
function ircDoor(
  values: { irc?: string | undefined; "irc-channel"?: string | undefined },
  chat: { hostname: string; port: number },
): { irc: { hostname: string; port: number } | undefined; ircChannel: string } {
  const door = { flag: "irc", what: "the IRC door", example: DEFAULT_IRC_PORT } as const;
  const irc = values.irc === undefined ? undefined : webAddress(values.irc, chat, door);
  const ircChannel = values["irc-channel"] ?? DEFAULT_CHANNEL;
  if (values["irc-channel"] !== undefined && !irc) {
    throw new UsageError("--irc-channel goes with --irc");
  }
  const problem = channelProblem(ircChannel);
  if (problem) {
    throw new UsageError(`Invalid --irc-channel ${JSON.stringify(ircChannel)}: ${problem}`);
  }
  return { irc, ircChannel };
}

/** `--metrics [HOST:]PORT`: loopback unless a host is given, as the figures are for the operator. */
function metricsAddress(value: string): { hostname: string; port: number } {
  const match = /^(?:(\[[^\]]+\]|[^:\[\]]+):)?([^:]*)$/.exec(value);
  if (!match) {
    throw new UsageError(`Invalid --metrics ${JSON.stringify(value)}: use [HOST:]PORT, as 9464`);
  }
  const [, host, text] = match;
  const hostname = host?.replace(/^\[(.*)\]$/, "$1") ?? "127.0.0.1";
  return { hostname, port: number(text, { flag: "metrics", min: 0, max: 65535 }) };
}

/** HOST:PORT of a Redis URL; a URL that is not one is a usage error. */
export function redisAddress(url: string): string {
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

/** What `chat server` is to start: its flags, checked, and the files it is to read. */
export interface ServerPlan {
  hostname: string;
  port: number;
  historySize: number;
  limits: Limits;
  /** `--cert` and `--key`, both or neither. */
  tlsFiles: { cert: string; key: string } | undefined;
  passwordFile: string | undefined;
  store: string | undefined;
  /** `--operators-file`: operators' names and password hashes, for a server with no store. */
  operatorsFile: string | undefined;
  /** `--redis`, or `CHAT_REDIS_URL`. */
  redisUrl: string | undefined;
  claimTtlMs: number;
  web: { hostname: string; port: number } | undefined;
  origins: string[];
  /** `--irc`: where IRC clients come in, if anywhere; `--irc-channel`: the room's channel. */
  irc: { hostname: string; port: number } | undefined;
  ircChannel: string;
  /** `--exempt`: address blocks free of the per-address limits (loopback unless given). */
  exempt: string[];
  /** `--trust-proxy`: address blocks of the page's reverse proxies, whose X-Forwarded-For counts. */
  trustProxy: string[];
  /** `--proxy-protocol`: address blocks whose connections to the chat's port start with a PROXY header. */
  proxyProtocol: string[];
  /** `--metrics`: where `/metrics`, `/healthz` and `/readyz` are served, if anywhere. */
  metrics: { hostname: string; port: number } | undefined;
  /** `--log-format`: the log as today's prose lines (`text`), or one JSON object a line. */
  logFormat: LogFormat;
  /** The command that runs the server again with every permission its flags need. */
  rerun: string;
}

/**
 * Reads `chat server`'s flags (`env` is what the environment says where a flag is not given):
 * the plan, or "help" or "version" when that was asked for. Throws a {@linkcode UsageError} for a
 * mistake.
 */
export function readServerFlags(
  given: string[],
  env: { redisUrl?: string | undefined } = {},
): ServerPlan | "help" | "version" {
  const args = joinNegatives(given, SERVER_OPTIONS);
  const { values, positionals } = parse(() =>
    parseArgs({ args, options: SERVER_OPTIONS, allowPositionals: true, strict: true })
  );
  if (values.help) return "help";
  if (values.version) return "version";
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
  const limits = readLimits(values as Record<string, string | boolean | undefined>);
  if (values.cert === undefined !== (values.key === undefined)) {
    throw new UsageError("TLS needs both --cert FILE and --key FILE");
  }
  const redisUrl = values.redis ?? env.redisUrl;
  if (values.store !== undefined && redisUrl) {
    throw new UsageError(
      "--store and --redis do not go together: in a cluster the history and the registered " +
        "names are kept in Redis",
    );
  }
  if (values["operators-file"] !== undefined && (values.store !== undefined || redisUrl)) {
    throw new UsageError(
      "--operators-file is for a server with no --store and no --redis: those keep their " +
        "operators themselves (chat admin --store FILE op NAME)",
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
  const exempt = addressBlocks("exempt", values.exempt, { fallback: [...LOOPBACK] });
  const trustProxy = addressBlocks("trust-proxy", values["trust-proxy"], { fallback: [] });
  const proxyProtocol = addressBlocks("proxy-protocol", values["proxy-protocol"], {
    fallback: [],
  });
  const logFormat = values["log-format"] ?? "text";
  if (!isLogFormat(logFormat)) {
    throw new UsageError(
      `Invalid --log-format ${JSON.stringify(logFormat)}: use ${LOG_FORMATS.join(" or ")}`,
    );
  }
  const metrics = values.metrics === undefined ? undefined : metricsAddress(values.metrics);
  const { irc, ircChannel } = ircDoor(values, { hostname, port });
  const plan = {
    hostname,
    port,
    metrics,
    irc,
    historySize,
    limits,
    redisUrl,
    claimTtlMs,
    web,
    origins,
    exempt,
    trustProxy,
    proxyProtocol,
  };
  const files = {
    cert: values.cert,
    key: values.key,
    password: values["password-file"],
    operators: values["operators-file"],
  };
  return {
    ...plan,
    tlsFiles: files.cert && files.key ? { cert: files.cert, key: files.key } : undefined,
    passwordFile: files.password,
    store: values.store,
    operatorsFile: files.operators,
    logFormat,
    ircChannel,
    rerun: rerunCommand(args, permissionsOf({ ...plan, store: values.store, files })),
  };
}

/**
 * A repeatable flag of address blocks (`--exempt 10.0.0.0/8 --exempt ::1`), each checked: `none`
 * alone for no block at all, `fallback` when the flag is not given.
 */
function addressBlocks(
  flag: string,
  given: string[] | undefined,
  options: { fallback: string[] },
): string[] {
  if (given === undefined) return options.fallback;
  if (given.includes("none")) {
    if (given.length > 1) throw new UsageError(`--${flag} none goes alone`);
    return [];
  }
  for (const block of given) {
    try {
      parseBlock(block);
    } catch {
      throw new UsageError(
        `Invalid --${flag} ${
          JSON.stringify(block)
        }: use ADDRESS[/BITS], as 10.0.0.0/8 or fd00::/8, or none`,
      );
    }
  }
  return given;
}

function isLogFormat(format: string): format is LogFormat {
  return (LOG_FORMATS as readonly string[]).includes(format);
}

/** The limits the flags set, in the server's units, checked together. */
function readLimits(flags: Record<string, string | boolean | undefined>): Limits {
  const asked: Partial<Limits> = {};
  for (const spec of LIMIT_FLAGS) {
    const value = flags[spec.flag];
    if (typeof value === "string") {
      asked[spec.limit] = number(value, spec) * (spec.isSeconds ? 1000 : 1);
    }
  }
  return parse(() => resolveLimits(asked)); // a combination that cannot work is a usage error
}

/** The permissions a server with these flags needs: its addresses, Redis, its files. */
function permissionsOf(plan: {
  hostname: string;
  port: number;
  web: { hostname: string; port: number } | undefined;
  irc: { hostname: string; port: number } | undefined;
  metrics: { hostname: string; port: number } | undefined;
  redisUrl: string | undefined;
  store: string | undefined;
  files: {
    cert?: string | undefined;
    key?: string | undefined;
    password?: string | undefined;
    operators?: string | undefined;
  };
}): { net: string[]; read: string[]; write: string[]; env: string[] } {
  const { hostname, port, web, irc, metrics, redisUrl, store, files } = plan;
  const storeFiles = store === undefined ? [] : [store, `${store}-wal`, `${store}-shm`];
  const redisHost = redisUrl ? redisAddress(redisUrl) : undefined;
  return {
    net: [
      hostPort(hostname, port),
      ...web ? [hostPort(web.hostname, web.port)] : [],
      ...irc ? [hostPort(irc.hostname, irc.port)] : [],
      ...metrics ? [hostPort(metrics.hostname, metrics.port)] : [],
      ...redisHost ? [redisHost] : [],
    ],
    read: [files.cert, files.key, files.password, files.operators, ...storeFiles].filter((path) =>
      path !== undefined
    ),
    write: storeFiles,
    env: redisHost ? ["CHAT_REDIS_URL", ...REDIS_ENV] : [],
  };
}

/** What `chat client` is to connect to, and the files and variables it is to read. */
export interface ClientPlan {
  name: string;
  hostname: string;
  port: number;
  joinTimeoutMs: number;
  reconnectTries: number | undefined;
  isTls: boolean;
  caFile: string | undefined;
  passwordFile: string | undefined;
  serverPasswordFile: string | undefined;
  isBellOn: boolean;
  logFile: string | undefined;
}

/** Reads `chat client`'s flags: the plan, "help" or "version". Throws a {@linkcode UsageError}. */
export function readClientFlags(given: string[]): ClientPlan | "help" | "version" {
  const args = joinNegatives(given, CLIENT_OPTIONS);
  const { values, positionals } = parse(() =>
    parseArgs({ args, options: CLIENT_OPTIONS, allowPositionals: true, strict: true })
  );
  if (values.help) return "help";
  if (values.version) return "version";
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
  return {
    name,
    hostname: values.host ?? DEFAULT_CLIENT_HOST,
    port,
    joinTimeoutMs,
    reconnectTries,
    isTls: values.tls === true,
    caFile: values.ca,
    passwordFile: values["password-file"],
    serverPasswordFile: values["server-password-file"],
    isBellOn: values["no-bell"] !== true,
    logFile: values.log,
  };
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

/** A Redis URL's password is never printed back. */
function redactArgument(word: string): string {
  return /^rediss?:\/\//.test(word) ? redact(word) : word;
}

/** A word as a POSIX shell reads it back: quoted only when it has to be. */
export function shellQuote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`;
}

/** Environment variables the Redis client reads of its own. */
export const REDIS_ENV = ["REDIS_DEBUG_MAINTENANCE", "REDIS_EMIT_DIAGNOSTICS"];

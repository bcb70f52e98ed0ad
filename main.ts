/** The command line: `main.ts server ...` and `main.ts client NAME ...`, the compiled binary's entry. */
import { gauge, type MetricsServer, startMetrics } from "./server/metrics_server.ts";
import { type Family, serverFamilies } from "./server/metrics.ts";
import { lineLog, type Log, type LogFields } from "./server/log.ts";
import { ClientError, runClient } from "./client.ts";
import { ClusterHub } from "./cluster/cluster_hub.ts";
import { redact, RedisRefusedError } from "./cluster/redis_link.ts";
import { type Hub, LocalHub } from "./server/hub.ts";
import type { SqliteStore } from "./server/store.ts";
import { FixedAccounts } from "./server/operators_file.ts";
import { MemoryModerationStore } from "./server/moderation_store.ts";
import { describe, hostPort, messageOf } from "./protocol.ts";
import { type ChatServer, startServer } from "./server.ts";
import { startWeb, type WebServer } from "./server/web.ts";
import { type IrcServer, startIrc } from "./server/irc_door.ts";
import { CLIENT_HELP, HELP, serverHelp, VERSION } from "./cli/help.ts";
import { adminCommand } from "./cli/admin.ts";
import {
  LIMIT_FLAGS,
  limitRow,
  readClientFlags,
  readServerFlags,
  type ServerPlan,
  UsageError,
} from "./cli/flags.ts";
import {
  checkRedisPermission,
  claimAddresses,
  connectHint,
  listenFailure,
  localUrl,
  openLog,
  openStore,
  readEnv,
  readOperators,
  readPassword,
  readPem,
  readSecret,
  StartupError,
  type TlsFiles,
  webFailure,
} from "./cli/environment.ts";

/** Runs the command line `args` and returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      case "server":
        return await serverCommand(rest);
      case "client":
        return await clientCommand(rest);
      case "admin":
        return await adminCommand(rest);
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
          `Unknown command ${JSON.stringify(command)}: use "server", "client" or "admin"`,
        );
    }
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`error: ${error.message} (see ${helpCommand(command)})`);
      return 2;
    }
    if (error instanceof ClientError || error instanceof StartupError) {
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
  return command === "server" || command === "client" || command === "admin"
    ? `deno task ${command} --help`
    : "deno run main.ts --help";
}

/** `chat server`: its flags read, then everything they ask for started, until a signal. */
async function serverCommand(args: string[]): Promise<number> {
  const plan = readServerFlags(args, { redisUrl: readEnv("CHAT_REDIS_URL") });
  if (plan === "help") return console.log(serverHelp(LIMIT_FLAGS.map(limitRow))), 0;
  if (plan === "version") return console.log(`chat ${VERSION}`), 0;
  return await startAll(plan);
}

/**
 * Starts what the plan asks for, in order: the files it names, the room (a store's, the
 * cluster's, or the server's own), the server, and the web page; then serves until a signal.
 * Whatever cannot start is said in one line, and what was started is closed again.
 */
async function startAll(plan: ServerPlan): Promise<number> {
  const { hostname, port, web, rerun } = plan;
  const log = lineLog(plan.logFormat, (line) => console.log(line));
  const { tls, serverPassword } = await readServerFiles(plan);
  const operators = plan.operatorsFile === undefined
    ? undefined
    : await readOperators(plan.operatorsFile);
  const room = await openRoom(plan, { tls, log });
  if (typeof room === "number") return room;
  const { hub, store } = room;
  let server: ChatServer;
  try {
    server = startServer({
      hostname,
      port,
      historySize: plan.historySize,
      ...plan.limits,
      exempt: plan.exempt,
      trustProxy: plan.trustProxy,
      proxyProtocol: plan.proxyProtocol,
      ...(tls ? { tls } : {}),
      ...(hub ? { hub } : {}),
      ...(store ? { places: store } : {}), // resume across a planned restart
      ...(operators
        ? {
          accounts: new FixedAccounts(operators),
          moderation: new MemoryModerationStore(operators.map((account) => account.name)),
        }
        : {}),
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
      page = startWeb(server, { ...web, origins: plan.origins, ...(tls ? { tls } : {}), log });
    } catch (error) {
      await server.close();
      await store?.close();
      const failure = listenFailure(error, { ...web, isTls: tls !== undefined, rerun });
      console.error(`error: ${webFailure(error, failure, { web, rerun })}`);
      return 1;
    }
  }
  let irc: IrcServer | undefined;
  if (plan.irc) {
    try {
      irc = startIrc(server, {
        ...plan.irc,
        channel: plan.ircChannel,
        version: VERSION,
        ...(hub?.accounts ? { isRegistered: registeredIn(hub) } : {}),
        ...(tls ? { tls } : {}),
        log,
      });
    } catch (error) {
      await page?.close();
      await server.close();
      await store?.close();
      const failure = listenFailure(error, { ...plan.irc, isTls: tls !== undefined, rerun });
      console.error(`error: --irc: ${failure}`);
      return 1;
    }
  }
  let metrics: MetricsServer | undefined;
  if (plan.metrics) {
    try {
      metrics = startMetrics({ ...plan.metrics, ...watch(server, { hub, store }), log });
    } catch (error) {
      await irc?.close();
      await page?.close();
      await server.close();
      await store?.close();
      const failure = listenFailure(error, { ...plan.metrics, isTls: false, rerun });
      console.error(`error: --metrics: ${failure}`);
      return 1;
    }
  }
  // Before the first line, so that whoever waits for it may send SIGHUP, SIGTERM or SIGINT at once
  // (a signal with no listener yet would end the process there and then, its store unclosed).
  await using _reloads = reloadOnHangup(plan, { server, page, irc, log });
  using stop = stopSignals();
  announce(plan, { server, page, irc, store, isPrivate: serverPassword !== undefined, log });
  if (metrics) {
    const where = hostPort(metrics.addr.hostname, metrics.addr.port);
    log(`metrics on http://${where}/metrics`, { event: "metrics listening", address: where });
  }
  await stop.signalled;
  log("shutting down", { event: "shutdown" });
  await server.close(); // before the doors' servers, so that the goodbye reaches their members
  await page?.close();
  await irc?.close();
  await metrics?.close();
  await store?.close(); // what waits to be kept is committed before the process ends
  return 0;
}

/** The certificate, key and server password the plan names, read from their files. */
async function readServerFiles(
  plan: ServerPlan,
): Promise<{ tls: TlsFiles | undefined; serverPassword: string | undefined }> {
  const { tlsFiles, passwordFile } = plan;
  return {
    tls: tlsFiles
      ? { cert: await readPem(tlsFiles.cert, tlsFiles), key: await readPem(tlsFiles.key, tlsFiles) }
      : undefined,
    serverPassword: passwordFile === undefined
      ? undefined
      : await readPassword(passwordFile, "--password-file"),
  };
}

/** What a SIGHUP reloads: the chat server, its page and its IRC door, and where it says so. */
interface ReloadTargets {
  server: ChatServer;
  page: WebServer | undefined;
  irc?: IrcServer | undefined;
  log: Log;
}

/**
 * Re-reads the certificate, key and server password at each SIGHUP, one reload at a time, until
 * disposed (which waits for the last): certbot renews a certificate without anyone dropped.
 */
function reloadOnHangup(
  plan: ServerPlan,
  targets: ReloadTargets,
): AsyncDisposable {
  if (Deno.build.os === "windows") return { [Symbol.asyncDispose]: async () => {} };
  let reloading = Promise.resolve();
  const onHangup = () => void (reloading = reloading.then(() => reload(plan, targets)));
  Deno.addSignalListener("SIGHUP", onHangup);
  return {
    [Symbol.asyncDispose]: async () => {
      Deno.removeSignalListener("SIGHUP", onHangup);
      await reloading;
    },
  };
}

/**
 * One reload: every file read and checked first, then handed over, for new connections (open
 * ones keep what they have); a file that cannot be used is said in one line and nothing changes.
 */
async function reload(
  plan: ServerPlan,
  targets: ReloadTargets,
): Promise<void> {
  const { server, page, irc, log } = targets;
  const { tlsFiles, passwordFile } = plan;
  const what = [
    ...tlsFiles ? [`the certificate ${tlsFiles.cert} and key ${tlsFiles.key}`] : [],
    ...passwordFile === undefined ? [] : [`the server password ${passwordFile}`],
  ];
  if (what.length === 0) {
    const reason = "nothing to reload (no --cert and --key, no --password-file)";
    return log(`SIGHUP: ${reason}`, { event: "reload refused", level: "warn", reason });
  }
  try {
    const { tls, serverPassword } = await readServerFiles(plan);
    try {
      server.reload({
        ...tls ? { tls } : {},
        ...serverPassword === undefined ? {} : { serverPassword },
      });
      if (tls) page?.reload(tls);
      if (tls) irc?.reload(tls);
    } catch (error) {
      throw new StartupError(`Cannot use the TLS certificate and key: ${messageOf(error)}`);
    }
  } catch (error) {
    const reason = messageOf(error);
    const level = error instanceof StartupError || error instanceof UsageError ? "warn" : "error";
    log(`SIGHUP: reload refused, the old certificate and password are kept: ${reason}`, {
      event: "reload refused",
      level,
      reason,
    });
    return;
  }
  const them = what.length > 1 || tlsFiles ? "them" : "it";
  log(`SIGHUP: reloaded ${what.join(", and ")}; new connections use ${them}`, { event: "reload" });
}

/**
 * The room the plan asks for: a store's (its addresses checked first, so that a server that
 * cannot run says so before `--store` creates its file), the cluster's, or none (the server's
 * own). An exit code when it cannot be had, said in one line.
 */
async function openRoom(
  plan: ServerPlan,
  options: { tls: TlsFiles | undefined; log: Log },
): Promise<{ hub?: Hub; store?: SqliteStore } | number> {
  const { tls, log } = options;
  const { hostname, port, web, historySize, limits, redisUrl, rerun } = plan;
  if (plan.store !== undefined) {
    const claimed = claimAddresses({ hostname, port }, { ...web ? { web } : {}, tls, rerun });
    if (typeof claimed === "string") return console.error(`error: ${claimed}`), 1;
    let store: SqliteStore | undefined;
    try {
      store = await openStore(plan.store, { historySize, rerun, log, takesPlaces: true });
    } finally {
      for (const listener of claimed) listener.close(); // the server listens on them next
    }
    if (!store) return 1;
    const { history } = store;
    const hub = new LocalHub({
      historySize,
      logSize: limits.logSize,
      history,
      store,
      accounts: store,
      moderation: store.moderation,
    });
    return { hub, store };
  }
  if (!redisUrl) return {};
  await checkRedisPermission(redisUrl, rerun);
  const cluster = new ClusterHub({
    url: redisUrl,
    historySize,
    claimTtlMs: plan.claimTtlMs,
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
    log(`redis: cannot reach ${redact(redisUrl)} yet; serving alone meanwhile`, {
      event: "redis lost",
      level: "warn",
      reason: "cannot reach it yet",
    });
  }
  return { hub: cluster };
}

/** What the metrics port reads at each scrape: the server's figures, its store's and cluster's. */
function watch(
  server: ChatServer,
  room: { hub?: Hub | undefined; store?: SqliteStore | undefined },
): { families: () => Family[]; unready: () => string | undefined } {
  const { hub, store } = room;
  const cluster = hub instanceof ClusterHub ? hub : undefined;
  const families = () => [
    ...serverFamilies(server.tally, server.census()),
    ...store
      ? [
        gauge("chat_store_queued_lines", "Lines waiting for their commit", store.queued),
        {
          ...gauge("chat_store_commits_total", "Commits of the history", store.commits),
          type: "counter" as const,
        },
        {
          ...gauge("chat_store_commit_seconds_total", "Time the commits took", store.commitSeconds),
          type: "counter" as const,
        },
      ]
      : [],
    ...cluster
      ? [
        gauge(
          "chat_redis_up",
          "1 while the cluster is whole (Redis reached)",
          cluster.isWhole ? 1 : 0,
        ),
        gauge(
          "chat_redis_event_lag_seconds",
          "How late the last event from another server came",
          cluster.eventLagMs / 1000,
        ),
      ]
      : [],
  ];
  const unready = () => {
    if (cluster && !cluster.isWhole) return "the cluster is not whole: Redis cannot be reached";
    const unwritable = store?.unwritable;
    if (unwritable !== undefined) return `the store cannot be written: ${unwritable}`;
  };
  return { families, unready };
}

/** The lines that say the server runs: where it listens, how, and how to join it. */
function announce(
  plan: ServerPlan,
  started: {
    server: ChatServer;
    page?: WebServer | undefined;
    irc?: IrcServer | undefined;
    store?: SqliteStore | undefined;
    isPrivate: boolean;
    log: Log;
  },
): void {
  const { server, page, store } = started;
  const isTls = plan.tlsFiles !== undefined;
  // The text log starts with these as plain lines; a JSON log has no line that is not an object.
  const say = (line: string, fields: LogFields) =>
    plan.logFormat === "json" ? started.log(line, fields) : console.log(line);
  const address = hostPort(server.addr.hostname, server.addr.port);
  say(
    `listening on ${hostPort(server.addr.hostname, server.addr.port)}${isTls ? " (TLS)" : ""}${
      plan.redisUrl ? ` in the cluster on ${redact(plan.redisUrl)}` : ""
    }${started.isPrivate ? " (private)" : ""}${store ? ` keeping the room in ${store.path}` : ""}`,
    { event: "listening", address },
  );
  if (page) say(`web page on ${page.url}${localUrl(page)}`, { event: "web listening" });
  const { irc } = started;
  if (irc) {
    const where = hostPort(irc.addr.hostname, irc.addr.port);
    say(`irc on ${where}${isTls ? " (TLS)" : ""} as ${irc.channel}`, {
      event: "irc listening",
      address: where,
    });
  }
  say(connectHint(server.addr, isTls), { event: "connect hint" });
}

/**
 * Listens for SIGINT and SIGTERM until disposed: `signalled` resolves at the first; a second one
 * ends the process at once, for a shutdown that hangs.
 */
function stopSignals(): Disposable & { signalled: Promise<void> } {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const { promise: signalled, resolve } = Promise.withResolvers<void>();
  let isClosing = false;
  const onSignal = () => {
    if (isClosing) Deno.exit(130);
    isClosing = true;
    resolve();
  };
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  return {
    signalled,
    [Symbol.dispose]: () => {
      for (const signal of signals) Deno.removeSignalListener(signal, onSignal);
    },
  };
}

/** Whether a name is registered in the room's accounts: the IRC door refuses it without PASS. */
function registeredIn(hub: Hub): (name: string) => boolean {
  return (name) => hub.accounts?.get(name) !== undefined;
}

/** `chat client NAME`: its flags read, its files and variables too, then the session. */
async function clientCommand(args: string[]): Promise<number> {
  const plan = readClientFlags(args);
  if (plan === "help") return console.log(CLIENT_HELP), 0;
  if (plan === "version") return console.log(`chat ${VERSION}`), 0;
  const { caFile, passwordFile, serverPasswordFile } = plan;
  const caCerts = caFile === undefined ? [] : [await readPem(caFile, { ca: caFile })];
  const password = passwordFile === undefined
    ? readEnv("CHAT_PASSWORD")
    : await readSecret(passwordFile);
  const serverPassword = serverPasswordFile === undefined
    ? readEnv("CHAT_SERVER_PASSWORD")
    : await readSecret(serverPasswordFile);
  const log = plan.logFile === undefined ? undefined : await openLog(plan.logFile);
  await runClient({
    ...(log === undefined ? {} : { log }),
    ...(password === undefined ? {} : { password }),
    ...(serverPassword === undefined ? {} : { serverPassword }),
    name: plan.name,
    hostname: plan.hostname,
    port: plan.port,
    joinTimeoutMs: plan.joinTimeoutMs,
    bell: plan.isBellOn,
    ...(plan.reconnectTries === undefined ? {} : { reconnectTries: plan.reconnectTries }),
    ...(plan.isTls ? { tls: { caCerts } } : {}),
  });
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

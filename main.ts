/** The command line: `main.ts server ...` and `main.ts client NAME ...`, the compiled binary's entry. */
import { ClientError, runClient } from "./client.ts";
import { ClusterHub } from "./cluster/cluster_hub.ts";
import { redact, RedisRefusedError } from "./cluster/redis_link.ts";
import { type Hub, LocalHub } from "./server/hub.ts";
import type { SqliteStore } from "./server/store.ts";
import { describe, hostPort } from "./protocol.ts";
import { type ChatServer, startServer } from "./server.ts";
import { startWeb, type WebServer } from "./server/web.ts";
import { CLIENT_HELP, HELP, serverHelp, VERSION } from "./cli/help.ts";
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
  openStore,
  readEnv,
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
  return command === "server" || command === "client"
    ? `deno task ${command} --help`
    : "deno run main.ts --help";
}

/** `chat server`: its flags read, then everything they ask for started, until a signal. */
async function serverCommand(args: string[]): Promise<number> {
  const plan = readServerFlags(args, { redisUrl: readEnv("CHAT_REDIS_URL") });
  if (plan === "help") return console.log(serverHelp(LIMIT_FLAGS.map(limitRow))), 0;
  return await startAll(plan);
}

/**
 * Starts what the plan asks for, in order: the files it names, the room (a store's, the
 * cluster's, or the server's own), the server, and the web page; then serves until a signal.
 * Whatever cannot start is said in one line, and what was started is closed again.
 */
async function startAll(plan: ServerPlan): Promise<number> {
  const { hostname, port, web, rerun } = plan;
  const tls = plan.tlsFiles
    ? {
      cert: await readPem(plan.tlsFiles.cert, plan.tlsFiles),
      key: await readPem(plan.tlsFiles.key, plan.tlsFiles),
    }
    : undefined;
  const serverPassword = plan.passwordFile === undefined
    ? undefined
    : await readPassword(plan.passwordFile, "--password-file");
  const room = await openRoom(plan, tls);
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
      page = startWeb(server, { ...web, origins: plan.origins, ...(tls ? { tls } : {}), log });
    } catch (error) {
      await server.close();
      await store?.close();
      const failure = listenFailure(error, { ...web, isTls: tls !== undefined, rerun });
      console.error(`error: ${webFailure(error, failure, { web, rerun })}`);
      return 1;
    }
  }
  announce(plan, { server, page, store, isPrivate: serverPassword !== undefined });
  await closeOnSignal(server, page);
  await store?.close(); // what waits to be kept is committed before the process ends
  return 0;
}

/**
 * The room the plan asks for: a store's (its addresses checked first, so that a server that
 * cannot run says so before `--store` creates its file), the cluster's, or none (the server's
 * own). An exit code when it cannot be had, said in one line.
 */
async function openRoom(
  plan: ServerPlan,
  tls: TlsFiles | undefined,
): Promise<{ hub?: Hub; store?: SqliteStore } | number> {
  const { hostname, port, web, historySize, limits, redisUrl, rerun } = plan;
  if (plan.store !== undefined) {
    const claimed = claimAddresses({ hostname, port }, { ...web ? { web } : {}, tls, rerun });
    if (typeof claimed === "string") return console.error(`error: ${claimed}`), 1;
    let store: SqliteStore | undefined;
    try {
      store = await openStore(plan.store, { historySize, rerun, log });
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
    log(`redis: cannot reach ${redact(redisUrl)} yet; serving alone meanwhile`);
  }
  return { hub: cluster };
}

/** The lines that say the server runs: where it listens, how, and how to join it. */
function announce(
  plan: ServerPlan,
  started: {
    server: ChatServer;
    page?: WebServer | undefined;
    store?: SqliteStore | undefined;
    isPrivate: boolean;
  },
): void {
  const { server, page, store } = started;
  const isTls = plan.tlsFiles !== undefined;
  console.log(
    `listening on ${hostPort(server.addr.hostname, server.addr.port)}${isTls ? " (TLS)" : ""}${
      plan.redisUrl ? ` in the cluster on ${redact(plan.redisUrl)}` : ""
    }${started.isPrivate ? " (private)" : ""}${store ? ` keeping the room in ${store.path}` : ""}`,
  );
  if (page) console.log(`web page on ${page.url}${localUrl(page)}`);
  console.log(connectHint(server.addr, isTls));
}

function log(message: string): void {
  console.log(`${new Date().toISOString()} ${message}`);
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

/** `chat client NAME`: its flags read, its files and variables too, then the session. */
async function clientCommand(args: string[]): Promise<number> {
  const plan = readClientFlags(args);
  if (plan === "help") return console.log(CLIENT_HELP), 0;
  const { caFile, passwordFile, serverPasswordFile } = plan;
  const caCerts = caFile === undefined ? [] : [await readPem(caFile, { ca: caFile })];
  const password = passwordFile === undefined
    ? readEnv("CHAT_PASSWORD")
    : await readSecret(passwordFile);
  const serverPassword = serverPasswordFile === undefined
    ? readEnv("CHAT_SERVER_PASSWORD")
    : await readSecret(serverPasswordFile);
  await runClient({
    ...(password === undefined ? {} : { password }),
    ...(serverPassword === undefined ? {} : { serverPassword }),
    name: plan.name,
    hostname: plan.hostname,
    port: plan.port,
    joinTimeoutMs: plan.joinTimeoutMs,
    ...(plan.reconnectTries === undefined ? {} : { reconnectTries: plan.reconnectTries }),
    ...(plan.isTls ? { tls: { caCerts } } : {}),
  });
  return 0;
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

/**
 * The machine around the command line: environment variables, the files its flags name, the
 * permissions they need (and the command that grants them), the addresses it would listen on,
 * and what it says when one of those stops it from starting.
 */
import type { Log } from "../server/log.ts";
import { DEFAULT_CLIENT_HOST } from "../client.ts";
import { SqliteStore, StoreRefusedError } from "../server/store.ts";
import { tlsContext } from "../server/tls_conn.ts";
import { parseOperatorsFile } from "../server/operators_file.ts";
import type { Account } from "../server/passwords.ts";
import { DEFAULT_WEB_PORT, type WebServer } from "../server/web.ts";
import {
  DEFAULT_HOST,
  DEFAULT_PORT,
  hostPort,
  messageOf,
  parseNewPassword,
  ProtocolError,
} from "../protocol.ts";
import { REDIS_ENV, redisAddress, shellQuote, UsageError } from "./flags.ts";

/** The server or the client cannot start: a file, a permission, an address. Said in one line. */
export class StartupError extends Error {
  override name = "StartupError";
}

/** An environment variable, or undefined when it is unset or not ours to read. */
export function readEnv(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return;
  return Deno.env.get(name) || undefined;
}

/** The password in the first line of a file (`--password-file`), checked as a new password is. */
export async function readPassword(path: string, flag: string): Promise<string> {
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

/** The operators an `--operators-file` names, with their password hashes. */
export async function readOperators(path: string): Promise<Account[]> {
  const text = await readFile(path, [path]);
  try {
    return parseOperatorsFile(text);
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    throw new StartupError(`--operators-file ${path}: ${error.message}`);
  }
}

/** The first line of a file that holds a password, without its line end. */
export async function readSecret(path: string): Promise<string> {
  const text = await readFile(path, [path]);
  return text.split("\n")[0]!.replace(/\r$/, "");
}

/** Reads a PEM file named on the command line, one of `files` (all of which need reading). */
export function readPem(
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
      throw new StartupError(`No permission to read ${path}; run with --allow-read=${all}`);
    }
    throw new StartupError(`Cannot read ${path}: ${fileProblem(error)}`);
  }
}

/**
 * Opens `--log FILE` for appending (made if missing); a missing permission or a file that cannot be
 * written is a client error in one line.
 */
export async function openLog(path: string): Promise<Deno.FsFile> {
  try {
    return await Deno.open(path, { append: true, create: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotCapable) {
      throw new StartupError(`No permission to write ${path}; run with --allow-write=${path}`);
    }
    throw new StartupError(`Cannot write ${path}: ${fileProblem(error)}`);
  }
}

/** What is wrong with a file that could not be read, in a few words (Deno's own repeat the path). */
function fileProblem(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.PermissionDenied) return "the file system does not allow it";
  if (error instanceof Deno.errors.IsADirectory) return "it is a folder";
  return messageOf(error).replace(/ \(os error \d+\)/, "").replace(/: \w+ '.*'$/, "");
}

/**
 * Cluster mode needs network permission for the Redis address (and the Redis client reads two
 * environment variables of its own). Without it, one line says how to run instead.
 */
export async function checkRedisPermission(url: string, rerun: string): Promise<void> {
  const host = redisAddress(url);
  const granted = (await Deno.permissions.query({ name: "net", host })).state === "granted" &&
    (await Promise.all(
      REDIS_ENV.map((variable) => Deno.permissions.query({ name: "env", variable })),
    )).every((status) => status.state === "granted");
  if (!granted) {
    throw new StartupError(
      `No permission to reach Redis at ${host} (deno task cluster allows Redis on ` +
        `127.0.0.1:6379); run: ${rerun}`,
    );
  }
}

/**
 * Opens the store, after checking the permissions it needs (read and write for the file and its
 * WAL companions); a file that cannot be used is said in one line, and undefined returned.
 */
export async function openStore(
  path: string,
  options: { historySize: number; rerun: string; log: Log; takesPlaces?: boolean },
): Promise<SqliteStore | undefined> {
  const files = [path, `${path}-wal`, `${path}-shm`];
  const statuses = await Promise.all(
    files.flatMap((file) => [
      Deno.permissions.query({ name: "read", path: file }),
      Deno.permissions.query({ name: "write", path: file }),
    ]),
  );
  if (statuses.some((status) => status.state !== "granted")) {
    throw new StartupError(
      `No permission to keep ${path} (deno task store keeps chat.db); run: ${options.rerun}`,
    );
  }
  const isNew = await Deno.lstat(path).then(() => false, () => true);
  try {
    const { historySize, log, takesPlaces = false } = options;
    return await SqliteStore.open(path, { historySize, log, takesPlaces });
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

/**
 * Checks the certificate and binds the addresses the server will listen on, so that a server that
 * cannot run says so before `--store` creates its file. Returns the listeners, to close just
 * before the server listens for real, or the line that says why it cannot run.
 */
export function claimAddresses(
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
export type TlsFiles = { cert: string; key: string };

export function listenFailure(
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

/** Why the page could not start, with the command that grants both addresses when permission is missing. */
export function webFailure(
  error: unknown,
  failure: string,
  where: { web: { hostname: string; port: number }; rerun: string },
): string {
  if (!(error instanceof Deno.errors.NotCapable)) return `the web page: ${failure}`;
  const page = hostPort(where.web.hostname, where.web.port);
  return `No permission to listen on ${page} for the web page (deno task web allows ${DEFAULT_HOST}:${DEFAULT_WEB_PORT}); ` +
    `run: ${where.rerun}`;
}

/** How to join the room just started, from this machine: our client's command, and nc's. */
export function connectHint(addr: { hostname: string; port: number }, isTls: boolean): string {
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
export function localUrl(page: WebServer): string {
  const { hostname, port } = page.addr;
  if (hostname !== "0.0.0.0" && hostname !== "::") return "";
  return ` (on this machine: ${page.url.split(":")[0]}://localhost:${port}/)`;
}

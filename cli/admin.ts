/**
 * `chat admin`: what only the machine's owner may do, never anyone in the room. It makes and
 * unmakes operators in the store (`--store FILE`; a running server sees the change within a
 * second), lists them, and hashes a password for `--operators-file`.
 */
import { parseArgs } from "node:util";
import { nameKey, parseName, parseNewPassword, ProtocolError } from "../protocol.ts";
import { hashPassword } from "../server/passwords.ts";
import { formatHash } from "../server/operators_file.ts";
import type { Accounts } from "../server/hub.ts";
import type { ModerationStore } from "../server/moderation_store.ts";
import { openStore, StartupError } from "./environment.ts";
import { shellQuote, UsageError } from "./flags.ts";

/** `chat admin`'s help. */
export const ADMIN_HELP = `Usage: deno task admin --store FILE op NAME | deop NAME | list
       deno task admin hash [NAME]      (or: deno run main.ts admin ...)

Makes a registered name an operator of the room (op), or no longer one (deop), or lists the
operators, in the server's store FILE: a server running on it sees the change within a second.
Only a name registered in the room (/register) can be an operator. Without --store, hash asks
for a password (or reads one line from standard input) and prints the hash to put in an
--operators-file line, NAME:HASH (with NAME given, the whole line).`;

/** Where operators are kept, opened for one change: the store's seam, its accounts, its closing. */
interface Backend {
  moderation: ModerationStore;
  accounts: Accounts;
  /** Where it is, for messages. */
  where: string;
  close(): Promise<void>;
}

/** Runs `chat admin args`: the exit code. */
export async function adminCommand(args: string[]): Promise<number> {
  const { values, positionals } = parseAdminArgs(args);
  if (values.help) return console.log(ADMIN_HELP), 0;
  const [action, name, ...extra] = positionals;
  if (action === "hash") {
    if (extra.length > 0) throw new UsageError(`Unexpected argument ${JSON.stringify(extra[0])}`);
    return await hashCommand(name === undefined ? undefined : checkedName(name));
  }
  const isNamed = action === "op" || action === "deop";
  if (!isNamed && action !== "list") {
    throw new UsageError(
      `Unknown action ${JSON.stringify(action ?? "")}: use op, deop, list or hash`,
    );
  }
  if (isNamed !== (name !== undefined) || extra.length > 0) {
    throw new UsageError(isNamed ? `${action} needs one NAME` : "list takes no NAME");
  }
  const backend = await open(values, args);
  if (!backend) return 1;
  try {
    if (action === "list") return list(backend);
    return await setOperator(backend, checkedName(name!), action === "op");
  } finally {
    await backend.close();
  }
}

function parseAdminArgs(args: string[]) {
  try {
    return parseArgs({
      args,
      options: {
        store: { type: "string" },
        redis: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError((error as Error).message.split("\n")[0]!.replace(/\.$/, ""));
  }
}

function checkedName(name: string): string {
  try {
    return parseName(name);
  } catch (error) {
    if (error instanceof ProtocolError) throw new UsageError(error.message);
    throw error;
  }
}

/** The store `--store` names (or the cluster's Redis, `--redis`), or undefined if it cannot open. */
async function open(
  values: { store?: string | undefined; redis?: string | undefined },
  args: string[],
): Promise<Backend | undefined> {
  if (values.store !== undefined && values.redis !== undefined) {
    throw new UsageError("--store and --redis do not go together: a server keeps one of them");
  }
  if (values.redis !== undefined) {
    throw new UsageError("--redis: operators in a cluster are not kept by this version yet");
  }
  if (values.store === undefined) {
    throw new UsageError("Give the server's store: --store FILE (or --redis URL for a cluster)");
  }
  const path = values.store;
  const files = [path, `${path}-wal`, `${path}-shm`].join(",");
  const rerun = `deno run --allow-read=${files} --allow-write=${files} main.ts admin ${
    args.map(shellQuote).join(" ")
  }`;
  // Not created here: a store is made by its server. Without permission, openStore says so.
  const isMissing = await Deno.lstat(path).then(
    () => false,
    (error) => error instanceof Deno.errors.NotFound,
  );
  if (isMissing) {
    throw new StartupError(
      `Cannot open ${path}: no such file (a server run with --store makes it)`,
    );
  }
  const store = await openStore(path, { historySize: 0, rerun, log: () => {} });
  if (!store) return undefined;
  if (!store.isWritable) {
    await store.close();
    throw new StartupError(`Cannot change ${path}: ${store.unwritable}`);
  }
  return { moderation: store.moderation, accounts: store, where: path, close: () => store.close() };
}

function list(backend: Backend): number {
  const names = backend.moderation.operators().sort((a, b) => nameKey(a).localeCompare(nameKey(b)));
  console.log(names.length === 0 ? `No operators in ${backend.where}` : names.join("\n"));
  return 0;
}

async function setOperator(backend: Backend, name: string, isOperator: boolean): Promise<number> {
  const { moderation, accounts, where } = backend;
  const account = accounts.get(name);
  if (isOperator && !account) {
    console.error(
      `error: Cannot make ${name} an operator: the name is not registered in ${where} ` +
        "(its owner registers it in the room with /register)",
    );
    return 1;
  }
  const shown = account?.name ?? moderation.operators().find((n) => nameKey(n) === nameKey(name)) ??
    name;
  if (moderation.isOperator(name) === isOperator) {
    console.log(`${shown} is ${isOperator ? "an operator already" : "not an operator"}`);
    return 0;
  }
  await moderation.setOperator(shown, isOperator);
  console.log(`${shown} is ${isOperator ? "now an operator" : "no longer an operator"}`);
  return 0;
}

/** `chat admin hash [NAME]`: a password read without echo, hashed as the server hashes them. */
async function hashCommand(name: string | undefined): Promise<number> {
  const line = await readPassword("Password: ");
  let password: string;
  try {
    password = parseNewPassword(line ?? "");
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    console.error(`error: ${error.message}`);
    return 1;
  }
  const hash = formatHash(await hashPassword(name ?? "operator", password));
  console.log(name === undefined ? hash : `${name}:${hash}`);
  return 0;
}

/**
 * One line from standard input: typed without echo on a terminal (the prompt on standard error),
 * else the first line of what is piped in. Undefined when there is none (Ctrl+C, Ctrl+D).
 */
async function readPassword(prompt: string): Promise<string | undefined> {
  const isTerminal = Deno.stdin.isTerminal();
  if (isTerminal) {
    Deno.stderr.writeSync(new TextEncoder().encode(prompt));
    Deno.stdin.setRaw(true);
  }
  const decoder = new TextDecoder();
  let text = "";
  try {
    for await (const chunk of Deno.stdin.readable) {
      for (const char of decoder.decode(chunk, { stream: true })) {
        if (char === "\r" || char === "\n") return text;
        if (!isTerminal) text += char;
        else if (char === "\x03" || char === "\x04") return undefined; // Ctrl+C, Ctrl+D
        else if (char === "\x7f" || char === "\b") text = text.slice(0, -1); // Backspace
        else text += char;
      }
    }
    return text === "" ? undefined : text;
  } finally {
    if (isTerminal) {
      Deno.stdin.setRaw(false);
      Deno.stderr.writeSync(new TextEncoder().encode("\n"));
    }
  }
}

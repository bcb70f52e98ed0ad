/**
 * The SQLite side of the store, in a worker of its own so that no write, lock or fsync ever holds
 * the relay: store.ts posts requests and the worker answers each. It imports nothing but
 * `node:sqlite`, and is started from its source text (a data URL), so that running it needs no
 * permission to read this file: only the database's own (see store.ts).
 *
 * Requests: open, keep (history entries, one transaction per batch), save and remove (an account),
 * close. Every answer carries the request's id, and an error is one line: never a stack trace.
 */
/// <reference lib="deno.worker" />
import { DatabaseSync, type StatementSync } from "node:sqlite";

/** The schema this program writes. A file with a newer one is refused: it may mean other things. */
const SCHEMA_VERSION = 1;
/** Marks the file as a chat store (`PRAGMA application_id`), so another program's file is refused. */
const APPLICATION_ID = 0x63686174; // "chat"
/** How long a write waits for another process's lock before it fails (and is tried again later). */
const BUSY_TIMEOUT_MS = 1000;

/** Each migration takes the schema from its index to the next version, in one transaction. */
const MIGRATIONS = [
  `CREATE TABLE history (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, line TEXT NOT NULL);
   CREATE TABLE accounts (key TEXT PRIMARY KEY, name TEXT NOT NULL, salt TEXT NOT NULL,
     hash TEXT NOT NULL, cost INTEGER NOT NULL, block_size INTEGER NOT NULL,
     parallelism INTEGER NOT NULL) WITHOUT ROWID;`,
];

/** passwords.ts's `Account`, written again: this worker imports nothing but `node:sqlite`. */
interface Account {
  name: string;
  salt: string;
  hash: string;
  cost: number;
  blockSize: number;
  parallelism: number;
}

type Request =
  | { id: number; op: "open"; path: string; historySize: number }
  | { id: number; op: "keep"; entries: { at: number; line: string }[] }
  | { id: number; op: "save"; account: Account; previousHash: string | null }
  | { id: number; op: "remove"; name: string; hash: string }
  | { id: number; op: "close" };

let db: DatabaseSync | undefined;
let historySize = 0;
let statements: Record<string, StatementSync> = {};

self.onmessage = (event: MessageEvent<Request>) => {
  const request = event.data;
  try {
    const answer = handle(request);
    self.postMessage({ id: request.id, ok: true, ...answer });
  } catch (error) {
    self.postMessage({ id: request.id, ok: false, error: describe(error), code: codeOf(error) });
  }
};

function handle(request: Request): Record<string, unknown> {
  switch (request.op) {
    case "open":
      return open(request.path, request.historySize);
    case "keep":
      keep(request.entries);
      return {};
    case "save":
      return { isSaved: save(request.account, request.previousHash) };
    case "remove":
      return { isRemoved: statements.remove!.run(key(request.name), request.hash).changes > 0 };
    case "close":
      close();
      return {};
  }
}

/**
 * Opens the file (created if missing), checks whose and which schema it is, migrates it, and
 * answers what it holds. A file that cannot be written to is still read: `readOnly` says why.
 */
function open(path: string, size: number): Record<string, unknown> {
  historySize = size;
  refuseEmpty(path);
  let readOnly: string | undefined;
  try {
    db = new DatabaseSync(path, { timeout: BUSY_TIMEOUT_MS });
    db.exec("PRAGMA journal_mode = WAL");
    // SQLite opens a file it cannot write read-only without a word (a read-only file system with
    // the WAL of a crash left on it opens cleanly, and even takes the write lock): only a write
    // tells, made and rolled back.
    db.exec("BEGIN IMMEDIATE");
    try {
      db.exec(`PRAGMA user_version = ${pragma("user_version")}`);
    } finally {
      db.exec("ROLLBACK");
    }
  } catch (error) {
    if (!isReadOnly(error)) throw error;
    readOnly = describe(error);
    db?.close();
    db = new DatabaseSync(path, { readOnly: true, timeout: BUSY_TIMEOUT_MS });
  }
  const id = pragma("application_id");
  const version = pragma("user_version");
  if (id !== 0 && id !== APPLICATION_ID) {
    throw new StoreRefusal(`${path} is another program's SQLite database, not a chat store`);
  }
  if (version > SCHEMA_VERSION) {
    throw new StoreRefusal(
      `${path} has schema version ${version}, newer than this program's ${SCHEMA_VERSION}: ` +
        "run a newer chat on it, or use another file",
    );
  }
  if (version < SCHEMA_VERSION) {
    if (readOnly) throw new StoreRefusal(`${path} needs a migration but cannot be written to`);
    migrate(version);
  }
  // Durable once committed, even through a power cut: the worker takes the wait, not the relay.
  if (!readOnly) db.exec("PRAGMA synchronous = FULL");
  prepare();
  const history = db.prepare("SELECT at, line FROM history ORDER BY id DESC LIMIT ?")
    .all(historySize).reverse();
  const accounts = db.prepare(
    "SELECT name, salt, hash, cost, block_size AS blockSize, parallelism FROM accounts",
  ).all();
  return { history, accounts, ...(readOnly ? { readOnly } : {}) };
}

/**
 * Refuses a file that exists but is empty. SQLite would take it for a new database, and the server
 * would start with no registered names at all, where a file that is ours never is empty (it is
 * given its schema as it is created): it was truncated, or made by something else.
 */
function refuseEmpty(path: string): void {
  let size: number;
  try {
    size = Deno.statSync(path).size;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return; // a new store: created below
    throw error;
  }
  if (size === 0) {
    throw new StoreRefusal(
      `${path} is empty (0 bytes), not a chat store: its registered names would be lost; ` +
        "remove it to start a new store",
    );
  }
}

/**
 * Closes the file, leaving it out of WAL mode: one plain file, which opens even where nothing can
 * be written (a read-only file system cannot hold the WAL's index). The next open turns WAL on.
 */
function close(): void {
  try {
    db?.exec("PRAGMA journal_mode = DELETE");
  } catch {
    // Read-only, or locked by another process: it stays in WAL mode, which is sound too.
  }
  db?.close();
  db = undefined;
}

function migrate(from: number): void {
  for (let version = from; version < SCHEMA_VERSION; version++) {
    transaction(() => {
      db!.exec(MIGRATIONS[version]!);
      db!.exec(`PRAGMA application_id = ${APPLICATION_ID}`);
      db!.exec(`PRAGMA user_version = ${version + 1}`);
    });
  }
}

function prepare(): void {
  const sql = (text: string) => db!.prepare(text);
  statements = {
    insert: sql("INSERT INTO history (at, line) VALUES (?, ?)"),
    // Only the newest lines are ever shown: the rest is deleted with each batch.
    trim: sql("DELETE FROM history WHERE id <= (SELECT max(id) FROM history) - ?"),
    insertAccount: sql(
      "INSERT INTO accounts (key, name, salt, hash, cost, block_size, parallelism) " +
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
    ),
    updateAccount: sql(
      "UPDATE accounts SET name = ?, salt = ?, hash = ?, cost = ?, block_size = ?, " +
        "parallelism = ? WHERE key = ? AND hash = ?",
    ),
    remove: sql("DELETE FROM accounts WHERE key = ? AND hash = ?"),
  };
}

/** One batch of history lines: one transaction, trimmed to the history's size. */
function keep(entries: { at: number; line: string }[]): void {
  transaction(() => {
    for (const { at, line } of entries) statements.insert!.run(at, line);
    statements.trim!.run(historySize);
  });
}

/** Registers an account (no `previousHash`) or replaces the one with that hash: false if it
 * changed meanwhile (or, registering, exists). */
function save(account: Account, previousHash: string | null): boolean {
  const { name, salt, hash, cost, blockSize, parallelism } = account;
  return transaction(() => {
    const result = previousHash === null
      ? statements.insertAccount!.run(key(name), name, salt, hash, cost, blockSize, parallelism)
      : statements.updateAccount!.run(
        name,
        salt,
        hash,
        cost,
        blockSize,
        parallelism,
        key(name),
        previousHash,
      );
    return result.changes > 0;
  });
}

function transaction<T>(body: () => T): T {
  db!.exec("BEGIN IMMEDIATE");
  try {
    const result = body();
    db!.exec("COMMIT");
    return result;
  } catch (error) {
    try {
      db!.exec("ROLLBACK");
    } catch {
      // SQLite rolled back by itself (a full disk, an I/O error): nothing is left to undo.
    }
    throw error;
  }
}

function pragma(name: string): number {
  return Number(Object.values(db!.prepare(`PRAGMA ${name}`).get() ?? {})[0] ?? 0);
}

function key(name: string): string {
  return name.toLowerCase();
}

/** A refusal of the file itself, with a message that says everything. */
class StoreRefusal extends Error {
  override name = "StoreRefusal";
}

function isReadOnly(error: unknown): boolean {
  return /readonly|read-only|unable to open/i.test(String((error as Error)?.message));
}

function describe(error: unknown): string {
  if (error instanceof StoreRefusal) return error.message;
  return error instanceof Error ? error.message : String(error);
}

/** What kind of failure it was, for store.ts to say once: a refusal, or SQLite's own words. */
function codeOf(error: unknown): string {
  return error instanceof StoreRefusal ? "refused" : "sqlite";
}

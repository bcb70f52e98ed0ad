/**
 * The SQLite side of the store, in a worker of its own so that no write, lock or fsync ever holds
 * the relay: store.ts posts requests and the worker answers each. It imports nothing but
 * `node:sqlite`, and is started from its source text (a data URL), so that running it needs no
 * permission to read this file: only the database's own (see store.ts).
 *
 * Requests: open, keep (history entries, one transaction per batch), save and remove (an account),
 * the moderation changes (an operator, a ban, a mute, the topic), keepPlaces (at a planned
 * shutdown, the places kept for resume), close. Every answer carries the
 * request's id, and an error is one line: never a stack trace. Unasked, the worker also posts
 * `changed` (id -2) with the moderation state when another process (`chat admin`) changed it.
 */
/// <reference lib="deno.worker" />
import { DatabaseSync, type StatementSync } from "node:sqlite";

/** The schema this program writes. A file with a newer one is refused: it may mean other things. */
const SCHEMA_VERSION = 3;
/** Marks the file as a chat store (`PRAGMA application_id`), so another program's file is refused. */
const APPLICATION_ID = 0x63686174; // "chat"
/** How long a write waits for another process's lock before it fails (and is tried again later). */
const BUSY_TIMEOUT_MS = 1000;
/** How often the file is looked at for another process's change: `chat admin` is seen this soon. */
const POLL_MS = 250;
/** How often bans and mutes that have ended are deleted (they are ignored meanwhile anyway). */
const SWEEP_MS = 60_000;
/** The id of the worker's own message that the moderation state changed from outside. */
const CHANGED_ID = -2;

/** Each migration takes the schema from its index to the next version, in one transaction. */
const MIGRATIONS = [
  `CREATE TABLE history (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, line TEXT NOT NULL);
   CREATE TABLE accounts (key TEXT PRIMARY KEY, name TEXT NOT NULL, salt TEXT NOT NULL,
     hash TEXT NOT NULL, cost INTEGER NOT NULL, block_size INTEGER NOT NULL,
     parallelism INTEGER NOT NULL) WITHOUT ROWID;`,
  `CREATE TABLE operators (key TEXT PRIMARY KEY, name TEXT NOT NULL) WITHOUT ROWID;
   CREATE TABLE bans (key TEXT PRIMARY KEY, target TEXT NOT NULL, kind TEXT NOT NULL,
     by_name TEXT NOT NULL, at INTEGER NOT NULL, until INTEGER, reason TEXT) WITHOUT ROWID;
   CREATE TABLE mutes (key TEXT PRIMARY KEY, name TEXT NOT NULL, by_name TEXT NOT NULL,
     at INTEGER NOT NULL, until INTEGER, reason TEXT) WITHOUT ROWID;
   CREATE TABLE topic (id INTEGER PRIMARY KEY CHECK (id = 1), text TEXT NOT NULL,
     by_name TEXT NOT NULL, at INTEGER NOT NULL);`,
  // Places kept for resume across a planned restart: a token's hash, never the token.
  `CREATE TABLE places (key TEXT PRIMARY KEY, name TEXT NOT NULL, token_hash TEXT NOT NULL,
     hostname TEXT NOT NULL, kind TEXT NOT NULL, until INTEGER NOT NULL) WITHOUT ROWID;`,
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

/** A kept place as server/resume.ts's `PlaceRecord` has it, written again. */
interface Place {
  name: string;
  tokenHash: string;
  hostname: string;
  kind: string;
  until: number;
}

/** A ban or a mute as the moderation seam has it (server/moderation_store.ts), written again. */
interface Term {
  target?: string;
  name?: string;
  kind?: string;
  by: string;
  at: number;
  until?: number;
  reason?: string;
}

type Request =
  | { id: number; op: "open"; path: string; historySize: number; takesPlaces: boolean }
  | { id: number; op: "keep"; entries: { at: number; line: string }[] }
  | { id: number; op: "save"; account: Account; previousHash: string | null }
  | { id: number; op: "remove"; name: string; hash: string }
  | { id: number; op: "setOperator"; name: string; isOperator: boolean }
  | { id: number; op: "addBan"; key: string; ban: Term }
  | { id: number; op: "removeBan"; key: string }
  | { id: number; op: "addMute"; key: string; mute: Term }
  | { id: number; op: "removeMute"; key: string }
  | { id: number; op: "setTopic"; topic: { text: string; by: string; at: number } | null }
  | { id: number; op: "keepPlaces"; places: Place[] }
  | { id: number; op: "close" };

let db: DatabaseSync | undefined;
let historySize = 0;
let statements: Record<string, StatementSync> = {};
let poller: ReturnType<typeof setInterval> | undefined;

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
      return open(request.path, request.historySize, request.takesPlaces);
    case "keep":
      keep(request.entries);
      return {};
    case "save":
      return { isSaved: save(request.account, request.previousHash) };
    case "remove":
      return { isRemoved: statements.remove!.run(key(request.name), request.hash).changes > 0 };
    case "keepPlaces":
      keepPlaces(request.places);
      return {};
    case "close":
      close();
      return {};
    default:
      return moderate(request);
  }
}

/** A change of the moderation state; `isChanged` says whether there was something to change. */
function moderate(request: Request): Record<string, unknown> {
  const run = (name: string, ...values: (string | number | null)[]) =>
    transaction(() => statements[name]!.run(...values).changes > 0);
  switch (request.op) {
    case "setOperator":
      return {
        isChanged: request.isOperator
          ? run("addOperator", key(request.name), request.name)
          : run("removeOperator", key(request.name)),
      };
    case "addBan": {
      const { target, kind, by, at, until, reason } = request.ban;
      const values = [target!, kind!, by, at, until ?? null, reason ?? null];
      return { isChanged: run("addBan", request.key, ...values) };
    }
    case "removeBan":
      return { isChanged: run("removeBan", request.key) };
    case "addMute": {
      const { name, by, at, until, reason } = request.mute;
      return {
        isChanged: run("addMute", request.key, name!, by, at, until ?? null, reason ?? null),
      };
    }
    case "removeMute":
      return { isChanged: run("removeMute", request.key) };
    case "setTopic": {
      const { topic } = request;
      return {
        isChanged: topic ? run("setTopic", topic.text, topic.by, topic.at) : run("clearTopic"),
      };
    }
    default:
      throw new TypeError(`Unknown request ${JSON.stringify(request.op)}`);
  }
}

/** Operators, bans, mutes and the topic, as the file holds them. */
function moderation(): Record<string, unknown> {
  const all = (sql: string) => db!.prepare(sql).all();
  return {
    operators: all("SELECT name FROM operators").map((row) => row.name),
    bans: all(
      "SELECT target, kind, by_name AS by, at, until, reason FROM bans",
    ),
    mutes: all("SELECT name, by_name AS by, at, until, reason FROM mutes"),
    topic: db!.prepare("SELECT text, by_name AS by, at FROM topic WHERE id = 1").get() ?? null,
  };
}

/**
 * Looks at the file for another process's change (`PRAGMA data_version` moves only then) and
 * posts the moderation state when there was one; deletes ended bans and mutes now and then.
 */
function watch(): void {
  let version = pragma("data_version");
  let sweptAt = Date.now();
  poller = setInterval(() => {
    const now = Date.now();
    if (now - sweptAt >= SWEEP_MS) {
      sweptAt = now;
      try {
        transaction(() => {
          statements.sweep!.run(now);
          statements.sweepMutes!.run(now);
        });
      } catch {
        // Read-only or locked: the ended ones are ignored anyway, and swept next time.
      }
    }
    try {
      const current = pragma("data_version");
      if (current === version) return;
      version = current;
      self.postMessage({ id: CHANGED_ID, ok: true, moderation: moderation() });
    } catch {
      // Locked or read-only for now: looked at again at the next poll.
    }
  }, POLL_MS);
}

/**
 * Opens the file (created if missing), checks whose and which schema it is, migrates it, and
 * answers what it holds. A file that cannot be written to is still read: `readOnly` says why.
 */
function open(path: string, size: number, takesPlaces: boolean): Record<string, unknown> {
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
  watch();
  const history = db.prepare("SELECT at, line FROM history ORDER BY id DESC LIMIT ?")
    .all(historySize).reverse();
  const accounts = db.prepare(
    "SELECT name, salt, hash, cost, block_size AS blockSize, parallelism FROM accounts",
  ).all();
  const places = readOnly || !takesPlaces ? [] : takePlaces();
  return {
    history,
    accounts,
    moderation: moderation(),
    places,
    ...(readOnly ? { readOnly } : {}),
  };
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
  clearInterval(poller);
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
    addOperator: sql("INSERT INTO operators (key, name) VALUES (?, ?) ON CONFLICT DO NOTHING"),
    removeOperator: sql("DELETE FROM operators WHERE key = ?"),
    addBan: sql("INSERT OR REPLACE INTO bans VALUES (?, ?, ?, ?, ?, ?, ?)"),
    removeBan: sql("DELETE FROM bans WHERE key = ?"),
    addMute: sql("INSERT OR REPLACE INTO mutes VALUES (?, ?, ?, ?, ?, ?)"),
    removeMute: sql("DELETE FROM mutes WHERE key = ?"),
    setTopic: sql("INSERT OR REPLACE INTO topic (id, text, by_name, at) VALUES (1, ?, ?, ?)"),
    clearTopic: sql("DELETE FROM topic WHERE id = 1"),
    sweep: sql("DELETE FROM bans WHERE until IS NOT NULL AND until <= ?"),
    sweepMutes: sql("DELETE FROM mutes WHERE until IS NOT NULL AND until <= ?"),
    insertPlace: sql("INSERT OR REPLACE INTO places VALUES (?, ?, ?, ?, ?, ?)"),
  };
}

/** One batch of history lines: one transaction, trimmed to the history's size. */
function keep(entries: { at: number; line: string }[]): void {
  transaction(() => {
    for (const { at, line } of entries) statements.insert!.run(at, line);
    statements.trim!.run(historySize);
  });
}

/**
 * The places the last planned shutdown kept, read and deleted at once: good for one start, so that
 * a crash after it leaves none behind. None when the file is locked: the members join anew.
 */
function takePlaces(): unknown[] {
  try {
    return transaction(() => {
      const rows = db!.prepare(
        "SELECT name, token_hash AS tokenHash, hostname, kind, until FROM places",
      ).all();
      db!.exec("DELETE FROM places");
      return rows;
    });
  } catch {
    return [];
  }
}

/** The places a planned shutdown keeps for the next start, in place of any kept before. */
function keepPlaces(places: Place[]): void {
  transaction(() => {
    db!.exec("DELETE FROM places");
    for (const { name, tokenHash, hostname, kind, until } of places) {
      statements.insertPlace!.run(key(name), name, tokenHash, hostname, kind, until);
    }
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

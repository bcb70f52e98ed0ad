/**
 * What the server keeps across restarts, behind one interface for both backends: the room's
 * history, the registered names, and moderation's state (store_moderation.ts). `SqliteStore` keeps them in an SQLite file (`--store FILE`),
 * through a worker, so that the relay never waits for the disk; a cluster keeps them in Redis
 * (cluster/cluster_hub.ts). Without either, nothing is kept and nothing here is loaded.
 *
 * The registered names are held in memory too and read from there, so a join never waits for a
 * store; a change is saved first and then made in memory, so that what a member is told holds.
 */
import type { Log } from "./log.ts";
import STORE_WORKER from "./store_worker.ts" with { type: "text" };
import { type Account, parseAccount } from "./passwords.ts";
import type { Accounts, HistoryEntry, HistoryStore } from "./hub.ts";
import type { ModerationState } from "./moderation_store.ts";
import { StoreError } from "./hub.ts";
import { isKeptLine, nameKey, parseName } from "../protocol.ts";
import type { PlaceRecord, PlaceStore } from "./resume.ts";
import { parseModerationState, SqliteModeration } from "./store_moderation.ts";

/** The id of the worker's own message that another process changed moderation's state. */
const CHANGED_ID = -2;

/** The store's file cannot be used at all (a newer schema, another program's file, unreadable). */
export class StoreRefusedError extends Error {
  override name = "StoreRefusedError";
}

/** How often kept lines are committed, at most this long after they were said. */
export const COMMIT_INTERVAL_MS = 100;

/** Options for {@linkcode SqliteStore.open}. */
export interface SqliteStoreOptions {
  /** The newest lines kept: the history newcomers are shown (`--history N`). */
  historySize: number;
  /** One line per event an operator must know of: the store failing, and recovering. */
  log?: Log;
  /**
   * The server's own open: the places the last shutdown kept are read, and forgotten in the file
   * (good for one start). `chat admin` leaves them for the server.
   */
  takesPlaces?: boolean;
}

interface Answer {
  id: number;
  ok: boolean;
  error?: string;
  code?: string;
  [key: string]: unknown;
}

/**
 * The store in an SQLite file, written by a worker. Lines to keep wait in memory and go in one
 * transaction at most {@linkcode COMMIT_INTERVAL_MS} after the first of them, one batch at a time;
 * while a batch is out, the next gathers (only the newest `historySize` lines, all that is ever
 * shown). When the file cannot be written (a full disk, a read-only file, a lock held elsewhere,
 * corruption), the store says so in one log line, keeps the room's state in memory, and tries the
 * next batch as usual; it says so again once a write works.
 */
export class SqliteStore implements HistoryStore, Accounts, PlaceStore {
  /** The history the file held at startup, oldest first. */
  readonly history: readonly HistoryEntry[];
  /** The places the last planned shutdown kept (the file forgot them as it opened). */
  readonly keptPlaces: readonly PlaceRecord[];
  readonly path: string;
  /** Operators, bans, mutes and the topic, kept in the same file. */
  readonly moderation: SqliteModeration;
  #worker: Worker;
  #accounts = new Map<string, Account>();
  #historySize: number;
  #log: Log;
  #pending: HistoryEntry[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;
  #isWriting = false;
  /** The failure last logged, until a write works again (then it is said to be over). */
  #failure: string | undefined;
  /** Why the file is read-only, when it is: every change is refused with it. */
  #readOnly: string | undefined;
  #calls = new Map<number, (answer: Answer) => void>();
  #nextId = 0;
  #closing: Promise<void> | undefined;

  private constructor(
    worker: Worker,
    path: string,
    opened: {
      history: HistoryEntry[];
      accounts: Account[];
      moderation: ModerationState;
      places: PlaceRecord[];
      readOnly?: string;
    },
    options: SqliteStoreOptions,
  ) {
    this.#worker = worker;
    this.path = path;
    this.history = opened.history;
    this.keptPlaces = opened.places;
    for (const account of opened.accounts) this.#accounts.set(nameKey(account.name), account);
    this.#historySize = options.historySize;
    this.#log = options.log ?? (() => {});
    this.#readOnly = opened.readOnly;
    this.moderation = new SqliteModeration(opened.moderation, (request) => this.#change(request));
  }

  /**
   * Opens (or creates) the store in `path`, migrating its schema. Throws a
   * {@linkcode StoreRefusedError} with one line when the file cannot be used: a newer schema,
   * another program's database, a file that is not a database or cannot be read or created.
   * A file that can be read but not written opens, and says so in the log.
   */
  static async open(path: string, options: SqliteStoreOptions): Promise<SqliteStore> {
    // From its source text: starting the worker then needs no permission to read store_worker.ts.
    const worker = new Worker(
      `data:application/typescript,${encodeURIComponent(STORE_WORKER)}`,
      { type: "module" },
    );
    const calls = new Map<number, (answer: Answer) => void>();
    const first = Promise.withResolvers<Answer>();
    calls.set(0, first.resolve);
    worker.onmessage = (event: MessageEvent<Answer>) => calls.get(event.data.id)?.(event.data);
    worker.onerror = (event) => {
      event.preventDefault(); // the store fails; the server does not
      first.reject(new StoreRefusedError(`Cannot use the store ${path}: ${event.message}`));
    };
    const { historySize, takesPlaces = false } = options;
    worker.postMessage({ id: 0, op: "open", path, historySize, takesPlaces });
    let answer: Answer;
    try {
      answer = await first.promise;
      if (!answer.ok) {
        throw new StoreRefusedError(
          answer.code === "refused" ? answer.error! : `Cannot use ${path}: ${answer.error}`,
        );
      }
    } catch (error) {
      worker.terminate();
      throw error;
    }
    // Every line is checked as it is read, as Redis' are: a row written by anything else than this
    // server (a line feed, an escape, a forged notice) would reach every newcomer.
    const rows = answer.history as HistoryEntry[];
    const history = rows.filter((entry) =>
      Number.isSafeInteger(entry.at) && typeof entry.line === "string" && isKeptLine(entry.line)
    );
    const accounts = (answer.accounts as unknown[]).flatMap((row) => parseAccount(row) ?? []);
    const store = new SqliteStore(worker, path, {
      history,
      accounts,
      moderation: parseModerationState(answer.moderation),
      places: ((answer.places ?? []) as unknown[]).flatMap((row) => parsePlace(row) ?? []),
      ...(typeof answer.readOnly === "string" ? { readOnly: answer.readOnly } : {}),
    }, options);
    store.#calls = calls;
    calls.delete(0);
    // `chat admin` changed the file: the server applies it (a new operator marked, and told).
    calls.set(CHANGED_ID, (changed) => {
      if (changed.ok) store.moderation.refresh(parseModerationState(changed.moderation));
    });
    worker.onerror = (event) => {
      event.preventDefault();
      store.#fail(`the store's worker stopped: ${event.message}`);
    };
    if (history.length < rows.length) {
      store.#log(
        `store: ${rows.length - history.length} history line(s) in ${path} are not lines this ` +
          "server writes (a control character, an escape, no sender): skipped",
        {
          event: "store history skipped",
          level: "warn",
          counts: { lines: rows.length - history.length },
        },
      );
    }
    if (store.#readOnly) {
      store.#log(
        `store: ${path} cannot be written (${store.#readOnly}); its history and names are ` +
          "served, and nothing new is kept",
        { event: "store read-only", level: "warn", reason: store.#readOnly },
      );
    }
    return store;
  }

  /** For the metrics: lines waiting for their commit, commits done and their total time. */
  get queued(): number {
    return this.#pending.length;
  }
  commits = 0;
  commitSeconds = 0;
  /** Why nothing can be kept now (read-only, or the last write failed), if so. */
  get unwritable(): string | undefined {
    return this.#readOnly ?? this.#failure;
  }

  /** Whether the file can be written: false when it opened read-only. */
  get isWritable(): boolean {
    return this.#readOnly === undefined;
  }

  keep(entry: HistoryEntry): void {
    if (this.#closing || this.#readOnly || this.#historySize === 0) return;
    this.#pending.push(entry);
    if (this.#pending.length > this.#historySize) this.#pending.shift();
    this.#timer ??= setTimeout(() => this.#flush(), COMMIT_INTERVAL_MS);
  }

  get(name: string): Account | undefined {
    return this.#accounts.get(nameKey(name));
  }

  get size(): number {
    return this.#accounts.size;
  }

  async save(account: Account, previous?: Account): Promise<void> {
    const answer = await this.#change({
      op: "save",
      account,
      previousHash: previous?.hash ?? null,
    });
    if (!answer.isSaved) {
      throw new StoreError(
        previous ? "The password changed meanwhile: try again" : "That name is registered already",
      );
    }
    this.#accounts.set(nameKey(account.name), account);
  }

  async remove(account: Account): Promise<void> {
    await this.#change({ op: "remove", name: account.name, hash: account.hash });
    this.#accounts.delete(nameKey(account.name));
  }

  async keepPlaces(places: readonly PlaceRecord[]): Promise<void> {
    await this.#change({ op: "keepPlaces", places });
  }

  /** Commits what waits, then closes the file; safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#calls.delete(CHANGED_ID);
      while (this.#isWriting) await this.#idle();
      if (this.#pending.length > 0) await this.#write();
      await this.#call({ op: "close" }).catch(() => {});
      this.#worker.terminate();
      for (const resolve of this.#calls.values()) {
        resolve({ id: -1, ok: false, error: "the store is closed" });
      }
    })();
    return this.#closing;
  }

  /** A change of an account: refused while read-only, failed as a StoreError with the reason. */
  async #change(request: Record<string, unknown>): Promise<Answer> {
    if (this.#readOnly) throw new StoreError("The server cannot save it: its store is read-only");
    if (this.#closing) throw new StoreError("The server is shutting down");
    const answer = await this.#call(request);
    if (!answer.ok) {
      this.#fail(answer.error ?? "unknown error");
      throw new StoreError(`The server cannot save it now (${answer.error}): try again later`);
    }
    this.#recovered();
    return answer;
  }

  #call(request: Record<string, unknown>): Promise<Answer> {
    const id = ++this.#nextId;
    const { promise, resolve } = Promise.withResolvers<Answer>();
    this.#calls.set(id, (answer) => {
      this.#calls.delete(id);
      resolve(answer);
    });
    this.#worker.postMessage({ id, ...request });
    return promise;
  }

  #flush(): void {
    this.#timer = undefined;
    if (!this.#isWriting && this.#pending.length > 0) this.#write();
  }

  /** Sends the lines waiting as one batch; when it is done, the next one (if any) is due. */
  async #write(): Promise<void> {
    const entries = this.#pending;
    this.#pending = [];
    this.#isWriting = true;
    const startedAt = performance.now();
    const answer = await this.#call({ op: "keep", entries });
    this.#isWriting = false;
    this.commits++;
    this.commitSeconds += (performance.now() - startedAt) / 1000;
    if (answer.ok) this.#recovered();
    else {
      this.#fail(answer.error ?? "unknown error");
      // Tried again with the next batch: the newest lines are what the history must hold.
      this.#pending = [...entries, ...this.#pending].slice(-this.#historySize);
    }
    if (this.#pending.length > 0 && !this.#closing) {
      this.#timer ??= setTimeout(() => this.#flush(), COMMIT_INTERVAL_MS);
    }
    this.#onIdle?.();
  }

  #onIdle: (() => void) | undefined;

  #idle(): Promise<void> {
    return new Promise((resolve) => this.#onIdle = resolve);
  }

  /** A write failed: said once in the log, until one works again. */
  #fail(reason: string): void {
    if (this.#failure !== undefined) return; // said already, until a write works
    this.#failure = reason;
    this.#log(
      `store: cannot write ${this.path} (${reason}); the room goes on from memory, and ` +
        "registering and changing passwords fail until it can",
      { event: "store failed", level: "error", reason },
    );
  }

  #recovered(): void {
    if (this.#failure === undefined) return;
    this.#failure = undefined;
    this.#log(`store: writing ${this.path} again`, { event: "store recovered" });
  }
}

const KINDS: readonly string[] = ["tcp", "tls", "websocket", "irc"];

/**
 * A kept place as read back, or undefined for a row this server would not have written (a bad
 * name, a hash of another shape): a forged row must not put a name in the room.
 */
function parsePlace(row: unknown): PlaceRecord | undefined {
  const { name, tokenHash, hostname, kind, until } = row as Record<string, unknown>;
  if (typeof name !== "string" || typeof hostname !== "string" || typeof kind !== "string") return;
  if (typeof tokenHash !== "string" || !/^[A-Za-z0-9_-]{43}$/.test(tokenHash)) return;
  if (!Number.isSafeInteger(until) || !KINDS.includes(kind) || hostname.length > 64) return;
  try {
    if (parseName(name) !== name) return;
  } catch {
    return; // not a name: skipped like any row we did not write
  }
  return { name, tokenHash, hostname, kind: kind as PlaceRecord["kind"], until: until as number };
}

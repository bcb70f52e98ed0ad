/**
 * Moderation's state in the SQLite store: operators, bans, mutes and the topic, read from a copy
 * in memory and changed in the file first (through the store's worker), then in memory. A change
 * made by another process (`chat admin`) reaches the server through the worker's poll.
 */
import { cleanText, MAX_REASON_LENGTH, MAX_TOPIC_LENGTH } from "../protocol.ts";
import {
  type Ban,
  banKey,
  diffModeration,
  MemoryModerationStore,
  type ModerationChange,
  type ModerationState,
  type ModerationStore,
  type Mute,
  type Topic,
} from "./moderation_store.ts";

/** Sends a change to the worker: resolves with its answer, or rejects with a StoreError. */
export type StoreChange = (request: Record<string, unknown>) => Promise<Record<string, unknown>>;

/** The moderation seam over the SQLite store's worker. */
export class SqliteModeration implements ModerationStore {
  #memory: MemoryModerationStore;
  #change: StoreChange;
  onChange: ((change: ModerationChange) => void) | undefined;

  /** The state the file held at startup, and the way to change it. */
  constructor(state: ModerationState, change: StoreChange) {
    this.#memory = MemoryModerationStore.from(state);
    this.#change = change;
  }

  isOperator(name: string): boolean {
    return this.#memory.isOperator(name);
  }
  operators(): string[] {
    return this.#memory.operators();
  }
  bans(): Ban[] {
    return this.#memory.bans();
  }
  mutes(): Mute[] {
    return this.#memory.mutes();
  }
  topic(): Topic | undefined {
    return this.#memory.topic();
  }

  async setOperator(name: string, isOperator: boolean): Promise<void> {
    await this.#change({ op: "setOperator", name, isOperator });
    await this.#memory.setOperator(name, isOperator);
  }

  async addBan(ban: Ban): Promise<void> {
    this.#memory.checkRoom("ban", ban.target);
    await this.#change({ op: "addBan", key: banKey(ban.target), ban });
    await this.#memory.addBan(ban);
  }

  async removeBan(target: string): Promise<boolean> {
    const answer = await this.#change({ op: "removeBan", key: banKey(target) });
    await this.#memory.removeBan(target);
    return answer.isChanged === true;
  }

  async addMute(mute: Mute): Promise<void> {
    this.#memory.checkRoom("mute", mute.name);
    await this.#change({ op: "addMute", key: banKey(mute.name), mute });
    await this.#memory.addMute(mute);
  }

  async removeMute(name: string): Promise<boolean> {
    const answer = await this.#change({ op: "removeMute", key: banKey(name) });
    await this.#memory.removeMute(name);
    return answer.isChanged === true;
  }

  async setTopic(topic: Topic | undefined): Promise<void> {
    await this.#change({ op: "setTopic", topic: topic ?? null });
    await this.#memory.setTopic(topic);
  }

  /** The file changed from outside: the copy becomes `state`, and each difference is told. */
  refresh(state: ModerationState): void {
    const changes = diffModeration(this.#memory.state(), state);
    this.#memory = MemoryModerationStore.from(state);
    for (const change of changes) this.onChange?.(change);
  }
}

/**
 * The moderation state in rows read from the file, each checked as it is read: a row written by
 * anything else than this program (a control character, an unknown kind) is skipped, since
 * reasons and the topic reach members.
 */
export function parseModerationState(value: unknown): ModerationState {
  const rows = (value ?? {}) as Record<string, unknown>;
  const list = (key: string) => Array.isArray(rows[key]) ? rows[key] as unknown[] : [];
  const operators = list("operators").filter(isName) as string[];
  const bans = (list("bans") as Record<string, unknown>[]).flatMap((row) => {
    const term = parseTerm(row);
    const isTarget = row.kind === "name"
      ? isName(row.target)
      : typeof row.target === "string" && /^[0-9a-f:./]+$/i.test(row.target);
    return term && isTarget && (row.kind === "name" || row.kind === "address")
      ? [{ ...term, target: row.target as string, kind: row.kind } as Ban]
      : [];
  });
  const mutes = (list("mutes") as Record<string, unknown>[]).flatMap((row) => {
    const term = parseTerm(row);
    return term && isName(row.name) ? [{ ...term, name: row.name as string } as Mute] : [];
  });
  const topic = rows.topic as Record<string, unknown> | null | undefined;
  const isTopic = topic && isText(topic.text, MAX_TOPIC_LENGTH) && isName(topic.by) &&
    Number.isSafeInteger(topic.at);
  return {
    operators,
    bans,
    mutes,
    ...isTopic
      ? { topic: { text: topic.text as string, by: topic.by as string, at: topic.at as number } }
      : {},
  };
}

/** What bans and mutes share: who, when, until when and why; undefined if a field is wrong. */
function parseTerm(row: Record<string, unknown>): Omit<Mute, "name"> | undefined {
  const { by, at, until, reason } = row;
  if (!isName(by) || !Number.isSafeInteger(at)) return;
  if (until !== null && until !== undefined && !Number.isSafeInteger(until)) return;
  if (reason !== null && reason !== undefined && !isText(reason, MAX_REASON_LENGTH)) return;
  return {
    by: by as string,
    at: at as number,
    ...typeof until === "number" ? { until } : {},
    ...typeof reason === "string" ? { reason } : {},
  };
}

function isName(value: unknown): boolean {
  return typeof value === "string" && /^[A-Za-z0-9_-]{1,32}$/.test(value);
}

function isText(value: unknown, most: number): boolean {
  return typeof value === "string" && value.length <= most && cleanText(value) === value;
}

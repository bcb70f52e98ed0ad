/**
 * The checks an event from the channel passes before the hub relays it: not our own, well formed
 * (parsed as strictly as a client's line), on time, and never speaking for a member of ours.
 */
import type { Log } from "../server/log.ts";
import { describe } from "../protocol.ts";
import { type Event, parseEvent } from "./events.ts";
import { REDIS_TIMEOUT_MS } from "./redis_link.ts";

/** What the hub needs to know to check an event. */
export interface Here {
  /** This server's id. */
  id: string;
  /** Redis's clock now, as this server estimates it (ms). */
  now: number;
  maxLineBytes: number;
  log: Log;
  /** Whether a member of this server holds the name. */
  holds(name: string): boolean;
}

/** What to do with a message: relay `event`, or nothing; `isLate`: this server's own connection
 * lags, and it heals rather than relay late. `lagMs`: how late the event came. */
export interface Intake {
  event?: Event;
  isLate?: boolean;
  lagMs?: number;
}

/** Checks a message from the channel (see the module's comment). */
export function takeIn(message: string, here: Here): Intake {
  // Our own events come back too; they start with our id (see the hub's #publish): not parsed.
  if (message.startsWith(`{"o":"${here.id}",`)) return {};
  let event: Event;
  try {
    event = parseEvent(message, here.maxLineBytes);
  } catch (error) {
    here.log(`redis: ignored a message: ${describe(error)}`, {
      event: "redis message ignored",
      level: "warn",
      reason: describe(error),
    });
    return {};
  }
  if (event.o === here.id) return {}; // our own after all (not written by us): ignored the same
  // Every event but a request for an answer (a private message, a place) is sent with the whole
  // timeout as its budget.
  const isRequest = event.k === "msg" || event.k === "place";
  const lagMs = isRequest ? undefined : Math.max(0, here.now - event.d + REDIS_TIMEOUT_MS);
  const intake = lagMs === undefined ? {} : { lagMs };
  // A request too late to answer is dropped: its sender stopped waiting, or will have by the answer.
  if (isRequest && here.now > event.d) return intake;
  // Redis relayed the event before its deadline; the way from Redis to here gets as long again.
  // Later than that, this server's own connection is lagging: it heals rather than relay late.
  if (here.now > event.d + REDIS_TIMEOUT_MS) return { ...intake, isLate: true };
  // A name held here speaks only from here: another server cannot speak for our members.
  if (["say", "act", "msg"].includes(event.k) && here.holds(event.n)) {
    here.log(`redis: ignored an event for ${event.n}, who is on this server`, {
      event: "redis message ignored",
      level: "warn",
      name: event.n,
      reason: "name on this server",
    });
    return intake;
  }
  return { ...intake, event };
}

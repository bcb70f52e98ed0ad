/** What the server needs of a connection, whatever carries it, and the helpers every listener shares. */
import type { RoomLog } from "./room_log.ts";

/**
 * What a peer needs of its connection: a `Deno.Conn` (TCP or TLS) has all of it, and another
 * transport (a WebSocket carrying one line per message) can offer the same, so that every member
 * goes through the same limits and the same writer.
 */
export interface ChatConn {
  /** The client's address: its `hostname` is what the per-address limits count. */
  readonly remoteAddr: Deno.Addr;
  /** Reads into `buffer`: the number of bytes read, or `null` at the end of the input. */
  read(buffer: Uint8Array): Promise<number | null>;
  /**
   * Writes from `bytes` (whole lines, each ending in LF): the number of bytes taken. `at` says
   * where they are in the room `log` when they come from it: the position of the first byte, or
   * the `[start, end)` pairs they were gathered from; a connection that translates each line (the
   * IRC door) keeps its translations beside the log, so that a line is translated once for all.
   */
  write(bytes: Uint8Array, at?: number | readonly number[], log?: RoomLog): Promise<number>;
  /** Says that nothing more will be written, while the client may still be sending. */
  closeWrite(): Promise<void>;
  /** Closes the connection now; throws if it is closed already. */
  close(): void;
}

/** Errors that mean the other side went away: a normal ending, not worth a stack trace. */
const PEER_GONE: ReadonlyArray<new (...args: never[]) => Error> = [
  Deno.errors.BadResource,
  Deno.errors.BrokenPipe,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.NotConnected,
  Deno.errors.UnexpectedEof,
  Deno.errors.Interrupted,
];

/** Whether an error only means that the other side went away. */
export function isPeerGone(error: unknown): boolean {
  return PEER_GONE.some((kind) => error instanceof kind);
}

/**
 * Closes a connection or a listener that may be closed already (by the other side's reset, or by
 * EOF on `conn.readable`, after which `close()` throws `BadResource`).
 */
export function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch {
    // Closed already: closing is all we wanted.
  }
}

/** Settles after `ms`, or at once when `signal` aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

/** Settles when `signal` aborts. */
export function aborted(signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    signal.addEventListener("abort", () => resolve(), { once: true });
  });
}

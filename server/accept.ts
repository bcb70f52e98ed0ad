/**
 * The accept loop every listener of the server shares, which survives a failed accept, and the
 * refusal of a connection the server will not serve.
 */
import type { Log } from "./log.ts";
import { describe, encodeLine, formatError, hostPort } from "../protocol.ts";
import { type ChatConn, closeQuietly, pause } from "./conn.ts";

/** How long a refused connection may take to receive its one line. */
const REFUSAL_TIMEOUT_MS = 1000;

/** Pause after a failed accept (for example out of file descriptors) so the loop does not spin. */
const ACCEPT_RETRY_MS = 100;
/** At most one log line per this long about failed accepts, however many there were. */
const LOG_INTERVAL_MS = 1000;

/**
 * Hands each connection `listener` accepts to `onConn` until `signal` aborts (close the listener
 * then, which ends the wait). A failed accept (EMFILE: out of file descriptors, and the like)
 * ends nothing: the loop pauses and tries again, serving the clients it has meanwhile, and logs
 * the failures once a second at most.
 */
export async function acceptAll(
  listener: Deno.Listener,
  options: {
    onConn: (conn: Deno.Conn) => void;
    log: Log;
    signal: AbortSignal;
  },
): Promise<void> {
  const { onConn, log, signal } = options;
  let unlogged = 0;
  let loggedAt = -Infinity;
  while (!signal.aborted) {
    let conn: Deno.Conn;
    try {
      conn = await listener.accept();
    } catch (error) {
      if (signal.aborted) break;
      unlogged++;
      if (Date.now() - loggedAt >= LOG_INTERVAL_MS) {
        const count = unlogged > 1 ? ` ${unlogged} times` : "";
        const { hostname, port } = listener.addr as Deno.NetAddr;
        log(`accept failed${count} on ${hostPort(hostname, port)}: ${describe(error)}`, {
          event: "accept failed",
          level: "error",
          address: hostPort(hostname, port),
          reason: describe(error),
          counts: { failures: unlogged },
        });
        unlogged = 0;
        loggedAt = Date.now();
      }
      await pause(ACCEPT_RETRY_MS, signal);
      continue;
    }
    onConn(conn);
  }
}

/**
 * Stops a door's listening: its accept loop (`stop` aborts it, and closing the listener ends its
 * wait in accept) and its sweep; settles once the loop has ended. The door closes its connections
 * after.
 */
export async function stopAccepting(
  listener: Deno.Listener,
  door: {
    stop: AbortController;
    sweeper: ReturnType<typeof setInterval>;
    accepting: Promise<void>;
  },
): Promise<void> {
  door.stop.abort();
  clearInterval(door.sweeper);
  closeQuietly(listener);
  await door.accepting;
}

/**
 * Tells a connection over the limits (or banned) why, in one line, and closes it. It never becomes a peer: it
 * costs one small write and, at most, a second.
 */
export async function refuse(conn: ChatConn, reason: string): Promise<void> {
  const timer = setTimeout(() => closeQuietly(conn), REFUSAL_TIMEOUT_MS);
  try {
    await conn.write(encodeLine(formatError(reason)));
    await conn.closeWrite();
  } catch {
    // The client went away first; there is nobody left to tell.
  } finally {
    clearTimeout(timer);
    closeQuietly(conn);
  }
}

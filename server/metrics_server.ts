/**
 * The metrics port: `/metrics` in Prometheus' text format, `/healthz` while the process serves,
 * `/readyz` while it accepts members. Its own listener, so nothing of this is on the page's port.
 *
 * Not `Deno.serve`, for the reasons `server/web.ts` gives (it ended the process when out of file
 * descriptors, and kept idle connections as long as they liked): the chat's accept loop, a bounded
 * request head with a deadline, a small cap on open connections, and one request per connection.
 */
import { type Family, formatMetrics } from "./metrics.ts";
import { acceptAll } from "./accept.ts";
import { formatResponse, HeadReader, HttpError, type RequestHead, writeAll } from "./http.ts";
import { closeQuietly, isPeerGone } from "./conn.ts";
import type { Log } from "./log.ts";
import { describe } from "../protocol.ts";

/** How often the event loop's delay is sampled: a timer this late shows the loop was busy. */
const LOOP_SAMPLE_MS = 100;
/** Open metrics connections at most: a scraper needs one; one over this is closed at once. */
export const METRICS_MAX_CONNECTIONS = 8;
/** Time for a request head to arrive before its connection is closed. */
const HEAD_TIMEOUT_MS = 10_000;
/** Longest request head: a scraper's is a few hundred bytes. */
const MAX_HEAD_BYTES = 8 * 1024;

const encoder = new TextEncoder();

/** The metrics server that {@linkcode startMetrics} started. */
export interface MetricsServer extends AsyncDisposable {
  readonly addr: Deno.NetAddr;
  close(): Promise<void>;
}

/**
 * Serves the metrics on `hostname:port`: `families` are read at each scrape, `unready` says why the
 * server does not accept members now (undefined when it does). Throws what `Deno.listen` throws.
 */
export function startMetrics(options: {
  hostname: string;
  port: number;
  families: () => Family[];
  unready: () => string | undefined;
  /** Time for a request head to arrive (default 10 s). */
  headTimeoutMs?: number;
  log?: Log;
}): MetricsServer {
  const { families, unready, headTimeoutMs = HEAD_TIMEOUT_MS, log = () => {} } = options;
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  // The most a timer was late since the last scrape: the event loop's delay, as the relay felt it.
  let loopDelayMs = 0;
  let expectedAt = performance.now() + LOOP_SAMPLE_MS;
  const sampler = setInterval(() => {
    const now = performance.now();
    loopDelayMs = Math.max(loopDelayMs, now - expectedAt);
    expectedAt = now + LOOP_SAMPLE_MS;
  }, LOOP_SAMPLE_MS);
  const scrape = (): Family[] => {
    const memory = Deno.memoryUsage();
    const all = [
      ...families(),
      gauge("process_resident_memory_bytes", "Resident memory of the process", memory.rss),
      gauge("chat_heap_used_bytes", "V8 heap in use", memory.heapUsed),
      gauge(
        "chat_event_loop_delay_seconds",
        "How late a 100 ms timer ran at worst since the last scrape",
        loopDelayMs / 1000,
      ),
    ];
    loopDelayMs = 0;
    return all;
  };
  const stop = new AbortController();
  const open = new Set<Deno.Conn>();
  const tasks = new Set<Promise<void>>();
  const serve = async (conn: Deno.Conn): Promise<void> => {
    // The deadline closes the connection, which ends the read with an error.
    const deadline = setTimeout(() => closeQuietly(conn), headTimeoutMs);
    try {
      const head = await new HeadReader(MAX_HEAD_BYTES).read(conn).catch((error) => {
        if (error instanceof HttpError) return error;
        throw error;
      });
      clearTimeout(deadline);
      if (head === null) return;
      const response = head instanceof HttpError
        ? plain(head.status, head.message)
        : answer(head, { scrape, unready });
      await writeAll(conn, response);
    } catch (error) {
      if (
        !isPeerGone(error) && !stop.signal.aborted && !(error instanceof Deno.errors.BadResource)
      ) {
        log(`metrics: ${describe(error)}`, {
          event: "metrics failed",
          level: "error",
          reason: describe(error),
        });
      }
    } finally {
      clearTimeout(deadline);
      open.delete(conn); // before the close, so a client that saw it may connect again at once
      closeQuietly(conn);
    }
  };
  const accepting = acceptAll(listener, {
    onConn: (conn) => {
      if (open.size >= METRICS_MAX_CONNECTIONS) return closeQuietly(conn);
      open.add(conn);
      const task = serve(conn);
      tasks.add(task);
      task.finally(() => tasks.delete(task));
    },
    log,
    signal: stop.signal,
  });
  let closing: Promise<void> | undefined;
  const close = () =>
    closing ??= (async () => {
      stop.abort();
      clearInterval(sampler);
      closeQuietly(listener); // the accept loop then ends
      await accepting;
      for (const conn of open) closeQuietly(conn);
      await Promise.all(tasks);
    })();
  return { addr: listener.addr as Deno.NetAddr, close, [Symbol.asyncDispose]: close };
}

/** The response to one request. */
function answer(
  head: RequestHead,
  options: { scrape: () => Family[]; unready: () => string | undefined },
): Uint8Array {
  const isHead = head.method === "HEAD";
  if (head.method !== "GET" && !isHead) {
    return plain(405, "Only GET and HEAD", { allow: "GET, HEAD" });
  }
  switch (head.path) {
    case "/metrics":
      return plain(200, formatMetrics(options.scrape()), {
        isHead,
        type: "text/plain; version=0.0.4; charset=utf-8",
      });
    case "/healthz":
      return plain(200, "ok\n", { isHead });
    case "/readyz": {
      const why = options.unready();
      return why === undefined
        ? plain(200, "ready\n", { isHead })
        : plain(503, `not ready: ${why}\n`, { isHead });
    }
    default:
      return plain(404, "Not found: try /metrics, /healthz or /readyz\n", { isHead });
  }
}

/** A whole response that closes its connection. */
function plain(
  status: number,
  body: string,
  options: { isHead?: boolean; type?: string; allow?: string } = {},
): Uint8Array {
  const headers: Record<string, string> = {
    "content-type": options.type ?? "text/plain; charset=utf-8",
    connection: "close",
  };
  if (options.allow) headers.allow = options.allow;
  const text = body.endsWith("\n") ? body : `${body}\n`;
  return formatResponse(status, headers, encoder.encode(text), { isHead: options.isHead === true });
}

/** A family of one gauge without labels. */
export function gauge(name: string, help: string, value: number): Family {
  return { name, type: "gauge", help, samples: [{ value }] };
}

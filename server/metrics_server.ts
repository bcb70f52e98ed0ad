/**
 * The metrics port: `/metrics` in Prometheus' text format, `/healthz` while the process serves,
 * `/readyz` while it accepts members. Its own listener, so nothing of this is on the page's port.
 */
import { type Family, formatMetrics } from "./metrics.ts";

/** How often the event loop's delay is sampled: a timer this late shows the loop was busy. */
const LOOP_SAMPLE_MS = 100;

/** The metrics server that {@linkcode startMetrics} started. */
export interface MetricsServer extends AsyncDisposable {
  readonly addr: Deno.NetAddr;
  close(): Promise<void>;
}

/**
 * Serves the metrics on `hostname:port`: `families` are read at each scrape, `unready` says why the
 * server does not accept members now (undefined when it does). Throws what `Deno.serve` throws.
 */
export function startMetrics(options: {
  hostname: string;
  port: number;
  families: () => Family[];
  unready: () => string | undefined;
}): MetricsServer {
  // The most a timer was late since the last scrape: the event loop's delay, as the relay felt it.
  let loopDelayMs = 0;
  let expectedAt = performance.now() + LOOP_SAMPLE_MS;
  const sampler = setInterval(() => {
    const now = performance.now();
    loopDelayMs = Math.max(loopDelayMs, now - expectedAt);
    expectedAt = now + LOOP_SAMPLE_MS;
  }, LOOP_SAMPLE_MS);
  const text = (status: number, body: string, type = "text/plain; charset=utf-8") =>
    new Response(body, { status, headers: { "content-type": type } });
  const server = Deno.serve({
    hostname: options.hostname,
    port: options.port,
    onListen: () => {}, // main.ts says where it listens
  }, (request) => {
    if (request.method !== "GET") return text(405, "Only GET\n");
    switch (new URL(request.url).pathname) {
      case "/metrics": {
        const memory = Deno.memoryUsage();
        const body = formatMetrics([
          ...options.families(),
          gauge("process_resident_memory_bytes", "Resident memory of the process", memory.rss),
          gauge("chat_heap_used_bytes", "V8 heap in use", memory.heapUsed),
          gauge(
            "chat_event_loop_delay_seconds",
            "How late a 100 ms timer ran at worst since the last scrape",
            loopDelayMs / 1000,
          ),
        ]);
        loopDelayMs = 0;
        return text(200, body, "text/plain; version=0.0.4; charset=utf-8");
      }
      case "/healthz":
        return text(200, "ok\n");
      case "/readyz": {
        const why = options.unready();
        return why === undefined ? text(200, "ready\n") : text(503, `not ready: ${why}\n`);
      }
      default:
        return text(404, "Not found: try /metrics, /healthz or /readyz\n");
    }
  });
  let closing: Promise<void> | undefined;
  const close = () => {
    clearInterval(sampler);
    return closing ??= server.shutdown();
  };
  return { addr: server.addr, close, [Symbol.asyncDispose]: close };
}

/** A family of one gauge without labels. */
export function gauge(name: string, help: string, value: number): Family {
  return { name, type: "gauge", help, samples: [{ value }] };
}

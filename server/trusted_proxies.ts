/**
 * `--trust-proxy`: which connections to the page come from a reverse proxy of ours, and which client
 * each request of theirs stands for. Only a trusted proxy's word about its client counts: from any
 * other address, `X-Forwarded-For` is what a client says about itself, which is nothing.
 */
import type { Log } from "./log.ts";
import { AddressSet } from "./cidr.ts";
import { forwardedClient } from "./forwarded.ts";
import { hostPort } from "../protocol.ts";

/** Proxies told about at most (a wide block could hold many): the log says it once for each. */
const MAX_WARNED = 256;

/** The proxies the server trusts, and what it has said about those that forward no client. */
export class TrustedProxies {
  readonly #blocks: AddressSet;
  readonly #log: Log;
  readonly #warned = new Set<string>();

  /** `blocks`: `ADDRESS[/BITS]` each (a `TypeError` for one that is not); none by default. */
  constructor(blocks: Iterable<string> = [], log: Log = () => {}) {
    this.#blocks = new AddressSet(blocks);
    this.#log = log;
  }

  /** Whether a connection from `hostname` comes from a trusted proxy. */
  has(hostname: string): boolean {
    return this.#blocks.has(hostname);
  }

  /**
   * The client a request from `remote` stands for: from a trusted proxy, the one its
   * `X-Forwarded-For` names (see {@linkcode forwardedClient}), else `remote` itself. `undefined`
   * for a trusted proxy's request that names none: it is refused, since counting it as the proxy's
   * own would give it the proxy's exemption (a proxy on loopback is exempt by default).
   */
  clientOf(remote: Deno.NetAddr, headers: Headers): Deno.NetAddr | undefined {
    if (!this.has(remote.hostname)) return remote;
    const client = forwardedClient(headers, this.#blocks);
    if (client) return { transport: "tcp", ...client };
    this.#warn(remote, "a request that names no client in X-Forwarded-For");
  }

  /** Says once per proxy that a trusted proxy sent `what`, refused. */
  #warn(remote: Deno.NetAddr, what: string): void {
    if (this.#warned.has(remote.hostname) || this.#warned.size >= MAX_WARNED) return;
    this.#warned.add(remote.hostname);
    this.#log(
      `trusted proxy ${hostPort(remote.hostname, remote.port)} sent ${what}: such requests ` +
        `are refused (said once for this proxy)`,
      {
        event: "proxy header missing",
        level: "warn",
        address: hostPort(remote.hostname, remote.port),
        reason: what,
      },
    );
  }
}

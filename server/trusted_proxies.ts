/**
 * `--trust-proxy`: which connections come from a reverse proxy of ours, and which client each
 * request or connection of theirs stands for. Only a trusted proxy's word about its client counts:
 * from any other address, `Forwarded`, `X-Forwarded-For` and PROXY headers are what a client
 * says about itself, which is nothing.
 */
import { AddressSet } from "./cidr.ts";
import { forwardedClient } from "./forwarded.ts";
import { hostPort } from "../protocol.ts";

/** Proxies told about at most (a wide block could hold many): the log says it once for each. */
const MAX_WARNED = 256;

/** The proxies the server trusts, and what it has said about those that forward no client. */
export class TrustedProxies {
  readonly #blocks: AddressSet;
  readonly #log: (message: string) => void;
  readonly #warned = new Set<string>();

  /** `blocks`: `ADDRESS[/BITS]` each (a `TypeError` for one that is not); none by default. */
  constructor(blocks: Iterable<string> = [], log: (message: string) => void = () => {}) {
    this.#blocks = new AddressSet(blocks);
    this.#log = log;
  }

  /** Whether a connection from `hostname` comes from a trusted proxy. */
  has(hostname: string): boolean {
    return this.#blocks.has(hostname);
  }

  /**
   * The client a request from `remote` stands for: from a trusted proxy, the one its `Forwarded`
   * or `X-Forwarded-For` names (see {@linkcode forwardedClient}), else `remote` itself.
   */
  clientOf(remote: Deno.NetAddr, headers: Headers): Deno.NetAddr {
    if (!this.has(remote.hostname)) return remote;
    const client = forwardedClient(headers, this.#blocks);
    if (client) return { transport: "tcp", ...client };
    this.warn(remote, "a request that names no client in Forwarded or X-Forwarded-For");
    return remote;
  }

  /**
   * Says once per proxy that a trusted proxy sent `what` (no header, say): its connections then
   * count as its own, every one under its address's limits, which is rarely what was meant.
   */
  warn(remote: Deno.NetAddr, what: string): void {
    if (this.#warned.has(remote.hostname) || this.#warned.size >= MAX_WARNED) return;
    this.#warned.add(remote.hostname);
    this.#log(
      `trusted proxy ${hostPort(remote.hostname, remote.port)} sent ${what}: its connections ` +
        `count as its own address's (said once for this proxy)`,
    );
  }
}

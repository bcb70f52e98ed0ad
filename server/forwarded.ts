/**
 * The client a reverse proxy forwards a request for, from its `X-Forwarded-For` header. Pure:
 * reads headers, does no I/O.
 */
import { type AddressSet, parseAddress } from "./cidr.ts";

/** One hop's address as a header names it: an IP address, and its port if given (else 0). */
export interface ForwardedNode {
  hostname: string;
  port: number;
}

/**
 * The addresses a request came from and through, client first, as `X-Forwarded-For` lists them
 * (what nginx, Caddy and HAProxy append). `Forwarded` is not read: those proxies pass a client's
 * own `Forwarded` through untouched, so from behind them it says whatever the client likes. An
 * element that names no address (`unknown`, garbage) is `undefined`. `undefined` when there is no
 * `X-Forwarded-For`.
 */
export function forwardedChain(headers: Headers): (ForwardedNode | undefined)[] | undefined {
  return headers.get("x-forwarded-for")?.split(",").map((item) => parseNode(item.trim()));
}

/**
 * The client of a request that came from a trusted proxy: from the right of the chain (the hop
 * nearest to us), the first address that is not itself a trusted proxy, or the left-most if every
 * one is. Only the right-most addresses were written by proxies we trust; whatever is left of the
 * client's own could be anything the client sent. A hop that names no address ends the walk with
 * `undefined`, as does a request without the header.
 */
export function forwardedClient(
  headers: Headers,
  trusted: AddressSet,
): ForwardedNode | undefined {
  const chain = forwardedChain(headers) ?? [];
  for (let i = chain.length - 1; i >= 0; i--) {
    const node = chain[i];
    if (node === undefined) return;
    if (i === 0 || !trusted.has(node.hostname)) return node;
  }
}

/**
 * A node as X-Forwarded-For has it: an address, bare (IPv6 too) or with a port (`192.0.2.43:47011`,
 * `[2001:db8::17]:4711`). A port that is not a number (obfuscated) is 0.
 */
function parseNode(text: string | undefined): ForwardedNode | undefined {
  if (text === undefined || text.includes("%")) return; // a zone means nothing to us
  if (parseAddress(text)) return { hostname: text, port: 0 };
  const match = /^\[([^\]]+)\](?::(\w+))?$/.exec(text) ?? /^([\d.]+):(\w+)$/.exec(text);
  const [, hostname = "", port = ""] = match ?? [];
  if (!parseAddress(hostname)) return;
  const number = /^\d{1,5}$/.test(port) ? Number(port) : 0;
  return { hostname, port: number <= 65535 ? number : 0 };
}

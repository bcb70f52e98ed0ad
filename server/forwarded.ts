/**
 * The client a reverse proxy forwards a request for, from its `Forwarded` (RFC 7239) or
 * `X-Forwarded-For` header. Pure: reads headers, does no I/O.
 */
import { type AddressSet, parseAddress } from "./cidr.ts";

/** One hop's address as a header names it: an IP address, and its port if given (else 0). */
export interface ForwardedNode {
  hostname: string;
  port: number;
}

/**
 * The addresses a request came from and through, client first, as the headers list them:
 * `Forwarded`'s `for=` if there is a `Forwarded`, else `X-Forwarded-For`. An element that names no
 * address (`unknown`, an obfuscated name, no `for=`, garbage) is `undefined`. `undefined` when
 * neither header is there.
 */
export function forwardedChain(headers: Headers): (ForwardedNode | undefined)[] | undefined {
  const forwarded = headers.get("forwarded");
  if (forwarded !== null) {
    return split(forwarded, ",").map((element) => parseNode(forParameter(element)));
  }
  const list = headers.get("x-forwarded-for");
  if (list !== null) return list.split(",").map((item) => parseNode(item.trim()));
}

/**
 * The client of a request that came from a trusted proxy: from the right of the chain (the hop
 * nearest to us), the first address that is not itself a trusted proxy, or the left-most if every
 * one is. Only the right-most addresses were written by proxies we trust; whatever is left of the
 * client's own could be anything the client sent. A hop that names no address ends the walk with
 * `undefined`, as does a request without either header.
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

/** `text` split at each `separator` outside a quoted string. */
function split(text: string, separator: string): string[] {
  const parts: string[] = [];
  let [start, isQuoted] = [0, false];
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (char === "\\" && isQuoted) i++; // a quoted pair: the next character is taken as it is
    else if (char === '"') isQuoted = !isQuoted;
    else if (char === separator && !isQuoted) {
      parts.push(text.slice(start, i));
      start = i + 1;
    }
  }
  return [...parts, text.slice(start)];
}

/** The value of a `Forwarded` element's `for` parameter, unquoted, if it has one. */
function forParameter(element: string): string | undefined {
  for (const pair of split(element, ";")) {
    const equals = pair.indexOf("=");
    if (pair.slice(0, equals).trim().toLowerCase() !== "for") continue;
    const value = pair.slice(equals + 1).trim();
    if (!value.startsWith('"')) return value;
    return value.endsWith('"') && value.length >= 2
      ? value.slice(1, -1).replace(/\\(.)/g, "$1")
      : undefined;
  }
}

/**
 * A node as RFC 7239 writes it (`192.0.2.43`, `192.0.2.43:47011`, `[2001:db8::17]:4711`), or a
 * bare IPv6 address as X-Forwarded-For has it. A port that is not a number (obfuscated) is 0.
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

/**
 * IP addresses and address blocks (`10.0.0.0/8`, `fd00::/8`, `::1`) as `--exempt` and
 * `--trust-proxy` name them, and the sets they make. Pure: no I/O.
 */

/** One block: its first address, as 16 bytes (IPv4 mapped into IPv6), and its prefix in bits. */
interface Block {
  bytes: Uint8Array;
  bits: number;
}

/** Loopback, which `--exempt` names by default: a checker or bot on the machine itself. */
export const LOOPBACK = ["127.0.0.0/8", "::1"] as const;

/**
 * An address as 16 bytes, IPv4 as IPv4-mapped IPv6 (`::ffff:a.b.c.d`), so that an IPv4 client
 * of a dual-stack listener matches an IPv4 block; `undefined` if `text` is not an address. A zone
 * (`fe80::1%eth0`) is ignored.
 */
export function parseAddress(text: string): Uint8Array | undefined {
  const v4 = parseIpv4(text);
  if (v4) return Uint8Array.of(...Array(10).fill(0), 0xff, 0xff, ...v4);
  return parseIpv6(text.replace(/%[\w.-]+$/, ""));
}

function parseIpv4(text: string): number[] | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((part) => /^(0|[1-9]\d{0,2})$/.test(part))) return;
  const bytes = parts.map(Number);
  return bytes.every((byte) => byte <= 255) ? bytes : undefined;
}

function parseIpv6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2 || !text.includes(":")) return;
  const words = halves.map((half) => half === "" ? [] : wordsOf(half));
  if (words.some((half) => half === undefined)) return;
  const [head = [], tail = []] = words as number[][];
  const gap = 8 - head.length - tail.length;
  if (halves.length === 1 ? gap !== 0 : gap < 1) return;
  const all = [...head, ...Array(halves.length === 1 ? 0 : gap).fill(0), ...tail];
  return Uint8Array.from(all.flatMap((word) => [word >> 8, word & 0xff]));
}

/** The 16-bit words of colon-separated groups, the last of which may be a dotted IPv4 address. */
function wordsOf(groups: string): number[] | undefined {
  const parts = groups.split(":");
  const last = parts.at(-1)!;
  const v4 = last.includes(".") ? parseIpv4(last) : undefined;
  if (last.includes(".") && !v4) return;
  const hex = v4 ? parts.slice(0, -1) : parts;
  if (!hex.every((part) => /^[0-9a-f]{1,4}$/i.test(part))) return;
  const words = hex.map((part) => parseInt(part, 16));
  return v4 ? [...words, (v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!] : words;
}

/**
 * An address of 4 bytes as IPv4 (`192.0.2.7`), of 16 as IPv6 in its short form (RFC 5952:
 * `2001:db8::1`, the longest run of zero groups as `::`).
 */
export function formatAddress(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join(".");
  if (isMapped(bytes)) {
    return `::ffff:${bytes.subarray(12).join(".")}`; // IPv4 mapped, as Deno writes it
  }
  const words = Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!);
  let [run, longest] = [{ at: -1, length: 0 }, { at: -1, length: 0 }];
  words.forEach((word, i) => {
    run = word !== 0
      ? { at: -1, length: 0 }
      : { at: run.at < 0 ? i : run.at, length: run.length + 1 };
    if (run.length > longest.length) longest = run;
  });
  const hex = words.map((word) => word.toString(16));
  if (longest.length < 2) return hex.join(":");
  const head = hex.slice(0, longest.at).join(":");
  const tail = hex.slice(longest.at + longest.length).join(":");
  return `${head}::${tail}`;
}

/**
 * A block from `ADDRESS[/BITS]` (a bare address is a block of one). Bits past the prefix are
 * ignored, as nginx and HAProxy do. Throws a `TypeError` that says what is wrong.
 */
export function parseBlock(text: string): Block {
  const [address = "", bits, ...extra] = text.split("/");
  const bytes = parseAddress(address);
  const isV4 = parseIpv4(address) !== undefined;
  const most = isV4 ? 32 : 128;
  const prefix = bits === undefined ? most : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!bytes || extra.length > 0 || !(prefix <= most)) {
    throw new TypeError(
      `Invalid address block ${
        JSON.stringify(text)
      }: use ADDRESS[/BITS], as 10.0.0.0/8 or fd00::/8`,
    );
  }
  return { bytes, bits: isV4 ? 96 + prefix : prefix };
}

/** Whether 16 bytes are an IPv4 address mapped into IPv6 (`::ffff:a.b.c.d`). */
function isMapped(bytes: Uint8Array): boolean {
  return bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff &&
    bytes[11] === 0xff;
}

/**
 * Whether `address` is in `block`: its first `bits` bits are the block's. An IPv6 block wider
 * than the mapped IPv4 space (`::/0`, `::/64`) holds no IPv4 address, as in nginx: IPv4 clients
 * match IPv4 blocks (or `::ffff:` ones) only.
 */
function isWithin(address: Uint8Array, block: Block): boolean {
  if (block.bits < 96 && isMapped(address)) return false;
  const whole = block.bits >> 3;
  for (let i = 0; i < whole; i++) if (address[i] !== block.bytes[i]) return false;
  const rest = block.bits & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (address[whole]! & mask) === (block.bytes[whole]! & mask);
}

/** A set of address blocks: whether an address is in one of them. */
export class AddressSet {
  readonly #blocks: Block[];

  /** The blocks `texts` name (see {@linkcode parseBlock}, which says what throws). */
  constructor(texts: Iterable<string> = []) {
    this.#blocks = [...texts].map(parseBlock);
  }

  /** Whether the set has no block at all. */
  get isEmpty(): boolean {
    return this.#blocks.length === 0;
  }

  /** Whether `hostname` (an address as `Deno.NetAddr` gives it) is in the set. */
  has(hostname: string): boolean {
    return this.indexOf(hostname) !== -1;
  }

  /** The index (in the order given) of the first block that holds `hostname`, or -1. */
  indexOf(hostname: string): number {
    if (this.#blocks.length === 0) return -1;
    const address = parseAddress(hostname);
    return address === undefined ? -1 : this.#blocks.findIndex((block) => isWithin(address, block));
  }
}

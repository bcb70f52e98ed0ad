/** Property-based tests (fast-check) of the line splitter and of the protocol's formats and parsers. */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  cleanText,
  formatAction,
  formatHistory,
  formatJoin,
  formatLeave,
  formatPrivateFrom,
  formatPrivateTo,
  formatRename,
  formatUserLine,
  LineBuffer,
  LineSplitter,
  LineTooLongError,
  parseCommand,
  parseServerLine,
  utf8Length,
} from "../protocol.ts";

const RUNS = { numRuns: 300 };

/**
 * fast-check keeps arrays to about ten elements unless told otherwise (`size`), which made streams
 * of a few bytes: the sizes here are set so that the streams run to tens of KiB.
 *
 * Pieces of bytes that matter to the splitter: ASCII, 2- and 3-byte UTF-8, invalid and truncated
 * sequences, CR, escapes and NUL. A line's body repeats a few of them up to a chosen length, so a
 * cut at the limit can fall inside a character.
 */
const TOKENS: readonly number[][] = [
  [0x61],
  [0x7a, 0x20],
  [0xc3, 0xa9], // é
  [0xe2, 0x82, 0xac], // €
  [0xf0, 0x9f, 0x98, 0x80], // an emoji
  [0xff], // never valid
  [0xe2, 0x82], // a truncated €
  [0x0d], // a CR inside a line
  [0x1b, 0x5b, 0x33, 0x31, 0x6d], // ESC [31m
  [0x00],
];

/** The body of a line: `length` bytes of a few tokens repeated. */
function body(length: number, tokens: number[][]): number[] {
  const pattern = tokens.flat();
  return Array.from({ length }, (_, i) => pattern[i % pattern.length]!);
}

/**
 * A limit, and a stream of lines for it: lengths around the limit (one under, at, one over, a CR
 * that does or does not count) as well as short and long ones, each ended by LF, CRLF, a lone CR or
 * nothing (so it runs into the next). Up to 24 lines of up to twice a 4 KiB limit: tens of KiB.
 */
const streams = fc.oneof(
  fc.integer({ min: 1, max: 64 }),
  fc.integer({ min: 4000, max: 4200 }),
).chain((max) =>
  fc.record({
    max: fc.constant(max),
    data: fc.array(
      fc.record({
        length: fc.oneof(
          fc.integer({ min: Math.max(0, max - 3), max: max + 3 }),
          fc.integer({ min: 0, max: 16 }),
          fc.integer({ min: 0, max: 2 * max + 8 }),
        ),
        tokens: fc.array(fc.constantFrom(...TOKENS), { minLength: 1, maxLength: 4, size: "max" }),
        end: fc.constantFrom([0x0a], [0x0d, 0x0a], [0x0d], []),
      }),
      { minLength: 1, maxLength: 24, size: "max" },
    ).map((lines) =>
      new Uint8Array(lines.flatMap(({ length, tokens, end }) => [...body(length, tokens), ...end]))
    ),
  })
);

/**
 * Where to cut a stream into chunks: at random points, or also right before every LF (so every
 * CRLF is split between two chunks), or after every byte of a short stream.
 */
const cutting = fc.record({
  points: fc.array(fc.nat(), { maxLength: 64, size: "max" }),
  mode: fc.constantFrom("random", "before every LF", "every byte"),
});

/** The same bytes cut into chunks as `cuts` says. */
function chunked(data: Uint8Array, cuts: { points: number[]; mode: string }): Uint8Array[] {
  const points = new Set(cuts.points.map((cut) => cut % (data.length + 1)));
  if (cuts.mode === "before every LF") data.forEach((byte, i) => byte === 0x0a && points.add(i));
  if (cuts.mode === "every byte" && data.length <= 2000) data.forEach((_, i) => points.add(i));
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, data.length].sort((a, b) => a - b)) {
    chunks.push(data.slice(start, point));
    start = point;
  }
  return chunks;
}

/** A line, or `null` for the report of a line that was too long. */
type Split = (string | null)[];

const decoder = new TextDecoder();

/**
 * What the splitter must give for `data`, written the simple way (the whole input at once): split
 * at LF; a CR before the LF does not count; a line over `max` bytes, or over it once invalid bytes
 * become U+FFFD, is reported instead. An unended last line is dropped, or kept when asked, but one
 * already over `max` plus a CR is reported (as it arrives: it cannot end within the limit).
 */
function model(data: Uint8Array, max: number, keepPartialLine: boolean): Split {
  const lines: Split = [];
  const line = (bytes: Uint8Array) => {
    if (bytes.at(-1) === 0x0d) bytes = bytes.subarray(0, -1);
    const text = decoder.decode(bytes);
    return bytes.length > max || utf8Length(text) > max ? null : text;
  };
  let start = 0;
  for (let lf = data.indexOf(0x0a); lf !== -1; lf = data.indexOf(0x0a, start)) {
    lines.push(line(data.subarray(start, lf)));
    start = lf + 1;
  }
  const rest = data.subarray(start);
  if (rest.length > max + 1) lines.push(null);
  else if (keepPartialLine && rest.length > 0) lines.push(line(rest));
  return lines;
}

/** Feeds `chunks` to a {@linkcode LineBuffer}, reusing one buffer as the server's read loop does. */
function splitByBuffer(chunks: Uint8Array[], max: number, keepPartialLine: boolean): Split {
  const lines = new LineBuffer({ maxLineBytes: max, keepPartialLine });
  const out: Split = [];
  const scratch = new Uint8Array(Math.max(0, ...chunks.map((chunk) => chunk.length)));
  for (const chunk of chunks) {
    scratch.set(chunk);
    for (const line of lines.push(scratch.subarray(0, chunk.length))) out.push(toSplit(line));
    scratch.fill(0x3f, 0, chunk.length); // what the splitter kept must not have been a view of this
  }
  for (const line of lines.finish()) out.push(toSplit(line));
  return out;
}

function toSplit(line: string | LineTooLongError): string | null {
  return line instanceof LineTooLongError ? null : line;
}

async function splitByStream(chunks: Uint8Array[], max: number): Promise<Split> {
  const stream = ReadableStream.from(chunks).pipeThrough(new LineSplitter({ maxLineBytes: max }));
  return (await Array.fromAsync(stream)).flat().map(toSplit);
}

Deno.test("LineBuffer gives what the simple model gives, however the stream is cut into chunks", () => {
  fc.assert(
    fc.property(streams, cutting, fc.boolean(), ({ max, data }, cuts, keep) => {
      assert.deepEqual(splitByBuffer(chunked(data, cuts), max, keep), model(data, max, keep));
    }),
    RUNS,
  );
});

Deno.test("LineSplitter, the stream, gives what the model gives for any chunks", async () => {
  await fc.assert(
    fc.asyncProperty(streams, cutting, async ({ max, data }, cuts) => {
      assert.deepEqual(await splitByStream(chunked(data, cuts), max), model(data, max, false));
    }),
    { numRuns: 100 },
  );
});

Deno.test("LineBuffer never yields a line over the limit, and cleaned lines hold no control character", () => {
  fc.assert(
    fc.property(streams, cutting, ({ max, data }, cuts) => {
      for (const line of splitByBuffer(chunked(data, cuts), max, true)) {
        if (line === null) continue;
        assert.ok(utf8Length(line) <= max, `${JSON.stringify(line)} is over ${max} bytes`);
        assert.ok(!line.includes("\n"));
        assert.doesNotMatch(cleanText(line), UNSAFE);
      }
    }),
    RUNS,
  );
});

/** What no cleaned text may keep: controls, line separators and bidi overrides. */
const UNSAFE = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** Text rich in what cleanText removes: escape sequences in pieces, controls, bidi overrides. */
const messy = fc.array(
  fc.oneof(
    fc.constantFrom(
      "\x1b[",
      "\x1b]",
      "\x1b[31m",
      "\x1b]0;title\x07",
      "\x1b]52;c;aGk=\x1b\\",
      "\x07",
      "\x9b",
      "\t",
      "\r",
      "\u202e",
      "\u2066",
      "\u2028",
      "\x00",
      "\x7f",
      "31m",
      ";",
      "é",
      "hi",
    ),
    fc.string({ unit: "binary", maxLength: 8 }),
  ),
  { maxLength: 200, size: "max" },
).map((parts) => parts.join(""));

Deno.test("cleanText is idempotent and leaves no control character", () => {
  fc.assert(
    fc.property(messy, (text) => {
      const clean = cleanText(text);
      assert.equal(cleanText(clean), clean);
      assert.doesNotMatch(clean, UNSAFE);
    }),
    RUNS,
  );
});

const name = fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/);
/** What can follow a name once the server has cleaned it: anything but control characters. */
const text = fc.string({ unit: "binary", maxLength: 200 }).map(cleanText);

Deno.test("parseServerLine reads back every line the server formats", () => {
  fc.assert(
    fc.property(name, name, text, fc.date({ noInvalidDate: true }), (a, b, words, time) => {
      assert.deepEqual(parseServerLine(formatUserLine(a, words)), {
        kind: "user",
        name: a,
        text: words,
      });
      assert.deepEqual(parseServerLine(formatAction(a, words)), {
        kind: "action",
        name: a,
        text: words,
      });
      assert.deepEqual(parseServerLine(formatPrivateFrom(a, words)), {
        kind: "private",
        direction: "from",
        name: a,
        text: words,
      });
      assert.deepEqual(parseServerLine(formatPrivateTo(a, words)), {
        kind: "private",
        direction: "to",
        name: a,
        text: words,
      });
      assert.deepEqual(parseServerLine(formatRename(a, b)), {
        kind: "rename",
        oldName: a,
        newName: b,
      });
      if (time.getUTCFullYear() >= 1000 && time.getUTCFullYear() <= 9999) {
        const seconds = new Date(Math.floor(time.getTime() / 1000) * 1000);
        assert.deepEqual(parseServerLine(formatHistory(time, formatUserLine(a, words))), {
          kind: "history",
          time: seconds,
          line: { kind: "user", name: a, text: words },
        });
      }
    }),
    RUNS,
  );
});

Deno.test("no user's line or action parses as a server notice, and notices parse as notices", () => {
  fc.assert(
    fc.property(name, text, (a, words) => {
      assert.equal(parseServerLine(formatUserLine(a, words))?.kind, "user");
      assert.equal(parseServerLine(formatAction(a, words))?.kind, "action");
      assert.equal(parseServerLine(formatJoin(a))?.kind, "join");
      assert.equal(parseServerLine(formatLeave(a))?.kind, "leave");
    }),
    RUNS,
  );
});

Deno.test("parseCommand says any line without a leading / as it is, and //text as /text", () => {
  fc.assert(
    fc.property(text, (words) => {
      if (!words.startsWith("/")) {
        assert.deepEqual(parseCommand(words), { name: "say", text: words });
      }
      assert.deepEqual(parseCommand(`//${words}`), { name: "say", text: `/${words}` });
    }),
    RUNS,
  );
});

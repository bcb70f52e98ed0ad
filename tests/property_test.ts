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
  LineSplitter,
  LineTooLongError,
  parseCommand,
  parseServerLine,
  utf8Length,
} from "../protocol.ts";

const RUNS = { numRuns: 300 };

/** Bytes rich in line ends, CRs, escapes and invalid UTF-8, and some plain text. */
const bytes = fc.array(
  fc.oneof(
    fc.constantFrom(0x0a, 0x0d, 0x1b, 0x00, 0x7f, 0xff, 0xc3, 0xe2, 0x82, 0xac),
    fc.integer({ min: 0x20, max: 0x7e }),
    fc.integer({ min: 0, max: 255 }),
  ),
  { maxLength: 2000 },
).map((list) => new Uint8Array(list));

/** The same bytes cut at arbitrary points. */
function chunked(data: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (data.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let start = 0;
  for (const point of [...points, data.length]) {
    chunks.push(data.slice(start, point));
    start = point;
  }
  return chunks;
}

async function split(chunks: Uint8Array[], maxLineBytes: number): Promise<(string | null)[]> {
  const stream = ReadableStream.from(chunks).pipeThrough(new LineSplitter({ maxLineBytes }));
  return (await Array.fromAsync(stream)).flat().map((line) =>
    line instanceof LineTooLongError ? null : line
  );
}

Deno.test("LineSplitter yields the same lines however the stream is cut into chunks", async () => {
  await fc.assert(
    fc.asyncProperty(
      bytes,
      fc.array(fc.nat()),
      fc.integer({ min: 1, max: 64 }),
      async (data, cuts, max) => {
        assert.deepEqual(await split(chunked(data, cuts), max), await split([data], max));
      },
    ),
    RUNS,
  );
});

Deno.test("LineSplitter never yields a line over the limit, and cleaned lines hold no control character", async () => {
  await fc.assert(
    fc.asyncProperty(
      bytes,
      fc.array(fc.nat()),
      fc.integer({ min: 1, max: 64 }),
      async (data, cuts, max) => {
        for (const line of await split(chunked(data, cuts), max)) {
          if (line === null) continue;
          assert.ok(utf8Length(line) <= max, `${JSON.stringify(line)} is over ${max} bytes`);
          assert.ok(!line.includes("\n"));
          assert.doesNotMatch(cleanText(line), /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u);
        }
      },
    ),
    RUNS,
  );
});

Deno.test("cleanText is idempotent", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "binary" }),
      (text) => cleanText(cleanText(text)) === cleanText(text),
    ),
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

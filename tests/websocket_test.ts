/** The page socket's framing: the frame decoder, the encoder and the handshake's answer. */
import assert from "node:assert/strict";
import {
  acceptKey,
  CLOSE_CODE,
  encodeClose,
  encodeFrame,
  FrameDecoder,
  frameHeader,
  isValidKey,
  OPCODE,
} from "../server/websocket.ts";
import {
  clientFrame,
  linesOf,
  rawUpgrade,
  type ServerFrames,
  Site,
  writeAll,
  zeroMaskHeader,
} from "./_websocket.ts";
import {
  CLOSE_DEADLINE_MS,
  closeQuietly,
  joinAs,
  run,
  startServerProcess,
  TestClient,
  waitUntil,
  withDeadline,
} from "./_helpers.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Decodes `chunks` in turn with an output of `outputBytes`, as a connection's reads would. */
function decodeAll(chunks: Uint8Array[], outputBytes = 512) {
  const frames = new FrameDecoder();
  const output = new Uint8Array(outputBytes);
  let text = "";
  const controls: { opcode: number; payload: string }[] = [];
  for (const chunk of chunks) {
    for (let at = 0;;) {
      const result = frames.decode(chunk.subarray(at), output);
      at += result.read;
      text += decoder.decode(output.subarray(0, result.written), { stream: true });
      if (result.error) return { text, controls, error: result.error };
      if (result.control) {
        controls.push({
          opcode: result.control.opcode,
          payload: decoder.decode(result.control.payload),
        });
      } else if (at === chunk.length && result.written < output.length) {
        break;
      }
    }
  }
  return { text, controls, error: undefined };
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const bytes = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) bytes.set(part, offset), offset += part.length;
  return bytes;
}

/** Every split of `bytes` into single bytes: the hardest way for it to arrive. */
function bytewise(bytes: Uint8Array): Uint8Array[] {
  return [...bytes].map((byte) => new Uint8Array([byte]));
}

Deno.test("acceptKey answers the RFC's sample key, and isValidKey takes 16 bytes in base64 only", () => {
  assert.equal(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  assert.ok(isValidKey("dGhlIHNhbXBsZSBub25jZQ=="));
  for (const bad of ["", "abc", "dGhlIHNhbXBsZSBub25jZQ", "dGhlIHNhbXBsZSBub25jZXh4eA=="]) {
    assert.ok(!isValidKey(bad), bad);
  }
});

Deno.test("FrameDecoder turns text messages into lines, whole, fragmented or a byte at a time", () => {
  const stream = concat(
    clientFrame(OPCODE.text, "hello"),
    clientFrame(OPCODE.text, "é".repeat(100)), // 200 bytes: a 16-bit length
    clientFrame(OPCODE.text, "frag", { isFinal: false }),
    clientFrame(OPCODE.continuation, "men", { isFinal: false }),
    clientFrame(OPCODE.ping, "are you there"), // between fragments, as the RFC allows
    clientFrame(OPCODE.continuation, "ted"),
    clientFrame(OPCODE.text, ""),
    clientFrame(OPCODE.text, "x".repeat(70_000)), // a 64-bit length
  );
  const expected = `hello\n${"é".repeat(100)}\nfragmented\n\n${"x".repeat(70_000)}\n`;
  for (const chunks of [[stream], bytewise(stream)]) {
    for (const outputBytes of [1, 7, 512, 100_000]) {
      const { text, controls, error } = decodeAll(chunks, outputBytes);
      assert.equal(error, undefined);
      assert.equal(text, expected, `${chunks.length} chunk(s), output of ${outputBytes}`);
      assert.deepEqual(controls, [{ opcode: OPCODE.ping, payload: "are you there" }]);
    }
  }
});

Deno.test("FrameDecoder decodes in place, into the buffer it reads from, one byte behind", () => {
  const stream = concat(
    clientFrame(OPCODE.text, "a"),
    clientFrame(OPCODE.text, "bc", { isFinal: false }),
    clientFrame(OPCODE.ping, "?"),
    clientFrame(OPCODE.continuation, "d"),
    clientFrame(OPCODE.text, ""),
    clientFrame(OPCODE.text, "é".repeat(100)),
  );
  const expected = `a\nbcd\n\n${"é".repeat(100)}\n`;
  // As a connection reads: each chunk into a buffer at 1, its lines written from 0. The first
  // frame of a chunk may have had its header in the chunk before, so the LF that ends it can
  // only have the one byte of room: a chunk of one payload byte is the tightest case.
  for (const size of [1, 2, 3, 5, 8, stream.length]) {
    const frames = new FrameDecoder();
    const buffer = new Uint8Array(size + 1);
    let text = "";
    for (let at = 0; at < stream.length; at += size) {
      const chunk = stream.subarray(at, at + size);
      buffer.fill(0xff).set(chunk, 1);
      let [read, written] = [1, 0];
      while (read < 1 + chunk.length) {
        const result = frames.decode(
          buffer.subarray(read, 1 + chunk.length),
          buffer.subarray(written),
        );
        assert.equal(result.error, undefined);
        read += result.read;
        written += result.written;
      }
      text += decoder.decode(buffer.subarray(0, written), { stream: true });
    }
    assert.equal(text, expected, `chunks of ${size}`);
  }
});

Deno.test("FrameDecoder passes a long fragmented message on as it arrives, holding none of it", () => {
  const frames = new FrameDecoder();
  const output = new Uint8Array(4096);
  const piece = new Uint8Array(1024 * 1024).fill(0x61); // sent as it is under a zero mask
  let written = 0;
  const first = frames.decode(zeroMaskHeader(OPCODE.text, piece.length, false), output);
  assert.deepEqual([first.written, first.error], [0, undefined]);
  // 64 MiB in fragments of 1 MiB: every byte of each comes out before the next fragment is read.
  for (let i = 0; i < 64; i++) {
    if (i > 0) frames.decode(zeroMaskHeader(OPCODE.continuation, piece.length, false), output);
    for (let at = 0; at < piece.length;) {
      const result = frames.decode(piece.subarray(at), output);
      assert.equal(result.error, undefined);
      assert.ok(output.subarray(0, result.written).every((byte) => byte === 0x61));
      at += result.read;
      written += result.written;
    }
    assert.equal(written, (i + 1) * piece.length, "nothing of the fragment held back");
  }
  const end = concat(zeroMaskHeader(OPCODE.continuation, 1, true), new Uint8Array([0x62]));
  const last = frames.decode(end, output);
  assert.equal(decoder.decode(output.subarray(0, last.written)), "b\n");
});

Deno.test("FrameDecoder stops at what the chat refuses or the RFC forbids, with the close code", () => {
  const cases: [string, Uint8Array, number, RegExp][] = [
    ["binary", clientFrame(OPCODE.binary, "hi"), CLOSE_CODE.unsupportedData, /^Binary frames/],
    ["LF", clientFrame(OPCODE.text, "one\ntwo"), CLOSE_CODE.policyViolation, /one line/],
    ["CR", clientFrame(OPCODE.text, "one\rtwo"), CLOSE_CODE.policyViolation, /one line/],
    ["unmasked", new Uint8Array([0x81, 0x02, 0x68, 0x69]), CLOSE_CODE.protocolError, /masked/],
    [
      "reserved bits",
      new Uint8Array([0xc1, 0x80, 0, 0, 0, 0]),
      CLOSE_CODE.protocolError,
      /reserved/,
    ],
    [
      "continuation first",
      clientFrame(OPCODE.continuation, "x"),
      CLOSE_CODE.protocolError,
      /continuation/,
    ],
    [
      "text inside a message",
      concat(clientFrame(OPCODE.text, "a", { isFinal: false }), clientFrame(OPCODE.text, "b")),
      CLOSE_CODE.protocolError,
      /before the last message ended/,
    ],
    [
      "long ping",
      clientFrame(OPCODE.ping, "p".repeat(126)),
      CLOSE_CODE.protocolError,
      /control frame/,
    ],
    [
      "fragmented ping",
      clientFrame(OPCODE.ping, "p", { isFinal: false }),
      CLOSE_CODE.protocolError,
      /control frame/,
    ],
    ["unknown opcode", clientFrame(3, "x"), CLOSE_CODE.protocolError, /Unknown opcode 3/],
  ];
  for (const [what, bytes, code, message] of cases) {
    const before = clientFrame(OPCODE.text, "before");
    const { text, error } = decodeAll([concat(before, bytes, clientFrame(OPCODE.text, "after"))]);
    assert.equal(error?.code, code, what);
    assert.match(error!.message, message, what);
    assert.ok(text.startsWith("before\n") && !text.includes("after"), `${what}: ${text}`);
    assert.ok(!text.includes("two"), what);
  }
});

Deno.test("encodeFrame and frameHeader frame text of every length, and encodeClose a close frame", () => {
  for (const length of [0, 125, 126, 65_535, 65_536, 70_000]) {
    const text = "x".repeat(length);
    const frame = encodeFrame(OPCODE.text, encoder.encode(text));
    const header = frameHeader(OPCODE.text, length);
    assert.deepEqual(frame.subarray(0, header.length), header);
    assert.equal(frame[0], 0x81);
    // The server's frames are unmasked: the length is 7 bits, then 16, then 64.
    const view = new DataView(frame.buffer);
    const [declared, size] = frame[1] === 126
      ? [view.getUint16(2), 4]
      : frame[1] === 127
      ? [view.getUint32(2) * 2 ** 32 + view.getUint32(6), 10]
      : [frame[1]!, 2];
    assert.deepEqual([declared, size], [length, length < 126 ? 2 : length < 65_536 ? 4 : 10]);
    assert.equal(decoder.decode(frame.subarray(size)), text);
  }
  assert.deepEqual([...encodeClose(1003)], [0x88, 2, 0x03, 0xeb]);
});

// --- the page's socket, driven by hand over TCP ---

/** Opens the socket by hand and joins as `name`, reading up to the welcome. */
async function joinByHand(port: number, name: string) {
  const socket = await rawUpgrade(port);
  await socket.conn.write(clientFrame(OPCODE.text, name));
  await withDeadline(socket.frames.readUntil(/^\* Welcome, /), "the welcome");
  return socket;
}

/** Reads frames until the server's close frame and the end of the stream; returns the lines. */
async function linesToEnd(frames: ServerFrames): Promise<string[]> {
  const lines: string[] = [];
  for (let frame = await frames.readFrame(); frame; frame = await frames.readFrame()) {
    if (frame.opcode === OPCODE.text) lines.push(...linesOf(frame.text));
  }
  return lines;
}

Deno.test("the page's socket cuts a fragmented message at the line limit as it arrives; the member stays", async () => {
  // Flood control off, so that nothing paces the megabytes below.
  await using chat = Site.start({ maxLineBytes: 4000, floodRate: 0 });
  await using bob = await joinAs(chat.server.addr.port, "bob");
  const { conn, frames } = await joinByHand(chat.web.addr.port, "frag");
  try {
    await bob.expect("* frag has entered the room");
    // One byte over the limit, and the message not finished: the error comes now, not at its end.
    await writeAll(conn, clientFrame(OPCODE.text, "x".repeat(4002), { isFinal: false }));
    assert.equal(
      await withDeadline(frames.readLine(), "the error before the message ends"),
      "* error: Line too long: the limit is 4000 bytes",
    );
    // 16 MiB more in fragments of 1 MiB, sent as they are under a zero mask: dropped as they come.
    const piece = new Uint8Array(1024 * 1024).fill(0x79);
    for (let i = 0; i < 16; i++) {
      await writeAll(conn, zeroMaskHeader(OPCODE.continuation, piece.length, false));
      await writeAll(conn, piece);
    }
    assert.ok(chat.server.readBufferBytes <= 128 * 1024, `${chat.server.readBufferBytes} bytes`);
    await writeAll(conn, clientFrame(OPCODE.continuation, "end"));
    await writeAll(conn, clientFrame(OPCODE.text, "still here"));
    await bob.expect("[frag] still here");
    await bob.send("welcome back");
    assert.equal(await withDeadline(frames.readLine(), "bob's line"), "[bob] welcome back");
  } finally {
    closeQuietly(conn);
  }
});

Deno.test("the page's socket cuts a sender that streams a message it never ends, under the byte budget", async () => {
  // A byte budget of 8,000 bytes a second, and 3 s over it at most.
  await using chat = Site.start({ maxLineBytes: 4000, floodBurst: 2, floodRate: 2, floodLimit: 3 });
  await using bob = await joinAs(chat.server.addr.port, "bob");
  const { conn, frames } = await joinByHand(chat.web.addr.port, "slow");
  await bob.expect("* slow has entered the room");
  // A message without end, 4 KB at a time, for as long as the server takes it (64 MiB at most).
  const sending = (async () => {
    await writeAll(conn, clientFrame(OPCODE.text, "", { isFinal: false }));
    const piece = clientFrame(OPCODE.continuation, "z".repeat(4000), { isFinal: false });
    for (let i = 0; i < 64 * 1024; i++) await writeAll(conn, piece);
  })().catch(() => {}); // the server closed the socket: the end this test waits for
  try {
    const lines = await withDeadline(linesToEnd(frames), "the server to cut the sender");
    assert.deepEqual(lines, [
      "* error: Line too long: the limit is 4000 bytes",
      "* error: Disconnected for flooding",
    ]);
    await bob.expect("* slow has left the room (flooding)");
  } finally {
    closeQuietly(conn);
    await sending;
  }
});

Deno.test("the page's socket survives a 512 MiB fragmented message, in a server of bounded memory", async () => {
  const { child, port } = await startServerProcess(["--web", "127.0.0.1:0", "--flood-rate", "0"]);
  await using _ = child;
  const webPort = Number(/:(\d+)\/$/.exec(await child.stdout.readUntil(/^web page on /))![1]);
  await using bob = await joinAs(port, "bob");
  const { conn, frames } = await joinByHand(webPort, "huge");
  try {
    await bob.expect("* huge has entered the room");
    const piece = new Uint8Array(8 * 1024 * 1024).fill(0x68); // sent as it is under a zero mask
    await writeAll(conn, zeroMaskHeader(OPCODE.text, piece.length, false));
    await writeAll(conn, piece);
    for (let i = 1; i < 64; i++) {
      await writeAll(conn, zeroMaskHeader(OPCODE.continuation, piece.length, false));
      await writeAll(conn, piece);
    }
    await writeAll(conn, clientFrame(OPCODE.continuation, "", { isFinal: true }));
    await writeAll(conn, clientFrame(OPCODE.text, "after 512 MiB"));
    await bob.expect("[huge] after 512 MiB", 60_000);
    assert.equal(await frames.readLine(), "* error: Line too long: the limit is 4096 bytes");
    const status = await run("cat", [`/proc/${child.process.pid}/status`]);
    const rssKiB = Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]);
    assert.ok(rssKiB < 200 * 1024, `the server's resident memory is ${rssKiB} KiB`);
  } finally {
    closeQuietly(conn);
  }
  child.process.kill("SIGTERM");
  assert.equal((await child.finish(CLOSE_DEADLINE_MS)).code, 0);
});

Deno.test("the page's socket gets every line of a burst of 100 x 200 in order, in frames of whole lines", async () => {
  await using chat = Site.start({ floodRate: 0, maxPerAddress: 0, joinRate: 0 });
  const { conn, frames } = await joinByHand(chat.web.addr.port, "web");
  const senders: TestClient[] = [];
  try {
    for (let i = 0; i < 100; i++) senders.push(await joinAs(chat.server.addr.port, `m${i}`));
    for (let i = 0; i < 100; i++) {
      await withDeadline(
        frames.readUntil(new RegExp(`^\\* m${i} has entered the room$`)),
        "a join",
      );
    }
    const text = "x".repeat(70);
    await Promise.all(
      senders.map((sender, i) =>
        sender.write(Array.from({ length: 200 }, (_, n) => `${n} ${text} m${i}\n`).join(""))
      ),
    );
    const next = new Map<string, number>();
    let [received, longest] = [0, 0];
    const reading = (async () => {
      while (received < 100 * 200) {
        const frame = await frames.readFrame();
        assert.ok(frame, "the socket ended before every line came");
        assert.equal(frame.opcode, OPCODE.text);
        const lines = linesOf(frame.text); // fails unless the frame holds whole lines
        longest = Math.max(longest, lines.length);
        for (const line of lines) {
          const [, from, n] = /^\[(m\d+)\] (\d+) x+ (m\d+)$/.exec(line) ?? [];
          assert.ok(from, `not a chat line: ${line}`);
          assert.equal(Number(n), next.get(from) ?? 0, `out of order from ${from}`);
          next.set(from, Number(n) + 1);
          received++;
        }
      }
    })();
    await withDeadline(reading, "every line", 60_000);
    // A write to the page holds what one write to a TCP member would: many lines at once.
    assert.ok(longest > 1, "each frame held one line");
  } finally {
    closeQuietly(conn);
    for (const sender of senders) sender.close();
  }
});

/** The server's open file descriptors, from /proc. */
async function openFds(pid: number): Promise<number> {
  return (await run("ls", [`/proc/${pid}/fd`])).trim().split("\n").length;
}

Deno.test("the page's sockets that stop reading are cut and closed, not left open behind their writes", async () => {
  // Each socket is cut once its kernel buffers are full and a write has waited a second.
  const { child, port } = await startServerProcess([
    "--web",
    "127.0.0.1:0",
    "--flood-rate",
    "0",
    "--write-timeout",
    "1",
    "--max-per-address",
    "30",
    "--join-rate",
    "0",
  ]);
  await using _ = child;
  const webPort = Number(/:(\d+)\/$/.exec(await child.stdout.readUntil(/^web page on /))![1]);
  await using bob = await joinAs(port, "bob");
  const sloths: Deno.Conn[] = [];
  try {
    for (let i = 0; i < 20; i++) {
      sloths.push((await joinByHand(webPort, `sloth${i}`)).conn); // and never read again
      await bob.expect(`* sloth${i} has entered the room`);
    }
    const baseline = await openFds(child.process.pid) - 20;
    const text = "x".repeat(4000);
    let cut = 0;
    // Batches of 400 KB until all 20 are cut: more than the kernel's buffers hold for each.
    for (let batch = 0; batch < 100 && cut < 20; batch++) {
      await bob.write(`${text}\n`.repeat(100));
      await bob.send("/who"); // its answer says when the batch is through
      for (let line = await bob.readLine(); !/^\* \d+ online: /.test(line);) {
        assert.match(line, /^\* sloth\d+ has left the room \(stopped reading\)$/);
        cut++;
        // Its socket is closed at once, not after the second a socket lingers for its own last
        // frames. The descriptor goes once the runtime has dropped the stuck write, which on a
        // loaded machine can come just after the leave notice (seen: one still open at the first
        // cut): so it is waited for, a quarter of that second at most.
        let fds = 0;
        await waitUntil(
          async () => (fds = await openFds(child.process.pid)) <= baseline + 20 - cut,
          () => `${fds} fds open, ${cut} cut, ${baseline} before`,
          250,
        );
        line = await bob.readLine();
      }
    }
    assert.equal(cut, 20);
  } finally {
    for (const sloth of sloths) closeQuietly(sloth);
  }
  child.process.kill("SIGTERM");
  assert.equal((await child.finish(CLOSE_DEADLINE_MS)).code, 0);
});

Deno.test("the page's socket refuses a 60 MiB frame as it arrives, holding none of it while it is open", async () => {
  await using chat = Site.start({ maxLineBytes: 4000, floodRate: 0 });
  await using bob = await joinAs(chat.server.addr.port, "bob");
  const { conn, frames } = await joinByHand(chat.web.addr.port, "huge");
  try {
    await bob.expect("* huge has entered the room");
    const piece = new Uint8Array(1024 * 1024).fill(0x68); // sent as it is under a zero mask
    const gc = (globalThis as { gc?: () => void }).gc!;
    gc();
    const before = Deno.memoryUsage();
    // One frame of 60 MiB, its first 16 MiB sent: the error comes now, not at the frame's end.
    await writeAll(conn, zeroMaskHeader(OPCODE.text, 60 * 1024 * 1024, true));
    await writeAll(conn, piece.subarray(0, 4002));
    assert.equal(
      await withDeadline(frames.readLine(), "the error while the frame is open"),
      "* error: Line too long: the limit is 4000 bytes",
    );
    for (let i = 0; i < 16; i++) await writeAll(conn, piece);
    gc();
    const after = Deno.memoryUsage();
    const grown = after.heapUsed + after.external - before.heapUsed - before.external;
    assert.ok(grown < 4 * 1024 * 1024, `${grown} bytes more while 16 MiB of the frame came`);
    assert.ok(chat.server.readBufferBytes <= 128 * 1024, `${chat.server.readBufferBytes} bytes`);
    // The rest of it, then a line: the member stays.
    for (let sent = 4002 + 16 * piece.length; sent < 60 * 1024 * 1024;) {
      const part = piece.subarray(0, Math.min(piece.length, 60 * 1024 * 1024 - sent));
      await writeAll(conn, part);
      sent += part.length;
    }
    await writeAll(conn, clientFrame(OPCODE.text, "still here"));
    await bob.expect("[huge] still here");
  } finally {
    closeQuietly(conn);
  }
});

Deno.test("the page's socket refuses a flood of pings past 64 KiB of frames without text", async () => {
  await using chat = Site.start({});
  await using bob = await joinAs(chat.server.addr.port, "bob");
  const { conn, frames } = await joinByHand(chat.web.addr.port, "pinger");
  try {
    await bob.expect("* pinger has entered the room");
    // 128 KiB of pings of one byte, 7 bytes each: a read of the server's (511 bytes, 73 pings)
    // never ends inside one, so that each of its decodes ends at a control frame.
    const ping = clientFrame(OPCODE.ping, "p", { mask: new Uint8Array(4) });
    const flood = new Uint8Array(ping.length * Math.ceil(128 * 1024 / ping.length));
    for (let at = 0; at < flood.length; at += ping.length) flood.set(ping, at);
    // The server may close with part of the flood unread: a reset, which may cost the last lines.
    const sending = writeAll(conn, flood).catch(() => {});
    const lines = await withDeadline(
      linesToEnd(frames).catch(() => ["(reset)"]),
      "the server to cut the pinger",
    );
    await sending;
    assert.ok(
      ["* error: Over 65536 bytes of frames without text", "(reset)"].includes(lines.at(-1)!),
      lines.join("\n"),
    );
    await bob.expect("* pinger has left the room");
  } finally {
    closeQuietly(conn);
  }
});

/**
 * The load generator: chat connections that send numbered, time-stamped lines and check every line
 * they receive. It works with any of the compared servers because it finds its payload anywhere in
 * a line, whatever prefix the server put in front of it:
 *
 *   #SENDER.SEQUENCE.MICROSECONDS.CHECK
 *
 * Receivers count, per sender, lines missing, duplicated, corrupted (bad fields or check) and
 * merged (two payloads in one line). Parsing works on bytes, never on strings, so that one core
 * can take millions of lines a second and the generator is not what limits the figures.
 */
import process from "node:process";

/** How a server greets, names and relays; the generator adapts to each. */
export interface Dialect {
  /** Sends the name (if the server takes one) and resolves once the server has this client in. */
  join(client: Client, name: string): Promise<void>;
}

const LF = 0x0a;
const HASH = 0x23;
const DOT = 0x2e;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const start = performance.now();

/** Microseconds since the generator started: the send time stamp, on the receivers' own clock. */
export function nowMicros(): number {
  return Math.round((performance.now() - start) * 1000);
}

function check(sender: number, sequence: number): number {
  return (sender * 7 + sequence * 13) % 97;
}

/** One message's payload as a line (with its LF). */
export function payload(sender: number, sequence: number): string {
  return `#${sender}.${sequence}.${nowMicros()}.${check(sender, sequence)}\n`;
}

/** What all receivers counted. */
export interface Tally {
  received: number;
  missing: number;
  duplicated: number;
  corrupted: number;
  merged: number;
  /** Send-to-receipt times in microseconds, when latencies are kept. */
  latencies: number[];
  /** When the last payload arrived (performance.now()). */
  lastAt: number;
}

/** Shared by the clients of one run: where each delivery is counted. */
export class Run {
  readonly tally: Tally = {
    received: 0,
    missing: 0,
    duplicated: 0,
    corrupted: 0,
    merged: 0,
    latencies: [],
    lastAt: 0,
  };
  /** Deliveries still due per message: index sender * window + sequence % window. */
  readonly due: Int32Array;
  readonly sentBy: Int32Array;
  readonly window: number;
  readonly senders: number;
  keepLatencies = false;
  /** Called when a message has reached every receiver (for windowed senders). */
  onComplete: (sender: number) => void = () => {};
  #progress: PromiseWithResolvers<void> | undefined;

  constructor(options: { senders: number; window: number }) {
    this.senders = options.senders;
    this.window = options.window;
    this.due = new Int32Array(options.senders * options.window);
    this.sentBy = new Int32Array(options.senders);
  }

  /** Resolves at the next delivery (for waiting on progress without polling). */
  progress(): Promise<void> {
    this.#progress ??= Promise.withResolvers<void>();
    return this.#progress.promise;
  }

  delivered(sender: number, sequence: number): void {
    this.tally.received++;
    const slot = sender * this.window + (sequence % this.window);
    this.due[slot] = this.due[slot]! - 1;
    if (this.due[slot] === 0) this.onComplete(sender);
    if (this.#progress) {
      this.#progress.resolve();
      this.#progress = undefined;
    }
  }
}

/**
 * What a client needs of its connection: a TCP one, or the generator's own WebSocket
 * (`bench/websocket_client.ts`), which reads and writes lines as TCP does.
 */
export type ClientConn = Pick<Deno.Conn, "read" | "write" | "close">;

/** One connection of the generator. */
export class Client {
  readonly id: number;
  readonly conn: ClientConn;
  run: Run;
  /** Per sender, the next sequence number this client expects. */
  #next: Int32Array;
  /** Read into from `#carried` on: the start of the buffer holds the last read's partial line. */
  #buffer: Uint8Array;
  #carried = 0;
  #waiters: { prefix: Uint8Array; resolve: () => void; reject: (error: Error) => void }[] = [];
  /** The last line without a payload that came while a waiter waited: the server's reason, if it closes. */
  #lastWaitedLine = "";
  /** Why the last read failed, if it did (a reset is not a close by the server). */
  #readError = "";
  /** A client that sees this one's join announced, for servers that do not answer the joiner. */
  observer: Client | undefined;
  /** Lines without a payload that came while the client waited for none (after its join: notices). */
  notices = 0;
  /** When the connection ended (performance.now()), by either side; 0 while it is open. */
  endedAt = 0;
  /** Lines waiting for the one write in flight; they go out together in the next. */
  #queue: Uint8Array[] = [];
  #chunk: Uint8Array | undefined;
  /** Settles once everything written so far is out, or the connection failed. */
  #drained: PromiseWithResolvers<void> | undefined;
  readonly reading: Promise<void>;

  constructor(id: number, conn: ClientConn, run: Run, bufferBytes: number) {
    this.id = id;
    this.conn = conn;
    this.run = run;
    this.#next = new Int32Array(run.senders);
    this.#buffer = new Uint8Array(bufferBytes);
    this.reading = this.#read();
  }

  /** Resolves when a line without a payload starts with `prefix`. Register it before it can arrive. */
  waitFor(prefix: string): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    if (this.endedAt > 0) {
      reject(new Error(`the connection had ended before "${prefix}"`));
      return promise;
    }
    this.#waiters.push({ prefix: encoder.encode(prefix), resolve, reject });
    return promise;
  }

  /** Starts counting afresh for a new run (the connection stays). */
  reset(run: Run): void {
    this.run = run;
    this.#next = new Int32Array(run.senders);
  }

  /**
   * Writes text after what is already being written, all of it; resolves once everything written
   * so far is out. The writer is a chain of callbacks, not an async function per line, and one
   * write takes everything queued: with one write per line, at ten clients the generator spent
   * 60% of its time in write calls and was what limited the figure.
   */
  write(text: string | Uint8Array): Promise<void> {
    const bytes = typeof text === "string" ? encoder.encode(text) : text;
    this.#drained ??= Promise.withResolvers<void>();
    const { promise } = this.#drained;
    if (this.#chunk) this.#queue.push(bytes);
    else this.#writeChunk(bytes);
    return promise;
  }

  #writeChunk(chunk: Uint8Array): void {
    this.#chunk = chunk;
    this.conn.write(chunk).then(this.#wrote, this.#failed);
  }

  readonly #wrote = (written: number): void => {
    const chunk = this.#chunk!;
    if (written < chunk.length) return this.#writeChunk(chunk.subarray(written));
    if (this.#queue.length > 0) {
      // What queued while that write was out goes in the next one, as any buffered client does.
      const queue = this.#queue;
      this.#queue = [];
      if (queue.length === 1) return this.#writeChunk(queue[0]!);
      const next = new Uint8Array(queue.reduce((sum, bytes) => sum + bytes.length, 0));
      let offset = 0;
      for (const bytes of queue) {
        next.set(bytes, offset);
        offset += bytes.length;
      }
      return this.#writeChunk(next);
    }
    this.#chunk = undefined;
    this.#drained?.resolve();
    this.#drained = undefined;
  };

  readonly #failed = (error: unknown): void => {
    this.#queue = [];
    this.#chunk = undefined;
    this.#drained?.reject(error);
    this.#drained = undefined;
  };

  /**
   * Sends messages `first` to `first + count - 1` as sender `sender`, each line on its own as a
   * person types it; lines that queue behind a write in flight leave together in the next write,
   * as from any client with a send buffer. (Every server gets the same bytes; `ncat --chat` relays
   * such a chunk under one prefix, which the receivers accept, since they find a payload anywhere.)
   */
  send(sender: number, first: number, count: number): Promise<void> {
    let last: Promise<void> = Promise.resolve();
    for (let sequence = first; sequence < first + count; sequence++) {
      last = this.write(payload(sender, sequence));
    }
    return last;
  }

  /** Counts the messages a sender sent that never arrived here, once the run is over. */
  countMissing(): void {
    for (let sender = 0; sender < this.run.senders; sender++) {
      if (sender === this.id) continue;
      const gap = this.run.sentBy[sender]! - this.#next[sender]!;
      if (gap > 0) this.run.tally.missing += gap;
    }
  }

  async #read(): Promise<void> {
    try {
      while (true) {
        if (this.#buffer.length - this.#carried < 2) {
          // One line about as long as the buffer: grow it, keeping the part already read (a
          // WebSocket reads at least 2 bytes: it decodes in place, one byte behind).
          const larger = new Uint8Array(this.#buffer.length * 2);
          larger.set(this.#buffer);
          this.#buffer = larger;
        }
        const count = await this.conn.read(this.#buffer.subarray(this.#carried));
        if (count === null) return;
        this.#take(this.#carried + count);
      }
    } catch (error) {
      // Closed at the end of a run, or by the server: the counts tell what happened.
      this.#readError = error instanceof Error ? error.name : String(error);
    } finally {
      this.endedAt = performance.now();
      // A wait for a line that can no longer come fails, rather than hanging the scenario.
      for (const { prefix, reject } of this.#waiters.splice(0)) {
        const why = [
          this.#lastWaitedLine && `last line: ${this.#lastWaitedLine}`,
          this.#readError && `read failed: ${this.#readError}`,
        ].filter(Boolean).join("; ");
        const how = this.#readError ? "the connection ended" : "the server closed";
        reject(new Error(`${how} before "${decoder.decode(prefix)}"${why ? ` (${why})` : ""}`));
      }
    }
  }

  /**
   * Takes the first `length` bytes of the buffer: every whole line in them; a partial line at the
   * end is moved to the buffer's start, for the next read to complete. No allocation per read or
   * per line: a join storm is tens of millions of lines, and the generator shares the server's cores.
   */
  #take(length: number): void {
    const bytes = this.#buffer.subarray(0, length);
    const now = performance.now(); // one reading for the chunk: its lines arrived together
    let start = 0;
    // The next payload mark, found natively once for all the lines before it: a join storm is
    // tens of millions of lines without one, and a scan of each in JavaScript limited the storm.
    let hash = bytes.indexOf(HASH);
    for (let lf = bytes.indexOf(LF); lf !== -1; lf = bytes.indexOf(LF, start)) {
      if (hash !== -1 && hash < start) hash = bytes.indexOf(HASH, start);
      if (hash === -1 || hash > lf) {
        if (this.#waiters.length === 0) this.notices++;
        else this.#otherLine(bytes.subarray(start, lf));
      } else this.#line(bytes, hash, lf, now);
      start = lf + 1;
    }
    this.#carried = length - start;
    if (this.#carried > 0 && start > 0) bytes.copyWithin(0, start, length);
  }

  /** A line without a payload while a waiter waits: its prefix, or the server's last word. */
  #otherLine(line: Uint8Array): void {
    this.#lastWaitedLine = decoder.decode(line);
    for (let i = 0; i < this.#waiters.length; i++) {
      const { prefix, resolve } = this.#waiters[i]!;
      if (line.length >= prefix.length && prefix.every((byte, j) => line[j] === byte)) {
        this.#waiters.splice(i, 1);
        resolve();
        return;
      }
    }
  }

  /** Parses a payload in a single pass over its bytes, from its `#`: `#SENDER.SEQUENCE.MICROS.CHECK`. */
  #line(bytes: Uint8Array, hash: number, to: number, now: number): void {
    let i = hash;
    // Four decimal fields separated by dots; kept in locals, as this runs for every delivery.
    let sender = 0, sequence = 0, sentAt = 0, checked = 0;
    let field = 0;
    let digitsInField = 0;
    for (i++; i < to; i++) {
      const digit = bytes[i]! - 0x30;
      if (digit >= 0 && digit <= 9) {
        if (field === 0) sender = sender * 10 + digit;
        else if (field === 1) sequence = sequence * 10 + digit;
        else if (field === 2) sentAt = sentAt * 10 + digit;
        else checked = checked * 10 + digit;
        digitsInField++;
      } else if (bytes[i] === DOT && field < 3 && digitsInField > 0) {
        field++;
        digitsInField = 0;
      } else break;
    }
    let isBad = field < 3 || digitsInField === 0;
    const tally = this.run.tally;
    for (; i < to; i++) {
      const byte = bytes[i]!;
      if (byte === HASH) tally.merged++;
      if (byte !== 0x0d && byte !== 0x20) isBad = true; // anything after the payload
    }
    if (isBad || sender >= this.run.senders || checked !== check(sender, sequence)) {
      tally.corrupted++;
      return;
    }
    const expected = this.#next[sender]!;
    if (sequence < expected) {
      tally.duplicated++;
      return;
    }
    if (sequence > expected) tally.missing += sequence - expected;
    this.#next[sender] = sequence + 1;
    tally.lastAt = now;
    if (this.run.keepLatencies) tally.latencies.push(Math.round((now - start) * 1000) - sentAt);
    this.run.delivered(sender, sequence);
  }
}

/** Opens a connection with TCP_NODELAY, as every client of the comparison does. */
export async function connect(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  return conn;
}

/** This process's CPU time so far, in milliseconds (user + system). */
export function cpuMillis(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

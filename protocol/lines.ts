/** The line splitter: bytes to lines at LF or CRLF within a limit, and the errors lines cause. */

/** Longest line accepted, in UTF-8 bytes without the line end: 1000 characters of any script fit. */
export const DEFAULT_MAX_LINE_BYTES = 4096;

/** A peer broke a protocol rule; the message is safe to send back to it. */
export class ProtocolError extends Error {
  override name = "ProtocolError";
}

/** What the line splitter emits for a line longer than its limit (the line itself is dropped). */
export class LineTooLongError extends ProtocolError {
  override name = "LineTooLongError";
  /** Creates the error for the given limit in bytes. */
  constructor(readonly maxLineBytes: number) {
    super(`Line too long: the limit is ${maxLineBytes} bytes`);
  }
}

const LF = 0x0a;
const CR = 0x0d;
const encoder = new TextEncoder();

/** Options for {@linkcode LineSplitter}. */
export interface LineSplitterOptions {
  /** Longest line in bytes, without its LF or CRLF. */
  maxLineBytes?: number;
  /** Emit a last line that has no line end (stdin); a socket's half line is dropped instead. */
  keepPartialLine?: boolean;
}

/** A line from the splitter, or the mark of a line that was too long (and dropped). */
export type Line = string | LineTooLongError;

const decoder = new TextDecoder(); // stateless as used here: each line is decoded whole
const NO_LINES: Line[] = [];

/**
 * Splits bytes into lines at LF or CRLF and decodes each as UTF-8, invalid bytes becoming U+FFFD.
 * Hand-written because the web platform and `@std/streams`' `TextLineStream` have no length limit:
 * a line over `maxLineBytes` is never buffered whole; the splitter reports one
 * {@linkcode LineTooLongError} as soon as it is detected and discards the rest of that line.
 *
 * This is the splitter itself, with no stream around it: feed it each chunk, get back the lines the
 * chunk completes. The server uses it directly, as a stream per connection costs about 10 KB of heap
 * (measured), more than the whole budget of an idle connection; {@linkcode LineSplitter} wraps it.
 */
export class LineBuffer {
  #maxLineBytes: number;
  #keepPartialLine: boolean;
  #pending: Uint8Array[] | undefined;
  #pendingBytes = 0;
  #isDiscarding = false;

  /** An empty splitter with the given limit (default {@linkcode DEFAULT_MAX_LINE_BYTES}). */
  constructor(options: LineSplitterOptions = {}) {
    this.#maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.#keepPartialLine = options.keepPartialLine ?? false;
  }

  /** The lines `chunk` completes, in order. The chunk's bytes may be reused once this returns. */
  push(chunk: Uint8Array): Line[] {
    let lines = NO_LINES;
    for (let start = 0; start < chunk.length;) {
      const lf = chunk.indexOf(LF, start);
      if (lf === -1) {
        const tooLong = this.#hold(chunk.subarray(start));
        if (tooLong) (lines === NO_LINES ? lines = [] : lines).push(tooLong);
        break;
      }
      if (this.#isDiscarding) this.#isDiscarding = false;
      else (lines === NO_LINES ? lines = [] : lines).push(this.#line(chunk.subarray(start, lf)));
      start = lf + 1;
    }
    return lines;
  }

  /** At the end of the input: the last line if it has no line end and is kept, else nothing. */
  finish(): Line[] {
    return this.#keepPartialLine && this.#pendingBytes > 0
      ? [this.#line(new Uint8Array(0))]
      : NO_LINES;
  }

  /** Keeps the start of a line until its end arrives; reports it once if it is already too long. */
  #hold(part: Uint8Array): LineTooLongError | undefined {
    if (this.#isDiscarding) return;
    if (this.#pendingBytes + part.length > this.#maxLineBytes + 1) {
      // Over the limit even if a CR ends it: report now, then drop bytes up to the next LF.
      this.#pending = undefined;
      this.#pendingBytes = 0;
      this.#isDiscarding = true;
      return new LineTooLongError(this.#maxLineBytes);
    }
    (this.#pending ??= []).push(part.slice()); // copied: the caller may reuse its buffer
    this.#pendingBytes += part.length;
  }

  /** The line that `tail` ends (with what was held before it), decoded, or its too-long mark. */
  #line(tail: Uint8Array): Line {
    const length = this.#pendingBytes + tail.length;
    const parts = this.#pending;
    this.#pending = undefined;
    this.#pendingBytes = 0;
    const max = this.#maxLineBytes;
    if (length > max + 1) return new LineTooLongError(max);
    let bytes = parts ? concatBytes([...parts, tail], length) : tail;
    // A CR before the LF does not count, so the limit is checked once the line end is known.
    if (bytes.at(-1) === CR) bytes = bytes.subarray(0, -1);
    if (bytes.length > max) return new LineTooLongError(max);
    const line = decoder.decode(bytes);
    // Each invalid byte becomes a 3-byte U+FFFD; the limit holds for the decoded line too.
    if (bytes.length * 3 > max && line.includes("\ufffd") && utf8Length(line) > max) {
      return new LineTooLongError(max);
    }
    return line;
  }
}

/**
 * {@linkcode LineBuffer} as a stream: bytes in, the lines of each chunk out as one batch. A busy
 * connection delivers hundreds of lines per read, and one stream step per batch rather than per
 * line keeps the cost of the stream small.
 */
export class LineSplitter extends TransformStream<Uint8Array, Line[]> {
  /** Creates a splitter with the given limit (default {@linkcode DEFAULT_MAX_LINE_BYTES}). */
  constructor(options: LineSplitterOptions = {}) {
    const lines = new LineBuffer(options);
    super({
      transform(chunk, controller) {
        const batch = lines.push(chunk);
        if (batch.length > 0) controller.enqueue(batch);
      },
      flush(controller) {
        const batch = lines.finish();
        if (batch.length > 0) controller.enqueue(batch);
      },
    });
  }
}

/** The length of a string in UTF-8 bytes. */
export function utf8Length(text: string): number {
  return encoder.encode(text).length;
}

function concatBytes(parts: Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

/**
 * What the user typed and has not sent yet: the lines wait in the outbox and leave, each whole and
 * in order, as our copy of the server's flood control (the pacer) allows, so that the server never
 * has to delay one. A paste of any size arrives whole, only later.
 */
import {
  cleanText,
  type ClientLimits,
  DEFAULT_MAX_LINE_BYTES,
  encodeLine,
  parseCommandQuietly,
  utf8Length,
} from "../protocol.ts";
import type { Screen } from "./terminal.ts";
import type { SeenLines } from "./join_reply.ts";

/** A connection to the server. */
export type ClientConn = Deno.TcpConn | Deno.TlsConn;

/** The limits of a server that does not state its own: the defaults of ours. */
export const DEFAULT_LIMITS: Required<ClientLimits> = {
  maxLineBytes: DEFAULT_MAX_LINE_BYTES,
  floodBurst: 10,
  floodRate: 5,
};
/**
 * Our copy of the server's token bucket refills a little slower than the server's and keeps two
 * tokens in hand, so that lines bunched up on the way still find a token there: the server counts
 * from when it reads a line, and a busy server or network reads a burst late and the next line
 * early (measured: a burst read 50 ms late made the 11th line of a paste wait, at 20 a second).
 */
const PACING_MARGIN = 0.9;
const PACING_HEADROOM = 2;

/**
 * The lines waiting, the connection they go to once joined, and the state of the sending: held
 * while the server may be asking for a password, over once the user has left.
 */
export class Outbox {
  #screen: Screen;
  #seen: SeenLines;
  #limits = DEFAULT_LIMITS;
  #pacer = new Pacer({ burst: DEFAULT_LIMITS.floodBurst, rate: DEFAULT_LIMITS.floodRate });
  /** Lines typed and not sent yet, oldest first. */
  #lines: string[] = [];
  /** The connection lines go to, once joined. */
  #conn: ClientConn | undefined;
  #writing: Promise<unknown> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The user has left (end of input or `/quit` sent): the next end of the connection is theirs. */
  isLeaving = false;
  /**
   * The server keeps our place when the connection drops (we hold a resume token): leaving at the
   * end of input then says `/quit`, or the room would hear of it only when the place expires.
   */
  quitsAtEnd = false;
  #isInputOver = false;
  /** What the waiting lines wait for, when it is not the pacer: joining, reconnecting. */
  #status = "joining";
  /**
   * The server may ask for a password on the next line (after /register, /password, /unregister
   * or /nick): lines waiting are held until it has answered, so that none is taken for one.
   */
  #isHeld = false;

  /** An empty outbox, showing its lines on `screen` and keeping those said in `seen`. */
  constructor(screen: Screen, seen: SeenLines) {
    this.#screen = screen;
    this.#seen = seen;
  }

  /** A line typed or piped: refused when over the server's limit, else sent in its turn. */
  queue(line: string): void {
    if (this.#isTooLong(line) || line.trim() === "") return;
    this.#lines.push(line);
    this.pump();
  }

  /** The input ended: once the lines waiting are sent, the user leaves. */
  endInput(): void {
    this.#isInputOver = true;
    this.pump();
  }

  /** Adopts the limits the server states (a rate of 0: it has no flood control). */
  setLimits(limits: ClientLimits): void {
    this.#limits = { ...DEFAULT_LIMITS, ...limits };
    const { floodBurst, floodRate } = this.#limits;
    this.#pacer.setLimits({ burst: floodBurst, rate: limits.floodRate ? floodRate : 0 });
  }

  /** The server had to delay a line all the same: nothing more until a token is earned. */
  backOff(): void {
    this.#pacer.backOff();
  }

  /** Joined on `conn`: lines waiting from before go out now. */
  open(conn: ClientConn): void {
    this.#conn = conn;
    this.#writing = Promise.resolve();
    this.#status = "";
    this.pump();
  }

  /** A new connection is being served: nothing is held back from the last one. */
  connecting(): void {
    this.#isHeld = false;
  }

  /** The connection ended: lines wait for the next one. */
  close(): void {
    this.#conn = undefined;
    clearTimeout(this.#timer);
  }

  /** Whether lines are held until the server answers a command that may ask for a password. */
  get isHeld(): boolean {
    return this.#isHeld;
  }

  /** The server answered the command: what waits may go. */
  release(): void {
    this.#isHeld = false;
    queueMicrotask(() => this.pump());
  }

  /** Sends a line now, after what is being written, outside the outbox (a typed password). */
  sendNow(conn: ClientConn, line: string): void {
    this.#writing = this.#writing.then(() => send(conn, line)).catch(() => {});
  }

  /** Shows what the waiting lines wait for, when it is not the pacer (reconnecting, say). */
  setStatus(status: string): void {
    this.#status = status;
    this.#showWaiting();
  }

  /** Stops its timer; lines still waiting are reported. */
  stop(): void {
    clearTimeout(this.#timer);
    if (this.#lines.length > 0) {
      const count = this.#lines.length;
      this.#screen.note(`${count === 1 ? "1 line was" : `${count} lines were`} not sent`, "error");
      this.#lines = [];
    }
  }

  /** Sends what the pacer allows now, and comes back when the next token is due. */
  pump(): void {
    clearTimeout(this.#timer);
    const conn = this.#conn;
    while (conn && !this.isLeaving && !this.#isHeld && this.#lines.length > 0) {
      const wait = this.#pacer.take();
      if (wait > 0) {
        this.#timer = setTimeout(() => this.pump(), wait);
        break;
      }
      const line = this.#lines.shift()!;
      if (this.#isTooLong(line)) continue;
      this.#write(conn, line);
      this.#said(line);
      // A command that may ask for a password holds what follows until the server answers it.
      if (this.#screen.askSecret && mayPrompt(line)) this.#isHeld = true;
      if (isQuit(line)) {
        this.isLeaving = true; // the server says goodbye and closes
        this.#lines = []; // what was typed after /quit is not sent
      }
    }
    this.#showWaiting();
    if (conn && this.#isInputOver && this.#lines.length === 0 && !this.isLeaving) {
      this.isLeaving = true;
      if (this.quitsAtEnd) this.#write(conn, "/quit");
      // The server sees us leave, sends what is left, then closes; receive() then ends.
      this.#writing = this.#writing.then(() => conn.closeWrite()).catch(() => {});
    }
  }

  /**
   * Whether a line is over the server's limit, which it is then told. Checked when the line is
   * typed and again when it is sent: a line piped before the server said its limits is checked
   * against the defaults first.
   */
  #isTooLong(line: string): boolean {
    const bytes = utf8Length(line);
    if (bytes <= this.#limits.maxLineBytes) return false;
    this.#screen.note(
      `Not sent: that line is ${bytes} bytes and the server takes at most ${this.#limits.maxLineBytes}`,
      "error",
    );
    return true;
  }

  /** Shows the lines waiting, and what for: the pacer, or the connection while it is down. */
  #showWaiting(): void {
    const reason = this.#status || `the server takes ${this.#limits.floodRate} a second`;
    this.#screen.setWaiting(this.#lines, reason, this.#status !== "");
  }

  /** Lines go out in order, each whole: a write may take only part of one. */
  #write(conn: ClientConn, line: string): void {
    this.#writing = this.#writing.then(() => send(conn, line)).catch(() => {
      // The connection is gone: the read loop reports how.
    });
  }

  /** A line handed to the socket: shown as said, and kept to match the history after a loss. */
  #said(line: string): void {
    this.#screen.said(line);
    const command = commandOf(line);
    if (command?.name === "say") this.#seen.said(command.text);
    if (command?.name === "me") this.#seen.said(command.text, true);
  }
}

/**
 * The server's flood control as a token bucket of our own: `burst` lines at once, then `rate` a
 * second. A line is sent only with a token in it, so the server never has to delay one.
 */
export class Pacer {
  #burst: number;
  #rate: number;
  #tokens: number;
  #updatedAt: number;

  constructor(limits: { burst: number; rate: number }, now = performance.now()) {
    this.#burst = usableBurst(limits.burst);
    this.#rate = limits.rate;
    this.#tokens = this.#burst;
    this.#updatedAt = now;
  }

  /** Adopts the limits a server states; what was spent stays spent. */
  setLimits(limits: { burst: number; rate: number }, now = performance.now()): void {
    this.#refill(now);
    this.#burst = usableBurst(limits.burst);
    this.#rate = limits.rate;
    this.#tokens = Math.min(this.#tokens, this.#burst);
  }

  /** The server had to delay a line all the same: send nothing more until a token is earned. */
  backOff(now = performance.now()): void {
    this.#refill(now);
    this.#tokens = Math.min(this.#tokens, 0);
  }

  /** Takes a token and answers 0, or answers how many ms until there is one (taking nothing). */
  take(now = performance.now()): number {
    if (this.#rate <= 0) return 0; // the server has no flood control
    this.#refill(now);
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - this.#tokens) * 1000 / (this.#rate * PACING_MARGIN));
  }

  #refill(now: number): void {
    const earned = Math.max(0, now - this.#updatedAt) * this.#rate * PACING_MARGIN / 1000;
    this.#tokens = Math.min(this.#burst, this.#tokens + earned);
    this.#updatedAt = now;
  }
}

/** The burst we use of the server's: all but the headroom, at least one line. */
function usableBurst(burst: number): number {
  return Math.max(1, burst - PACING_HEADROOM);
}

/** Sends one line, all of it: a write may take only part of the buffer. */
export async function send(conn: Deno.Conn, line: string): Promise<void> {
  const bytes = encodeLine(line);
  for (let offset = 0; offset < bytes.length;) {
    offset += await conn.write(bytes.subarray(offset));
  }
}

/** Whether a line sent may make the server ask for a password on the next one. */
function mayPrompt(line: string): boolean {
  const command = commandOf(line);
  return command?.name === "nick" || command?.name === "password" ||
    command?.name === "unregister" || (command?.name === "register" && !command.password);
}

function isQuit(line: string): boolean {
  return commandOf(line)?.name === "quit";
}

/** The command a typed line is, read as the server reads it (cleaned first). */
function commandOf(line: string) {
  return parseCommandQuietly(cleanText(line));
}

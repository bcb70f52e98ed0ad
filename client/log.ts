/**
 * `--log FILE`: every line the screen shows, appended to a file of the user's as plain text (no
 * colors, no escapes), each after its full time stamp (ISO 8601, UTC).
 */
import type { ServerLine } from "../protocol.ts";
import { LineStyle, type NoteKind, type Screen } from "./terminal.ts";

const encoder = new TextEncoder();

/** A screen that shows through another and writes what it shows to a log file. */
export class LoggedScreen implements Screen {
  #screen: Screen;
  #file: Deno.FsFile;
  #style = new LineStyle({ color: false });
  #isBroken = false;
  askSecret?: (label: string) => Promise<string | undefined>;

  constructor(screen: Screen, file: Deno.FsFile) {
    this.#screen = screen;
    this.#file = file;
    // Only a screen that can hide what is typed asks for secrets (the session checks).
    if (screen.askSecret) this.askSecret = (label) => screen.askSecret!(label);
  }

  show(line: string, parsed: ServerLine | undefined): void {
    this.#screen.show(line, parsed);
    if (parsed?.kind === "limits") return; // for pacing, not for people
    const time = this.#style.stamp(parsed);
    this.#write(time, ...this.#style.render(parsed ?? { kind: "system", text: line }));
  }

  note(text: string, kind: NoteKind): void {
    this.#screen.note(text, kind);
    this.#write(new Date(), kind === "error" ? "!" : "-", text);
  }

  setWaiting(lines: readonly string[], reason: string, isOffline: boolean): void {
    this.#screen.setWaiting(lines, reason, isOffline);
  }

  said(line: string): void {
    this.#screen.said(line);
    const said = this.#style.said(line);
    if (said) this.#write(new Date(), ...said);
  }

  setName(name: string): void {
    this.#screen.setName(name);
    this.#style.name = name;
  }

  input(): AsyncIterable<string> {
    return this.#screen.input();
  }

  close(): void {
    this.#screen.close();
    try {
      this.#file.close();
    } catch {
      // Already closed.
    }
  }

  /** One line of the log; a log that fails (a full disk) is given up, once, and the chat goes on. */
  #write(time: Date, mark: string, body: string): void {
    if (this.#isBroken) return;
    const bytes = encoder.encode(`${time.toISOString()} ${mark} ${body}\n`);
    try {
      for (let offset = 0; offset < bytes.length;) {
        offset += this.#file.writeSync(bytes.subarray(offset));
      }
    } catch (error) {
      this.#isBroken = true;
      this.#screen.note(`Stopped writing the log: ${(error as Error).message}`, "error");
    }
  }
}

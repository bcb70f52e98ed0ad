/** The keyboard's lines, queued for the session to read as they are typed. */

/** A queue of lines from the keyboard, read by the session. */
export class InputQueue {
  #lines: string[] = [];
  #wake: (() => void) | undefined;
  #isDone = false;

  push(line: string): void {
    if (this.#isDone) return; // typed after leaving: there is no one to send it
    this.#lines.push(line);
    this.#wake?.();
  }

  end(): void {
    this.#isDone = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    while (true) {
      const line = this.#lines.shift();
      if (line !== undefined) {
        yield line;
        continue;
      }
      if (this.#isDone) return;
      await new Promise<void>((resolve) => this.#wake = resolve);
      this.#wake = undefined;
    }
  }
}

/**
 * The banner over the conversation: why the connection is down, a button, and a countdown. It is a
 * live region: what changes in it is said by screen readers, so a text is set only when it is new,
 * and the countdown's digits sit in an `aria-hidden` span (said once, not each second).
 */
export class Banner {
  readonly #root: HTMLElement;
  readonly #text: HTMLElement;
  readonly #count: HTMLElement;
  readonly #button: HTMLButtonElement;

  constructor(root: HTMLElement, text: HTMLElement, count: HTMLElement, button: HTMLButtonElement) {
    this.#root = root;
    this.#text = text;
    this.#count = count;
    this.#button = button;
  }

  /** The banner with `text` and a button, if any. */
  show(text: string, action?: string, onAction?: () => void): void {
    if (this.#text.textContent !== text) this.#text.textContent = text;
    this.#count.textContent = "";
    this.#root.hidden = false;
    this.#button.hidden = action === undefined;
    if (action !== undefined && this.#button.textContent !== action) {
      this.#button.textContent = action;
    }
    this.#button.onclick = onAction ?? null;
  }

  /** The countdown after the text, for the eye. */
  count(text: string): void {
    this.#count.textContent = text;
  }

  hide(): void {
    this.#root.hidden = true;
    this.#button.onclick = null;
  }
}

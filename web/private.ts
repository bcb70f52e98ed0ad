/// <reference lib="dom" />
/**
 * Private conversations beside the room: a button per person you exchanged private messages with,
 * counting those you have not seen; choosing one shows only that conversation, and a plain line
 * typed there goes to that person.
 */
import { nameKey } from "../protocol.ts";

/** People with a conversation of their own; more and the oldest ones' buttons go (not their lines). */
const MAX_PEOPLE = 50;

export class Conversations {
  /** The person's key → their name as last seen and the lines of theirs not seen. */
  #people = new Map<string, { name: string; unseen: number; button: HTMLButtonElement }>();
  /** The key of the person whose conversation is shown; "" for the room. */
  #current = "";
  readonly #nav: HTMLElement;
  readonly #room: HTMLButtonElement;
  readonly #log: HTMLElement;

  constructor(nav: HTMLElement, room: HTMLButtonElement, log: HTMLElement) {
    this.#nav = nav;
    this.#room = room;
    this.#log = log;
    room.addEventListener("click", () => this.select(""));
  }

  /** The name of the person whose conversation is shown, or undefined for the room. */
  get person(): string | undefined {
    return this.#people.get(this.#current)?.name;
  }

  /**
   * A line just added to the log: a private one (with `peer`) belongs to that person's
   * conversation, counted as unseen unless it is shown; any line is hidden unless it belongs to
   * what is shown.
   */
  add(item: HTMLElement, peer?: string, isFromThem = false): void {
    if (peer !== undefined) {
      const key = nameKey(peer);
      item.dataset.peer = key;
      const person = this.#person(key, peer);
      if (isFromThem && key !== this.#current) person.unseen++;
      this.#label(key);
    }
    item.hidden = this.#current !== "" && item.dataset.peer !== this.#current;
  }

  /** Shows the conversation with the person of `key`, or the room for "". */
  select(key: string): void {
    this.#current = this.#people.has(key) ? key : "";
    const person = this.#people.get(this.#current);
    if (person) person.unseen = 0;
    for (const item of this.#log.children) {
      (item as HTMLElement).hidden = this.#current !== "" &&
        (item as HTMLElement).dataset.peer !== this.#current;
    }
    this.#room.setAttribute("aria-pressed", String(this.#current === ""));
    for (const key of this.#people.keys()) this.#label(key);
  }

  /**
   * Someone took another name (`/nick`): their conversation, its lines and its unseen count follow
   * them, joining the one under the new name if there was one.
   */
  rename(oldName: string, newName: string): void {
    const [from, to] = [nameKey(oldName), nameKey(newName)];
    const person = this.#people.get(from);
    if (!person) return;
    const other = this.#people.get(to);
    if (from !== to) {
      this.#people.delete(from);
      for (const item of this.#log.children) {
        if ((item as HTMLElement).dataset.peer === from) (item as HTMLElement).dataset.peer = to;
      }
    }
    if (other && other !== person) {
      other.unseen += person.unseen;
      person.button.remove();
    } else {
      person.button.dataset.peer = to;
      this.#people.set(to, person);
    }
    this.#people.get(to)!.name = newName;
    this.select(this.#current === from ? to : this.#current);
  }

  /** Forgets every conversation (a new join), back to the room. */
  clear(): void {
    for (const { button } of this.#people.values()) button.remove();
    this.#people.clear();
    this.select("");
  }

  #person(key: string, name: string): { name: string; unseen: number; button: HTMLButtonElement } {
    let person = this.#people.get(key);
    if (!person) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.peer = key;
      // The key is read when clicked: it follows the person's renames.
      button.addEventListener("click", () => this.select(button.dataset.peer ?? ""));
      this.#nav.append(button);
      person = { name, unseen: 0, button };
      this.#people.set(key, person);
      if (this.#people.size > MAX_PEOPLE) {
        const [oldest] = this.#people.keys();
        if (oldest !== undefined && oldest !== this.#current) {
          this.#people.get(oldest)?.button.remove();
          this.#people.delete(oldest);
        }
      }
    }
    person.name = name;
    return person;
  }

  /** A person's button: their name, and how many of their lines are unseen. */
  #label(key: string): void {
    const person = this.#people.get(key);
    if (!person) return;
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = person.unseen > 0 ? String(person.unseen) : "";
    count.hidden = person.unseen === 0;
    person.button.replaceChildren(person.name, count);
    person.button.setAttribute("aria-pressed", String(key === this.#current));
    person.button.setAttribute(
      "aria-label",
      person.unseen > 0 ? `${person.name}, ${person.unseen} unread` : person.name,
    );
  }
}

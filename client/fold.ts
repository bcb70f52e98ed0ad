/**
 * A storm of joins and leaves (a server restart, a netsplit healing) folded: the first notice of a
 * second is shown at once; those that follow within that second are held, then shown as one line
 * per kind (`* 37 joined: alice, bob, … (/who for all)`) when the second ends or another line comes.
 */
import type { ServerLine } from "../protocol.ts";

/** How long a storm's notices are gathered after the first. */
export const FOLD_WINDOW_MS = 1000;
/** Fewer held notices than this are shown one by one. */
const FOLD_AT = 3;
/** Names a folded line lists before `…`. */
const NAMES_SHOWN = 5;

type Notice = ServerLine & { kind: "join" | "leave" };

/** What a screen shows: a server line as it came, or a folded line (a system line). */
export type ShowNotice = (line: string, parsed: ServerLine) => void;

/** Gathers a storm's notices; the screen calls it with every line and shows what it passes on. */
export class NoticeFold {
  #show: ShowNotice;
  #held: { line: string; parsed: Notice }[] = [];
  #window: ReturnType<typeof setTimeout> | undefined;

  constructor(show: ShowNotice) {
    this.#show = show;
  }

  /** Whether the fold took `parsed` (to show later); otherwise the screen shows it now. */
  take(line: string, parsed: ServerLine | undefined): boolean {
    if (parsed?.kind !== "join" && parsed?.kind !== "leave") {
      this.flush();
      return false;
    }
    if (this.#window === undefined) {
      this.#window = setTimeout(() => this.flush(), FOLD_WINDOW_MS);
      return false;
    }
    this.#held.push({ line, parsed });
    return true;
  }

  /** Shows what is held (folded when many) and ends the window. */
  flush(): void {
    clearTimeout(this.#window);
    this.#window = undefined;
    const held = this.#held;
    this.#held = [];
    if (held.length < FOLD_AT) {
      for (const { line, parsed } of held) this.#show(line, parsed);
      return;
    }
    for (const [kind, verb] of [["join", "joined"], ["leave", "left"]] as const) {
      const names = held.filter(({ parsed }) => parsed.kind === kind).map(({ parsed }) =>
        parsed.name
      );
      if (names.length === 0) continue;
      const text = foldedText(verb, names);
      this.#show(`* ${text}`, { kind: "system", text });
    }
  }
}

/** `37 joined: alice, bob, … (/who for all)`, or every name when they are few. */
export function foldedText(verb: string, names: string[]): string {
  const shown = names.slice(0, NAMES_SHOWN).join(", ");
  const more = names.length > NAMES_SHOWN ? ", … (/who for all)" : "";
  return `${names.length} ${verb}: ${shown}${more}`;
}

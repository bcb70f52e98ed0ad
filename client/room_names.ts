/**
 * Who is in the room as the terminal client knows it, from what the room says: the names that Tab
 * completes (the others'), and who is an operator, ourselves included once we are one.
 */
import {
  nameKey,
  OPERATOR_WELCOME,
  parseOperatorChange,
  parsePutOut,
  type ServerLine,
} from "../protocol.ts";

/** The names of the room and its operators, kept from the server's lines. */
export class RoomNames {
  #names = new Map<string, string>();
  /** The keys of the names we know to be operators. */
  #operators = new Set<string>();
  #own: () => string;

  /** `own` answers our current name, which Tab does not offer. */
  constructor(own: () => string) {
    this.#own = own;
  }

  /** The others' names, as they write them. */
  names(): Iterable<string> {
    return this.#names.values();
  }

  /** Whether we are an operator, as far as the room told us. */
  get isOperator(): boolean {
    return this.#operators.has(nameKey(this.#own()));
  }

  /** Updates both from one line of the server's. */
  apply(line: string, parsed: ServerLine | undefined): void {
    if (parsed) this.#trackNames(parsed);
    this.#trackOperators(line, parsed);
  }

  #trackNames(line: ServerLine): void {
    const add = (name: string) => {
      if (nameKey(name) !== nameKey(this.#own())) this.#names.set(nameKey(name), name);
    };
    switch (line.kind) {
      case "room":
      case "who":
        if (!line.isContinued) this.#names.clear();
        line.names.forEach(add);
        break;
      case "join":
      case "user":
      case "action":
        add(line.name);
        break;
      case "leave":
        this.#names.delete(nameKey(line.name));
        break;
      case "rename":
        this.#names.delete(nameKey(line.oldName));
        add(line.newName);
        break;
    }
  }

  /**
   * Operators come from the room list, `/who` and the notices of operators made and unmade. We are
   * one when the server says so after the welcome (the room list leaves us out), when `/who` marks
   * us, or when a notice names us.
   */
  #trackOperators(line: string, parsed: ServerLine | undefined): void {
    if (parsed?.kind === "room" || parsed?.kind === "who") {
      if (!parsed.isContinued) this.#operators.clear();
      for (const name of parsed.operators) this.#operators.add(nameKey(name));
    } else if (parsed?.kind === "rename") {
      // An operator is a registered name, not a person: the next /who says whether the new one is.
      this.#operators.delete(nameKey(parsed.oldName));
    } else if (parsed?.kind === "system") {
      // A kick's or a ban's notice stands for the leave notices of those it put out.
      for (const name of parsePutOut(line) ?? []) this.#names.delete(nameKey(name));
      if (line === OPERATOR_WELCOME) this.#operators.add(nameKey(this.#own()));
      const change = parseOperatorChange(line);
      if (change?.isOperator) this.#operators.add(nameKey(change.name));
      else if (change) this.#operators.delete(nameKey(change.name));
    }
  }
}

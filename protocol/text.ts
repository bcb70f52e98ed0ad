/**
 * The text rules every part of the protocol shares: a clean line, a valid name, a value quoted in
 * an error, and the shape of the server's own lines.
 */
import { stripVTControlCharacters } from "node:util";
import { ProtocolError } from "./lines.ts";

/** Longest name, in characters (all ASCII, so also bytes). */
export const MAX_NAME_LENGTH = 32;

// C0 and C1 controls and DEL, Unicode line separators, and the bidi overrides that can make a line
// read as something else ("Trojan Source"). Tabs become spaces first.
const UNSAFE_CHARACTERS = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
const ANY_UNSAFE = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;

/** Whether a text holds a control character, a line separator or a bidi override. */
export function hasUnsafeCharacters(text: string): boolean {
  return ANY_UNSAFE.test(text);
}

/** Removes terminal escapes (ANSI CSI, OSC) and every other control character from a line. */
export function cleanText(text: string): string {
  if (!ANY_UNSAFE.test(text)) return text; // the common case, checked in one pass
  return stripVTControlCharacters(text.replaceAll("\t", " ")).replace(UNSAFE_CHARACTERS, "");
}

const NAME_PATTERN = /^[A-Za-z0-9_-]+$/;

/**
 * Checks a requested name (surrounding spaces are ignored) and returns it.
 * Throws a {@linkcode ProtocolError} that explains the rule when it is not a valid name.
 */
export function parseName(line: string): string {
  const name = cleanText(line).trim();
  if (name.length === 0) {
    throw new ProtocolError(
      `Cannot accept an empty name: send 1 to ${MAX_NAME_LENGTH} letters, digits, "_" or "-"`,
    );
  }
  if (name.length > MAX_NAME_LENGTH) {
    throw new ProtocolError(
      `Cannot accept name ${quote(name)}: a name has at most ${MAX_NAME_LENGTH} characters`,
    );
  }
  if (!NAME_PATTERN.test(name)) {
    throw new ProtocolError(
      `Cannot accept name ${quote(name)}: use only ASCII letters, digits, "_" and "-"`,
    );
  }
  return name;
}

/** Quotes a value for an error message, shortened so that an echo never floods the reader. */
export function quote(value: string): string {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
}

/** A line from the server itself: `* text`. */
export function formatSystemLine(text: string): string {
  return `* ${text}`;
}

/** An error for the one peer that caused it. */
export function formatError(message: string): string {
  return formatSystemLine(`error: ${message}`);
}

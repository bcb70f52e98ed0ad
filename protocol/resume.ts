/**
 * Resuming a place in the room: the line a client sends instead of its name to ask for a resume
 * token (or to use one), and the line the server answers with. A client that never asks (nc) sees
 * none of it.
 */
import { formatSystemLine, parseName } from "./text.ts";

/** Random bytes in a token: 144 bits, past any guessing within a grace period. */
export const RESUME_TOKEN_BYTES = 18;

/** A token as sent: base64url of {@linkcode RESUME_TOKEN_BYTES} bytes, no padding. */
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{24}$/;

/** A new token's text, from `RESUME_TOKEN_BYTES` random bytes (crypto.getRandomValues). */
export function encodeResumeToken(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** What a client asks with its first line `/resume NAME [TOKEN]`. */
export interface ResumeRequest {
  name: string;
  /** The token of the place to come back to; none: join afresh, and keep my place if I drop. */
  token?: string;
}

/**
 * The first line a client sends to join as `name` and be given a token (no `token`), or to come
 * back to its place with the token it was given. A name that is no name goes alone, to be refused.
 */
export function formatResume(name: string, token?: string): string {
  let valid: string;
  try {
    valid = parseName(name);
  } catch {
    return name; // sent as it is, for the server's own word on what is wrong with it
  }
  return token ? `/resume ${valid} ${token}` : `/resume ${valid}`;
}

/**
 * A first line `/resume NAME [TOKEN]`, or undefined if the line is not one (then it is a name). A
 * ProtocolError for a bad name; a token that is not one is treated as none that is valid.
 */
export function parseResume(line: string): ResumeRequest | undefined {
  const words = line.trim().split(/ +/);
  if (words[0] !== "/resume" || words.length < 2 || words.length > 3) return undefined;
  const name = parseName(words[1]!);
  const token = words[2];
  return token === undefined ? { name } : { name, token };
}

/** Whether a token has the shape the server gives (anything else cannot be one of its tokens). */
export function isResumeToken(token: string): boolean {
  return TOKEN_PATTERN.test(token);
}

const TOKEN_LINE = /^\* Resume token: ([A-Za-z0-9_-]{24}) /;

/** The line after the welcome that gives a member its token, good for `graceSeconds` after a drop. */
export function formatResumeToken(token: string, graceSeconds: number): string {
  return formatSystemLine(
    `Resume token: ${token} (your place is kept ${graceSeconds} s if the connection drops)`,
  );
}

/** The token a line gives (see {@linkcode formatResumeToken}), if it is that line. */
export function parseResumeToken(line: string): string | undefined {
  return TOKEN_LINE.exec(line)?.[1];
}

/** Said to a member who came back to its place: the room did not see it leave. */
export function formatResumed(missed: number): string {
  const kept = missed === 0 ? "" : `; ${missed} private line(s) sent to you meanwhile follow`;
  return formatSystemLine(
    `Resumed: the room did not see you leave; what was said meanwhile is in the history above${kept}`,
  );
}

/** Said when a token no longer holds a place (expired, used, or the place was given up). */
export function formatResumeFailed(name: string): string {
  return formatSystemLine(`Could not resume ${name}: that place is no longer kept; joining anew`);
}

/** Whether a line is {@linkcode formatResumeFailed}'s: the token the client sent is dead. */
export function isResumeFailed(line: string): boolean {
  return /^\* Could not resume [A-Za-z0-9_-]{1,32}: that place is no longer kept; joining anew$/
    .test(line);
}

/** Said to a connection whose member came back on another connection with its token. */
export const RESUMED_ELSEWHERE = "* You resumed this place on another connection";

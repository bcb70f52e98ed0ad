/// <reference lib="dom" />
/**
 * This tab's place in the room, `{ name, token }`: the server's resume token, never a password.
 * In session storage, which a reload keeps and closing the tab forgets.
 */

const RESUME_STORE = "chat.resume";

/** Keeps `name`'s resume token for a reload of this tab (undefined: forgets it). */
export function keepPlace(name: string, token: string | undefined): void {
  try {
    if (token === undefined) sessionStorage.removeItem(RESUME_STORE);
    else sessionStorage.setItem(RESUME_STORE, JSON.stringify({ name, token }));
  } catch {
    // Storage refused (private mode, quota): a reload then joins anew, nothing worse.
  }
}

/** The place this tab kept before a reload, if it did. */
export function keptPlace(): { name: string; token: string } | undefined {
  try {
    const kept = JSON.parse(sessionStorage.getItem(RESUME_STORE) ?? "null");
    if (typeof kept?.name === "string" && typeof kept?.token === "string") return kept;
  } catch {
    // Nothing usable kept: join as usual.
  }
}

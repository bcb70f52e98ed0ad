/**
 * What the page remembers in local storage (the name, whether names here are registered). Storage
 * may refuse (private mode, quota, a policy): the page then works as if nothing were remembered,
 * and never stops for it.
 */

/** Remembers `value` under `key`, if storage lets it. */
export function keepLocally(key: string, value: string): void {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Not remembered: the next visit starts without it, nothing worse.
  }
}

/** What is remembered under `key`, if anything (and if storage lets it be read). */
export function keptLocally(key: string): string | undefined {
  try {
    return localStorage.getItem(key) ?? undefined;
  } catch {
    return undefined;
  }
}

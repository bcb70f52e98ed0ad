/**
 * Mentions, with no DOM: whether a line says your name, and the tab title that counts them apart
 * from other unread lines. The desktop notification is web/notify.ts.
 */

/** Whether `text` says `name` as a word (not inside a longer name), in any case. */
export function mentions(text: string, name: string): boolean {
  if (name === "") return false;
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![\\p{L}\\p{N}_-])${escaped}(?![\\p{L}\\p{N}_-])`, "iu").test(text);
}

/** The tab's title with what came while it was hidden: `@2 (5) chat` for 2 mentions, 5 others. */
export function tabTitle(base: string, unread: number, mentioned: number): string {
  const parts = [mentioned > 0 ? `@${mentioned}` : "", unread > 0 ? `(${unread})` : "", base];
  return parts.filter((part) => part !== "").join(" ");
}

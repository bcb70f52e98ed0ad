/** The row the terminal client shows between lines said on different days. */

/** English names in the order the issue asks for (`Tuesday 8 December`), whatever the locale. */
const DAY_PARTS = new Intl.DateTimeFormat("en-GB", {
  weekday: "long",
  day: "numeric",
  month: "long",
  year: "numeric",
});

/** The local day of a time, to tell when the date must be shown. */
export function dayKey(time: Date): string {
  return `${time.getFullYear()}-${time.getMonth() + 1}-${time.getDate()}`;
}

/** `Tuesday 8 December`, with the year after it only when it is not the year of `now`. */
export function dayName(time: Date, now: Date): string {
  const parts = DAY_PARTS.formatToParts(time);
  const part = (type: Intl.DateTimeFormatPartTypes) =>
    parts.find((entry) => entry.type === type)?.value ?? "";
  const name = `${part("weekday")} ${part("day")} ${part("month")}`;
  return time.getFullYear() === now.getFullYear() ? name : `${name} ${part("year")}`;
}

/**
 * `──── Tuesday 8 December ────`, or `──── Today ────` for the history's lines of today. A live
 * line past midnight (`isLive`) names its day: "Today" would not say which, read later.
 */
export function dayLine(time: Date, now: Date, options: { isLive?: boolean } = {}): string {
  const isToday = dayKey(time) === dayKey(now) && !options.isLive;
  return `──── ${isToday ? "Today" : dayName(time, now)} ────`;
}

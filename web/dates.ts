/**
 * Days on the page, with no DOM: the local day a line was said on, and when the conversation needs
 * a day separator (`Saturday, December 5`) before it.
 */

/** The local calendar day of `time`, as `YYYY-MM-DD`: what a separator's `datetime` says. */
export function dayKey(time: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${time.getFullYear()}-${pad(time.getMonth() + 1)}-${pad(time.getDate())}`;
}

/**
 * The day a separator before a line said at `time` names, or undefined for none: when the day
 * changes from the line before (`previous`, its day key), also for live lines past midnight; and
 * before the first line when it is not from today, so that today's lines alone need none.
 */
export function separatorDay(
  previous: string | undefined,
  time: Date,
  now: Date = new Date(),
): string | undefined {
  const day = dayKey(time);
  if (previous === undefined) return day === dayKey(now) ? undefined : day;
  return day === previous ? undefined : day;
}

const dayName = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  month: "long",
  day: "numeric",
});
const dayNameWithYear = new Intl.DateTimeFormat(undefined, {
  weekday: "long",
  year: "numeric",
  month: "long",
  day: "numeric",
});

/** A separator's words: `Today`, `Yesterday`, or the day's name and date (the year if not this one). */
export function dayLabel(time: Date, now: Date = new Date()): string {
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (dayKey(time) === dayKey(now)) return "Today";
  if (dayKey(time) === dayKey(yesterday)) return "Yesterday";
  return (time.getFullYear() === now.getFullYear() ? dayName : dayNameWithYear).format(time);
}

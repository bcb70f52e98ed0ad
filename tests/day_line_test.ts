/** The row between lines said on different days, as the terminal client shows it. */
import assert from "node:assert/strict";
import { dayKey, dayLine } from "../client/day_line.ts";

Deno.test("dayLine names the weekday, day and month, the year only when it is not this year's", () => {
  const now = new Date(2026, 11, 9, 10, 30);
  assert.equal(dayLine(new Date(2026, 11, 8, 23, 59), now), "──── Tuesday 8 December ────");
  assert.equal(dayLine(new Date(2026, 0, 1, 0, 0), now), "──── Thursday 1 January ────");
  assert.equal(dayLine(new Date(2025, 11, 31, 12), now), "──── Wednesday 31 December 2025 ────");
  assert.equal(dayLine(new Date(2027, 0, 2, 12), now), "──── Saturday 2 January 2027 ────");
  // Today's history says so; a live line past midnight names its day, to be read later.
  assert.equal(dayLine(new Date(2026, 11, 9, 0, 1), now), "──── Today ────");
  assert.equal(dayLine(now, now, { isLive: true }), "──── Wednesday 9 December ────");
});

Deno.test("dayKey tells local days apart, and only days", () => {
  assert.equal(dayKey(new Date(2026, 11, 8, 0, 0)), dayKey(new Date(2026, 11, 8, 23, 59, 59)));
  assert.notEqual(dayKey(new Date(2026, 11, 8, 23, 59)), dayKey(new Date(2026, 11, 9, 0, 0)));
  assert.notEqual(dayKey(new Date(2026, 0, 8)), dayKey(new Date(2025, 0, 8)));
  assert.notEqual(dayKey(new Date(2026, 0, 8)), dayKey(new Date(2026, 1, 8)));
});

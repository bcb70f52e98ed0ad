/**
 * Days on the page: separators between the days lines were said on, and the full date and time
 * in the tooltip of every time stamp. The days come from a real store's history, written with
 * `sqlite3` at times of the test's choosing: no clock is waited for or faked.
 */
import assert from "node:assert/strict";
import { dayKey, dayLabel, separatorDay } from "../web/dates.ts";
import { joinAs, startServerProcess } from "./_helpers.ts";
import { Chromium, joinPage, say, waitForLine } from "./_browser.ts";
import { Folder, sqlite } from "./_store.ts";

Deno.test("separatorDay names a new day, also past midnight, and today's first line needs none", () => {
  const now = new Date(2026, 11, 8, 9, 30);
  assert.equal(separatorDay(undefined, now, now), undefined);
  assert.equal(separatorDay(undefined, new Date(2026, 11, 6, 23, 0), now), "2026-12-06");
  assert.equal(separatorDay("2026-12-06", new Date(2026, 11, 6, 23, 59), now), undefined);
  assert.equal(separatorDay("2026-12-07", new Date(2026, 11, 8, 0, 0, 5), now), "2026-12-08");
  assert.equal(dayKey(new Date(2026, 0, 2, 0, 0)), "2026-01-02");
  assert.equal(dayLabel(new Date(2026, 11, 8, 1), now), "Today");
  assert.equal(dayLabel(new Date(2026, 11, 7, 23), now), "Yesterday");
  assert.match(dayLabel(new Date(2026, 11, 5, 12), now), /5/);
  assert.match(dayLabel(new Date(2025, 11, 5, 12), now), /2025/);
});

Deno.test("page: history from earlier days comes under day separators, and the tooltip of every time stamp has the full date", async () => {
  await using folder = await Folder.make();
  {
    // The server makes the store; then lines said on two earlier days are written into it.
    const { child } = await startServerProcess(["--store", folder.file], folder.permissions);
    await child[Symbol.asyncDispose]();
  }
  const today = new Date();
  const twoDaysAgo = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 2, 10, 15);
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1, 22, 40);
  await sqlite(
    folder.file,
    `INSERT INTO history (at, line) VALUES (${twoDaysAgo.getTime()}, '[bob] two days ago'),
      (${yesterday.getTime()}, '[bob] yesterday evening'),
      (${yesterday.getTime() + 60_000}, '[bob] later that evening');`,
  );
  const { child, port } = await startServerProcess(
    ["--store", folder.file, "--web", "127.0.0.1:0"],
    folder.permissions,
  );
  await using _server = child;
  const url = /^web page on (\S+)$/.exec(await child.stdout.readUntil(/^web page on /))![1]!;
  await using chromium = await Chromium.launch();
  const page = await chromium.open(url);
  await joinPage(page, "reader");
  await say(page, "a second line today");
  await waitForLine(page, "a second line today");
  // A live line of someone else's and a private one: time stamped as well.
  await using bob = await joinAs(port, "bob");
  await bob.send("live from bob");
  await bob.send("/msg reader a private line");
  await waitForLine(page, "a private line");

  const log = await page.$$eval("#log li", (items) =>
    items.map((item) => ({
      isDay: item.classList.contains("day"),
      day: item.classList.contains("day") ? item.querySelector("time")?.dateTime : undefined,
      text: item.textContent ?? "",
    })));
  const days = log.filter((item) => item.isDay);
  assert.deepEqual(days.map((item) => item.day), [
    dayKey(twoDaysAgo),
    dayKey(yesterday),
    dayKey(today),
  ]);
  assert.deepEqual(days.slice(1).map((item) => item.text), ["Yesterday", "Today"]);
  // Each separator comes right before the first line of its day.
  const after = (day: string) => log[log.findIndex((item) => item.day === day) + 1]?.text ?? "";
  assert.match(after(dayKey(twoDaysAgo)), /two days ago/);
  assert.match(after(dayKey(yesterday)), /yesterday evening/);
  assert.match(after(dayKey(today)), /Welcome, reader!/);
  // Lines of the same day have none between them.
  const texts = log.map((item) => item.text);
  const evening = texts.findIndex((text) => text.includes("yesterday evening"));
  assert.match(texts[evening + 1] ?? "", /later that evening/);
  const own = texts.findIndex((text) => text.includes("a second line today"));
  assert.match(texts[own - 1] ?? "", /Welcome, reader!/);

  // Every line has a time stamp with the full date and time in its tooltip (history, live, own
  // and private lines alike); those of other days show their date as well.
  const stamps = await page.$$eval("#log li.line", (items) =>
    items.map((item) => {
      const time = item.querySelector("time");
      return {
        kind: item.className,
        title: time?.title ?? "",
        text: time?.textContent ?? "",
        at: time?.dateTime ?? "",
      };
    }));
  const kinds = stamps.map((stamp) => stamp.kind).join(" | ");
  for (const kind of ["user history", "user own", "user", "private mention"]) {
    assert.ok(stamps.some((stamp) => stamp.kind === `line ${kind}`), `${kind} in ${kinds}`);
  }
  for (const stamp of stamps) {
    const at = new Date(stamp.at);
    assert.match(stamp.title, new RegExp(`${at.getFullYear()}`), `${stamp.kind}: ${stamp.title}`);
    assert.match(stamp.title, new RegExp(`\\b${at.getDate()}\\b`), stamp.title);
    const minutes = String(at.getMinutes()).padStart(2, "0");
    assert.match(stamp.title, new RegExp(`\\d:${minutes}\\b`), stamp.title);
  }
  const old = stamps.find((stamp) => new Date(stamp.at).getTime() === twoDaysAgo.getTime());
  assert.match(old?.text ?? "", new RegExp(`\\b${twoDaysAgo.getDate()}\\b`));
  assert.deepEqual(chromium.errors, []);
});

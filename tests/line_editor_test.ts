/**
 * The pure parts of the terminal client, with no terminal: the line editor (keys as a terminal
 * sends them, editing, completion, search, layout) and the styling of lines and names.
 */
import assert from "node:assert/strict";
import { KeyDecoder, layoutInput, LineEditor } from "../client/line_editor.ts";
import {
  CLIENT_HELP,
  commandsOf,
  LineStyle,
  NAME_COLORS,
  nameColor,
  OPERATOR_CLIENT_HELP,
} from "../client/terminal.ts";
import { RoomNames } from "../client/room_names.ts";
import {
  formatHistory,
  formatOperatorChange,
  formatRoomList,
  formatWho,
  OPERATOR_WELCOME,
  parseServerLine,
  type ServerLine,
} from "../protocol.ts";

/** The RGB of a 256-color palette index in its fixed 6x6x6 cube. */
function xtermRgb(index: number): [number, number, number] {
  assert.ok(index >= 16 && index < 232, `${index} is in the fixed 6x6x6 cube`);
  const levels = [0, 95, 135, 175, 215, 255];
  const n = index - 16;
  return [levels[Math.floor(n / 36)]!, levels[Math.floor(n / 6) % 6]!, levels[n % 6]!];
}

/** WCAG's contrast of a color against black and against white. */
function contrasts([r, g, b]: [number, number, number]): { onBlack: number; onWhite: number } {
  const linear = (c: number) => {
    const s = c / 255;
    return s <= 0.04045 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
  };
  const luminance = 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b);
  return { onBlack: (luminance + 0.05) / 0.05, onWhite: 1.05 / (luminance + 0.05) };
}

/** The hue of a color in degrees (HSL's, as CSS and color pickers give it). */
function hue([r, g, b]: [number, number, number]): number {
  const max = Math.max(r, g, b);
  const span = max - Math.min(r, g, b);
  const h = max === r ? (g - b) / span : max === g ? 2 + (b - r) / span : 4 + (r - g) / span;
  return (h * 60 + 360) % 360;
}

/** How far apart two hues are around the wheel, in degrees. */
function hueDistance(a: number, b: number): number {
  const d = Math.abs(a - b) % 360;
  return Math.min(d, 360 - d);
}

Deno.test("nameColor: every hue reads on black and on white, and a name keeps its hue", () => {
  for (const color of NAME_COLORS) {
    const { onBlack, onWhite } = contrasts(xtermRgb(color));
    assert.ok(
      onBlack >= 3.8 && onWhite >= 3.8,
      `${color}: ${onBlack} on black, ${onWhite} on white`,
    );
  }
  assert.equal(nameColor("Emil"), nameColor("emil"));
  const used = new Set(
    ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"].map(nameColor),
  );
  assert.ok(used.size >= 5, `only ${used.size} colors for 8 names`);
});

Deno.test("nameColor: no two of the twelve hues alike, neighbouring slots far apart, Emil and Anna apart", () => {
  const hues = NAME_COLORS.map((color) => hue(xtermRgb(color)));
  // 20°: the cube has no twelve colors 25° apart that read at 3:1 on black and white (22° at
  // best; 20.6° at 3.8:1, which these keep).
  for (let i = 0; i < hues.length; i++) {
    for (let j = i + 1; j < hues.length; j++) {
      const distance = hueDistance(hues[i]!, hues[j]!);
      assert.ok(
        distance >= 20,
        `slots ${i} and ${j}: ${NAME_COLORS[i]}, ${NAME_COLORS[j]} ${distance}°`,
      );
    }
  }
  // Neighbouring slots, and so names whose hashes are near, are far apart on the wheel.
  for (let i = 0; i < hues.length; i++) {
    const next = (i + 1) % hues.length;
    const distance = hueDistance(hues[i]!, hues[next]!);
    assert.ok(distance >= 90, `slots ${i} and ${next}: ${distance}°`);
  }
  const [emil, anna] = ["Emil", "Anna"].map((name) => hue(xtermRgb(nameColor(name))));
  assert.ok(hueDistance(emil!, anna!) >= 90, `Emil ${emil}°, Anna ${anna}°`);
});

Deno.test("LineStyle: a live line past midnight comes after a row naming its day, from the clock it is given; history still says Today", () => {
  let now = new Date(2030, 2, 11, 23, 58);
  const style = new LineStyle({ color: false, clock: () => now });
  const show = (line: ServerLine | undefined, body: string) =>
    style.rows(style.stamp(line), " ", body, 80);
  const yesterday = new Date(2030, 2, 10, 12, 0);
  assert.deepEqual(show(parseServerLine(formatHistory(yesterday, "[bob] old")), "old"), [
    "        ──── Sunday 10 March ────",
    "12:00   old",
  ]);
  assert.deepEqual(show(parseServerLine(formatHistory(now, "[bob] today")), "today"), [
    "        ──── Today ────",
    "23:58   today",
  ]);
  assert.deepEqual(show(undefined, "before midnight"), ["23:58   before midnight"]);
  now = new Date(2030, 2, 12, 0, 1);
  assert.deepEqual(show(undefined, "after midnight"), [
    "        ──── Tuesday 12 March ────",
    "00:01   after midnight",
  ]);
  assert.deepEqual(show(undefined, "later"), ["00:01   later"]);
});

Deno.test("LineStyle wraps a long line at words under the text column, breaking only words too long", () => {
  const style = new LineStyle({ color: false });
  const time = new Date(2026, 0, 1, 9, 5);
  assert.deepEqual(style.rows(time, " ", "[bob] aaa bbb ccc ddd", 20, time), [
    "09:05   [bob] aaa",
    "        bbb ccc ddd",
  ]);
  assert.deepEqual(style.rows(time, " ", "x".repeat(30), 20, time), [
    `09:05   ${"x".repeat(12)}`,
    `        ${"x".repeat(12)}`,
    `        ${"x".repeat(6)}`,
  ]);
});

Deno.test("KeyDecoder reads keys, escape sequences split across reads, and a bracketed paste", () => {
  const decoder = new KeyDecoder();
  const bytes = (text: string) => new TextEncoder().encode(text);
  assert.deepEqual(decoder.decode(bytes("hé\x1b[D\x01\x7f\r")), [
    { kind: "text", text: "hé" },
    { kind: "left" },
    { kind: "home" },
    { kind: "backspace" },
    { kind: "enter" },
  ]);
  assert.deepEqual(decoder.decode(bytes("\x1b")), []); // ESC alone: maybe a sequence's start
  assert.ok(decoder.isPending);
  assert.deepEqual(decoder.decode(bytes("[A")), [{ kind: "up" }]);
  assert.deepEqual(decoder.decode(bytes("\x1b")), []);
  assert.deepEqual(decoder.flush(), [{ kind: "escape" }]); // nothing followed: the Escape key
  assert.deepEqual(decoder.decode(bytes("\x1b[")), []);
  assert.deepEqual(decoder.decode(bytes("3~\x1b[1;5C")), [{ kind: "delete" }, {
    kind: "wordRight",
  }]);
  const euro = bytes("€");
  assert.deepEqual(decoder.decode(euro.subarray(0, 1)), []);
  assert.deepEqual(decoder.decode(euro.subarray(1)), [{ kind: "text", text: "€" }]);
  assert.deepEqual(decoder.decode(bytes("\x1b[200~one\r\x03tw")), []);
  assert.deepEqual(decoder.decode(bytes("o\x1b[20")), []);
  assert.deepEqual(decoder.decode(bytes("1~\t")), [
    { kind: "paste", text: "one\r\x03two" },
    { kind: "tab" },
  ]);
});

Deno.test("LineEditor pastes lines as sent, completes names and searches what was sent", () => {
  const editor = new LineEditor({ names: () => ["Anna", "Andreas", "bob"] });
  assert.deepEqual(editor.handle({ kind: "paste", text: "one\r\ntwo\rthr\tee" }), [
    { kind: "submit", line: "one" },
    { kind: "submit", line: "two" },
  ]);
  assert.equal(editor.text, "thr ee");
  editor.handle({ kind: "interrupt" });
  assert.equal(editor.text, "");
  assert.deepEqual(editor.handle({ kind: "interrupt" }), [{ kind: "leave" }]);
  editor.handle({ kind: "text", text: "an" });
  editor.handle({ kind: "tab" });
  assert.equal(editor.text, "Andreas: ");
  editor.handle({ kind: "tab" });
  assert.equal(editor.text, "Anna: ");
  editor.handle({ kind: "interrupt" });
  editor.handle({ kind: "text", text: "/msg B" });
  editor.handle({ kind: "tab" });
  assert.equal(editor.text, "/msg bob ");
  editor.handle({ kind: "interrupt" });
  editor.handle({ kind: "search" });
  editor.handle({ kind: "text", text: "tw" });
  assert.deepEqual(editor.shown, { text: "two", cursor: 0 });
  assert.deepEqual(editor.handle({ kind: "enter" }), [{ kind: "submit", line: "two" }]);
});

Deno.test("LineEditor completes a command after / at the start of the line, then names after it", () => {
  let commands = ["/who", "/nick", "/msg", "/me"];
  const editor = new LineEditor({ names: () => ["kim", "Anna"], commands: () => commands });
  editor.handle({ kind: "text", text: "/m" });
  editor.handle({ kind: "tab" });
  assert.equal(editor.text, "/me ");
  editor.handle({ kind: "tab" });
  assert.equal(editor.text, "/msg ");
  editor.handle({ kind: "text", text: "A" });
  editor.handle({ kind: "tab" });
  assert.equal(editor.text, "/msg Anna ");
  editor.handle({ kind: "interrupt" });
  // Case does not matter; a word after the start is a name, never a command.
  editor.handle({ kind: "text", text: "/WH" });
  editor.handle({ kind: "tab" });
  assert.equal(editor.text, "/who ");
  editor.handle({ kind: "interrupt" });
  editor.handle({ kind: "text", text: "say /k" });
  editor.handle({ kind: "tab" });
  assert.equal(editor.text, "say /kim ");
  editor.handle({ kind: "interrupt" });
  // The commands are asked for at each Tab: an operator's come once the client knows it is one.
  editor.handle({ kind: "text", text: "/k" });
  editor.handle({ kind: "tab" });
  assert.equal(editor.text, "/k");
  commands = [...commands, "/kick"];
  editor.handle({ kind: "tab" });
  assert.equal(editor.text, "/kick ");
  editor.handle({ kind: "interrupt" });
  // "//" says a line that starts with /: nothing to complete there.
  editor.handle({ kind: "text", text: "//m" });
  editor.handle({ kind: "tab" });
  assert.equal(editor.text, "//m");
});

Deno.test("LineEditor edits as the README's keys table says, from the bytes a terminal sends", () => {
  const decoder = new KeyDecoder();
  const editor = new LineEditor();
  /** Types raw terminal input; answers the line and the cursor shown as "|". */
  const type = (input: string) => {
    const events = decoder.decode(new TextEncoder().encode(input)).flatMap((key) =>
      editor.handle(key)
    );
    assert.deepEqual(events.filter((event) => event.kind !== "submit"), []);
    return `${editor.text.slice(0, editor.cursor)}|${editor.text.slice(editor.cursor)}`;
  };
  assert.equal(type("one two three"), "one two three|");
  assert.equal(type("\x01"), "|one two three"); // Ctrl+A
  assert.equal(type("\x05"), "one two three|"); // Ctrl+E
  assert.equal(type("\x1b[H"), "|one two three"); // Home
  assert.equal(type("\x1b[F"), "one two three|"); // End
  assert.equal(type("\x02\x02"), "one two thr|ee"); // Ctrl+B
  assert.equal(type("\x06"), "one two thre|e"); // Ctrl+F
  assert.equal(type("\x1b[D\x1b[C\x1b[C"), "one two three|"); // Left, Right
  assert.equal(type("\x1bb"), "one two |three"); // Alt+B
  assert.equal(type("\x1b[1;5D"), "one |two three"); // Ctrl+Left
  assert.equal(type("\x1bf"), "one two| three"); // Alt+F
  assert.equal(type("\x1b[1;5C"), "one two three|"); // Ctrl+Right
  assert.equal(type("\x17"), "one two |"); // Ctrl+W: the word before
  assert.equal(type("\x7f"), "one two|"); // Backspace
  assert.equal(type("\x01\x1b[3~"), "|ne two"); // Delete
  assert.equal(type("\x04"), "|e two"); // Ctrl+D on a typed line: the character under the cursor
  assert.equal(type("\x1bf\x0b"), "e|"); // Ctrl+K: to the end
  assert.equal(type("xyz\x1b[D\x15"), "|z"); // Ctrl+U: to the start
  assert.deepEqual(editor.handle({ kind: "enter" }), [{ kind: "submit", line: "z" }]);
  assert.equal(type("draft"), "draft|");
  assert.equal(type("\x10"), "z|"); // Ctrl+P: the line sent before
  assert.equal(type("\x0e"), "draft|"); // Ctrl+N: back to the draft
  assert.equal(type("\x1b[A"), "z|"); // Up
  assert.equal(type("\x1b[B"), "draft|"); // Down
  // A character is a grapheme, however many code units: an emoji with a skin tone, a flag.
  assert.equal(type(" 👋🏽🇫🇷"), "draft 👋🏽🇫🇷|");
  assert.equal(type("\x7f"), "draft 👋🏽|");
  assert.equal(type("\x02"), "draft |👋🏽");
  // Ctrl+L and Ctrl+Z are for the screen, Ctrl+D and Ctrl+C on an empty line leave.
  const keys = (input: string) =>
    decoder.decode(new TextEncoder().encode(input)).flatMap((key) => editor.handle(key));
  assert.deepEqual(keys("\x0c\x1a"), [{ kind: "redraw" }, { kind: "suspend" }]);
  assert.deepEqual(keys("\x15\x0b\x04"), [{ kind: "leave" }]);
  assert.deepEqual(keys("\x03"), [{ kind: "leave" }]);
});

Deno.test("layoutInput breaks rows itself, moving a wide character that does not fit", () => {
  assert.deepEqual(layoutInput("> ", "abcdef", 6, 4), {
    rows: ["> ab", "cdef", ""],
    widths: [4, 4, 0],
    cursorRow: 2,
    cursorColumn: 0,
  });
  const wide = layoutInput("> ", "a日本", 0, 4);
  assert.deepEqual(wide.rows, ["> a", "日本"]);
  assert.deepEqual([wide.cursorRow, wide.cursorColumn], [0, 2]);
  const after = layoutInput("> ", "a日本", 2, 4);
  assert.deepEqual([after.cursorRow, after.cursorColumn], [1, 2]);
});

Deno.test("RoomNames keeps bare names for Tab and knows who is an operator, ourselves included", () => {
  let own = "Emil";
  const room = new RoomNames(() => own);
  const feed = (line: string) => room.apply(line, parseServerLine(line));
  formatRoomList(["@alice", "bob"]).forEach(feed);
  assert.deepEqual([...room.names()], ["alice", "bob"]); // Tab completes "alice", never "@alice"
  assert.equal(room.isOperator, false);
  // The room list leaves us out: the server says so after the welcome; /who marks us too.
  feed(OPERATOR_WELCOME);
  assert.equal(room.isOperator, true);
  formatRoomList(["alice"]).forEach(feed); // a rejoin's: told again after the welcome, if still
  assert.equal(room.isOperator, false);
  formatWho(["@alice", "bob", "@Emil"]).forEach(feed);
  assert.equal(room.isOperator, true);
  feed(formatOperatorChange("emil", false, "alice"));
  assert.equal(room.isOperator, false);
  feed(formatOperatorChange("Emil", true));
  assert.equal(room.isOperator, true);
  feed("[mallory] * Emil is no longer an operator (by alice)");
  assert.equal(room.isOperator, true);
  formatWho(["@alice", "bob", "Emil"]).forEach(feed);
  assert.equal(room.isOperator, false);
  feed(formatOperatorChange("Emil", true));
  // A kick's or a ban's notice is the leave notice of those it put out: Tab offers them no more.
  feed("* carl has entered the room");
  feed("* carl was kicked by alice: spam");
  feed("* bob and zed were banned by alice until 2026-12-07 10:00:00 UTC");
  assert.deepEqual([...room.names()], ["alice"]);
  feed("* bob has entered the room");
  own = "Emil2"; // the session renames us before the screen shows the line
  feed("* Emil is now known as Emil2"); // /who will say whether Emil2 is an operator
  assert.equal(room.isOperator, false);
  assert.deepEqual([...room.names()], ["alice", "bob"]);
});

Deno.test("commandsOf names every command of /help for Tab, an operator's only in theirs", () => {
  const everyone = commandsOf(CLIENT_HELP);
  assert.ok(["/who", "/msg", "/topic", "/ops", "/help"].every((c) => everyone.includes(c)));
  assert.ok(!everyone.includes("/kick") && !everyone.some((c) => c.startsWith("//")));
  const operator = commandsOf(OPERATOR_CLIENT_HELP);
  for (const command of ["/kick", "/ban", "/unban", "/bans", "/mute", "/unmute", "/op", "/deop"]) {
    assert.ok(operator.includes(command), command);
  }
  assert.ok(everyone.every((c) => operator.includes(c)));
  // The operator's commands come after the others, and the keys last.
  assert.match(OPERATOR_CLIENT_HELP.at(-1)!, /^Ctrl\+C/);
});

Deno.test("LineStyle marks operators in the room list, and shows the topic and a kick or ban apart", () => {
  const style = new LineStyle({ color: false });
  const render = (line: string) => style.render(parseServerLine(line)!);
  assert.deepEqual(render("* The room contains: @alice, bob"), ["-", "In the room: @alice, bob"]);
  assert.deepEqual(render("* Topic: be kind"), ["#", "Topic: be kind"]);
  assert.deepEqual(render("* bob set the topic: be kind"), ["#", "bob set the topic: be kind"]);
  assert.deepEqual(render("* bob cleared the topic"), ["#", "bob cleared the topic"]);
  assert.deepEqual(render("* error: You were kicked by bob: spam"), [
    "!",
    "You were kicked by bob: spam",
  ]);
  assert.deepEqual(render("* error: You are banned until 2026-12-07 10:00:00 UTC: spam"), [
    "!",
    "You are banned until 2026-12-07 10:00:00 UTC: spam",
  ]);
  // In colour, the topic is in bold, so that it stands out among the server's gray notices.
  assert.deepEqual(new LineStyle({ color: true }).render(parseServerLine("* Topic: hi")!), [
    "#",
    "\x1b[1mTopic: hi\x1b[22m",
  ]);
});

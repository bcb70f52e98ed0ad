/// <reference lib="dom" />
/**
 * The chat page: one more client of the line protocol, over a WebSocket carrying one line per text
 * frame. Every line from the server is parsed with the protocol's own parser and shown as text:
 * nothing here writes HTML from a string (the page's CSP makes Chromium refuse it anyway).
 *
 * Built into `web/page.js` by `deno task bundle`.
 */
import {
  firstNewLine,
  formatAction,
  formatHistory,
  formatResume,
  formatUserLine,
  GOODBYE,
  hasRegisteredNames,
  HELP_LINES,
  isResumeFailed,
  nameKey,
  OPERATOR_HELP_LINES,
  parseCommand,
  parsePrompt,
  parseResumeToken,
  parseServerLine,
  parseTakeOver,
  parseWrongSecret,
  type Prompt,
  RESUMED_ELSEWHERE,
  type ServerLine,
  SHUTDOWN_NOTICE,
  SOCKET_PATH,
  utf8Length,
} from "../protocol.ts";
import { Banner } from "./banner.ts";
import { commandsOf, Completer, reconnectDelay, Roster } from "./room.ts";
import { tabTitle } from "./mentions.ts";
import { dayKey, dayLabel, separatorDay } from "./dates.ts";
import {
  isHelpRow,
  isMention,
  nameTag,
  refusalOf,
  render,
  type ShowOptions,
  span,
} from "./render.ts";
import { bindNotifySetting, notifyMention } from "./notify.ts";
import { Conversations } from "./private.ts";
import { keepPlace, keptPlace } from "./place.ts";
import { bindSoundSetting, playMentionSound } from "./sound.ts";
import { keepLocally, keptLocally } from "./stored.ts";

/** Lines the page keeps; older ones are removed, so a long session does not grow without end. */
const MAX_LINES = 2000;
/** Chat lines remembered to recognise the history replayed on rejoining. */
const MAX_SEEN = 500;
/** Lines you sent that the up arrow brings back. */
const MAX_SENT = 200;
/** How close to the bottom counts as reading the newest line, in pixels. */
const AT_BOTTOM_PX = 48;
/** Length of `* history YYYY-MM-DDTHH:MM:SSZ `, before the line that was said. */
const HISTORY_PREFIX = formatHistory(new Date(0), "").length;
const TITLE = document.title;
const NAME_STORE = "chat.name";
/**
 * What the last greeting this browser read said of registered names (`"true"`, `"false"`): the
 * password field shows as the page loads when it said some are, before the socket (opened at the
 * first key or click) says so again; Tab from a remembered name then reaches it.
 */
const REGISTERED_STORE = "chat.registered-names";
/** What Tab completes after a `/` that starts the line: the commands `/help` lists. */
const COMMANDS = commandsOf(HELP_LINES);
/** An operator's `/help` lists theirs too. */
const OPERATOR_COMMANDS = commandsOf([...HELP_LINES, ...OPERATOR_HELP_LINES]);

function element<T extends HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) throw new Error(`The page has no #${id}`);
  return found as T;
}

const view = {
  join: element<HTMLElement>("join"),
  joinForm: element<HTMLFormElement>("join-form"),
  name: element<HTMLInputElement>("name"),
  joinButton: element<HTMLButtonElement>("join-button"),
  joinError: element<HTMLElement>("join-error"),
  password: element<HTMLInputElement>("password"),
  passwordRow: element<HTMLElement>("password-row"),
  serverPassword: element<HTMLInputElement>("server-password"),
  serverPasswordRow: element<HTMLElement>("server-password-row"),
  passwordHint: element<HTMLElement>("password-hint"),
  chat: element<HTMLElement>("chat"),
  log: element<HTMLOListElement>("log"),
  newMessages: element<HTMLButtonElement>("new-messages"),
  people: element<HTMLElement>("people"),
  sendButton: element<HTMLButtonElement>("send-button"),
  views: element<HTMLElement>("views"),
  roomView: element<HTMLButtonElement>("room-view"),
  roster: element<HTMLUListElement>("roster"),
  rosterCount: element<HTMLElement>("roster-count"),
  sayForm: element<HTMLFormElement>("say-form"),
  line: element<HTMLInputElement>("line"),
  me: element<HTMLElement>("me"),
  topic: element<HTMLElement>("topic"),
  topicText: element<HTMLElement>("topic-text"),
  notify: element<HTMLInputElement>("notify"),
  sound: element<HTMLInputElement>("sound"),
};

/** The room and the private conversations beside it. */
const conversations = new Conversations(view.views, view.roomView, view.log);

type Phase = "prompt" | "joining" | "joined" | "waiting" | "left";

const banner = new Banner(
  element("banner"),
  element("banner-text"),
  element("banner-count"),
  element<HTMLButtonElement>("banner-button"),
);

/** The connection and what the page knows of the room. */
const state = {
  phase: "prompt" as Phase,
  socket: undefined as WebSocket | undefined,
  /** The greeting of the socket the page opened on loading, while it waits for the join form. */
  greeting: undefined as string | undefined,
  name: "",
  /** Whether this join is a rejoin after a lost connection. */
  isRejoin: false,
  /** The server's error for our name, while joining. */
  rejection: "",
  /** That error is a ban: it passes only when the ban ends, if it does. */
  isBanned: false,
  /** Our name went out on this connection (after the greeting, or the server's password). */
  isNameSent: false,
  /** The server asked for a password once in the room: the next line sent is it. */
  secretPrompt: undefined as Prompt | undefined,
  hasQuit: false,
  /** The last line, when it was an error: why the server closed us, if it did. */
  lastError: "",
  /** Why the connection ended, when the server said. */
  closeReason: "",
  /** The server said our name logged in from elsewhere: rejoining would take it back. */
  isTakenOver: false,
  /** The server's resume token for our place: a reload or a lost connection comes back to it. */
  token: undefined as string | undefined,
  /** Another page came back to our place with our token (a duplicated tab): this one stops. */
  isResumedElsewhere: false,
  /** The server's word that we came back to our place, shown after the welcome. */
  resumed: undefined as { raw: string; line: ServerLine } | undefined,
  attempt: 0,
  timer: undefined as ReturnType<typeof setTimeout> | undefined,
  maxLineBytes: Infinity,
  roster: new Roster((): string => state.name),
  /** Chat lines shown, as the server sends them, to skip in the history on rejoining. */
  seen: [] as string[],
  /** History lines replayed while joining, shown once the join is complete. */
  replay: [] as { raw: string; line: ServerLine & { kind: "history" } }[],
  sent: [] as string[],
  recall: 0,
  completer: new Completer(),
  unread: 0,
  /** Lines that said our name while the tab was hidden, counted apart from `unread`. */
  mentioned: 0,
  unseenBelow: 0,
  /** The input had the cursor when the connection was lost: it gets it back on rejoining. */
  isInputFocused: false,
  /** The local day of the last line shown (`YYYY-MM-DD`), for the day separators. */
  lastDay: undefined as string | undefined,
};

// --- the connection ---

/**
 * Joins: over the socket the join form opened at its first touch, if it is still open (its
 * greeting, if it came, is answered now), else over a new one.
 */
function connect(): void {
  const waiting = state.phase === "prompt" ? state.socket : undefined;
  clearTimeout(state.timer);
  state.phase = "joining";
  state.rejection = "";
  state.isBanned = false;
  state.hasQuit = false;
  state.closeReason = "";
  state.isTakenOver = false;
  state.isResumedElsewhere = false;
  state.lastError = "";
  state.replay = [];
  state.isNameSent = false;
  endSecret();
  if (waiting && waiting.readyState <= WebSocket.OPEN) {
    const greeting = state.greeting;
    state.greeting = undefined;
    if (greeting !== undefined) receive(greeting);
    return;
  }
  waiting?.close();
  openSocket();
}

/**
 * Opens the socket once the person starts on the join form (a key, a click, a field filled in),
 * for its greeting to say whether the password field is wanted before it is reached. Not on
 * loading: each socket holds a connection and takes a join of the address's join rate, and tabs
 * loaded and left alone (restored ones, a class behind one address) must not use up those of the
 * tab someone joins from.
 */
function openOnFirstTouch(): void {
  const touched = new AbortController();
  const open = () => {
    touched.abort();
    if (state.phase === "prompt" && state.socket === undefined) openSocket();
  };
  for (const type of ["keydown", "pointerdown", "input"]) {
    view.joinForm.addEventListener(type, open, { signal: touched.signal });
  }
}

/** A new socket to the server; nothing is sent on it before the server speaks. */
function openSocket(): void {
  state.greeting = undefined;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}${SOCKET_PATH}`);
  state.socket = socket;
  // Nothing is sent before the server speaks: a private server wants its password first.
  socket.addEventListener("message", (event) => {
    if (typeof event.data !== "string") return;
    // A frame holds whole lines, each ended by LF: as many as the server wrote at once.
    for (const line of event.data.split("\n")) {
      if (socket === state.socket && line !== "") receive(line);
    }
  });
  socket.addEventListener("close", () => {
    if (socket === state.socket) closed();
  });
}

function send(line: string): boolean {
  if (state.phase !== "joined" || state.socket?.readyState !== WebSocket.OPEN) return false;
  state.socket.send(line);
  return true;
}

function receive(raw: string): void {
  if (state.phase === "prompt") return heard(raw);
  const line = parseServerLine(raw) ?? { kind: "system", text: raw };
  if (state.phase === "joining") return receiveWhileJoining(raw, line);
  const token = parseResumeToken(raw);
  if (token !== undefined) return rememberPlace(token); // never shown: it stands for our place
  const prompt = line.kind === "system" ? parsePrompt(raw) : undefined;
  if (prompt) return askSecret(prompt, raw);
  if (line.kind === "rename" && nameKey(line.oldName) === nameKey(state.name)) {
    setName(line.newName);
    rememberPlace(state.token); // the token follows the name
  } else if (line.kind === "rename") {
    conversations.rename(line.oldName, line.newName);
  }
  if (line.kind === "limits") state.maxLineBytes = line.limits.maxLineBytes;
  if (state.roster.apply(line, raw)) showRoster();
  if (line.kind === "topic") showTopic(line.text); // "" once cleared
  if (raw === GOODBYE) state.hasQuit = true;
  if (raw === RESUMED_ELSEWHERE) state.isResumedElsewhere = true;
  if (raw === SHUTDOWN_NOTICE) {
    state.closeReason = "The server shut down";
  }
  if (parseTakeOver(raw) !== undefined) state.isTakenOver = true;
  // The server's last word before it closes a member (flooding, idle, a bad frame, a kick, a
  // ban) is an error.
  state.lastError = refusalOf(raw, line);
  show(line, { raw });
}

/**
 * A line on the socket opened on starting the join form, before Join: the greeting, kept for then,
 * says whether to show the password field. Anything after it (the server giving up on a name that
 * never came) is not for the person.
 */
function heard(raw: string): void {
  if (state.greeting !== undefined) return;
  state.greeting = raw; // a Join while the socket is still open reads it, refusal or greeting
  // Refused (the server full, the address banned): said now, and no greeting to read; Join tries
  // again on a new socket.
  const refusal = refusalOf(raw, parseServerLine(raw) ?? { kind: "system", text: raw });
  if (refusal !== "") view.joinError.textContent = refusal;
  else showPasswordRow(raw);
}

/**
 * The password field shows when the greeting says names here are registered, or when the server
 * cannot tell yet (a private server, before its password); a server without any hides it. A
 * private server's field shows when its greeting asks for it.
 */
function showPasswordRow(greeting: string): void {
  const hasNames = hasRegisteredNames(greeting);
  view.passwordRow.hidden = hasNames === false;
  // A private server's greeting asks for its password: its field is filled in before Join, not
  // after a Join refused for the want of it (which costs another socket, and another join).
  if (parsePrompt(greeting)?.kind === "server") view.serverPasswordRow.hidden = false;
  view.joinForm.dataset.registeredNames = String(hasNames ?? "unknown");
  if (hasNames !== undefined) keepLocally(REGISTERED_STORE, String(hasNames));
}

/**
 * Before the welcome: the greeting is skipped, an error is the server's answer to our name, and
 * the history is held back until the join is complete, to show only what the page has not shown.
 */
function receiveWhileJoining(raw: string, line: ServerLine): void {
  const prompt = line.kind === "system" ? parsePrompt(raw) : undefined;
  if (isResumeFailed(raw)) rememberPlace(undefined); // the server joins us anew
  if (refusalOf(raw, line) !== "") {
    state.rejection = refusalOf(raw, line);
    state.isBanned = line.kind === "banned";
  } else if (prompt?.kind === "server" || prompt?.kind === "login") {
    answerPrompt(prompt);
  } else if (!state.isNameSent && line.kind !== "room") {
    state.isNameSent = true;
    showPasswordRow(raw);
    // Back to our place with its token if we have one; the server gives us one either way.
    state.socket?.send(formatResume(state.name, state.token));
  } else if (line.kind === "room") {
    if (!line.isContinued) joined();
    state.roster.apply(line, raw);
    show(line, { raw, isLocal: true });
  } else if (line.kind === "history") {
    state.replay.push({ raw, line });
  } else if (line.kind === "limits") {
    state.maxLineBytes = line.limits.maxLineBytes;
  } else if (line.kind === "system" && line.text.startsWith("Resumed: ")) {
    state.resumed = { raw, line };
  } else if (line.kind === "system" && line.text.startsWith("Welcome, ")) {
    const replayed = state.replay.map(({ raw }) => raw.slice(HISTORY_PREFIX));
    for (const { raw, line } of state.replay.slice(firstNewLine(state.seen, replayed))) {
      show(line, { raw });
    }
    state.replay = [];
    state.phase = "joined";
    setConnected(true);
    showRoster();
    show(line, { raw });
    if (state.resumed) show(state.resumed.line, { raw: state.resumed.raw });
    state.resumed = undefined;
  }
}

/**
 * The server asks for its password, or the name's, before we are in: sent from the join form's
 * fields, or, when the field is empty, the form comes back asking for it.
 */
function answerPrompt(prompt: Prompt): void {
  const field = prompt.kind === "server" ? view.serverPassword : view.password;
  if (field.value === "") {
    const socket = state.socket;
    state.socket = undefined;
    socket?.close();
    // A name registered since the greeting said none were: its field shows now.
    (prompt.kind === "server" ? view.serverPasswordRow : view.passwordRow).hidden = false;
    showPrompt(
      prompt.kind === "server"
        ? "This server is private: type its password"
        : `${state.name} is registered: type its password`,
    );
    field.focus();
    return;
  }
  state.socket?.send(field.value);
}

/**
 * The server asks for a password once in the room (after /register, /password, /unregister, or
 * /nick to a registered name): the message field becomes a password field for one line.
 */
function askSecret(prompt: Prompt, raw: string): void {
  show({ kind: "system", text: raw.slice(2) }, { raw });
  state.secretPrompt = prompt;
  view.line.value = "";
  view.line.type = "password";
  view.line.placeholder = prompt.kind === "new"
    ? `New password for ${prompt.name} (not shown; empty cancels)`
    : `Password for ${prompt.name} (not shown)`;
  view.line.focus();
}

/** The message field goes back to being one. */
function endSecret(): void {
  state.secretPrompt = undefined;
  view.line.type = "text";
  view.line.placeholder = "Message, or /help";
}

function joined(): void {
  state.attempt = 0;
  // Someone new starts afresh; a rejoin keeps what the room said of us (the room list leaves us out).
  if (!state.isRejoin) state.roster = new Roster((): string => state.name);
  showTopic(""); // the topic, if there is one, comes after the welcome
  keepLocally(NAME_STORE, state.name);
  banner.hide();
  if (state.isRejoin) show({ kind: "system", text: "Reconnected" }, { raw: "", isLocal: true });
  view.join.hidden = true;
  view.chat.hidden = false;
  setName(state.name);
  if (!state.isRejoin) state.isInputFocused = true; // the cursor goes there once in
  state.isRejoin = true;
}

/** Keeps the resume token for our place (undefined: forgets it), for a reload of this tab. */
function rememberPlace(token: string | undefined): void {
  state.token = token;
  keepPlace(state.name, token);
}

/** The socket closed: say why, and reconnect unless we were refused or left. */
function closed(): void {
  const wasJoining = state.phase === "joining";
  state.socket = undefined;
  // The socket opened on loading, given up by the server (no name came in time): joining opens one.
  if (state.phase === "prompt") return;
  setConnected(false);
  // Only a lost connection keeps our place: after /quit, a kick, a ban or the like the token is dead.
  if (state.hasQuit || state.isTakenOver || state.lastError !== "" || state.isResumedElsewhere) {
    rememberPlace(undefined);
  }
  if (!wasJoining && state.isResumedElsewhere) {
    state.phase = "left";
    return banner.show(
      `Your place as ${state.name} was taken up by another page (a copy of this tab?).`,
      "Join again",
      () => showPrompt(""),
    );
  }
  if (state.hasQuit) {
    state.phase = "left";
    return banner.show("You left the room.", "Join again", () => rejoinNow());
  }
  if (wasJoining && state.rejection !== "" && (state.isBanned || !isTransient(state.rejection))) {
    if (!state.isRejoin) {
      // A password typed wrong is typed again where it was, as the name would be.
      const wrong = parseWrongSecret(state.rejection);
      const field = wrong === "login"
        ? view.password
        : wrong === "server"
        ? view.serverPassword
        : view.name;
      return showPrompt(state.rejection, field);
    }
    state.phase = "left";
    return banner.show(
      `Cannot rejoin as ${state.name}: ${state.rejection}`,
      "Choose a name",
      () => showPrompt(""),
    );
  }
  if (!wasJoining && state.isTakenOver) {
    // Only the person may take the name back: two pages doing it by themselves never stop.
    state.phase = "left";
    return banner.show(
      `You logged in as ${state.name} from elsewhere, so this page left the room.`,
      "Take it back",
      () => rejoinNow(),
    );
  }
  if (!wasJoining && state.lastError !== "") {
    // Closed by the server's rules: rejoining by itself would only break them again.
    state.phase = "left";
    return banner.show(`Disconnected: ${state.lastError}`, "Rejoin", () => rejoinNow());
  }
  if (!wasJoining || state.isRejoin) {
    return waitToReconnect(state.rejection || state.closeReason || "Connection lost");
  }
  // The first join did not get through (server down, or full): say so and offer to retry.
  showPrompt(state.rejection || "Cannot reach the chat server: try again in a moment");
}

/**
 * While not in the room, the input and the list of who is online are shown as out of use: the
 * list is stale and a line typed could not be sent. The cursor comes back to the input after.
 */
function setConnected(isConnected: boolean): void {
  if (!isConnected && document.activeElement === view.line) state.isInputFocused = true;
  view.line.disabled = !isConnected;
  view.sendButton.disabled = !isConnected;
  view.people.classList.toggle("offline", !isConnected);
  view.people.setAttribute("aria-disabled", String(!isConnected));
  if (isConnected && state.isInputFocused) view.line.focus();
  if (isConnected) state.isInputFocused = false;
}

/** The topic in the header (the whole of it in its tooltip), or none. */
function showTopic(text: string): void {
  view.topicText.textContent = text;
  view.topic.title = text;
  view.topic.hidden = text === "";
}

/**
 * Refusals that pass by themselves: a full server, or our own name still held by the connection we
 * lost (the server drops it once it stops answering).
 */
function isTransient(rejection: string): boolean {
  return /is taken|Server is full|Too many connections/.test(rejection);
}

function waitToReconnect(reason: string): void {
  state.phase = "waiting";
  countDown(reason, Date.now() + reconnectDelay(state.attempt++));
}

/** The banner counts the seconds down to the next try, then it is made. */
function countDown(reason: string, deadline: number): void {
  const left = deadline - Date.now();
  if (left <= 0) {
    if (!navigator.onLine) return waitToReconnect("Offline");
    banner.show(`${reason}. Reconnecting as ${state.name}`);
    banner.count("…");
    return connect();
  }
  banner.show(`${reason}. Reconnecting as ${state.name}`, "Reconnect now", () => rejoinNow());
  banner.count(` in ${Math.ceil(left / 1000)} s…`);
  // The next tick when the count changes: on the second, not a second after this one.
  state.timer = setTimeout(() => countDown(reason, deadline), left % 1000 || 1000);
}

function rejoinNow(): void {
  state.attempt = 0;
  state.isRejoin = true;
  banner.show(`Reconnecting as ${state.name}…`);
  connect();
}

// --- showing lines ---

/** Appends one line to the conversation, as text only. */
function show(line: ServerLine, shown: Omit<ShowOptions, "own">): void {
  const options = { ...shown, own: state.name, isContinued: isTableGoingOn(shown.raw) };
  if (line.kind === "limits") return; // for pacing the input, not for people
  const isAtBottom = view.log.scrollHeight - view.log.scrollTop - view.log.clientHeight <
    AT_BOTTOM_PX;
  const time = line.kind === "history" ? line.time : new Date();
  showDay(time);
  const item = render(line, options, time);
  view.log.append(item);
  const peer = line.kind === "private" ? line.name : undefined;
  conversations.add(item, peer, line.kind === "private" && line.direction === "from");
  while (view.log.childElementCount > MAX_LINES) view.log.firstElementChild?.remove();
  remember(line, options);
  const isMessage = line.kind === "user" || line.kind === "action" || line.kind === "private";
  if (isMessage && !options.isOwn) noteUnseen(line, options);
  if (isAtBottom || options.isOwn) {
    view.log.scrollTop = view.log.scrollHeight;
  } else if (!options.isLocal) {
    state.unseenBelow++;
    view.newMessages.textContent = `${state.unseenBelow} new ↓`;
    view.newMessages.hidden = false;
  }
}

/**
 * Someone's line, maybe not seen: a mention sounds while the tab is not in front, and while it is
 * hidden the title counts it (a mention apart) and a mention is notified.
 */
function noteUnseen(line: ServerLine, options: ShowOptions): void {
  const isMentioned = isMention(line, options);
  if (isMentioned && (document.hidden || !document.hasFocus())) playMentionSound(view.sound);
  if (!document.hidden) return;
  if (isMentioned) {
    state.mentioned++;
    notifyMention(line.name, line.text, line.kind === "private");
  } else {
    state.unread++;
  }
  document.title = tabTitle(TITLE, state.unread, state.mentioned);
}

/** Whether `raw` is a row of `/help`'s table after another: it then has no time stamp. */
function isTableGoingOn(raw: string): boolean {
  return isHelpRow(raw) && view.log.lastElementChild?.classList.contains("help") === true;
}

/** A separator naming the day, before the first line of a day (not before today's first alone). */
function showDay(time: Date): void {
  const day = separatorDay(state.lastDay, time);
  state.lastDay = dayKey(time);
  if (day === undefined) return;
  const label = document.createElement("time");
  label.dateTime = day;
  label.textContent = dayLabel(time);
  const item = document.createElement("li");
  item.className = "day";
  item.setAttribute("role", "separator");
  item.append(label);
  view.log.append(item);
}

/** Keeps the chat lines shown, as the server words them, to recognise them in a replay. */
function remember(line: ServerLine, options: Omit<ShowOptions, "own">): void {
  if (line.kind === "history") state.seen.push(options.raw.slice(HISTORY_PREFIX));
  else if (line.kind === "user" || line.kind === "action") state.seen.push(options.raw);
  else return;
  if (state.seen.length > MAX_SEEN) state.seen.splice(0, state.seen.length - MAX_SEEN);
}

function showRoster(): void {
  const names = state.roster.names.filter((name) => nameKey(name) !== nameKey(state.name));
  const items = [state.name, ...names].map((name, index) => {
    const item = document.createElement("li");
    if (state.roster.isOperator(name)) {
      const mark = span("op", "@");
      mark.title = "operator";
      item.append(mark);
    }
    item.append(nameTag(name, state.name));
    if (index === 0) item.append(span("you", " (you)"));
    return item;
  });
  view.roster.replaceChildren(...items);
  view.rosterCount.textContent = String(items.length);
}

function setName(name: string): void {
  state.name = name;
  view.me.textContent = name;
  showRoster();
}

// --- the join form ---

/** The join form again, with `error` said and the cursor in `field` (the name's unless given). */
function showPrompt(error: string, field: HTMLInputElement = view.name): void {
  clearTimeout(state.timer);
  state.phase = "prompt";
  state.isRejoin = false;
  banner.hide();
  view.chat.hidden = true;
  view.join.hidden = false;
  view.joinButton.disabled = false;
  view.joinError.textContent = error;
  for (const input of [view.name, view.password, view.serverPassword]) {
    input.setAttribute("aria-invalid", error !== "" && input === field ? "true" : "false");
  }
  view.name.value = state.name || view.name.value;
  field.focus();
  field.select();
}

// --- input ---

view.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = view.name.value.trim();
  if (name === "") return showPrompt("Type a name first: 1 to 32 letters, digits, _ or -");
  state.name = name;
  if (nameKey(name) !== nameKey(keptPlace()?.name ?? "")) rememberPlace(undefined);
  state.seen = [];
  state.lastDay = undefined;
  view.log.replaceChildren();
  conversations.clear();
  view.joinError.textContent = "";
  view.joinButton.disabled = true;
  connect();
});

view.sayForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (state.secretPrompt) {
    // A password: sent as typed, never shown, echoed or kept for the up arrow.
    const secret = view.line.value;
    view.line.value = "";
    endSecret();
    if (!send(secret)) showLocalError("Not connected: your password was not sent");
    return;
  }
  const line = view.line.value.replaceAll("\t", " ");
  if (line.trim() === "") return;
  if (utf8Length(line) > state.maxLineBytes) {
    return showLocalError(`Line too long: at most ${state.maxLineBytes} bytes; it was not sent`);
  }
  // In a private conversation a plain line goes to that person; a command is still a command.
  const person = conversations.person;
  const out = person !== undefined && !line.startsWith("/") ? `/msg ${person} ${line}` : line;
  if (!send(out)) return showLocalError("Not connected: your line was not sent");
  // A password typed after /register is not kept for the up arrow.
  if (!/^\s*\/register\s+\S/i.test(line)) state.sent.push(line);
  if (state.sent.length > MAX_SENT) state.sent.shift();
  state.recall = state.sent.length;
  view.line.value = "";
  echo(line);
});

/** Shows what you sent as the others see it: the server does not send your own lines back. */
function echo(line: string): void {
  let command;
  try {
    command = parseCommand(line);
  } catch {
    return; // the server answers a malformed command with its own error
  }
  if (command.name === "say") {
    show(parseServerLine(formatUserLine(state.name, command.text))!, {
      raw: formatUserLine(state.name, command.text),
      isOwn: true,
    });
  } else if (command.name === "me") {
    const raw = formatAction(state.name, command.text);
    show(parseServerLine(raw)!, { raw, isOwn: true });
  }
}

function showLocalError(text: string): void {
  show({ kind: "error", text }, { raw: "", isLocal: true, isOwn: true });
}

view.line.addEventListener("keydown", (event) => {
  if (event.key !== "ArrowUp" && event.key !== "ArrowDown") return;
  if (state.secretPrompt) return;
  if (state.sent.length === 0) return;
  event.preventDefault();
  const step = event.key === "ArrowUp" ? -1 : 1;
  state.recall = Math.max(0, Math.min(state.sent.length, state.recall + step));
  view.line.value = state.sent[state.recall] ?? "";
  view.line.setSelectionRange(view.line.value.length, view.line.value.length);
});

view.line.addEventListener("keydown", (event) => {
  if (event.key !== "Tab" || event.shiftKey || state.secretPrompt) return;
  if (complete()) event.preventDefault(); // else Tab moves the focus on, as anywhere else
});

/** Completes the command or name before the cursor, or the next match; whether it did. */
function complete(): boolean {
  const caret = view.line.selectionStart ?? view.line.value.length;
  const done = state.completer.next(view.line.value, caret, {
    commands: state.roster.isOperator(state.name) ? OPERATOR_COMMANDS : COMMANDS,
    names: state.roster.names,
  });
  if (!done) return false;
  view.line.value = done.value;
  view.line.setSelectionRange(done.caret, done.caret);
  return true;
}

view.log.addEventListener("scroll", () => {
  const isAtBottom = view.log.scrollHeight - view.log.scrollTop - view.log.clientHeight <
    AT_BOTTOM_PX;
  if (isAtBottom) {
    state.unseenBelow = 0;
    view.newMessages.hidden = true;
  }
});

view.newMessages.addEventListener("click", () => {
  view.log.scrollTop = view.log.scrollHeight;
  view.line.focus();
});

document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  state.unread = 0;
  state.mentioned = 0;
  document.title = TITLE;
});

globalThis.addEventListener("online", () => {
  if (state.phase === "waiting") rejoinNow();
});

// On a phone the list of who is online starts folded, to leave the screen to the conversation.
if (matchMedia("(max-width: 40rem)").matches) element<HTMLDetailsElement>("people").open = false;
bindNotifySetting(view.notify);
bindSoundSetting(view.sound);
view.name.value = keptLocally(NAME_STORE) ?? "";
const kept = keptPlace();
if (kept) {
  // A reload (or a phone waking the tab): back to our place at once, the room none the wiser.
  state.name = view.name.value = kept.name;
  state.token = kept.token;
  view.joinButton.disabled = true;
  connect();
} else {
  view.passwordRow.hidden = keptLocally(REGISTERED_STORE) !== "true";
  openOnFirstTouch();
}
// Over plain HTTP to another machine, a password crosses the network readable: say so.
view.passwordHint.hidden = location.protocol === "https:" ||
  /^(localhost|127\.[0-9.]+|\[::1\])$/.test(location.hostname);
view.name.focus();

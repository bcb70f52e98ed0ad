// protocol/lines.ts
var DEFAULT_MAX_LINE_BYTES = 4096;
var ProtocolError = class extends Error {
  name = "ProtocolError";
};
var LineTooLongError = class extends ProtocolError {
  maxLineBytes;
  name;
  /** Creates the error for the given limit in bytes. */
  constructor(maxLineBytes) {
    super(`Line too long: the limit is ${maxLineBytes} bytes`), this.maxLineBytes = maxLineBytes, this.name = "LineTooLongError";
  }
};
var LF = 10;
var CR = 13;
var encoder = new TextEncoder();
var decoder = new TextDecoder();
var NO_LINES = [];
var LineBuffer = class {
  #maxLineBytes;
  #keepPartialLine;
  #pending;
  #pendingBytes = 0;
  #isDiscarding = false;
  /** An empty splitter with the given limit (default {@linkcode DEFAULT_MAX_LINE_BYTES}). */
  constructor(options = {}) {
    this.#maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.#keepPartialLine = options.keepPartialLine ?? false;
  }
  /** The lines `chunk` completes, in order. The chunk's bytes may be reused once this returns. */
  push(chunk) {
    let lines = NO_LINES;
    for (let start = 0; start < chunk.length; ) {
      const lf = chunk.indexOf(LF, start);
      if (lf === -1) {
        const tooLong = this.#hold(chunk.subarray(start));
        if (tooLong) (lines === NO_LINES ? lines = [] : lines).push(tooLong);
        break;
      }
      if (this.#isDiscarding) this.#isDiscarding = false;
      else (lines === NO_LINES ? lines = [] : lines).push(this.#line(chunk.subarray(start, lf)));
      start = lf + 1;
    }
    return lines;
  }
  /** At the end of the input: the last line if it has no line end and is kept, else nothing. */
  finish() {
    return this.#keepPartialLine && this.#pendingBytes > 0 ? [
      this.#line(new Uint8Array(0))
    ] : NO_LINES;
  }
  /** Keeps the start of a line until its end arrives; reports it once if it is already too long. */
  #hold(part) {
    if (this.#isDiscarding) return;
    if (this.#pendingBytes + part.length > this.#maxLineBytes + 1) {
      this.#pending = void 0;
      this.#pendingBytes = 0;
      this.#isDiscarding = true;
      return new LineTooLongError(this.#maxLineBytes);
    }
    (this.#pending ??= []).push(part.slice());
    this.#pendingBytes += part.length;
  }
  /** The line that `tail` ends (with what was held before it), decoded, or its too-long mark. */
  #line(tail) {
    const length = this.#pendingBytes + tail.length;
    const parts = this.#pending;
    this.#pending = void 0;
    this.#pendingBytes = 0;
    const max = this.#maxLineBytes;
    if (length > max + 1) return new LineTooLongError(max);
    let bytes = parts ? concatBytes([
      ...parts,
      tail
    ], length) : tail;
    if (bytes.at(-1) === CR) bytes = bytes.subarray(0, -1);
    if (bytes.length > max) return new LineTooLongError(max);
    const line = decoder.decode(bytes);
    if (bytes.length * 3 > max && line.includes("\uFFFD") && utf8Length(line) > max) {
      return new LineTooLongError(max);
    }
    return line;
  }
};
var LineSplitter = class extends TransformStream {
  /** Creates a splitter with the given limit (default {@linkcode DEFAULT_MAX_LINE_BYTES}). */
  constructor(options = {}) {
    const lines = new LineBuffer(options);
    super({
      transform(chunk, controller) {
        const batch = lines.push(chunk);
        if (batch.length > 0) controller.enqueue(batch);
      },
      flush(controller) {
        const batch = lines.finish();
        if (batch.length > 0) controller.enqueue(batch);
      }
    });
  }
};
function utf8Length(text) {
  return encoder.encode(text).length;
}
function concatBytes(parts, length) {
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

// web/node_util.ts
function stripVTControlCharacters(_text) {
  throw new Error("stripVTControlCharacters is not available in the page");
}

// protocol/text.ts
var MAX_NAME_LENGTH = 32;
var UNSAFE_CHARACTERS = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;
var ANY_UNSAFE = /[\p{Cc}\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
function cleanText(text) {
  if (!ANY_UNSAFE.test(text)) return text;
  return stripVTControlCharacters(text.replaceAll("	", " ")).replace(UNSAFE_CHARACTERS, "");
}
var NAME_PATTERN = /^[A-Za-z0-9_-]+$/;
function parseName(line) {
  const name = cleanText(line).trim();
  if (name.length === 0) {
    throw new ProtocolError(`Cannot accept an empty name: send 1 to ${MAX_NAME_LENGTH} letters, digits, "_" or "-"`);
  }
  if (name.length > MAX_NAME_LENGTH) {
    throw new ProtocolError(`Cannot accept name ${quote(name)}: a name has at most ${MAX_NAME_LENGTH} characters`);
  }
  if (!NAME_PATTERN.test(name)) {
    throw new ProtocolError(`Cannot accept name ${quote(name)}: use only ASCII letters, digits, "_" and "-"`);
  }
  return name;
}
function quote(value) {
  return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}...` : value);
}
function formatSystemLine(text) {
  return `* ${text}`;
}

// protocol/moderation.ts
var MAX_DURATION_MS = 365 * 24 * 3600 * 1e3;
var MAX_REASON_LENGTH = 200;
var MAX_TOPIC_LENGTH = 300;
var UNIT_MS = {
  s: 1e3,
  m: 6e4,
  h: 36e5,
  d: 864e5,
  w: 7 * 864e5
};
var DURATION = /^(\d{1,12})([smhdw])$/;
function parseDuration(word) {
  const match = DURATION.exec(word);
  if (!match) return void 0;
  const ms = Number(match[1]) * UNIT_MS[match[2]];
  if (ms === 0) throw new ProtocolError(`Cannot use duration ${quote(word)}: it must be over 0`);
  if (ms > MAX_DURATION_MS) {
    throw new ProtocolError(`Cannot use duration ${quote(word)}: the longest is 365d`);
  }
  return ms;
}
function unmarkNames(marked) {
  const names = marked.map((name) => name.startsWith("@") ? name.slice(1) : name);
  return {
    names,
    operators: names.filter((_, i) => marked[i].startsWith("@"))
  };
}
var OPERATOR_WELCOME = "* You are an operator: /help lists your commands";
var OPERATOR_HELP_LINES = [
  "Operator commands:",
  "/kick NAME [REASON]              put NAME out of the room",
  "/ban TARGET [DURATION] [REASON]  keep out a NAME, ADDRESS or CIDR (10m, 2h, 7d; none: until lifted)",
  "/unban TARGET                    lift a ban",
  "/bans                            list the bans",
  "/mute NAME [DURATION] [REASON]   refuse NAME's lines; they still read",
  "/unmute NAME                     lift a mute",
  "/topic TEXT                      set the topic (/topic - clears it)",
  "/op NAME, /deop NAME             make or unmake a registered name an operator",
  "/whois NAME                      where NAME connects from"
].map(formatSystemLine);
var MODERATION_USAGE = {
  kick: "/kick NAME [REASON]",
  ban: "/ban NAME|ADDRESS|CIDR [DURATION] [REASON]",
  unban: "/unban NAME|ADDRESS|CIDR",
  bans: "/bans",
  mute: "/mute NAME [DURATION] [REASON]",
  unmute: "/unmute NAME",
  topic: "/topic [TEXT | -]",
  op: "/op NAME",
  deop: "/deop NAME",
  whois: "/whois NAME",
  ops: "/ops"
};
var ADDRESS_TARGET = /^[0-9A-Fa-f:.]+(?:%[\w.-]+)?(?:\/\d{1,3})?$/;
function parseBanTarget(word) {
  if (/[.:]/.test(word)) {
    if (!ADDRESS_TARGET.test(word)) {
      throw new ProtocolError(`Cannot ban ${quote(word)}: give a name, an address (203.0.113.7, 2001:db8::1) or a CIDR`);
    }
    return {
      target: word,
      kind: "address"
    };
  }
  return {
    target: parseName(word),
    kind: "name"
  };
}
function parseReason(text) {
  if (text.length > MAX_REASON_LENGTH) {
    throw new ProtocolError(`Reason too long: at most ${MAX_REASON_LENGTH} characters`);
  }
  return text === "" ? void 0 : text;
}
function firstWord(args) {
  const gap = args.search(/\s/);
  return gap === -1 ? [
    args,
    ""
  ] : [
    args.slice(0, gap),
    args.slice(gap + 1).trim()
  ];
}
function parseTerm(rest) {
  const [word, after] = firstWord(rest);
  const durationMs = parseDuration(word);
  const reason = parseReason(durationMs === void 0 ? rest : after);
  return {
    ...durationMs === void 0 ? {} : {
      durationMs
    },
    ...reason === void 0 ? {} : {
      reason
    }
  };
}
function parseModerationCommand(word, args) {
  if (!Object.hasOwn(MODERATION_USAGE, word)) return void 0;
  const name = word;
  const usage = () => new ProtocolError(`Usage: ${MODERATION_USAGE[name]}`);
  const [first, rest] = firstWord(args);
  switch (name) {
    case "bans":
    case "ops":
      if (args !== "") throw usage();
      return {
        name
      };
    case "topic":
      return parseTopicArgs(args);
    case "unban":
      if (args === "" || rest !== "") throw usage();
      return {
        name,
        target: parseBanTarget(first).target
      };
    case "unmute":
    case "op":
    case "deop":
    case "whois":
      if (args === "" || rest !== "") throw usage();
      return {
        name,
        target: parseName(first)
      };
    case "kick": {
      if (args === "") throw usage();
      const reason = parseReason(rest);
      return {
        name,
        target: parseName(first),
        ...reason === void 0 ? {} : {
          reason
        }
      };
    }
    case "ban":
      if (args === "") throw usage();
      return {
        name,
        ...parseBanTarget(first),
        ...parseTerm(rest)
      };
    case "mute":
      if (args === "") throw usage();
      return {
        name,
        target: parseName(first),
        ...parseTerm(rest)
      };
  }
}
function parseTopicArgs(args) {
  if (args === "") return {
    name: "topic"
  };
  if (args === "-") return {
    name: "topic",
    text: ""
  };
  if (args.length > MAX_TOPIC_LENGTH) {
    throw new ProtocolError(`Topic too long: at most ${MAX_TOPIC_LENGTH} characters`);
  }
  return {
    name: "topic",
    text: args
  };
}
var NAME = "([A-Za-z0-9_-]{1,32})";
var TOPIC_LINE = /^Topic: (.*)$/s;
var TOPIC_SET_LINE = new RegExp(`^${NAME} set the topic: (.*)$`, "s");
var TOPIC_CLEARED_LINE = new RegExp(`^${NAME} cleared the topic$`);
var KICKED_LINE = new RegExp(`^error: You were kicked by ${NAME}(?:: (.*))?$`, "s");
var BANNED_LINE = /^error: You are banned(?: until (\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d) UTC)?(?:: (.*))?$/s;
function parseModerationLine(text) {
  const topic = TOPIC_LINE.exec(text);
  if (topic) return {
    kind: "topic",
    text: topic[1]
  };
  const set = TOPIC_SET_LINE.exec(text);
  if (set) return {
    kind: "topic",
    text: set[2],
    by: set[1]
  };
  const cleared = TOPIC_CLEARED_LINE.exec(text);
  if (cleared) return {
    kind: "topic",
    text: "",
    by: cleared[1]
  };
  const kicked = KICKED_LINE.exec(text);
  if (kicked) {
    return {
      kind: "kicked",
      by: kicked[1],
      ...kicked[2] ? {
        reason: kicked[2]
      } : {}
    };
  }
  const banned = BANNED_LINE.exec(text);
  if (banned) {
    const [, day, time, reason] = banned;
    return {
      kind: "banned",
      ...day ? {
        until: /* @__PURE__ */ new Date(`${day}T${time}Z`)
      } : {},
      ...reason ? {
        reason
      } : {}
    };
  }
}
var OPERATOR_CHANGE_LINE = new RegExp(`^\\* ${NAME} is (now|no longer) an operator \\(by (?:${NAME}|the server)\\)$`);
function parseOperatorChange(line) {
  const match = OPERATOR_CHANGE_LINE.exec(line);
  if (match) return {
    name: match[1],
    isOperator: match[2] === "now"
  };
}
var BARE_NAME = "[A-Za-z0-9_-]{1,32}";
var PUT_OUT_LINE = new RegExp(`^\\* (${BARE_NAME}(?:(?:, | and )${BARE_NAME})*) (?:was|were) (?:kicked|banned) by ${BARE_NAME}(?: until \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d UTC)?(?:: .*)?$`, "s");
function parsePutOut(line) {
  const match = PUT_OUT_LINE.exec(line);
  return match ? match[1].split(/, | and /) : void 0;
}

// protocol/resume.ts
function formatResume(name, token) {
  let valid;
  try {
    valid = parseName(name);
  } catch {
    return name;
  }
  return token ? `/resume ${valid} ${token}` : `/resume ${valid}`;
}
var TOKEN_LINE = /^\* Resume token: ([A-Za-z0-9_-]{24}) /;
function parseResumeToken(line) {
  return TOKEN_LINE.exec(line)?.[1];
}
function isResumeFailed(line) {
  return /^\* Could not resume [A-Za-z0-9_-]{1,32}: that place is no longer kept; joining anew$/.test(line);
}
var RESUMED_ELSEWHERE = "* You resumed this place on another connection";

// protocol.ts
var MAX_MAX_LINE_BYTES = 2 ** 24;
var encoder2 = new TextEncoder();
var NAME_COLOR_SLOTS = 12;
function nameColorSlot(name) {
  let hash = 2166136261;
  for (const char of nameKey(name)) hash = Math.imul(hash ^ char.charCodeAt(0), 16777619);
  return (hash >>> 0) % NAME_COLOR_SLOTS;
}
function nameKey(name) {
  return name.toLowerCase();
}
var SOCKET_PATH = "/chat";
var GREETING = "* Welcome to chat! What shall I call you?";
var REGISTERED_GREETING = "* Welcome to chat! Some names here are registered and need their password. What shall I call you?";
var PRIVATE_GREETING = "* Welcome to chat! This server is private: send its password";
var LOGIN_PROMPT = /^\* ([A-Za-z0-9_-]{1,32}) is registered: send its password$/;
var NEW_PROMPT = /^\* Send the new password for ([A-Za-z0-9_-]{1,32}) on the next line: /;
var CURRENT_PROMPT = /^\* Send the current password for ([A-Za-z0-9_-]{1,32}) on the next line /;
function parsePrompt(line) {
  if (line === PRIVATE_GREETING) return {
    kind: "server"
  };
  for (const [pattern, kind] of [
    [
      LOGIN_PROMPT,
      "login"
    ],
    [
      NEW_PROMPT,
      "new"
    ],
    [
      CURRENT_PROMPT,
      "current"
    ]
  ]) {
    const match = pattern.exec(line);
    if (match) return {
      kind,
      name: match[1]
    };
  }
}
function hasRegisteredNames(greeting) {
  if (greeting === REGISTERED_GREETING) return true;
  if (greeting === GREETING) return false;
}
function parseWrongSecret(error) {
  if (error === "Wrong server password") return "server";
  if (/^Wrong password for "[A-Za-z0-9_-]{1,32}"$/.test(error)) return "login";
}
function formatUserLine(name, text) {
  return `[${name}] ${text}`;
}
var ROOM_LIST = "The room contains:";
var ROOM_LIST_MORE = "The room also contains:";
var WHO_MORE = "also online:";
var SHUTDOWN_NOTICE = "* Server is shutting down, goodbye";
var TAKE_OVER = /^\* error: ([A-Za-z0-9_-]{1,32}) logged in from elsewhere with its password$/;
function parseTakeOver(line) {
  return TAKE_OVER.exec(line)?.[1];
}
var GOODBYE = "* Goodbye!";
var LIMITS_LINE = /^Limits: lines of up to (\d+) bytes(?:, (\d+) at once, then (\d+(?:\.\d+)?) a second)?$/;
function formatAction(name, text) {
  return formatSystemLine(`[${name}] ${text}`);
}
function formatHistory(time, line) {
  return formatSystemLine(`history ${time.toISOString().slice(0, 19)}Z ${line}`);
}
var HELP_LINES = [
  "/who              who is online",
  "/nick NEW         change your name",
  "/me TEXT          an action, shown as * [NAME] TEXT",
  "/msg NAME TEXT    a private message to NAME only",
  "/quit [REASON]    leave, telling the others why",
  "/register         protect your name with a password (asked on the next line)",
  "/password         change your name's password",
  "/unregister       give up your name's password",
  "/topic            the room's topic",
  "/ops              the operators online",
  "//TEXT            send TEXT that starts with /",
  "/help             this list"
].map(formatSystemLine);
var COMMAND_USAGE = {
  help: "/help",
  who: "/who",
  nick: "/nick NEW",
  me: "/me TEXT",
  msg: "/msg NAME TEXT",
  quit: "/quit [REASON]",
  register: "/register [PASSWORD]",
  password: "/password",
  unregister: "/unregister"
};
function parseCommand(line) {
  if (!line.startsWith("/")) return {
    name: "say",
    text: line
  };
  if (line.startsWith("//")) return {
    name: "say",
    text: line.slice(1)
  };
  const space = line.indexOf(" ");
  const word = (space === -1 ? line.slice(1) : line.slice(1, space)).toLowerCase();
  const args = space === -1 ? "" : line.slice(space + 1).trim();
  const usage = () => new ProtocolError(`Usage: ${COMMAND_USAGE[word]}`);
  switch (word) {
    case "help":
    case "who":
      if (args !== "") throw usage();
      return {
        name: word
      };
    case "nick":
      if (args === "") throw usage();
      return {
        name: "nick",
        newName: parseName(args)
      };
    // a space in it: the name rule says why
    case "me":
      if (args === "") throw usage();
      return {
        name: "me",
        text: args
      };
    case "msg": {
      const gap = args.indexOf(" ");
      const text = gap === -1 ? "" : args.slice(gap + 1).trim();
      if (text === "") throw usage();
      return {
        name: "msg",
        to: args.slice(0, gap),
        text
      };
    }
    case "quit":
      return {
        name: "quit",
        reason: args
      };
    case "register":
      return args === "" ? {
        name: "register"
      } : {
        name: "register",
        password: args
      };
    case "password":
    case "unregister":
      if (args !== "") throw usage();
      return {
        name: word
      };
    default: {
      const command = parseModerationCommand(word, args);
      if (command) return command;
      throw new ProtocolError(`Unknown command ${quote(`/${word}`)}: /help lists the commands`);
    }
  }
}
function firstNewLine(seen, replayed) {
  for (let end = replayed.length; end > 0; end--) {
    const length = Math.min(end, seen.length);
    if (length === 0) break;
    let isMatch = true;
    for (let k = 1; k <= length && isMatch; k++) isMatch = replayed[end - k] === seen.at(-k);
    if (isMatch) return end;
  }
  return 0;
}
function backoffDelay(attempt, options, random = Math.random()) {
  const [low, high] = options.jitter;
  return Math.min(options.mostMs, options.firstMs * 2 ** attempt) * (low + random * (high - low));
}
var NAME2 = "([A-Za-z0-9_-]{1,32})";
var USER_LINE = new RegExp(`^\\[${NAME2}\\] (.*)$`, "s");
var PRIVATE_LINE = new RegExp(`^private (from|to) ${NAME2}: (.*)$`, "s");
var RENAME_LINE = new RegExp(`^${NAME2} is now known as ${NAME2}$`);
var HISTORY_LINE = /^history (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (.*)$/s;
var JOIN_LINE = new RegExp(`^${NAME2} has entered the room$`);
var LEAVE_LINE = new RegExp(`^${NAME2} has left the room(?:$|: | \\()`);
var WHO_LINE = new RegExp(`^(?:\\d+ online:|${WHO_MORE})(?: (.*))?$`);
function parseServerLine(line) {
  const user = USER_LINE.exec(line);
  if (user) return {
    kind: "user",
    name: user[1],
    text: user[2]
  };
  if (!line.startsWith("* ")) return void 0;
  const text = line.slice(2);
  const action = USER_LINE.exec(text);
  if (action) return {
    kind: "action",
    name: action[1],
    text: action[2]
  };
  const message = PRIVATE_LINE.exec(text);
  if (message) {
    return {
      kind: "private",
      direction: message[1],
      name: message[2],
      text: message[3]
    };
  }
  const rename = RENAME_LINE.exec(text);
  if (rename) return {
    kind: "rename",
    oldName: rename[1],
    newName: rename[2]
  };
  const history = HISTORY_LINE.exec(text);
  const inner = history && parseServerLine(history[2]);
  if (inner) return {
    kind: "history",
    time: new Date(history[1]),
    line: inner
  };
  const moderation = parseModerationLine(text);
  if (moderation) return moderation;
  if (text.startsWith("error: ")) return {
    kind: "error",
    text: text.slice("error: ".length)
  };
  for (const [prefix, isContinued] of [
    [
      ROOM_LIST,
      false
    ],
    [
      ROOM_LIST_MORE,
      true
    ]
  ]) {
    if (!text.startsWith(prefix)) continue;
    const names = text.slice(prefix.length).trim();
    return {
      kind: "room",
      ...unmarkNames(names === "" ? [] : names.split(", ")),
      isContinued
    };
  }
  const limits = LIMITS_LINE.exec(text);
  if (limits) {
    const [, maxLineBytes, floodBurst, floodRate] = limits;
    return {
      kind: "limits",
      limits: {
        maxLineBytes: Number(maxLineBytes),
        ...floodRate ? {
          floodBurst: Number(floodBurst),
          floodRate: Number(floodRate)
        } : {}
      }
    };
  }
  const join = JOIN_LINE.exec(text);
  if (join) return {
    kind: "join",
    name: join[1],
    text
  };
  const leave = LEAVE_LINE.exec(text);
  if (leave) return {
    kind: "leave",
    name: leave[1],
    text
  };
  const who = WHO_LINE.exec(text);
  if (who) {
    const marked = who[1] ? who[1].split(", ") : [];
    return {
      kind: "who",
      ...unmarkNames(marked),
      isContinued: text.startsWith(WHO_MORE),
      text
    };
  }
  return {
    kind: "system",
    text
  };
}
var SLAB_BYTES = 64 * 1024;
var slab = new Uint8Array(SLAB_BYTES);

// web/banner.ts
var Banner = class {
  #root;
  #text;
  #count;
  #button;
  constructor(root, text, count, button) {
    this.#root = root;
    this.#text = text;
    this.#count = count;
    this.#button = button;
  }
  /** The banner with `text` and a button, if any. */
  show(text, action, onAction) {
    if (this.#text.textContent !== text) this.#text.textContent = text;
    this.#count.textContent = "";
    this.#root.hidden = false;
    this.#button.hidden = action === void 0;
    if (action !== void 0 && this.#button.textContent !== action) {
      this.#button.textContent = action;
    }
    this.#button.onclick = onAction ?? null;
  }
  /** The countdown after the text, for the eye. */
  count(text) {
    this.#count.textContent = text;
  }
  hide() {
    this.#root.hidden = true;
    this.#button.onclick = null;
  }
};

// web/room.ts
var Roster = class {
  #names = /* @__PURE__ */ new Map();
  /** The keys of the names known to be operators. */
  #operators = /* @__PURE__ */ new Set();
  #own;
  /** `own` answers your current name, which the list leaves out. */
  constructor(own = () => "") {
    this.#own = own;
  }
  /** The names in the order they came, yours not included. */
  get names() {
    return [
      ...this.#names.values()
    ];
  }
  /** Whether `name` is an operator, as far as the room said. */
  isOperator(name) {
    return this.#operators.has(nameKey(name));
  }
  /** Updates the list from one parsed server line (and its text); returns whether it changed. */
  apply(line, raw = "") {
    switch (line.kind) {
      case "room":
      case "who":
        if (!line.isContinued) {
          this.#names.clear();
          this.#operators.clear();
        }
        for (const name of line.names) {
          if (nameKey(name) !== nameKey(this.#own())) this.#names.set(nameKey(name), name);
        }
        for (const name of line.operators) this.#operators.add(nameKey(name));
        return true;
      case "rename":
        this.#operators.delete(nameKey(line.oldName));
        if (!this.#names.delete(nameKey(line.oldName))) return false;
        this.#names.set(nameKey(line.newName), line.newName);
        return true;
      case "join":
        this.#names.set(nameKey(line.name), line.name);
        return true;
      case "leave":
        return this.#names.delete(nameKey(line.name));
      case "system": {
        if (raw === OPERATOR_WELCOME) {
          this.#operators.add(nameKey(this.#own()));
          return true;
        }
        const out = parsePutOut(raw);
        if (out) return out.filter((name) => this.#names.delete(nameKey(name))).length > 0;
        const change = parseOperatorChange(raw);
        if (!change) return false;
        if (change.isOperator) this.#operators.add(nameKey(change.name));
        else this.#operators.delete(nameKey(change.name));
        return true;
      }
      default:
        return false;
    }
  }
};
function reconnectDelay(attempt, random = Math.random()) {
  return Math.round(backoffDelay(attempt, {
    firstMs: 1e3,
    mostMs: 3e4,
    jitter: [
      0.75,
      1.25
    ]
  }, random));
}
function commandsOf(help) {
  return help.flatMap((line) => [
    ...line.replace(/^\* /, "").split("  ")[0].matchAll(/(?:^|, )(\/[a-z]+)/g)
  ].map((match) => match[1]));
}
function completions(before, options) {
  const addressed = /(?:^|\s)@([A-Za-z0-9_-]*)$/.exec(before);
  if (addressed) {
    return {
      start: before.length - addressed[1].length,
      candidates: named(addressed[1], options.names)
    };
  }
  const isCommand = /^\/[A-Za-z]*$/.test(before);
  if (!isCommand && !/^\/[A-Za-z]+ /.test(before)) return {
    start: before.length,
    candidates: []
  };
  const word = isCommand ? before : /[A-Za-z0-9_-]*$/.exec(before)[0];
  return {
    start: before.length - word.length,
    candidates: named(word, isCommand ? options.commands : options.names)
  };
}
var Completer = class {
  #last;
  /** The field's value and caret after a Tab at `caret` in `value`; undefined when nothing matches. */
  next(value, caret, sources) {
    let last = this.#last;
    if (last?.value === value) {
      last.index = (last.index + 1) % last.candidates.length;
    } else {
      const before = value.slice(0, caret);
      const { start, candidates } = completions(before, sources);
      if (candidates.length === 0) return void 0;
      const after = value.slice(caret).replace(/^ /, "");
      last = this.#last = {
        value: "",
        before: before.slice(0, start),
        after,
        candidates,
        index: 0
      };
    }
    const head = `${last.before}${last.candidates[last.index]} `;
    last.value = head + last.after;
    return {
      value: last.value,
      caret: head.length
    };
  }
};
function named(prefix, words) {
  const lower = prefix.toLowerCase();
  return [
    ...new Set(words)
  ].filter((candidate) => candidate.toLowerCase().startsWith(lower)).sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
}

// web/mentions.ts
function mentions(text, name) {
  if (name === "") return false;
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`(?<![\\p{L}\\p{N}_-])${escaped}(?![\\p{L}\\p{N}_-])`, "iu").test(text);
}
function tabTitle(base, unread, mentioned) {
  const parts = [
    mentioned > 0 ? `@${mentioned}` : "",
    unread > 0 ? `(${unread})` : "",
    base
  ];
  return parts.filter((part) => part !== "").join(" ");
}

// web/dates.ts
function dayKey(time) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${time.getFullYear()}-${pad(time.getMonth() + 1)}-${pad(time.getDate())}`;
}
function separatorDay(previous, time, now = /* @__PURE__ */ new Date()) {
  const day = dayKey(time);
  if (previous === void 0) return day === dayKey(now) ? void 0 : day;
  return day === previous ? void 0 : day;
}
var dayName = new Intl.DateTimeFormat(void 0, {
  weekday: "long",
  month: "long",
  day: "numeric"
});
var dayNameWithYear = new Intl.DateTimeFormat(void 0, {
  weekday: "long",
  year: "numeric",
  month: "long",
  day: "numeric"
});
function dayLabel(time, now = /* @__PURE__ */ new Date()) {
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1);
  if (dayKey(time) === dayKey(now)) return "Today";
  if (dayKey(time) === dayKey(yesterday)) return "Yesterday";
  return (time.getFullYear() === now.getFullYear() ? dayName : dayNameWithYear).format(time);
}

// web/render.ts
var clock = new Intl.DateTimeFormat(void 0, {
  hour: "2-digit",
  minute: "2-digit"
});
var dayClock = new Intl.DateTimeFormat(void 0, {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit"
});
var fullDate = new Intl.DateTimeFormat(void 0, {
  dateStyle: "full",
  timeStyle: "short"
});
var HELP_ROWS = /* @__PURE__ */ new Set([
  ...HELP_LINES,
  ...OPERATOR_HELP_LINES
]);
function isHelpRow(raw) {
  return HELP_ROWS.has(raw);
}
function refusalOf(raw, line) {
  if (line.kind === "error") return line.text;
  return line.kind === "kicked" || line.kind === "banned" ? raw.slice("* error: ".length) : "";
}
function isMention(line, options) {
  if (line.kind === "private") return line.direction === "from";
  return (line.kind === "user" || line.kind === "action") && !options.isOwn && nameKey(line.name) !== nameKey(options.own) && mentions(line.text, options.own);
}
function render(line, options, time = /* @__PURE__ */ new Date()) {
  const item = document.createElement("li");
  const isNotice = line.kind === "join" || line.kind === "leave" || line.kind === "who";
  item.className = `line ${isNotice ? "system" : line.kind}`;
  if (options.isOwn) item.classList.add("own");
  if (isMention(line, options)) item.classList.add("mention");
  if (line.kind === "history") {
    const inner = render(line.line, {
      raw: "",
      own: options.own
    }, line.time);
    inner.classList.add("history");
    inner.prepend(span("tag", "earlier"));
    return inner;
  }
  if (line.kind === "system" && isHelpRow(options.raw)) {
    return helpRow(item, line.text, options.isContinued ? void 0 : timeStamp(time));
  }
  item.append(timeStamp(time));
  switch (line.kind) {
    case "user":
      item.append(nameTag(line.name, options.own), span("text", line.text));
      break;
    case "action":
      item.append(span("mark", "*"), nameTag(line.name, options.own), span("text", line.text));
      break;
    case "private": {
      const [from, to] = line.direction === "from" ? [
        line.name,
        "you"
      ] : [
        "you",
        line.name
      ];
      item.append(span("tag", "private"));
      item.append(from === "you" ? span("you", "you") : nameTag(from, options.own), span("arrow", "\u2192"));
      item.append(to === "you" ? span("you", "you") : nameTag(to, options.own), span("text", line.text));
      break;
    }
    case "rename":
      item.append(span("text", `${line.oldName} is now known as ${line.newName}`));
      break;
    case "room": {
      const names = line.names.map((name) => line.operators.includes(name) ? `@${name}` : name).join(", ");
      const text = line.isContinued ? `Also in the room: ${names}` : names === "" ? "Nobody else is here yet" : `In the room: ${names}`;
      item.append(span("text", text));
      break;
    }
    case "error":
      item.append(span("mark", "!"), span("text", line.text));
      break;
    case "kicked":
    case "banned":
      item.append(span("mark", "!"), span("text", refusalOf(options.raw, line)));
      break;
    case "topic":
      item.append(span("text", options.raw.slice(2)));
      break;
    case "join":
    case "leave":
    case "who":
    case "system":
      item.append(span("text", line.text));
      break;
  }
  return item;
}
function timeStamp(time) {
  const stamp = document.createElement("time");
  stamp.dateTime = time.toISOString();
  stamp.textContent = (time.toDateString() === (/* @__PURE__ */ new Date()).toDateString() ? clock : dayClock).format(time);
  stamp.title = fullDate.format(time);
  return stamp;
}
function helpRow(item, text, stamp) {
  item.classList.add("help");
  item.append(stamp ?? span("gap", ""));
  const cells = /^(\S.*?) {2,}(.*)$/.exec(text);
  if (cells) item.append(span("command", cells[1]), span("text", cells[2]));
  else item.append(span("heading", text));
  return item;
}
function span(className, text) {
  const element2 = document.createElement("span");
  element2.className = className;
  element2.textContent = text;
  return element2;
}
function nameTag(name, own) {
  const tag = span(`name c${nameColorSlot(name)}`, name);
  if (nameKey(name) === nameKey(own)) tag.classList.add("self");
  return tag;
}

// web/stored.ts
function keepLocally(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
  }
}
function keptLocally(key) {
  try {
    return localStorage.getItem(key) ?? void 0;
  } catch {
    return void 0;
  }
}

// web/notify.ts
var NOTIFY_STORE = "chat.notify";
function isNotifyOn() {
  return keptLocally(NOTIFY_STORE) === "on";
}
function bindNotifySetting(box) {
  box.checked = isNotifyOn() && "Notification" in globalThis && Notification.permission === "granted";
  box.addEventListener("change", async () => {
    let isOn = box.checked;
    if (isOn && "Notification" in globalThis) {
      isOn = await Notification.requestPermission() === "granted";
    } else if (isOn) {
      isOn = false;
    }
    box.checked = isOn;
    keepLocally(NOTIFY_STORE, isOn ? "on" : "off");
  });
}
function notifyMention(from, text, isPrivate = false) {
  if (!document.hidden || !isNotifyOn()) return;
  if (!("Notification" in globalThis) || Notification.permission !== "granted") return;
  const notification = new Notification(isPrivate ? `${from}, privately` : `${from} mentioned you`, {
    body: text,
    tag: "chat-mention"
  });
  notification.onclick = () => {
    globalThis.focus();
    notification.close();
  };
}

// web/private.ts
var MAX_PEOPLE = 50;
var Conversations = class {
  /** The person's key → their name as last seen and the lines of theirs not seen. */
  #people = /* @__PURE__ */ new Map();
  /** The key of the person whose conversation is shown; "" for the room. */
  #current = "";
  #nav;
  #room;
  #log;
  constructor(nav, room, log) {
    this.#nav = nav;
    this.#room = room;
    this.#log = log;
    room.addEventListener("click", () => this.select(""));
  }
  /** The name of the person whose conversation is shown, or undefined for the room. */
  get person() {
    return this.#people.get(this.#current)?.name;
  }
  /**
   * A line just added to the log: a private one (with `peer`) belongs to that person's
   * conversation, counted as unseen unless it is shown; any line is hidden unless it belongs to
   * what is shown.
   */
  add(item, peer, isFromThem = false) {
    if (peer !== void 0) {
      const key = nameKey(peer);
      item.dataset.peer = key;
      const person = this.#person(key, peer);
      if (isFromThem && key !== this.#current) person.unseen++;
      this.#label(key);
    }
    item.hidden = this.#current !== "" && item.dataset.peer !== this.#current;
  }
  /** Shows the conversation with the person of `key`, or the room for "". */
  select(key) {
    this.#current = this.#people.has(key) ? key : "";
    const person = this.#people.get(this.#current);
    if (person) person.unseen = 0;
    for (const item of this.#log.children) {
      item.hidden = this.#current !== "" && item.dataset.peer !== this.#current;
    }
    this.#room.setAttribute("aria-pressed", String(this.#current === ""));
    for (const key2 of this.#people.keys()) this.#label(key2);
  }
  /**
   * Someone took another name (`/nick`): their conversation, its lines and its unseen count follow
   * them, joining the one under the new name if there was one.
   */
  rename(oldName, newName) {
    const [from, to] = [
      nameKey(oldName),
      nameKey(newName)
    ];
    const person = this.#people.get(from);
    if (!person) return;
    const other = this.#people.get(to);
    if (from !== to) {
      this.#people.delete(from);
      for (const item of this.#log.children) {
        if (item.dataset.peer === from) item.dataset.peer = to;
      }
    }
    if (other && other !== person) {
      other.unseen += person.unseen;
      person.button.remove();
    } else {
      person.button.dataset.peer = to;
      this.#people.set(to, person);
    }
    this.#people.get(to).name = newName;
    this.select(this.#current === from ? to : this.#current);
  }
  /** Forgets every conversation (a new join), back to the room. */
  clear() {
    for (const { button } of this.#people.values()) button.remove();
    this.#people.clear();
    this.select("");
  }
  #person(key, name) {
    let person = this.#people.get(key);
    if (!person) {
      const button = document.createElement("button");
      button.type = "button";
      button.dataset.peer = key;
      button.addEventListener("click", () => this.select(button.dataset.peer ?? ""));
      this.#nav.append(button);
      person = {
        name,
        unseen: 0,
        button
      };
      this.#people.set(key, person);
      if (this.#people.size > MAX_PEOPLE) {
        const [oldest] = this.#people.keys();
        if (oldest !== void 0 && oldest !== this.#current) {
          this.#people.get(oldest)?.button.remove();
          this.#people.delete(oldest);
        }
      }
    }
    person.name = name;
    return person;
  }
  /** A person's button: their name, and how many of their lines are unseen. */
  #label(key) {
    const person = this.#people.get(key);
    if (!person) return;
    const count = document.createElement("span");
    count.className = "count";
    count.textContent = person.unseen > 0 ? String(person.unseen) : "";
    count.hidden = person.unseen === 0;
    person.button.replaceChildren(person.name, count);
    person.button.setAttribute("aria-pressed", String(key === this.#current));
    person.button.setAttribute("aria-label", person.unseen > 0 ? `${person.name}, ${person.unseen} unread` : person.name);
  }
};

// web/place.ts
var RESUME_STORE = "chat.resume";
function keepPlace(name, token) {
  try {
    if (token === void 0) sessionStorage.removeItem(RESUME_STORE);
    else sessionStorage.setItem(RESUME_STORE, JSON.stringify({
      name,
      token
    }));
  } catch {
  }
}
function keptPlace() {
  try {
    const kept2 = JSON.parse(sessionStorage.getItem(RESUME_STORE) ?? "null");
    if (typeof kept2?.name === "string" && typeof kept2?.token === "string") return kept2;
  } catch {
  }
}

// web/sound.ts
var SOUND_STORE = "chat.sound";
var PITCH = 880;
var VOLUME = 0.08;
var LENGTH = 0.15;
var GAP_MS = 2e3;
var context;
var lastToneAt = -Infinity;
function bindSoundSetting(box) {
  box.checked = keptLocally(SOUND_STORE) !== "off";
  box.addEventListener("change", () => keepLocally(SOUND_STORE, box.checked ? "on" : "off"));
}
function playMentionSound(box) {
  if (!box.checked || !("AudioContext" in globalThis)) return;
  const at = performance.now();
  if (at - lastToneAt < GAP_MS) return;
  lastToneAt = at;
  box.dataset.quietUntil = String(at + GAP_MS);
  try {
    const audio = context ??= new AudioContext();
    audio.onstatechange = () => {
      box.dataset.audio = audio.state;
    };
    box.dataset.audio = audio.state;
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    const now = audio.currentTime;
    tone.frequency.value = PITCH;
    gain.gain.setValueAtTime(1e-4, now);
    gain.gain.exponentialRampToValueAtTime(VOLUME, now + 0.01);
    gain.gain.exponentialRampToValueAtTime(1e-4, now + LENGTH);
    tone.connect(gain).connect(audio.destination);
    tone.onended = () => {
      gain.disconnect();
      box.dataset.played = String(Number(box.dataset.played ?? "0") + 1);
    };
    box.dataset.tones = String(Number(box.dataset.tones ?? "0") + 1);
    tone.start(now);
    tone.stop(now + LENGTH + 0.01);
  } catch {
  }
}

// web/page.ts
var MAX_LINES = 2e3;
var MAX_SEEN = 500;
var MAX_SENT = 200;
var AT_BOTTOM_PX = 48;
var HISTORY_PREFIX = formatHistory(/* @__PURE__ */ new Date(0), "").length;
var TITLE = document.title;
var NAME_STORE = "chat.name";
var REGISTERED_STORE = "chat.registered-names";
var COMMANDS = commandsOf(HELP_LINES);
var OPERATOR_COMMANDS = commandsOf([
  ...HELP_LINES,
  ...OPERATOR_HELP_LINES
]);
function element(id) {
  const found = document.getElementById(id);
  if (!found) throw new Error(`The page has no #${id}`);
  return found;
}
var view = {
  join: element("join"),
  joinForm: element("join-form"),
  name: element("name"),
  joinButton: element("join-button"),
  joinError: element("join-error"),
  password: element("password"),
  passwordRow: element("password-row"),
  serverPassword: element("server-password"),
  serverPasswordRow: element("server-password-row"),
  passwordHint: element("password-hint"),
  chat: element("chat"),
  log: element("log"),
  newMessages: element("new-messages"),
  people: element("people"),
  sendButton: element("send-button"),
  views: element("views"),
  roomView: element("room-view"),
  roster: element("roster"),
  rosterCount: element("roster-count"),
  sayForm: element("say-form"),
  line: element("line"),
  me: element("me"),
  topic: element("topic"),
  topicText: element("topic-text"),
  notify: element("notify"),
  sound: element("sound")
};
var conversations = new Conversations(view.views, view.roomView, view.log);
var banner = new Banner(element("banner"), element("banner-text"), element("banner-count"), element("banner-button"));
var state = {
  phase: "prompt",
  socket: void 0,
  /** The greeting of the socket the page opened on loading, while it waits for the join form. */
  greeting: void 0,
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
  secretPrompt: void 0,
  hasQuit: false,
  /** The last line, when it was an error: why the server closed us, if it did. */
  lastError: "",
  /** Why the connection ended, when the server said. */
  closeReason: "",
  /** The server said our name logged in from elsewhere: rejoining would take it back. */
  isTakenOver: false,
  /** The server's resume token for our place: a reload or a lost connection comes back to it. */
  token: void 0,
  /** Another page came back to our place with our token (a duplicated tab): this one stops. */
  isResumedElsewhere: false,
  /** The server's word that we came back to our place, shown after the welcome. */
  resumed: void 0,
  attempt: 0,
  timer: void 0,
  maxLineBytes: Infinity,
  roster: new Roster(() => state.name),
  /** Chat lines shown, as the server sends them, to skip in the history on rejoining. */
  seen: [],
  /** History lines replayed while joining, shown once the join is complete. */
  replay: [],
  sent: [],
  recall: 0,
  completer: new Completer(),
  unread: 0,
  /** Lines that said our name while the tab was hidden, counted apart from `unread`. */
  mentioned: 0,
  unseenBelow: 0,
  /** The input had the cursor when the connection was lost: it gets it back on rejoining. */
  isInputFocused: false,
  /** The local day of the last line shown (`YYYY-MM-DD`), for the day separators. */
  lastDay: void 0
};
function connect() {
  const waiting = state.phase === "prompt" ? state.socket : void 0;
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
    state.greeting = void 0;
    if (greeting !== void 0) receive(greeting);
    return;
  }
  waiting?.close();
  openSocket();
}
function openOnFirstTouch() {
  const touched = new AbortController();
  const open = () => {
    touched.abort();
    if (state.phase === "prompt" && state.socket === void 0) openSocket();
  };
  for (const type of [
    "keydown",
    "pointerdown",
    "input"
  ]) {
    view.joinForm.addEventListener(type, open, {
      signal: touched.signal
    });
  }
}
function openSocket() {
  state.greeting = void 0;
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${scheme}//${location.host}${SOCKET_PATH}`);
  state.socket = socket;
  socket.addEventListener("message", (event) => {
    if (typeof event.data !== "string") return;
    for (const line of event.data.split("\n")) {
      if (socket === state.socket && line !== "") receive(line);
    }
  });
  socket.addEventListener("close", () => {
    if (socket === state.socket) closed();
  });
}
function send(line) {
  if (state.phase !== "joined" || state.socket?.readyState !== WebSocket.OPEN) return false;
  state.socket.send(line);
  return true;
}
function receive(raw) {
  if (state.phase === "prompt") return heard(raw);
  const line = parseServerLine(raw) ?? {
    kind: "system",
    text: raw
  };
  if (state.phase === "joining") return receiveWhileJoining(raw, line);
  const token = parseResumeToken(raw);
  if (token !== void 0) return rememberPlace(token);
  const prompt = line.kind === "system" ? parsePrompt(raw) : void 0;
  if (prompt) return askSecret(prompt, raw);
  if (line.kind === "rename" && nameKey(line.oldName) === nameKey(state.name)) {
    setName(line.newName);
    rememberPlace(state.token);
  } else if (line.kind === "rename") {
    conversations.rename(line.oldName, line.newName);
  }
  if (line.kind === "limits") state.maxLineBytes = line.limits.maxLineBytes;
  if (state.roster.apply(line, raw)) showRoster();
  if (line.kind === "topic") showTopic(line.text);
  if (raw === GOODBYE) state.hasQuit = true;
  if (raw === RESUMED_ELSEWHERE) state.isResumedElsewhere = true;
  if (raw === SHUTDOWN_NOTICE) {
    state.closeReason = "The server shut down";
  }
  if (parseTakeOver(raw) !== void 0) state.isTakenOver = true;
  state.lastError = refusalOf(raw, line);
  show(line, {
    raw
  });
}
function heard(raw) {
  if (state.greeting !== void 0) return;
  state.greeting = raw;
  const refusal = refusalOf(raw, parseServerLine(raw) ?? {
    kind: "system",
    text: raw
  });
  if (refusal !== "") view.joinError.textContent = refusal;
  else showPasswordRow(raw);
}
function showPasswordRow(greeting) {
  const hasNames = hasRegisteredNames(greeting);
  view.passwordRow.hidden = hasNames === false;
  if (parsePrompt(greeting)?.kind === "server") view.serverPasswordRow.hidden = false;
  view.joinForm.dataset.registeredNames = String(hasNames ?? "unknown");
  if (hasNames !== void 0) keepLocally(REGISTERED_STORE, String(hasNames));
}
function receiveWhileJoining(raw, line) {
  const prompt = line.kind === "system" ? parsePrompt(raw) : void 0;
  if (isResumeFailed(raw)) rememberPlace(void 0);
  if (refusalOf(raw, line) !== "") {
    state.rejection = refusalOf(raw, line);
    state.isBanned = line.kind === "banned";
  } else if (prompt?.kind === "server" || prompt?.kind === "login") {
    answerPrompt(prompt);
  } else if (!state.isNameSent && line.kind !== "room") {
    state.isNameSent = true;
    showPasswordRow(raw);
    state.socket?.send(formatResume(state.name, state.token));
  } else if (line.kind === "room") {
    if (!line.isContinued) joined();
    state.roster.apply(line, raw);
    show(line, {
      raw,
      isLocal: true
    });
  } else if (line.kind === "history") {
    state.replay.push({
      raw,
      line
    });
  } else if (line.kind === "limits") {
    state.maxLineBytes = line.limits.maxLineBytes;
  } else if (line.kind === "system" && line.text.startsWith("Resumed: ")) {
    state.resumed = {
      raw,
      line
    };
  } else if (line.kind === "system" && line.text.startsWith("Welcome, ")) {
    const replayed = state.replay.map(({ raw: raw2 }) => raw2.slice(HISTORY_PREFIX));
    for (const { raw: raw2, line: line2 } of state.replay.slice(firstNewLine(state.seen, replayed))) {
      show(line2, {
        raw: raw2
      });
    }
    state.replay = [];
    state.phase = "joined";
    setConnected(true);
    showRoster();
    show(line, {
      raw
    });
    if (state.resumed) show(state.resumed.line, {
      raw: state.resumed.raw
    });
    state.resumed = void 0;
  }
}
function answerPrompt(prompt) {
  const field = prompt.kind === "server" ? view.serverPassword : view.password;
  if (field.value === "") {
    const socket = state.socket;
    state.socket = void 0;
    socket?.close();
    (prompt.kind === "server" ? view.serverPasswordRow : view.passwordRow).hidden = false;
    showPrompt(prompt.kind === "server" ? "This server is private: type its password" : `${state.name} is registered: type its password`);
    field.focus();
    return;
  }
  state.socket?.send(field.value);
}
function askSecret(prompt, raw) {
  show({
    kind: "system",
    text: raw.slice(2)
  }, {
    raw
  });
  state.secretPrompt = prompt;
  view.line.value = "";
  view.line.type = "password";
  view.line.placeholder = prompt.kind === "new" ? `New password for ${prompt.name} (not shown; empty cancels)` : `Password for ${prompt.name} (not shown)`;
  view.line.focus();
}
function endSecret() {
  state.secretPrompt = void 0;
  view.line.type = "text";
  view.line.placeholder = "Message, or /help";
}
function joined() {
  state.attempt = 0;
  if (!state.isRejoin) state.roster = new Roster(() => state.name);
  showTopic("");
  keepLocally(NAME_STORE, state.name);
  banner.hide();
  if (state.isRejoin) show({
    kind: "system",
    text: "Reconnected"
  }, {
    raw: "",
    isLocal: true
  });
  view.join.hidden = true;
  view.chat.hidden = false;
  setName(state.name);
  if (!state.isRejoin) state.isInputFocused = true;
  state.isRejoin = true;
}
function rememberPlace(token) {
  state.token = token;
  keepPlace(state.name, token);
}
function closed() {
  const wasJoining = state.phase === "joining";
  state.socket = void 0;
  if (state.phase === "prompt") return;
  setConnected(false);
  if (state.hasQuit || state.isTakenOver || state.lastError !== "" || state.isResumedElsewhere) {
    rememberPlace(void 0);
  }
  if (!wasJoining && state.isResumedElsewhere) {
    state.phase = "left";
    return banner.show(`Your place as ${state.name} was taken up by another page (a copy of this tab?).`, "Join again", () => showPrompt(""));
  }
  if (state.hasQuit) {
    state.phase = "left";
    return banner.show("You left the room.", "Join again", () => rejoinNow());
  }
  if (wasJoining && state.rejection !== "" && (state.isBanned || !isTransient(state.rejection))) {
    if (!state.isRejoin) {
      const wrong = parseWrongSecret(state.rejection);
      const field = wrong === "login" ? view.password : wrong === "server" ? view.serverPassword : view.name;
      return showPrompt(state.rejection, field);
    }
    state.phase = "left";
    return banner.show(`Cannot rejoin as ${state.name}: ${state.rejection}`, "Choose a name", () => showPrompt(""));
  }
  if (!wasJoining && state.isTakenOver) {
    state.phase = "left";
    return banner.show(`You logged in as ${state.name} from elsewhere, so this page left the room.`, "Take it back", () => rejoinNow());
  }
  if (!wasJoining && state.lastError !== "") {
    state.phase = "left";
    return banner.show(`Disconnected: ${state.lastError}`, "Rejoin", () => rejoinNow());
  }
  if (!wasJoining || state.isRejoin) {
    return waitToReconnect(state.rejection || state.closeReason || "Connection lost");
  }
  showPrompt(state.rejection || "Cannot reach the chat server: try again in a moment");
}
function setConnected(isConnected) {
  if (!isConnected && document.activeElement === view.line) state.isInputFocused = true;
  view.line.disabled = !isConnected;
  view.sendButton.disabled = !isConnected;
  view.people.classList.toggle("offline", !isConnected);
  view.people.setAttribute("aria-disabled", String(!isConnected));
  if (isConnected && state.isInputFocused) view.line.focus();
  if (isConnected) state.isInputFocused = false;
}
function showTopic(text) {
  view.topicText.textContent = text;
  view.topic.title = text;
  view.topic.hidden = text === "";
}
function isTransient(rejection) {
  return /is taken|Server is full|Too many connections/.test(rejection);
}
function waitToReconnect(reason) {
  state.phase = "waiting";
  countDown(reason, Date.now() + reconnectDelay(state.attempt++));
}
function countDown(reason, deadline) {
  const left = deadline - Date.now();
  if (left <= 0) {
    if (!navigator.onLine) return waitToReconnect("Offline");
    banner.show(`${reason}. Reconnecting as ${state.name}`);
    banner.count("\u2026");
    return connect();
  }
  banner.show(`${reason}. Reconnecting as ${state.name}`, "Reconnect now", () => rejoinNow());
  banner.count(` in ${Math.ceil(left / 1e3)} s\u2026`);
  state.timer = setTimeout(() => countDown(reason, deadline), left % 1e3 || 1e3);
}
function rejoinNow() {
  state.attempt = 0;
  state.isRejoin = true;
  banner.show(`Reconnecting as ${state.name}\u2026`);
  connect();
}
function show(line, shown) {
  const options = {
    ...shown,
    own: state.name,
    isContinued: isTableGoingOn(shown.raw)
  };
  if (line.kind === "limits") return;
  const isAtBottom = view.log.scrollHeight - view.log.scrollTop - view.log.clientHeight < AT_BOTTOM_PX;
  const time = line.kind === "history" ? line.time : /* @__PURE__ */ new Date();
  showDay(time);
  const item = render(line, options, time);
  view.log.append(item);
  const peer = line.kind === "private" ? line.name : void 0;
  conversations.add(item, peer, line.kind === "private" && line.direction === "from");
  while (view.log.childElementCount > MAX_LINES) view.log.firstElementChild?.remove();
  remember(line, options);
  const isMessage = line.kind === "user" || line.kind === "action" || line.kind === "private";
  if (isMessage && !options.isOwn) noteUnseen(line, options);
  if (isAtBottom || options.isOwn) {
    view.log.scrollTop = view.log.scrollHeight;
  } else if (!options.isLocal) {
    state.unseenBelow++;
    view.newMessages.textContent = `${state.unseenBelow} new \u2193`;
    view.newMessages.hidden = false;
  }
}
function noteUnseen(line, options) {
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
function isTableGoingOn(raw) {
  return isHelpRow(raw) && view.log.lastElementChild?.classList.contains("help") === true;
}
function showDay(time) {
  const day = separatorDay(state.lastDay, time);
  state.lastDay = dayKey(time);
  if (day === void 0) return;
  const label = document.createElement("time");
  label.dateTime = day;
  label.textContent = dayLabel(time);
  const item = document.createElement("li");
  item.className = "day";
  item.setAttribute("role", "separator");
  item.append(label);
  view.log.append(item);
}
function remember(line, options) {
  if (line.kind === "history") state.seen.push(options.raw.slice(HISTORY_PREFIX));
  else if (line.kind === "user" || line.kind === "action") state.seen.push(options.raw);
  else return;
  if (state.seen.length > MAX_SEEN) state.seen.splice(0, state.seen.length - MAX_SEEN);
}
function showRoster() {
  const names = state.roster.names.filter((name) => nameKey(name) !== nameKey(state.name));
  const items = [
    state.name,
    ...names
  ].map((name, index) => {
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
function setName(name) {
  state.name = name;
  view.me.textContent = name;
  showRoster();
}
function showPrompt(error, field = view.name) {
  clearTimeout(state.timer);
  state.phase = "prompt";
  state.isRejoin = false;
  banner.hide();
  view.chat.hidden = true;
  view.join.hidden = false;
  view.joinButton.disabled = false;
  view.joinError.textContent = error;
  for (const input of [
    view.name,
    view.password,
    view.serverPassword
  ]) {
    input.setAttribute("aria-invalid", error !== "" && input === field ? "true" : "false");
  }
  view.name.value = state.name || view.name.value;
  field.focus();
  field.select();
}
view.joinForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const name = view.name.value.trim();
  if (name === "") return showPrompt("Type a name first: 1 to 32 letters, digits, _ or -");
  state.name = name;
  if (nameKey(name) !== nameKey(keptPlace()?.name ?? "")) rememberPlace(void 0);
  state.seen = [];
  state.lastDay = void 0;
  view.log.replaceChildren();
  conversations.clear();
  view.joinError.textContent = "";
  view.joinButton.disabled = true;
  connect();
});
view.sayForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (state.secretPrompt) {
    const secret = view.line.value;
    view.line.value = "";
    endSecret();
    if (!send(secret)) showLocalError("Not connected: your password was not sent");
    return;
  }
  const line = view.line.value.replaceAll("	", " ");
  if (line.trim() === "") return;
  if (utf8Length(line) > state.maxLineBytes) {
    return showLocalError(`Line too long: at most ${state.maxLineBytes} bytes; it was not sent`);
  }
  const person = conversations.person;
  const out = person !== void 0 && !line.startsWith("/") ? `/msg ${person} ${line}` : line;
  if (!send(out)) return showLocalError("Not connected: your line was not sent");
  if (!/^\s*\/register\s+\S/i.test(line)) state.sent.push(line);
  if (state.sent.length > MAX_SENT) state.sent.shift();
  state.recall = state.sent.length;
  view.line.value = "";
  echo(line);
});
function echo(line) {
  let command;
  try {
    command = parseCommand(line);
  } catch {
    return;
  }
  if (command.name === "say") {
    show(parseServerLine(formatUserLine(state.name, command.text)), {
      raw: formatUserLine(state.name, command.text),
      isOwn: true
    });
  } else if (command.name === "me") {
    const raw = formatAction(state.name, command.text);
    show(parseServerLine(raw), {
      raw,
      isOwn: true
    });
  }
}
function showLocalError(text) {
  show({
    kind: "error",
    text
  }, {
    raw: "",
    isLocal: true,
    isOwn: true
  });
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
  if (complete()) event.preventDefault();
});
function complete() {
  const caret = view.line.selectionStart ?? view.line.value.length;
  const done = state.completer.next(view.line.value, caret, {
    commands: state.roster.isOperator(state.name) ? OPERATOR_COMMANDS : COMMANDS,
    names: state.roster.names
  });
  if (!done) return false;
  view.line.value = done.value;
  view.line.setSelectionRange(done.caret, done.caret);
  return true;
}
view.log.addEventListener("scroll", () => {
  const isAtBottom = view.log.scrollHeight - view.log.scrollTop - view.log.clientHeight < AT_BOTTOM_PX;
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
if (matchMedia("(max-width: 40rem)").matches) element("people").open = false;
bindNotifySetting(view.notify);
bindSoundSetting(view.sound);
view.name.value = keptLocally(NAME_STORE) ?? "";
var kept = keptPlace();
if (kept) {
  state.name = view.name.value = kept.name;
  state.token = kept.token;
  view.joinButton.disabled = true;
  connect();
} else {
  view.passwordRow.hidden = keptLocally(REGISTERED_STORE) !== "true";
  openOnFirstTouch();
}
view.passwordHint.hidden = location.protocol === "https:" || /^(localhost|127\.[0-9.]+|\[::1\])$/.test(location.hostname);
view.name.focus();

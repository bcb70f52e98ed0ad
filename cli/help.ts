/** The command line's help texts: one for the whole, one for the server, one for the client. */
import {
  DEFAULT_CLIENT_HOST,
  DEFAULT_JOIN_TIMEOUT_MS,
  DEFAULT_RECONNECT_TRIES,
} from "../client.ts";
import { DEFAULT_CLAIM_TTL_MS } from "../cluster/cluster_hub.ts";
import { DEFAULT_HISTORY_SIZE } from "../server/hub.ts";
import { DEFAULT_HOST, DEFAULT_PORT, HELP_LINES } from "../protocol.ts";
import { DEFAULT_WEB_PORT } from "../server/web.ts";
import { DEFAULT_IRC_PORT } from "../server/irc_door.ts";
import { DEFAULT_CHANNEL } from "../server/irc.ts";
import { LOOPBACK } from "../server/cidr.ts";
import config from "../deno.json" with { type: "json" };

/** This program's version, kept in deno.json alone. */
export const VERSION: string = config.version;

/** The widest a help line gets: the width of a narrow terminal, and of the project's code. */
const WIDTH = 100;

/** An option and what it does, one row of an option table. */
export type OptionRow = [option: string, text: string];

/** The help for `--help` with no command: what there is to run, and where to read more. */
export const HELP = `chat ${VERSION}: a group chat server and terminal client over plain TCP lines

Usage:
${
  table([
    ["deno task server [options]", `run the server, on ${DEFAULT_HOST}:${DEFAULT_PORT}`],
    ["deno task client NAME [options]", "join the room as NAME (1 to 32 letters, digits, _ or -)"],
    [
      "deno task admin --store FILE op NAME",
      "make a registered NAME an operator (also deop, list)",
    ],
    ["deno task server --help", "the server's options"],
    ["deno task client --help", "the client's options"],
    ["deno run main.ts --version", "the version"],
  ])
}

Without the tasks: deno run main.ts server ... and deno run main.ts client ..., with the
permissions they need (a refused one is said in one line, with the command that grants it); the
compiled binary takes the same: dist/chat server ..., dist/chat client NAME ....

Any client works: nc 127.0.0.1 ${DEFAULT_PORT}, then type your name as the first line.`;

/** The server's help, with the limits' rows (made from main.ts' table of limit flags). */
export function serverHelp(limits: OptionRow[]): string {
  const options: OptionRow[] = [
    ["--host HOST", `address to listen on (default ${DEFAULT_HOST})`],
    ["--port PORT", `port to listen on, 0 for any free one (default ${DEFAULT_PORT})`],
    ["--cert FILE --key FILE", "speak TLS with this PEM certificate chain and private key"],
    [
      "--history N",
      `lines of chat shown to newcomers, 0 for none (default ${DEFAULT_HISTORY_SIZE})`,
    ],
    [
      "--store FILE",
      "keep the history and the registered names in this SQLite file, to outlive restarts " +
      "(needs read and write permission for FILE, FILE-wal and FILE-shm; deno task store keeps " +
      "chat.db)",
    ],
    [
      "--password-file FILE",
      "make the server private: every connection must first send the password in FILE's " +
      "first line",
    ],
    [
      "--operators-file FILE",
      "without --store or --redis: the operators, one NAME:HASH a line (the hash from chat " +
      "admin hash); each NAME is registered with that password and is an operator",
    ],
    [
      "--redis URL",
      "form one room with every server on this Redis, redis://HOST:PORT (default: the " +
      "CHAT_REDIS_URL environment variable, else no cluster)",
    ],
    [
      "--claim-ttl SECONDS",
      `with --redis: how long a dead server's names stay taken (default ${
        DEFAULT_CLAIM_TTL_MS / 1000
      })`,
    ],
    [
      "--web [HOST:]PORT",
      "also serve the chat as a web page on this port (HOST defaults to --host), over HTTPS " +
      `with --cert and --key; deno task web serves it on ${DEFAULT_WEB_PORT}`,
    ],
    [
      "--web-origin ORIGIN",
      "with --web: let pages from ORIGIN (http://chat.lan:8080) join too; the page opened by " +
      "the server's address, or over HTTPS by its name, always may (repeat for more)",
    ],
    [
      "--irc [HOST:]PORT",
      "also let IRC clients (irssi, WeeChat, HexChat) into the room as a channel on this port " +
      `(HOST defaults to --host; IRC's is ${DEFAULT_IRC_PORT}), over TLS with --cert and --key`,
    ],
    [
      "--irc-channel NAME",
      `with --irc: the room's channel name (default ${DEFAULT_CHANNEL})`,
    ],
    ...limits,
    [
      "--exempt BLOCK",
      "free these addresses (ADDRESS[/BITS], as 10.0.0.0/8) of the per-address limits, not of " +
      "the global ones or a connection's own flood control; repeat for more, none for no " +
      `address ${unbroken(`(default ${LOOPBACK.join(" and ")})`)}`,
    ],
    [
      "--trust-proxy BLOCK",
      "trust the reverse proxies at these addresses in front of the page to name each request's " +
      "client in X-Forwarded-For (Forwarded is not read); limits and logs then see each client " +
      "(repeat for more; default none)",
    ],
    [
      "--proxy-protocol BLOCK",
      "require a PROXY header (v1 or v2) first on each connection to the chat's port from these " +
      "addresses, and serve it as the client the header names; one without is refused (repeat " +
      "for more; default none)",
    ],
    [
      "--metrics [HOST:]PORT",
      "serve Prometheus metrics at /metrics, /healthz and /readyz on this port (HOST " +
      "defaults to 127.0.0.1), never on the page's",
    ],
    [
      "--log-format FORMAT",
      "text (default): one line of prose an event; json: one JSON object a line, with its " +
      "time, level, event, name, address, reason and counts",
    ],
    ["-h, --help", "this help"],
    ["-V, --version", "the version"],
  ];
  return `Usage: deno task server [options]    (or: deno run main.ts server [options])

Runs the chat server. Options:
${table(options)}

Commands (answered by the server, so they work from nc too):
${HELP_LINES.map((line) => `  ${line.slice(2)}`).join("\n")}

Any client works: nc 127.0.0.1 ${DEFAULT_PORT}, then type your name as the first line.`;
}

/** The client's help. */
export const CLIENT_HELP =
  `Usage: deno task client NAME [options]    (or: deno run main.ts client NAME [options])

Joins the room as NAME (1 to 32 letters, digits, _ or -). Options:
${
    table([
      ["--host HOST", `server address (default ${DEFAULT_CLIENT_HOST})`],
      ["--port PORT", `server port (default ${DEFAULT_PORT})`],
      ["--tls", "connect with TLS"],
      ["--ca FILE", "trust this PEM certificate too (for a self-signed server)"],
      [
        "--password-file FILE",
        "your name's password, if it is registered (else CHAT_PASSWORD, or asked at the terminal)",
      ],
      [
        "--server-password-file FILE",
        "a private server's password (else CHAT_SERVER_PASSWORD, or asked)",
      ],
      [
        "--join-timeout SECONDS",
        `how long the server may take to let you in (default ${DEFAULT_JOIN_TIMEOUT_MS / 1000})`,
      ],
      [
        "--reconnect N",
        "attempts to reconnect when the server is lost, 0 for none (default " +
        `${DEFAULT_RECONNECT_TRIES} at a terminal, 0 when stdout is not one); never after a kick ` +
        "or a ban",
      ],
      [
        "--log FILE",
        "append every line shown to FILE, plain, with full time stamps (needs --allow-write=FILE)",
      ],
      ["--no-bell", "no bell when a line says your name or a private message comes"],
      ["-h, --help", "this help"],
      ["-V, --version", "the version"],
    ])
  }

${
    wrap(
      "Type a line and press Enter to send it; Ctrl+D, /quit, or Ctrl+C on an empty line leaves " +
        "(exit code 0). Lines go out as fast as the server allows; the rest wait, shown dimmed. At " +
        "a terminal: Tab completes commands (an operator's too, for an operator) and names, Up and " +
        "Down bring back what you sent, Ctrl+R searches it; " +
        "each line has a time stamp and each name a color (none when NO_COLOR is set or TERM=dumb). " +
        "When stdout is not a terminal, the server's lines are printed exactly.",
      WIDTH,
    ).join("\n")
  }

Commands (answered by the server):
${HELP_LINES.map((line) => `  ${line.slice(2)}`).join("\n")}`;

/** Rows of two columns: each text starts where the widest option ends, wrapped to the width. */
export function table(rows: OptionRow[]): string {
  const column = 2 + Math.max(...rows.map(([option]) => option.length)) + 2;
  return rows.map(([option, text]) =>
    wrap(text, WIDTH - column)
      .map((line, i) => (i === 0 ? `  ${option}`.padEnd(column) : " ".repeat(column)) + line)
      .join("\n")
      .replaceAll("\u00a0", " ")
  ).join("\n");
}

/** `text` kept on one line of the help (its spaces are no-break spaces until it is printed). */
export function unbroken(text: string): string {
  return text.replaceAll(" ", "\u00a0");
}

/** Words into lines of at most `width` columns (a longer word has a line of its own). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  return [...lines, line];
}

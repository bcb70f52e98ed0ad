/**
 * The screen for where stdout goes: the server's lines exactly for a pipe or a file, formatted
 * lines without escapes for TERM=dumb or piped input, and the live terminal when both ends are one.
 */
import {
  LineScreen,
  type NoteKind,
  type Screen,
  stdinLines,
  TerminalScreen,
  terminalSize,
} from "./terminal.ts";

/**
 * Opens the screen that suits stdin and stdout; `bell` rings the terminal's bell on a mention
 * (never when stdout is not a terminal).
 */
export function openScreen(options: { bell: boolean }): Screen {
  if (!Deno.stdout.isTerminal()) return new PlainScreen();
  const width = () => terminalSize().columns;
  const { bell } = options;
  if (readEnv("TERM") === "dumb") return new LineScreen({ color: false, width, bell });
  if (!Deno.stdin.isTerminal()) return new LineScreen({ color: !Deno.noColor, width, bell });
  // deno task and npm run set INIT_CWD for the commands they run.
  return new TerminalScreen({
    color: !Deno.noColor,
    canSuspend: readEnv("INIT_CWD") === undefined,
    bell,
  });
}

/** Output for scripts: the server's lines exactly, nothing else on stdout; notes on stderr. */
export class PlainScreen implements Screen {
  show(line: string): void {
    console.log(line);
  }
  note(text: string, kind: NoteKind): void {
    if (kind === "error") console.error(`error: ${text}`);
  }
  setWaiting(): void {}
  said(): void {}
  setName(): void {}
  input(): AsyncIterable<string> {
    return stdinLines();
  }
  close(): void {}
}

/** The value of an environment variable we may read, or `undefined` (no permission asked for). */
function readEnv(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") return;
  return Deno.env.get(name);
}

/**
 * The mutation check (`deno task mutants [ID...]`): applies each deliberate bug of `mutants.json`
 * alone, runs only the tests meant to catch it, and prints which test caught it, or SURVIVED.
 *
 * It works on a copy of the project in a temporary folder, never in the working tree: a mutant left
 * behind by a crash, a SIGKILL or a full disk cannot end up in a commit, and tests or an editor
 * running in the tree meanwhile never see mutated code. In the copy, each mutated file is restored
 * (and checked byte for byte) before the next mutant. Before any mutant, the same tests must pass on
 * the unmutated copy, else a failure would say nothing. Tests run without type checking (`deno
 * check` is the gate for types; a mutant is about behaviour) in a process group of their own, so a
 * timeout or Ctrl+C ends every server and client a test started.
 */
import { parseArgs } from "node:util";

/**
 * One replacement: `search` must occur exactly once in the file, else the mutant is stale. The
 * file is the mutant's unless the edit names another (a bug that spans two files).
 */
interface Edit {
  search: string;
  replace: string;
  file?: string;
}

/** A test expected to catch a mutant: a test file, and the test's exact name (all of it if none). */
interface TestRef {
  file: string;
  name?: string;
}

/** One deliberate bug, as `mutants.json` lists it. */
interface Mutant {
  id: string;
  description: string;
  file: string;
  /** One edit (`search`, `replace`) or several (`edits`), each applied to `file`. */
  search?: string;
  replace?: string;
  edits?: Edit[];
  tests: TestRef[];
}

type Outcome =
  | { kind: "caught"; by: string; how: string }
  | { kind: "survived" }
  | { kind: "stale"; why: string }
  | { kind: "error"; why: string };

interface Run {
  /** Names of the tests that passed, and of those that failed, in order. */
  passed: string[];
  failed: string[];
  /** The first error deno reported, to show how a mutant was caught. */
  error: string;
  /** Whether the run ended on its own, with tests run and every one passing. */
  isGreen: boolean;
  isTimedOut: boolean;
  /** The last lines of output, to explain a run that failed without a failed test. */
  tail: string;
}

const HERE = new URL(".", import.meta.url);
const ROOT = new URL("../../", import.meta.url);
/** Not copied: the repository itself and build output. */
const SKIPPED = new Set([".git", "dist", "node_modules"]);

const USAGE = `Usage: deno task mutants [--list | --check] [--timeout SECONDS] [ID...]
  Applies each mutant of tests/mutants/mutants.json (or only the IDs given) to a copy of the
  project, runs the tests meant to catch it, and prints a table. Exit code 1 if any survived,
  is stale, or could not be run. --check only applies each to the code, in memory, and names
  those that are stale, in a second.`;

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        list: { type: "boolean" },
        check: { type: "boolean" },
        timeout: { type: "string", default: "180" },
        help: { type: "boolean", short: "h" },
      },
      allowPositionals: true,
    });
  } catch (error) {
    return console.error(`error: ${(error as Error).message}\n${USAGE}`), 2;
  }
  const { values, positionals } = parsed;
  if (values.help) return console.log(USAGE), 0;
  const timeoutMs = Number(values.timeout) * 1000;
  if (!(timeoutMs > 0)) return console.error(`error: Invalid --timeout ${values.timeout}`), 2;
  const all = await loadMutants();
  const unknown = positionals.filter((id) => !all.some((mutant) => mutant.id === id));
  if (unknown.length > 0) return console.error(`error: No mutant named ${unknown.join(", ")}`), 2;
  const mutants = positionals.length > 0
    ? all.filter((mutant) => positionals.includes(mutant.id))
    : all;
  if (values.list) {
    for (const mutant of mutants) console.log(`${mutant.id.padEnd(36)} ${mutant.description}`);
    return 0;
  }
  if (values.check) return await checkStale(mutants);

  const copy = await Deno.makeTempDir({ dir: "/tmp", prefix: "chat-mutants-" });
  const runner = new TestRunner(copy, timeoutMs);
  const onSignal = () => {
    console.error("\ninterrupted: stopping the tests and removing the copy");
    runner.stop();
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  try {
    await copyTree(ROOT, copy);
    console.log(`${mutants.length} mutants, on a copy of the project in ${copy}\n`);
    const baseline = await checkBaseline(runner, mutants);
    const rows: string[][] = [];
    for (const mutant of mutants) {
      if (runner.isStopped) break;
      const started = performance.now();
      const outcome = baseline.get(mutant.id) ?? await runMutant(runner, copy, mutant);
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      rows.push([mutant.id, describe(outcome), `${seconds} s`]);
      const how = outcome.kind === "caught" ? `\n    ${abbreviate(outcome.how, 160)}` : "";
      console.log(`${mutant.id}: ${describe(outcome)} (${seconds} s)${how}`);
    }
    if (runner.isStopped) return 130;
    printTable(rows, mutants);
    return rows.every((row) => row[1]!.startsWith("caught")) ? 0 : 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await Deno.remove(copy, { recursive: true });
  }
}

/** Reads and checks the list, so that a typo fails at once rather than as a survivor. */
async function loadMutants(): Promise<Mutant[]> {
  const list = JSON.parse(await Deno.readTextFile(new URL("mutants.json", HERE))) as Mutant[];
  const ids = new Set<string>();
  for (const mutant of list) {
    const where = `mutants.json: ${JSON.stringify(mutant.id)}`;
    if (!mutant.id || ids.has(mutant.id)) throw new Error(`${where}: a missing or repeated id`);
    ids.add(mutant.id);
    if (!mutant.file || !mutant.description) {
      throw new Error(`${where}: needs file and description`);
    }
    if ((mutant.search === undefined) === (mutant.edits === undefined)) {
      throw new Error(`${where}: give either search and replace, or edits`);
    }
    if (!Array.isArray(mutant.tests) || mutant.tests.length === 0) {
      throw new Error(`${where}: names no test to catch it`);
    }
  }
  return list;
}

/** Applies every mutant to the working tree's code in memory; names the stale ones. */
async function checkStale(mutants: Mutant[]): Promise<number> {
  let stale = 0;
  for (const mutant of mutants) {
    const outcome = await mutate(ROOT.pathname.replace(/\/$/, ""), mutant);
    if (!("kind" in outcome)) continue;
    stale++;
    console.log(`${mutant.id}: ${describe(outcome)}`);
  }
  console.log(`${mutants.length - stale} of ${mutants.length} apply to the code as it is`);
  return stale === 0 ? 0 : 1;
}

/**
 * Each file the mutant changes (under `root`), with its code before and after the edits; or why
 * they cannot be made (a stale mutant). Nothing is written.
 */
async function mutate(
  root: string,
  mutant: Mutant,
): Promise<Map<string, { original: string; mutated: string }> | Outcome> {
  const files = new Map<string, { original: string; mutated: string }>();
  for (const { search, replace, file = mutant.file } of editsOf(mutant)) {
    let entry = files.get(file);
    if (!entry) {
      let original: string;
      try {
        original = await Deno.readTextFile(`${root}/${file}`);
      } catch {
        return { kind: "stale", why: `${file} does not exist` };
      }
      files.set(file, entry = { original, mutated: original });
    }
    const count = entry.mutated.split(search).length - 1;
    if (count !== 1) {
      const found = count === 0 ? "not found" : `found ${count} times`;
      return { kind: "stale", why: `${JSON.stringify(abbreviate(search))} ${found}` };
    }
    entry.mutated = entry.mutated.replace(search, () => replace);
  }
  return files;
}

function editsOf(mutant: Mutant): Edit[] {
  return mutant.edits ?? [{ search: mutant.search!, replace: mutant.replace ?? "" }];
}

/** Copies the project, as it is in the working tree (committed or not), into `to`. */
async function copyTree(from: URL, to: string): Promise<void> {
  for await (const entry of Deno.readDir(from)) {
    if (SKIPPED.has(entry.name)) continue;
    const source = new URL(entry.name, from);
    const target = `${to}/${entry.name}`;
    if (entry.isDirectory) {
      await Deno.mkdir(target);
      await copyTree(new URL(`${entry.name}/`, from), target);
    } else if (entry.isFile) {
      await Deno.copyFile(source, target);
    }
  }
}

/**
 * Runs every mutant's tests on the unmutated copy, file by file. A mutant whose tests fail there is
 * reported as an error (its catch would mean nothing); the others get no entry.
 */
async function checkBaseline(runner: TestRunner, mutants: Mutant[]): Promise<Map<string, Outcome>> {
  const outcomes = new Map<string, Outcome>();
  const byFile = groupByFile(mutants.flatMap((mutant) => mutant.tests));
  console.log(`baseline: the tests of every mutant, unmutated (${byFile.size} files)`);
  for (const [file, names] of byFile) {
    if (runner.isStopped) break;
    const started = performance.now();
    const run = await runner.run(file, names);
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const result = run.isGreen
      ? "green"
      : `FAILED: ${run.failed.join("; ") || run.tail}${run.isTimedOut ? " (timed out)" : ""}`;
    console.log(`  ${file}${names ? ` (${names.length} tests)` : ""}: ${result} (${seconds} s)`);
    for (const mutant of mutants) {
      const tests = mutant.tests.filter((test) => test.file === file);
      const missing = tests.find((test) => test.name && !run.passed.includes(test.name));
      if (tests.length === 0 || (run.isGreen && !missing)) continue;
      const why = run.isGreen
        ? `no test named ${JSON.stringify(missing!.name)} passed in ${file}`
        : `its tests fail unmutated in ${file}`;
      outcomes.set(mutant.id, { kind: "error", why });
    }
  }
  console.log();
  return outcomes;
}

/** Test names per file; `undefined` when a whole file is named. */
function groupByFile(tests: TestRef[]): Map<string, string[] | undefined> {
  const byFile = new Map<string, string[] | undefined>();
  for (const { file, name } of tests) {
    if (!byFile.has(file)) byFile.set(file, []);
    const names = byFile.get(file);
    if (names === undefined) continue;
    if (name === undefined) byFile.set(file, undefined);
    else if (!names.includes(name)) names.push(name);
  }
  return byFile;
}

/** Applies the mutant in the copy, runs its tests until one fails, and restores its files. */
async function runMutant(runner: TestRunner, copy: string, mutant: Mutant): Promise<Outcome> {
  const files = await mutate(copy, mutant);
  if ("kind" in files) return files;
  let outcome: Outcome;
  try {
    for (const [file, { mutated }] of files) await Deno.writeTextFile(`${copy}/${file}`, mutated);
    outcome = await runTests(runner, mutant);
  } finally {
    for (const [file, { original }] of files) await Deno.writeTextFile(`${copy}/${file}`, original);
  }
  // The next mutant must start from the unmutated code, so the restore is checked.
  for (const [file, { original }] of files) {
    const path = `${copy}/${file}`;
    if (await Deno.readTextFile(path) !== original) throw new Error(`Could not restore ${path}`);
  }
  return outcome;
}

/** Runs the mutant's tests file by file, until one fails. */
async function runTests(runner: TestRunner, mutant: Mutant): Promise<Outcome> {
  for (const [file, names] of groupByFile(mutant.tests)) {
    const run = await runner.run(file, names);
    if (runner.isStopped) return { kind: "error", why: "interrupted" };
    if (run.failed.length > 0) return { kind: "caught", by: run.failed[0]!, how: run.error };
    if (run.isTimedOut) return { kind: "error", why: `${file} hung past the timeout` };
    // Failed with no failed test: the mutant broke the file's loading (a syntax error, say).
    if (!run.isGreen) return { kind: "error", why: `${file} did not run: ${run.tail}` };
  }
  return { kind: "survived" };
}

function abbreviate(text: string, length = 60): string {
  const line = text.replaceAll("\n", "\\n");
  return line.length > length ? `${line.slice(0, length - 3)}...` : line;
}

/** Runs `deno test` on one file of the copy, in a process group of its own. */
class TestRunner {
  #copy: string;
  #timeoutMs: number;
  #child: Deno.ChildProcess | undefined;
  isStopped = false;

  constructor(copy: string, timeoutMs: number) {
    this.#copy = copy;
    this.#timeoutMs = timeoutMs;
  }

  async run(file: string, names: string[] | undefined): Promise<Run> {
    const filter = names ? ["--filter", `/^(?:${names.map(escapeRegExp).join("|")})$/`] : [];
    // setsid: a new process group, so that a timeout or Ctrl+C can end the test's own children too.
    const child = new Deno.Command("setsid", {
      args: [
        Deno.execPath(),
        "test",
        "--config",
        "deno.json",
        "-P=test",
        "--v8-flags=--expose-gc",
        "--no-check",
        "--fail-fast",
        ...filter,
        file,
      ],
      cwd: this.#copy,
      // No Rust backtrace under deno's own "Test failed": it reads as a crash of the runtime.
      env: { NO_COLOR: "1", RUST_BACKTRACE: "0" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    let isTimedOut = false;
    const timer = setTimeout(() => {
      isTimedOut = true;
      this.#kill();
    }, this.#timeoutMs);
    try {
      const [stdout, stderr, status] = await Promise.all([
        new Response(child.stdout).text(),
        new Response(child.stderr).text(),
        child.status,
      ]);
      this.#kill(); // whatever a failed test left running
      const output = `${stdout}\n${stderr}`;
      const { passed, failed } = testResults(output);
      const errors = output.slice(output.indexOf(" ERRORS "));
      let error = /^error: (.*)$/m.exec(errors)?.[1] ?? "";
      // fast-check says that a property failed; what failed in it comes after "Caused by".
      const got = /^Caused by: (.*)$/m.exec(errors)?.[1];
      if (error.startsWith("Error: Property failed") && got) error = `${error}: ${got}`;
      const ran = /^ok \| (\d+) passed/m.exec(output);
      const tail = output.trim().split("\n").slice(-3).join(" / ");
      // A filter that matches nothing "passes" zero tests: that is a stale name, not a pass.
      const isGreen = status.success && ran !== null && Number(ran[1]) > 0;
      return {
        passed,
        failed,
        error,
        isGreen,
        isTimedOut,
        tail: status.success && !isGreen ? "no test ran" : tail,
      };
    } finally {
      clearTimeout(timer);
      this.#child = undefined;
    }
  }

  /** Ends the running tests and everything they started, and runs no more. */
  stop(): void {
    this.isStopped = true;
    this.#kill();
  }

  #kill(): void {
    if (!this.#child) return;
    try {
      Deno.kill(-this.#child.pid, "SIGKILL");
    } catch {
      // The group has ended already: nothing left to stop.
    }
  }
}

/**
 * The names of the tests that passed and of those that failed, from `deno test`'s report. A test
 * running over a minute gets a notice in the middle of its line (`NAME ...'NAME' has been running
 * for over (1m0s)`, then ` FAILED (1m0s)` on a line of its own); such a test is still counted.
 */
export function testResults(output: string): { passed: string[]; failed: string[] } {
  const notice = String.raw`'.*' has been running for over \(.*?\)\n`;
  const line = new RegExp(String.raw`^(.+?) \.\.\.(?:${notice})* ?(ok|FAILED)\b`, "gm");
  const passed: string[] = [];
  const failed: string[] = [];
  for (const [, name, result] of output.matchAll(line)) {
    (result === "ok" ? passed : failed).push(name!);
  }
  return { passed, failed };
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

function describe(outcome: Outcome): string {
  switch (outcome.kind) {
    case "caught":
      return `caught by "${outcome.by}"`;
    case "survived":
      return "SURVIVED";
    case "stale":
      return `STALE: ${outcome.why}; update mutants.json`;
    case "error":
      return `ERROR: ${outcome.why}`;
  }
}

function printTable(rows: string[][], mutants: Mutant[]): void {
  const header = ["mutant", "result", "time"];
  const widths = header.map((title, i) =>
    Math.max(title.length, ...rows.map((row) => row[i]!.length))
  );
  const line = (cells: string[]) =>
    `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(" | ")} |`;
  console.log(`\n${line(header)}\n${line(widths.map((width) => "-".repeat(width)))}`);
  for (const row of rows) console.log(line(row));
  const count = (prefix: string) => rows.filter((row) => row[1]!.startsWith(prefix)).length;
  console.log(
    `\n${count("caught")} caught, ${count("SURVIVED")} survived, ${count("STALE")} stale, ` +
      `${count("ERROR")} errors, of ${mutants.length}`,
  );
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}

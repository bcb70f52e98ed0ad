/**
 * The house's dependency rule, read from the code (README, "How it works"): `protocol.ts` imports
 * nothing of ours; `server/` (and its facade `server.ts`) imports nothing from `cluster/`,
 * `client/` or `cli/`; `client/` (and `client.ts`) nothing from `server/`, `cluster/` or `cli/`;
 * `cluster/` only the seams of `server/` it implements or uses; the page only `protocol.ts`; only
 * `main.ts` and `cli/` cross wings. `deno info` gives every import of every module the entry
 * points reach, and `find` every .ts file, so that a file nothing reaches is named too.
 */
import assert from "node:assert/strict";
import { ROOT } from "./_helpers.ts";

/** The wing of a file of ours: its folder, or the facade at the top that stands for it. */
function wingOf(path: string): string | undefined {
  if (path === "protocol.ts" || path.startsWith("protocol/")) return "protocol";
  if (path === "server.ts" || path.startsWith("server/")) return "server";
  if (path === "client.ts" || path.startsWith("client/")) return "client";
  if (path.startsWith("cluster/")) return "cluster";
  if (path === "main.ts" || path.startsWith("cli/")) return "cli";
  if (path.startsWith("web/")) return "web";
  return undefined; // tests/ and bench/ may import anything
}

/** The modules of `server/` that `cluster/` implements (the hub, its storage) or uses. */
const CLUSTER_SEAMS = new Set([
  "server/hub.ts",
  "server/moderation_store.ts", // operators, bans, mutes and the topic, which Redis keeps too
  "server/room_log.ts",
  "server/passwords.ts",
  "server/conn.ts",
  "server/log.ts", // the Log it writes its events through
]);

/**
 * Why `from` may not import `to` (paths from the project's folder), or undefined if it may. A
 * dynamic import of `main.ts` is an entry point handing its command line over (`client.ts`).
 */
function brokenRule(from: string, to: string, isDynamic = false): string | undefined {
  const [wing, target] = [wingOf(from), wingOf(to)];
  if (wing === undefined || wing === target || wing === "cli") return;
  if (wing === "protocol") return `protocol.ts imports nothing of ours, but imports ${to}`;
  if (target === "protocol") return;
  if (wing === "cluster" && CLUSTER_SEAMS.has(to)) return;
  if (isDynamic && to === "main.ts" && from === "client.ts") return;
  return `${from} (${wing}) imports ${to} (${target ?? "not a wing"})`;
}

interface ModuleInfo {
  specifier: string;
  dependencies?: {
    specifier: string;
    code?: { specifier: string };
    type?: { specifier: string };
    isDynamic?: boolean;
  }[];
}

/** Every import between our .ts files that the roots reach: from, to, and whether dynamic. */
async function imports(
  roots: string[],
): Promise<{ from: string; to: string; isDynamic: boolean }[]> {
  const root = new URL(`file://${ROOT}`).href.replace(/\/?$/, "/");
  const ours = (specifier: string | undefined) =>
    specifier?.startsWith(root) && specifier.endsWith(".ts") ? specifier.slice(root.length) : "";
  const found: { from: string; to: string; isDynamic: boolean }[] = [];
  for (const entry of roots) {
    const info = JSON.parse(await output(Deno.execPath(), ["info", "--json", entry]));
    for (const module of info.modules as ModuleInfo[]) {
      const from = ours(module.specifier);
      if (!from) continue;
      found.push({ from, to: from, isDynamic: false }); // reached, importing nothing yet
      for (const dependency of module.dependencies ?? []) {
        const isDynamic = dependency.isDynamic === true;
        for (const to of [ours(dependency.code?.specifier), ours(dependency.type?.specifier)]) {
          if (to) found.push({ from, to, isDynamic });
        }
      }
    }
  }
  return found;
}

async function output(command: string, args: string[]): Promise<string> {
  const { code, stdout, stderr } = await new Deno.Command(command, { args, cwd: ROOT }).output();
  const decoder = new TextDecoder();
  if (code !== 0) throw new Error(`${command} ${args.join(" ")} failed: ${decoder.decode(stderr)}`);
  return decoder.decode(stdout);
}

Deno.test("brokenRule refuses an import across wings and allows the seams and main.ts's crossings", () => {
  assert.match(brokenRule("server/peer.ts", "cluster/events.ts")!, /\(server\) imports cluster/);
  assert.ok(brokenRule("server.ts", "cluster/cluster_hub.ts"));
  assert.ok(brokenRule("server/web.ts", "client/terminal.ts"));
  assert.ok(brokenRule("server/login.ts", "cli/flags.ts"));
  assert.ok(brokenRule("client/outbox.ts", "server/limits.ts"));
  assert.ok(brokenRule("client.ts", "server/peer.ts"));
  assert.ok(brokenRule("client.ts", "main.ts"), "only dynamically, as the entry point's hand-off");
  assert.ok(brokenRule("cluster/cluster_hub.ts", "server/store.ts"), "not a seam: SQLite");
  assert.ok(brokenRule("protocol.ts", "server/hub.ts"));
  assert.ok(brokenRule("protocol/moderation.ts", "server/hub.ts"));
  assert.equal(brokenRule("protocol/moderation.ts", "protocol.ts"), undefined);
  assert.equal(brokenRule("server/hub.ts", "protocol/lines.ts"), undefined);
  assert.ok(brokenRule("web/page.ts", "client/outbox.ts"));
  assert.equal(brokenRule("cluster/cluster_hub.ts", "server/hub.ts"), undefined);
  assert.equal(brokenRule("server/web.ts", "server.ts"), undefined);
  assert.equal(brokenRule("web/page.ts", "protocol.ts"), undefined);
  assert.equal(brokenRule("main.ts", "cluster/cluster_hub.ts"), undefined);
  assert.equal(brokenRule("cli/help.ts", "client.ts"), undefined);
  assert.equal(brokenRule("client.ts", "main.ts", true), undefined);
  assert.equal(brokenRule("tests/hub_test.ts", "cluster/events.ts"), undefined);
});

Deno.test("every import of every .ts file of ours keeps the dependency rule", async () => {
  // The roots: the command line, the page, and what each loads otherwise (the page's node:util
  // through the bundler's import map, the store's worker from its source text).
  const roots = ["main.ts", "web/page.ts", "web/node_util.ts", "server/store_worker.ts"];
  const found = await imports(roots);
  const broken = found.flatMap(({ from, to, isDynamic }) => brokenRule(from, to, isDynamic) ?? []);
  assert.deepEqual(broken, []);
  // Every file is read: one that no entry point reaches would escape the rule.
  const listed = await output("find", [
    ".",
    "-name",
    "*.ts",
    "-not",
    "-path",
    "./tests/*",
    "-not",
    "-path",
    "./bench/*",
    "-not",
    "-path",
    "./dist/*",
    "-not",
    "-path",
    "./node_modules/*",
  ]);
  const files = listed.trim().split("\n").map((path) => path.replace(/^\.\//, "")).sort();
  const reached = new Set(found.map(({ from }) => from));
  assert.deepEqual(files.filter((file) => !reached.has(file)), []);
  assert.ok(files.length > 30, files.join(" "));
});

/** Lines in a hand-written .ts file, and in a class, at most (STYLE.md: past them, a file or a class holds more than one idea). */
const MAX_FILE_LINES = 800;
const MAX_CLASS_LINES = 500;
/** Classes over the limit still, each with the step that splits it (../shared/design/house.md). */
const LARGE_CLASSES = new Set([
  "cluster/cluster_hub.ts ClusterHub", // step 6: the Redis link, the event format, accounts in Redis
]);

/** Each top-level class of a file, with its length in lines (from `class` to the `}` that ends it). */
function classLengths(text: string): { name: string; lines: number }[] {
  const found: { name: string; lines: number }[] = [];
  const lines = text.split("\n");
  lines.forEach((line, start) => {
    const name = /^(?:export )?(?:abstract )?class (\w+)/.exec(line)?.[1];
    if (!name) return;
    const end = lines.findIndex((other, index) => index > start && other.startsWith("}"));
    found.push({ name, lines: end - start + 1 });
  });
  return found;
}

Deno.test("every hand-written .ts file is at most 800 lines and every class at most 500", async () => {
  const listed = await output("find", [".", "-name", "*.ts", "-not", "-path", "./node_modules/*"]);
  const over: string[] = [];
  for (const path of listed.trim().split("\n").map((path) => path.replace(/^\.\//, ""))) {
    const text = await output("cat", [path]); // the test set reads no files itself
    const count = text.split("\n").length - 1;
    if (count > MAX_FILE_LINES) over.push(`${path}: ${count} lines`);
    for (const { name, lines } of classLengths(text)) {
      if (lines > MAX_CLASS_LINES && !LARGE_CLASSES.has(`${path} ${name}`)) {
        over.push(`${path}: class ${name} of ${lines} lines`);
      }
    }
  }
  assert.deepEqual(over, []);
});

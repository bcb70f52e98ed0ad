/**
 * The V8 flags a task of a checkout's deno.json runs the server with, so that the benchmarks and
 * the soak run it as `deno task server` does. Apart from servers.ts, which reads the environment,
 * so that `deno task soak` needs no permission for it.
 */
export async function taskFlags(task: string, root: string): Promise<string[]> {
  // Through cat: the benchmarks may read only this checkout, and the baseline's is elsewhere.
  const { code, stdout } = await new Deno.Command("cat", {
    args: [`${root}/deno.json`],
    stdin: "null",
    stderr: "null",
  }).output();
  if (code !== 0) throw new Error(`cannot read ${root}/deno.json`);
  const config = JSON.parse(new TextDecoder().decode(stdout));
  const command: string = config.tasks?.[task]?.command ?? "";
  return command.split(" ").filter((word) => word.startsWith("--v8-flags="));
}

/**
 * Helpers for the store's tests: a folder of the test's own (on a small tmpfs of its own when the
 * tests run as root, so that it can be filled up or made read-only for real), the server process
 * started with `--store` as the README says, and `sqlite3` to look inside the file.
 */
import { Child, run, serverArgs, startServerProcess } from "./_helpers.ts";

/**
 * A temporary folder for a store. As root it is a tmpfs of `sizeKiB`, which can be filled to the
 * last byte and remounted read-only: a real full disk and a real read-only file system. Otherwise
 * it is a plain folder, made read-only with chmod (root would ignore that), and filled with
 * `ulimit -f` on the server (see {@linkcode startStoreServer}).
 */
export class Folder implements AsyncDisposable {
  private constructor(readonly path: string, readonly isTmpfs: boolean) {}

  static async make(sizeKiB = 4096): Promise<Folder> {
    const path = (await run("mktemp", ["-d", "/tmp/chat-store-XXXXXX"])).trim();
    // CHAT_TEST_TMPFS=0 runs the tests as on a machine that cannot mount (root in a container).
    if (Deno.env.get("CHAT_TEST_TMPFS") === "0") return new Folder(path, false);
    const mounted = await new Deno.Command("mount", {
      args: ["-t", "tmpfs", "-o", `size=${sizeKiB}k,mode=0755`, "tmpfs", path],
      stdout: "null",
      stderr: "null",
    }).output();
    return new Folder(path, mounted.code === 0);
  }

  /** The store's file in it. */
  get file(): string {
    return `${this.path}/chat.db`;
  }

  /** The permissions the server needs for the store, exactly as the README gives them. */
  get permissions(): string[] {
    const files = [this.file, `${this.file}-wal`, `${this.file}-shm`].join(",");
    return ["--allow-net=127.0.0.1:0", `--allow-read=${files}`, `--allow-write=${files}`];
  }

  /** Makes the folder read-only (a read-only file system, or chmod), or writable again. */
  async setReadOnly(isReadOnly: boolean): Promise<void> {
    if (this.isTmpfs) {
      await run("mount", ["-o", `remount,${isReadOnly ? "ro" : "rw"}`, this.path]);
    } else {
      await run("chmod", ["-R", isReadOnly ? "a-w" : "u+w", this.path]);
    }
  }

  /** Fills the tmpfs to its last byte with a file of its own (which `unfill` removes). */
  async fill(): Promise<void> {
    // dd stops, failing, when the file system is full: that is the point.
    await new Deno.Command("dd", {
      args: ["if=/dev/zero", `of=${this.path}/filler`, "bs=4k"],
      stdout: "null",
      stderr: "null",
    }).output();
  }

  async unfill(): Promise<void> {
    await run("rm", ["-f", `${this.path}/filler`]);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.isTmpfs) {
      await new Deno.Command("umount", { args: ["-l", this.path] }).output();
    } else await this.setReadOnly(false).catch(() => {});
    await run("rm", ["-rf", this.path]);
  }
}

/** Runs SQL on a store file with the `sqlite3` command, returning its output. */
export async function sqlite(file: string, sql: string): Promise<string> {
  return await run("sqlite3", [file, sql]);
}

/** The lines in the store's history, oldest first. */
export async function storedLines(file: string): Promise<string[]> {
  const out = await sqlite(file, "SELECT line FROM history ORDER BY id");
  return out.split("\n").filter((line) => line !== "");
}

/**
 * The server process with `--store` in `folder`, with the permissions the README gives, and
 * `extra` flags. With `maxFileKiB`, it runs under `ulimit -f` (SIGXFSZ ignored, so that a write
 * past it fails as on a full disk), for machines where the tests cannot mount a tmpfs.
 */
export async function startStoreServer(
  folder: Folder,
  extra: string[] = [],
  maxFileKiB?: number,
): Promise<{ child: Child; port: number }> {
  if (maxFileKiB === undefined) {
    return await startServerProcess(["--store", folder.file, ...extra], folder.permissions);
  }
  const args = serverArgs(["--store", folder.file, ...extra], folder.permissions);
  const script = `trap '' XFSZ; ulimit -f ${Math.ceil(maxFileKiB)}; exec "$@"`;
  const child = new Child("sh", ["-c", script, "sh", Deno.execPath(), ...args]);
  try {
    const line = await child.stdout.readUntil(/^listening on /);
    return { child, port: Number(/127\.0\.0\.1:(\d+)/.exec(line)![1]) };
  } catch (error) {
    await child[Symbol.asyncDispose]();
    throw error;
  }
}

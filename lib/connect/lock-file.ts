import { open, readFile, rm } from "node:fs/promises";

/**
 * A lock file holding the pid of the process that owns something (the CLI's
 * local store, a connector's SQLite database): created exclusively, taken
 * over when the process that wrote it is gone. Node only; no other imports,
 * so the CLI can use it without loading the connector.
 */
export async function takeLockFile(lock: string, held: (pid: number) => Error, stuck: () => Error): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const handle = await open(lock, "wx");
      await handle.writeFile(String(process.pid));
      await handle.close();
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const pid = Number(await readFile(lock, "utf8").catch(() => ""));
      if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) throw held(pid);
      await rm(lock, { force: true }); // left by a process that is gone
    }
  }
  throw stuck();
}

/** Whether a process with this pid exists (EPERM: it does, and belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

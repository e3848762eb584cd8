import { env } from "../env";
import { openDatabase, type DatabaseHandle } from "./client";

export * from "./client";

// Kept on globalThis so that Next.js dev reloads and route modules share one
// handle per process (two PGlite handles on one folder lose data).
const holder = globalThis as typeof globalThis & { __concordDb?: Promise<DatabaseHandle> };

/** The process-wide database, opened and migrated on first use. */
export function getDatabase(): Promise<DatabaseHandle> {
  holder.__concordDb ??= openDatabase({
    databaseUrl: env().DATABASE_URL,
    pgliteDir: env().PGLITE_DIR,
  }).catch((error: unknown) => {
    holder.__concordDb = undefined;
    throw error;
  });
  return holder.__concordDb;
}

/** Installs an already opened database as the process-wide one (tests, scripts). */
export function setDatabase(handle: DatabaseHandle | undefined): void {
  holder.__concordDb = handle ? Promise.resolve(handle) : undefined;
}

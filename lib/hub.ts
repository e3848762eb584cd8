import { readFile } from "node:fs/promises";
import path from "node:path";
import { ensureAdminToken } from "./auth/admin-token";
import { countOperators, createFirstAdmin } from "./auth/operators";
import { getDatabase, ping, type Database, type DatabaseHandle, type DatabaseKind } from "./db";
import { env } from "./env";
import { log } from "./log";
import { activatePolicy, hasAnyPolicy } from "./policy/store";
import { pingIntervalFromEnv } from "./sync/events-stream";

/** The running hub: its database, booted (migrated, a policy active, an admin token set). */
export interface Hub {
  db: Database;
  kind: DatabaseKind;
  handle: DatabaseHandle;
}

const booted = new WeakMap<DatabaseHandle, Promise<void>>();

/** The process's hub, booted on first use (instrumentation.ts boots it at server start). */
export async function getHub(): Promise<Hub> {
  const handle = await getDatabase();
  let boot = booted.get(handle);
  if (!boot) {
    boot = bootHub(handle);
    booted.set(handle, boot);
    boot.catch(() => booted.delete(handle));
  }
  await boot;
  return { db: handle.db, kind: handle.kind, handle };
}

async function bootHub(handle: DatabaseHandle): Promise<void> {
  const { db } = handle;
  if (!(await hasAnyPolicy(db))) await activateDefaultPolicy(db);
  pingIntervalFromEnv(); // a bad CONCORD_SSE_PING_MS stops the start, not the first stream
  await ensureFirstAdminFromEnv(db);
  const token = await ensureAdminToken(db, env().ADMIN_TOKEN);
  if (token.source === "generated") {
    log.info(
      [
        "No ADMIN_TOKEN was set, so this first start generated one. It is shown only now; only its hash is stored:",
        "",
        `    ${token.token}`,
        "",
        "Use it as `Authorization: Bearer <token>` on /api/admin routes, and on the console's setup page",
        "(open the hub in a browser: the sign-in page links to it) to create the first operator.",
        "Set ADMIN_TOKEN to choose your own.",
      ].join("\n"),
    );
  }
}

/** CONCORD_ADMIN_USERNAME/CONCORD_ADMIN_PASSWORD create the first console admin, once. */
async function ensureFirstAdminFromEnv(db: Database): Promise<void> {
  const { CONCORD_ADMIN_USERNAME: username, CONCORD_ADMIN_PASSWORD: password } = env();
  if (!username || !password) return;
  if ((await countOperators(db)) > 0) return;
  const created = await createFirstAdmin(db, { username, password }, "environment");
  if (created) log.info(`Created the first console admin "${created.username}" from CONCORD_ADMIN_USERNAME.`);
}

async function activateDefaultPolicy(db: Database): Promise<void> {
  // Read at run time from the operator's file; not a module for the bundler to trace.
  const file = path.resolve(/*turbopackIgnore: true*/ process.cwd(), env().CONCORD_DEFAULT_POLICY);
  let yaml: string;
  try {
    yaml = await readFile(file, "utf8");
  } catch (error) {
    throw new Error(
      `The database has no policy yet and the default policy file ${file} cannot be read (${(error as Error).message}). Set CONCORD_DEFAULT_POLICY to a valid policy file.`,
    );
  }
  const result = await activatePolicy(db, {
    yaml,
    actor: "concord",
    source: "default",
    comment: `default policy from ${env().CONCORD_DEFAULT_POLICY}`,
    onlyIfNone: true,
  });
  if (result) {
    log.info(`Activated the default policy ${env().CONCORD_DEFAULT_POLICY} as version ${result.version}.`);
    for (const w of result.warnings) log.warn(`default policy line ${w.line}: ${w.message}`);
  }
}

/** GET /api/health: the database answers, and which engine it is. */
export async function checkHealth(hub: Hub): Promise<{ status: "ok"; database: DatabaseKind }> {
  await ping(hub.db);
  return { status: "ok", database: hub.kind };
}

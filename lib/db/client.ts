import { mkdir } from "node:fs/promises";
import path from "node:path";
import { PGlite } from "@electric-sql/pglite";
import { sql } from "drizzle-orm";
import type { PgDatabase, PgQueryResultHKT } from "drizzle-orm/pg-core";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { migrate as migratePglite } from "drizzle-orm/pglite/migrator";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import { migrate as migratePostgres } from "drizzle-orm/postgres-js/migrator";
import postgres from "postgres";
import * as schema from "./schema";

export type Schema = typeof schema;
/** A database or a transaction: drizzle's transactions are databases too. */
export type Database = PgDatabase<PgQueryResultHKT, Schema>;
export type DatabaseKind = "pglite" | "postgres";

export type Unlisten = () => Promise<void>;

/** One opened database: the drizzle handle plus the engine-specific pieces. */
export interface DatabaseHandle {
  readonly db: Database;
  readonly kind: DatabaseKind;
  /** The server URL (Postgres only). */
  readonly url?: string;
  /** The embedded database (PGlite only). */
  readonly pglite?: PGlite;
  /** LISTEN on a channel; the callback gets each NOTIFY payload. */
  listen(channel: string, onPayload: (payload: string) => void): Promise<Unlisten>;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** A postgres:// URL; when absent the embedded PGlite is used. */
  databaseUrl?: string;
  /** PGlite's data folder, or `memory://` for a throwaway in-memory database. */
  pgliteDir?: string;
  /** Folder of drizzle-kit migrations (default: ./drizzle). */
  migrationsFolder?: string;
  /** Pool size for postgres.js. */
  maxConnections?: number;
}

const MIGRATION_LOCK_KEY = 0x0c0c0d; // advisory lock id: one migrator at a time across instances

function defaultMigrationsFolder(): string {
  return path.join(process.cwd(), "drizzle");
}

/** Opens and migrates the database Concord runs on. */
export async function openDatabase(options: OpenOptions): Promise<DatabaseHandle> {
  const migrationsFolder = options.migrationsFolder ?? defaultMigrationsFolder();
  return options.databaseUrl
    ? openPostgres(options.databaseUrl, migrationsFolder, options.maxConnections ?? 10)
    : openPglite(options.pgliteDir ?? ".data/pglite", migrationsFolder);
}

/** Planner settings of every session of the hub, on both engines. */
const SESSION_SETTINGS = { random_page_cost: "1.1" } as const;

async function openPglite(dir: string, migrationsFolder: string): Promise<DatabaseHandle> {
  const inMemory = dir.startsWith("memory://");
  // PGlite does not create missing parent folders.
  if (!inMemory) await mkdir(path.dirname(path.resolve(dir)), { recursive: true });
  const client = await PGlite.create(inMemory ? undefined : path.resolve(dir));
  // One connection: the same planner setting as every PostgreSQL session (see openPostgres).
  await client.exec(`set random_page_cost = ${SESSION_SETTINGS.random_page_cost}`);
  const db = drizzlePglite({ client, schema });
  await migratePglite(db, { migrationsFolder });
  return {
    db: db as unknown as Database,
    kind: "pglite",
    pglite: client,
    async listen(channel, onPayload) {
      const unsubscribe = await client.listen(channel, onPayload);
      return async () => {
        await unsubscribe();
      };
    },
    async close() {
      await client.close();
    },
  };
}

async function openPostgres(url: string, migrationsFolder: string, max: number): Promise<DatabaseHandle> {
  await migratePostgresOnce(url, migrationsFolder);
  const client = postgres(url, {
    max,
    onnotice: () => undefined,
    connection: {
      application_name: "concord",
      // The hub's statements are short index range scans. With a million rows
      // and stale statistics the planner sometimes picks a parallel plan for
      // "changes since checkpoint": starting its worker took ~20 ms for 0.2 ms
      // of work (auto_explain in `npm run bench`), most of a sync round. Parallel
      // query does not pay for itself in an OLTP hub; turn it off for our sessions.
      // (a string: postgres.js drops falsy startup parameters, so the number 0 would not be sent).
      max_parallel_workers_per_gather: "0",
      // JIT compilation of a plan costs tens of milliseconds (auto_explain: 45 ms
      // of a 165 ms page of /changes at 30,000 records, "JIT: Functions 74"):
      // it pays off for analytic queries that run for seconds, never for ours.
      jit: "off",
      // The hub's working set is its indexes and recent rows, in memory: an index
      // scan in feed order costs little more than a sequential one. With the
      // default 4.0 the planner read a whole collection and sorted it on disk
      // (10 MB) for one page of /changes (auto_explain, `npm run bench` at 30,000 records).
      random_page_cost: SESSION_SETTINGS.random_page_cost,
    },
  });
  preparedStatements(client);
  const db = drizzlePostgres({ client, schema });
  return {
    db: db as unknown as Database,
    kind: "postgres",
    url,
    async listen(channel, onPayload) {
      const sub = await client.listen(channel, (payload) => onPayload(payload));
      return async () => {
        await sub.unlisten();
      };
    },
    async close() {
      await client.end({ timeout: 5 });
    },
  };
}

/**
 * Several instances may start at once against one server: a session-level
 * advisory lock on a dedicated connection lets one of them migrate while the
 * others wait, then find nothing left to do.
 */
async function migratePostgresOnce(url: string, migrationsFolder: string): Promise<void> {
  const client = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    await client`select pg_advisory_lock(${MIGRATION_LOCK_KEY})`;
    await migratePostgres(drizzlePostgres({ client }), { migrationsFolder });
    await client`select pg_advisory_unlock(${MIGRATION_LOCK_KEY})`;
  } finally {
    await client.end({ timeout: 5 });
  }
}

/**
 * Drizzle sends every query it was not given a name for as an unnamed
 * statement (postgres.js `unsafe(…, { prepare: false })`), which the server
 * parses and plans again on every call: for the push's two statements that
 * was a large share of PostgreSQL's CPU per push. Named statements are
 * prepared once per connection and reused by query text; our statements keep
 * their text stable (lists travel as one jsonb parameter), and postgres.js
 * drops a connection's statements when it recycles the connection
 * (max_lifetime, 30 to 60 minutes), so the set stays bounded. Statements run
 * inside transactions and savepoints are prepared as well.
 */
function preparedStatements(client: postgres.Sql | postgres.TransactionSql): void {
  const unsafe = client.unsafe.bind(client);
  client.unsafe = ((query: string, parameters?: unknown[], options?: { prepare?: boolean }) =>
    unsafe(query, parameters as never, { ...options, prepare: true })) as typeof client.unsafe;
  // Transactions and savepoints hand their callback a handle of their own: prepare its statements too.
  for (const method of ["begin", "savepoint"] as const) {
    const target = client as unknown as Record<string, unknown>;
    const original = target[method];
    if (typeof original !== "function") continue;
    const bound = (original as (...args: unknown[]) => unknown).bind(client);
    target[method] = (...args: unknown[]) => {
      const last = args.length - 1;
      const callback = args[last];
      if (typeof callback === "function") {
        args[last] = (inner: postgres.TransactionSql) => {
          preparedStatements(inner);
          return (callback as (inner: postgres.TransactionSql) => unknown)(inner);
        };
      }
      return bound(...args);
    };
  }
}

/** Rows of a raw `db.execute()`: PGlite returns `{ rows }`, postgres.js an array. */
export function rowsOf<T>(result: unknown): T[] {
  if (Array.isArray(result)) return result as T[];
  if (result && typeof result === "object" && "rows" in result && Array.isArray(result.rows)) {
    return result.rows as T[];
  }
  return [];
}

/** A cheap round trip, for health checks. */
export async function ping(db: Database): Promise<void> {
  await db.execute(sql`select 1`);
}

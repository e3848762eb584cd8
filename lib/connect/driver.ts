import { createHash } from "node:crypto";
import { rmSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import postgres from "postgres";
import type { JsonValue } from "../sync/protocol";
import { takeLockFile } from "./lock-file";
import { fromPostgresText, fromSqliteValue, postgresKind, sqliteKind, toPostgresText, toSqliteValue, type ColumnInfo } from "./values";

/**
 * The small interface the connector needs from a business system's database,
 * so that one more engine (MySQL, say) is one more implementation of it: run
 * a statement (with `?` placeholders), run several atomically, describe a
 * table, and the few places where SQL dialects differ. Statements are built
 * by table-store.ts from quoted identifiers and placeholders only.
 */
export interface SqlDriver {
  readonly engine: "postgres" | "sqlite";
  /** The rows of a statement. */
  all(text: string, params?: readonly unknown[]): Promise<Record<string, unknown>[]>;
  /** Runs `work` in one transaction: all of its statements land, or none. */
  transaction<T>(work: (tx: SqlExecutor) => Promise<T>): Promise<T>;
  /** The columns of a table in their order, or null when there is no such table. */
  columns(schema: string | null, table: string): Promise<ColumnInfo[] | null>;
  /** Where the connector's own tables live: `concord.records` or `concord_records`. */
  own(name: "records" | "outbox" | "state" | "captured"): string;
  /** Creates the connector's own tables when missing (idempotent). */
  setup(): Promise<void>;
  /**
   * Installs (idempotently) the triggers of `capture: trigger` on these
   * tables: every insert, update and delete records the row's id in
   * `captured` (with a new sequence number), and on PostgreSQL notifies
   * channel concord_connect.
   */
  installCapture(tables: readonly CaptureTable[]): Promise<void>;
  /** Removes those triggers (idempotent); the captured ids go too. */
  uninstallCapture(tables: readonly CaptureTable[]): Promise<void>;
  /** Whether the capture trigger is installed on a table. */
  hasCapture(table: CaptureTable): Promise<boolean>;
  /** Calls `onChange` when a capture trigger fired (PostgreSQL NOTIFY); null where the engine cannot tell other processes (poll instead). */
  listen(onChange: () => void): Promise<(() => Promise<void>) | null>;
  /** `expr` (text) converted to the column's type, for comparing with the column through its index. */
  asColumn(expr: string, column: ColumnInfo): string;
  /**
   * Claims the database for this connector until close(): a second connector
   * on the same database would push the same rows twice. Throws saying so
   * when another one holds it.
   */
  claim(): Promise<void>;
  /** An SQL expression that fingerprints these columns of `alias` (equal values, equal fingerprint). */
  fingerprint(alias: string, columns: readonly string[]): string;
  /** The placeholder for a value written into a column (with its cast where the engine needs one). */
  placeholder(column: ColumnInfo): string;
  /** A column as the statement selects it for fromDatabase (PostgreSQL: its text form). */
  selectable(alias: string, column: ColumnInfo): string;
  fromDatabase(value: unknown, column: ColumnInfo): JsonValue | undefined;
  toDatabase(value: JsonValue | undefined, column: ColumnInfo): unknown;
  close(): Promise<void>;
}

export interface CaptureTable {
  collection: string;
  schema: string | null;
  table: string;
  idColumn: string;
}

/** What a transaction can do. */
export interface SqlExecutor {
  all(text: string, params?: readonly unknown[]): Promise<Record<string, unknown>[]>;
  /** Runs `work` inside a savepoint: if it throws, only its statements are undone, and the error is rethrown. */
  savepoint<T>(work: () => Promise<T>): Promise<T>;
}

export function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}

/** A string literal (trigger arguments and bodies cannot take parameters). */
function literal(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

export function quoteTable(schema: string | null, table: string): string {
  return schema ? `${quote(schema)}.${quote(table)}` : quote(table);
}

// ---------------------------------------------------------------------------
// PostgreSQL (postgres.js)

/** `?` placeholders as `$1, $2, …` (the statements never hold a literal `?`). */
function numbered(text: string): string {
  let n = 0;
  return text.replace(/\?/g, () => `$${++n}`);
}

export async function openPostgresDriver(url: string): Promise<SqlDriver> {
  const sql = postgres(url, {
    max: 2,
    onnotice: () => undefined,
    // Column values travel as text (selectable), read in UTC with ISO dates so timestamps have one spelling.
    connection: { application_name: "concord-connect", TimeZone: "UTC", DateStyle: "ISO, YMD" },
  });
  const run = async (q: postgres.Sql | postgres.TransactionSql, text: string, params: readonly unknown[] = []) =>
    (await q.unsafe(numbered(text), params as postgres.ParameterOrJSON<never>[])) as unknown as Record<string, unknown>[];
  let claimed: postgres.ReservedSql | null = null;
  try {
    await sql`select 1`;
  } catch (error) {
    await sql.end({ timeout: 1 });
    throw new Error(`Could not connect to the database ${redact(url)}: ${(error as Error).message}`);
  }
  return {
    engine: "postgres",
    all: (text, params) => run(sql, text, params),
    async transaction(work) {
      return (await sql.begin(async (tx) => {
        // Tells the capture trigger (capture: trigger) that these writes are the connector's own.
        await tx.unsafe(`select set_config('concord.applying', 'on', true)`);
        let savepoints = 0;
        const executor: SqlExecutor = {
          all: (text, params) => run(tx, text, params),
          async savepoint(inner) {
            const name = `concord_${++savepoints}`;
            await tx.unsafe(`savepoint ${name}`);
            try {
              const result = await inner();
              await tx.unsafe(`release savepoint ${name}`);
              return result;
            } catch (error) {
              await tx.unsafe(`rollback to savepoint ${name}`);
              throw error;
            }
          },
        };
        return work(executor);
      })) as Awaited<ReturnType<typeof work>>;
    },
    async columns(schema, table) {
      const rows = await run(
        sql,
        `select a.attname as name, format_type(a.atttypid, a.atttypmod) as type
         from pg_attribute a
         where a.attrelid = to_regclass(?) and a.attnum > 0 and not a.attisdropped
         order by a.attnum`,
        [quoteTable(schema, table)],
      );
      if (rows.length === 0) return null;
      return rows.map((r) => ({ name: String(r.name), sqlType: String(r.type), kind: postgresKind(String(r.type)) }));
    },
    own: (name) => `concord.${name}`,
    async setup() {
      await sql.unsafe(`
        create schema if not exists concord;
        create table if not exists concord.records (
          collection text not null, id text not null, base text, fp text, modified_at text,
          primary key (collection, id));
        create table if not exists concord.outbox (
          seq bigserial primary key, change_id text not null unique, entry text not null);
        create table if not exists concord.state (key text primary key, value text not null);
        create table if not exists concord.captured (collection text not null, id text not null, seq bigint not null, primary key (collection, id));
        create sequence if not exists concord.captured_seq;`);
    },
    async installCapture(tables) {
      await sql.begin(async (tx) => {
        await tx.unsafe(`
          create or replace function concord.capture() returns trigger language plpgsql as $capture$
          declare
            old_id text := case when tg_op <> 'INSERT' then to_jsonb(old) ->> tg_argv[1] end;
            new_id text := case when tg_op <> 'DELETE' then to_jsonb(new) ->> tg_argv[1] end;
          begin
            -- The connector's own writes (the hub's changes it applies) are not local changes.
            if current_setting('concord.applying', true) = 'on' then return null; end if;
            insert into concord.captured (collection, id, seq)
              select tg_argv[0], i, nextval('concord.captured_seq') from (select distinct i from unnest(array[old_id, new_id]) i where i is not null) ids
              on conflict (collection, id) do update set seq = excluded.seq;
            perform pg_notify('concord_connect', tg_argv[0]);
            return null;
          end $capture$`);
        for (const t of tables) {
          const name = quoteTable(t.schema, t.table);
          await tx.unsafe(`drop trigger if exists concord_capture on ${name}`);
          await tx.unsafe(
            `create trigger concord_capture after insert or update or delete on ${name} for each row execute function concord.capture(${literal(t.collection)}, ${literal(t.idColumn)})`,
          );
        }
      });
    },
    async uninstallCapture(tables) {
      await sql.begin(async (tx) => {
        for (const t of tables) {
          if ((await tx.unsafe(`select to_regclass($1) as r`, [quoteTable(t.schema, t.table)]))[0]?.r == null) continue;
          await tx.unsafe(`drop trigger if exists concord_capture on ${quoteTable(t.schema, t.table)}`);
          await tx.unsafe(`delete from concord.captured where collection = $1`, [t.collection]);
        }
        const left = await tx.unsafe(`select 1 from pg_trigger where tgname = 'concord_capture' limit 1`);
        if (left.length === 0) await tx.unsafe(`drop function if exists concord.capture()`);
      });
    },
    async hasCapture(t) {
      const rows = await run(sql, `select 1 from pg_trigger where tgname = 'concord_capture' and tgrelid = to_regclass(?)`, [quoteTable(t.schema, t.table)]);
      return rows.length > 0;
    },
    async listen(onChange) {
      const sub = await sql.listen("concord_connect", () => onChange());
      return () => sub.unlisten();
    },
    asColumn: (expr, column) => `cast(${expr} as ${column.sqlType})`,
    async claim() {
      if (claimed) return;
      const connection = await sql.reserve();
      const [row] = await connection`select pg_try_advisory_lock(${CLAIM_KEY}) as ok`;
      if (!row?.ok) {
        connection.release();
        throw new Error(`Another concord connect is already running on the database ${redact(url)}; stop it first (two would push the same rows twice).`);
      }
      // Held by this session until it ends (close).
      claimed = connection;
    },
    fingerprint: (alias, columns) => `md5(row(${columns.map((c) => `${alias}.${quote(c)}`).join(", ")})::text)`,
    placeholder: (column) => `?::${column.sqlType}`,
    selectable: (alias, column) => `${alias}.${quote(column.name)}::text`,
    fromDatabase: (value, column) => fromPostgresText(value as string | null, column),
    toDatabase: (value, column) => toPostgresText(value, column),
    async close() {
      claimed?.release();
      await sql.end({ timeout: 5 });
    },
  };
}

/** The advisory lock a connector holds on its system's PostgreSQL database (any number; "conc" in ASCII). */
const CLAIM_KEY = 0x636f6e63;

/** A database URL without its password, for messages; `unreadable` stands for a URL that does not parse. */
export function redact(url: string, unreadable = "(the configured database)"): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return unreadable;
  }
}

// ---------------------------------------------------------------------------
// SQLite (better-sqlite3, an optional dependency)

interface BetterSqlite {
  prepare(text: string): { all(...params: unknown[]): Record<string, unknown>[]; run(...params: unknown[]): unknown; reader: boolean };
  exec(text: string): void;
  function(name: string, options: { varargs: boolean; deterministic: boolean }, fn: (...args: unknown[]) => unknown): void;
  pragma(text: string): unknown;
  close(): void;
  readonly inTransaction: boolean;
}

/** The state row that marks a transaction of the connector's own (SQLite capture triggers skip its writes). */
const APPLYING = "concord.applying";

export async function openSqliteDriver(file: string): Promise<SqlDriver> {
  let Database: new (file: string, options?: { fileMustExist?: boolean }) => BetterSqlite;
  try {
    Database = createRequire(import.meta.url)("better-sqlite3") as typeof Database;
  } catch (error) {
    throw new Error(
      `SQLite needs the better-sqlite3 package, which is not installed or not built here (${(error as Error).message.split("\n")[0]}); run \`npm install better-sqlite3\` (it compiles with python3, make and a C++ compiler when no prebuilt binary fits).`,
    );
  }
  let db: BetterSqlite;
  try {
    db = new Database(path.resolve(file), { fileMustExist: true });
  } catch (error) {
    throw new Error(`Could not open the SQLite database ${file}: ${(error as Error).message}`);
  }
  db.pragma("journal_mode = WAL");
  db.pragma("busy_timeout = 5000");
  // The fingerprint of a row's values: what the connector compares to see a row changed since it last synced.
  db.function("concord_fp", { varargs: true, deterministic: true }, (...values: unknown[]) =>
    createHash("sha1")
      .update(JSON.stringify(values, (_, v: unknown) => (typeof v === "bigint" ? `${v}n` : v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v)))
      .digest("hex"),
  );
  const all = (text: string, params: readonly unknown[] = []) => {
    const statement = db.prepare(text);
    if (statement.reader) return statement.all(...params);
    statement.run(...params);
    return [];
  };
  let savepoints = 0;
  let lockFile: string | null = null;
  // The flag row needs the connector's tables (setup); a transaction before them (a fresh file) has no triggers to tell.
  let hasState = false;
  const stateReady = () => (hasState ||= all(`select 1 from sqlite_master where type = 'table' and name = 'concord_state'`).length > 0);
  return {
    engine: "sqlite",
    all: async (text, params) => all(text, params),
    async transaction(work) {
      // better-sqlite3 is synchronous: nothing else runs on this connection while `work` awaits only our own statements.
      db.exec("begin immediate");
      try {
        // Seen only by this transaction's own statements (SQLite has one writer at a time): the capture triggers skip them.
        if (stateReady()) all(`insert or replace into concord_state (key, value) values ('${APPLYING}', '1')`);
        const result = await work({
          all: async (text, params) => all(text, params),
          async savepoint(inner) {
            const name = `concord_${++savepoints}`;
            db.exec(`savepoint ${name}`);
            try {
              const value = await inner();
              db.exec(`release ${name}`);
              return value;
            } catch (error) {
              db.exec(`rollback to ${name}`);
              db.exec(`release ${name}`);
              throw error;
            }
          },
        });
        if (stateReady()) all(`delete from concord_state where key = '${APPLYING}'`);
        db.exec("commit");
        return result;
      } catch (error) {
        if (db.inTransaction) db.exec("rollback");
        throw error;
      }
    },
    async columns(schema, table) {
      if (schema !== null) throw new Error(`SQLite has no schemas: name the table without "${schema}."`);
      const rows = all(`select name, type from pragma_table_info(?) order by cid`, [table]);
      if (rows.length === 0) return null;
      return rows.map((r) => ({ name: String(r.name), sqlType: String(r.type ?? ""), kind: sqliteKind(String(r.type ?? "")) }));
    },
    own: (name) => `concord_${name}`,
    async setup() {
      db.exec(`
        create table if not exists concord_records (
          collection text not null, id text not null, base text, fp text, modified_at text,
          primary key (collection, id));
        create table if not exists concord_outbox (
          seq integer primary key autoincrement, change_id text not null unique, entry text not null);
        create table if not exists concord_state (key text primary key, value text not null);
        create table if not exists concord_captured (collection text not null, id text not null, seq integer not null, primary key (collection, id));`);
    },
    async installCapture(tables) {
      db.exec("begin immediate");
      try {
        for (const t of tables) {
          if (t.schema !== null) throw new Error(`SQLite has no schemas: name the table without "${t.schema}."`);
          const capture = (row: "new" | "old") =>
            `insert or replace into concord_captured (collection, id, seq)
               values (${literal(t.collection)}, cast(${row}.${quote(t.idColumn)} as text), (select coalesce(max(seq), 0) + 1 from concord_captured));`;
          for (const [event, body] of [
            ["insert", capture("new")],
            ["update", `${capture("old")} ${capture("new")}`],
            ["delete", capture("old")],
          ] as const) {
            const name = quote(`concord_capture_${t.table}_${event}`);
            db.exec(`drop trigger if exists ${name}`);
            // The connector's own writes (the hub's changes it applies) are not local changes: its transactions set a flag row.
            db.exec(
              `create trigger ${name} after ${event} on ${quote(t.table)} when not exists (select 1 from concord_state where key = '${APPLYING}') begin ${body} end`,
            );
          }
        }
        db.exec("commit");
      } catch (error) {
        if (db.inTransaction) db.exec("rollback");
        throw error;
      }
    },
    async uninstallCapture(tables) {
      for (const t of tables) {
        for (const event of ["insert", "update", "delete"]) db.exec(`drop trigger if exists ${quote(`concord_capture_${t.table}_${event}`)}`);
        all(`delete from concord_captured where collection = ?`, [t.collection]);
      }
    },
    async hasCapture(t) {
      return all(`select 1 from sqlite_master where type = 'trigger' and name = ?`, [`concord_capture_${t.table}_insert`]).length > 0;
    },
    listen: async () => null,
    asColumn: (expr) => expr,
    async claim() {
      if (lockFile) return;
      const lock = `${path.resolve(file)}.concord-lock`;
      await takeLockFile(
        lock,
        (pid) =>
          new Error(`Another concord connect (pid ${pid}) is already running on ${file}; stop it first (two would push the same rows twice). If no connector runs, remove ${lock}.`),
        () => new Error(`Could not claim ${file} (lock file ${lock}); remove that file if no concord connect is running.`),
      );
      lockFile = lock;
    },
    fingerprint: (alias, columns) => `concord_fp(${columns.map((c) => `${alias}.${quote(c)}`).join(", ")})`,
    placeholder: () => "?",
    selectable: (alias, column) => `${alias}.${quote(column.name)}`,
    fromDatabase: (value, column) => fromSqliteValue(value, column),
    toDatabase: (value, column) => toSqliteValue(value, column),
    async close() {
      db.close();
      if (lockFile) rmSync(lockFile, { force: true });
    },
  };
}

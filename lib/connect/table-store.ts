import { digestsOf } from "../client/digest";
import type { LocalRecord, LocalStore, OutboxEntry, RecordBase, RecordKey, StoreWrite } from "../client/store";
import { DELETED_DIGEST, isJsonObject, RECORD_ID_PATTERN, type ConfigResponse, type JsonObject, type JsonValue } from "../sync/protocol";
import type { CollectionMapping } from "./config";
import { quote, quoteTable, type SqlDriver, type SqlExecutor } from "./driver";
import { UnmappableValue, type ColumnInfo } from "./values";

/**
 * A business system's own tables as the SDK's local store (lib/client/store.ts):
 * the SDK's engine (outbox, push, pull, conflicts, quarantine, manifest
 * reconcile) runs unchanged on top of it, and the records are the rows.
 *
 * Bookkeeping lives next to the data, in the connector's own tables
 * (`concord.*` on PostgreSQL, `concord_*` on SQLite): for each synced row its
 * base (version, digest and data as the hub sent it) and the fingerprint of
 * the row's values when it was last written or synced.
 *
 * Change detection (claim 5): a row is modified when the digest of its
 * record form differs from its base digest. The record form of a row is its
 * columns that the system may read, as JSON (values.ts), plus the fields of
 * its base that the table has no column for. Computing every row's digest on
 * every cycle would cost seconds on a large table, so the fingerprint, an
 * SQL expression over the row's columns, finds the rows whose values changed
 * since they were synced, and only those are digested and compared: a row
 * whose fingerprint is unchanged still has the form it had when synced.
 * New rows (no bookkeeping) are first submissions; bookkeeping without a row
 * is a delete.
 *
 * Applying the hub's changes writes the rows and their bookkeeping (with the
 * fingerprint of the row as written) in one transaction with the checkpoint,
 * so they are not seen again as local changes, and a crash at any point
 * leaves either all or none of a page applied. Only the columns of fields
 * the system may read are written; other columns keep their values.
 */
export class TableStore implements LocalStore {
  private readonly tables = new Map<string, Table>();
  private config: ConfigResponse | null | undefined;
  /** Rows that could not be read or written, by collection and id: reported by `problems()`. */
  private readonly unmappable = new Map<string, Problem>();

  /** capture: trigger, after the first full look at the tables: only captured ids are looked at. */
  private capturedOnly = false;

  private constructor(
    private readonly driver: SqlDriver,
    private readonly capture: "scan" | "trigger",
  ) {}

  /**
   * Checks every configured table and creates the bookkeeping tables. Throws
   * naming a missing table or column, or (capture: trigger) a table without
   * the capture trigger.
   */
  static async open(driver: SqlDriver, mappings: readonly CollectionMapping[], capture: "scan" | "trigger" = "scan"): Promise<TableStore> {
    const store = new TableStore(driver, capture);
    await driver.setup();
    for (const m of mappings) {
      const columns = await driver.columns(m.schema, m.table);
      const name = m.schema ? `${m.schema}.${m.table}` : m.table;
      if (columns === null) throw new Error(`Collection "${m.collection}": there is no table ${name} in the database.`);
      const byName = new Map(columns.map((c) => [c.name, c]));
      const id = byName.get(m.idColumn);
      if (!id) throw new Error(`Collection "${m.collection}": table ${name} has no column "${m.idColumn}" (the id column).`);
      for (const [field, column] of Object.entries(m.renamed)) {
        if (!byName.has(column)) throw new Error(`Collection "${m.collection}": field "${field}" names column "${column}", which table ${name} does not have.`);
      }
      const columnOf = new Map(Object.entries(m.renamed).map(([field, column]) => [column, field]));
      const fields = columns.filter((c) => c.name !== m.idColumn).map((c) => ({ field: columnOf.get(c.name) ?? c.name, column: c }));
      if (capture === "trigger" && !(await driver.hasCapture({ collection: m.collection, schema: m.schema, table: m.table, idColumn: m.idColumn }))) {
        throw new Error(`Collection "${m.collection}": table ${name} has no capture trigger; run \`concord connect --config FILE --install\` first (or use capture: scan).`);
      }
      store.tables.set(m.collection, { mapping: m, sql: quoteTable(m.schema, m.table), id, fields, fieldNames: new Set(fields.map((f) => f.field)) });
    }
    return store;
  }

  /** Rows the connector could not map in the last cycle (reported by `concord connect --status`). */
  problems(): Problem[] {
    return [...this.unmappable.values()];
  }

  // --- LocalStore: records

  async getRecord(collection: string, id: string): Promise<LocalRecord | undefined> {
    return (await this.getRecords(collection, [id]))[0];
  }

  async getRecords(collection: string, ids: readonly string[]): Promise<LocalRecord[]> {
    if (ids.length === 0) return [];
    const table = this.table(collection);
    if (!table) return [];
    const out: LocalRecord[] = [];
    for (let i = 0; i < ids.length; i += 500) {
      const chunk = ids.slice(i, i + 500);
      // Compared in the id column's own type, so the primary key's index is used.
      const typed = chunk.map((id) => this.idParam(table, id)).filter((v) => v !== undefined);
      const rows = typed.length > 0 ? `t.${quote(table.id.name)} in (${typed.map(() => this.driver.placeholder(table.id)).join(", ")})` : "false";
      out.push(...(await this.records(table, { rows, books: `b.id in (${chunk.map(() => "?").join(", ")})` }, { rows: typed, books: chunk })));
    }
    return out;
  }

  async listRecords(collection: string): Promise<LocalRecord[]> {
    const table = this.table(collection);
    if (!table) return [];
    return (await this.records(table, { rows: "true", books: "true" }, { rows: [], books: [] })).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async modifiedRecords(): Promise<LocalRecord[]> {
    const out: LocalRecord[] = [];
    const capturing = this.capture === "trigger";
    const onlyCaptured = this.capturedOnly;
    for (const table of this.tables.values()) {
      const { collection } = table.mapping;
      const captured = this.driver.own("captured");
      // capture: trigger: the ids the triggers recorded, read before the rows (a later change gets a new seq).
      const seen = capturing ? await this.driver.all(`select id, seq from ${captured} where collection = ?`, [collection]) : [];
      if (onlyCaptured && seen.length === 0) continue;
      // Only rows whose values changed since they were synced (or never were), and bookkeeping whose row is gone.
      const fp = this.driver.fingerprint("t", this.columnsOf(table));
      const changedRows = `(b.fp is null or b.fp <> ${fp})`;
      const records = onlyCaptured
        ? await this.records(
            table,
            {
              rows: `${changedRows} and t.${quote(table.id.name)} in (select ${this.driver.asColumn("c.id", table.id)} from ${captured} c where c.collection = ?)`,
              books: `b.id in (select c.id from ${captured} c where c.collection = ?)`,
            },
            { rows: [collection], books: [collection] },
          )
        : await this.records(table, { rows: changedRows, books: "true" }, { rows: [], books: [] });
      const modified = records.filter((r) => r.digest !== r.base?.digest);
      out.push(...modified);
      if (capturing) {
        // Captured ids whose rows are in sync are done; a modified row stays captured until its change is answered.
        const busy = new Set(modified.map((r) => r.id));
        const done = seen.filter((c) => !busy.has(String(c.id)));
        if (done.length > 0) {
          await this.driver.transaction(async (tx) => {
            for (const c of done) await tx.all(`delete from ${captured} where collection = ? and id = ? and seq = ?`, [collection, String(c.id), c.seq]);
          });
        }
      }
    }
    // Changes made while no trigger ran (before --install) were found by this full look; from now on the triggers tell.
    if (capturing) this.capturedOnly = true;
    return out;
  }

  async collections(): Promise<string[]> {
    return [...this.tables.keys()];
  }

  // --- LocalStore: outbox, checkpoints, meta

  async outbox(): Promise<OutboxEntry[]> {
    const rows = await this.driver.all(`select entry from ${this.driver.own("outbox")} order by seq`);
    return rows.map((r) => JSON.parse(String(r.entry)) as OutboxEntry);
  }

  async checkpoint(collection: string): Promise<string | null> {
    const value = await this.state(`checkpoint:${collection}`);
    return typeof value === "string" ? value : null;
  }

  async getMeta(key: string): Promise<JsonValue | undefined> {
    return this.state(`meta:${key}`);
  }

  async write(write: StoreWrite): Promise<void> {
    const config = write.meta?.config !== undefined ? (write.meta.config as unknown as ConfigResponse) : await this.hubConfig();
    await this.driver.transaction(async (tx) => {
      // Several hundred rows per statement: a first sync writes every row of the table.
      const byCollection = new Map<string, LocalRecord[]>();
      for (const record of write.putRecords ?? []) {
        const list = byCollection.get(record.collection);
        if (list) list.push(record);
        else byCollection.set(record.collection, [record]);
      }
      for (const [collection, records] of byCollection) await this.putRecords(tx, collection, lastById(records), config);
      for (const key of write.deleteRecords ?? []) await this.deleteRecord(tx, key);
      const outbox = this.driver.own("outbox");
      for (const chunk of chunks(write.putOutbox ?? [], 200)) {
        await tx.all(
          `insert into ${outbox} (change_id, entry) values ${chunk.map(() => "(?, ?)").join(", ")} on conflict (change_id) do update set entry = excluded.entry`,
          chunk.flatMap((entry) => [entry.changeId, JSON.stringify(entry)]),
        );
      }
      for (const chunk of chunks(write.deleteOutbox ?? [], 500)) {
        await tx.all(`delete from ${outbox} where change_id in (${chunk.map(() => "?").join(", ")})`, chunk);
      }
      for (const [collection, checkpoint] of Object.entries(write.checkpoints ?? {})) await this.setState(tx, `checkpoint:${collection}`, checkpoint);
      for (const [key, value] of Object.entries(write.meta ?? {})) await this.setState(tx, `meta:${key}`, value);
    });
    if (write.meta?.config !== undefined) this.config = config;
  }

  async close(): Promise<void> {
    await this.driver.close();
  }

  // --- rows ↔ records

  private table(collection: string): Table | undefined {
    return this.tables.get(collection);
  }

  private columnsOf(table: Table): string[] {
    return [table.id.name, ...table.fields.map((f) => f.column.name)];
  }

  /**
   * The table row whose id is the text `idExpr`. PostgreSQL compares as text
   * (a hashed anti-join); SQLite compares the column with the text, which its
   * affinity rules convert, so the primary key's index is used (a cast of the
   * column would make each probe a scan of the table).
   */
  private sameId(alias: string, table: Table, idExpr: string): string {
    return this.driver.engine === "postgres" ? `${this.idText(alias, table)} = ${idExpr}` : `${alias}.${quote(table.id.name)} = ${idExpr}`;
  }

  /** The id column as text, for comparing with the bookkeeping's ids. */
  private idText(alias: string, table: Table): string {
    return this.driver.engine === "postgres" ? `${alias}.${quote(table.id.name)}::text` : `cast(${alias}.${quote(table.id.name)} as text)`;
  }

  /**
   * Rows (with their bookkeeping `b`) that meet `where.rows` (over the table
   * `t` and `b`), and bookkeeping without a row that meets `where.books`, as
   * local records; `params` fill the placeholders of each condition.
   */
  private async records(
    table: Table,
    where: { rows: string; books: string },
    params: { rows: readonly unknown[]; books: readonly unknown[] },
  ): Promise<LocalRecord[]> {
    const { collection } = table.mapping;
    const own = this.driver.own("records");
    const fp = this.driver.fingerprint("t", this.columnsOf(table));
    const selected = table.fields.map((f, i) => `, ${this.driver.selectable("t", f.column)} as c${i}`).join("");
    const rows = await this.driver.all(
      `select ${this.idText("t", table)} as concord_id, ${fp} as concord_fp, b.base as concord_base, b.fp as concord_known${selected}
       from ${table.sql} t left join ${own} b on b.collection = ? and b.id = ${this.idText("t", table)}
       where ${where.rows}`,
      [collection, ...params.rows],
    );
    const books = await this.driver.all(
      `select b.id, b.base, b.modified_at from ${own} b
       where b.collection = ? and ${where.books} and not exists (select 1 from ${table.sql} t where ${this.sameId("t", table, "b.id")})`,
      [collection, ...params.books],
    );
    const config = await this.hubConfig();
    const readable = readableFields(config, collection);
    const writable = writableFields(config, collection);

    const out: LocalRecord[] = [];
    const forms: { id: string; form: JsonObject; base: RecordBase | null }[] = [];
    for (const row of rows) {
      const id = String(row.concord_id);
      const base = row.concord_base == null ? null : (JSON.parse(String(row.concord_base)) as RecordBase | null);
      // Unchanged since it was synced: the row is its base.
      if (base && row.concord_known != null && row.concord_known === row.concord_fp) {
        out.push({ collection, id, data: base.data, digest: base.digest, base, modifiedAt: null });
        continue;
      }
      const problemKey = `${collection}\u0000${id}`;
      if (!RECORD_ID_PATTERN.test(id) || [...id].length > 256) {
        this.unmappable.set(problemKey, { collection, id, column: table.id.name, message: "the id is not a valid record id (1 to 256 printable characters)" });
        continue;
      }
      try {
        forms.push({ id, form: this.recordForm(table, row, base, readable, writable), base });
        this.unmappable.delete(problemKey);
      } catch (error) {
        if (!(error instanceof RowProblem)) throw error;
        this.unmappable.set(problemKey, { collection, id, column: error.column, message: error.message });
      }
    }
    const digests = await digestsOf(forms.map((f) => f.form));
    forms.forEach(({ id, form, base }, i) => {
      const digest = digests[i] as string;
      // Equal to its base: unmodified, whatever spelling the database gives the values.
      if (base && digest === base.digest) out.push({ collection, id, data: base.data, digest, base, modifiedAt: null });
      else out.push({ collection, id, data: form, digest, base, modifiedAt: null });
    });
    for (const book of books) {
      const base = book.base == null ? null : (JSON.parse(String(book.base)) as RecordBase | null);
      // No row: deleted in the table (modified when the base is live), or the SDK's own record of a delete.
      out.push({ collection, id: String(book.id), data: null, digest: DELETED_DIGEST, base, modifiedAt: book.modified_at == null ? null : String(book.modified_at) });
    }
    return out;
  }

  /** A row as the record the system speaks for (see the class comment). */
  private recordForm(table: Table, row: Record<string, unknown>, base: RecordBase | null, readable: Fields, writable: Fields): JsonObject {
    // Entries, then one Object.fromEntries: an assignment to a field named __proto__ would set the prototype instead.
    const form: [string, JsonValue][] = [];
    table.fields.forEach(({ field, column }, i) => {
      if (!allows(readable, field)) return;
      // A new record sends only what the system may write: anything else would be refused (forbidden).
      if (base === null && !allows(writable, field)) return;
      let value: JsonValue | undefined;
      try {
        value = this.driver.fromDatabase(row[`c${i}`], column);
      } catch (error) {
        throw new RowProblem(column.name, `column "${column.name}": ${error instanceof UnmappableValue || error instanceof SyntaxError ? error.message : String(error)}`);
      }
      if (value !== undefined) form.push([field, value]);
    });
    // Fields the table has no column for keep the hub's values (a merge patch would otherwise remove them).
    if (base?.data) for (const [key, value] of Object.entries(base.data)) if (!table.fieldNames.has(key)) form.push([key, value]);
    return Object.fromEntries(form) as JsonObject;
  }

  /**
   * Writes records of one collection: their rows (upserted, or deleted for a
   * record without data) and their bookkeeping. Rows go in statements of up
   * to 200; a statement that fails is retried row by row in savepoints, so
   * one row that cannot be written is reported and the others land.
   */
  private async putRecords(tx: SqlExecutor, collection: string, records: readonly LocalRecord[], config: ConfigResponse | null): Promise<void> {
    const table = this.table(collection);
    if (!table) return;
    const readable = readableFields(config, collection);
    const written = table.fields.filter((f) => allows(readable, f.field));
    const failed = new Set<string>();
    const live = records.filter((r) => r.data !== null);
    for (const chunk of chunks(live, 200)) {
      try {
        await tx.savepoint(() => this.upsertRows(tx, table, written, chunk));
      } catch {
        for (const record of chunk) {
          try {
            await tx.savepoint(() => this.upsertRows(tx, table, written, [record]));
          } catch (error) {
            // This row stays as it was (and its bookkeeping too); the others go on.
            const column = error instanceof RowProblem ? error.column : table.id.name;
            this.unmappable.set(`${collection}\u0000${record.id}`, { collection, id: record.id, column, message: `could not write the hub's version: ${(error as Error).message}` });
            failed.add(record.id);
          }
        }
      }
    }
    for (const chunk of chunks(records.filter((r) => r.data === null), 500)) await this.deleteRows(tx, table, chunk.map((r) => r.id));
    const kept = records.filter((r) => !failed.has(r.id));
    for (const r of kept) this.unmappable.delete(`${collection}\u0000${r.id}`);
    // An unmodified copy remembers the row's fingerprint as written: the row is its base until its values change.
    const fp = this.driver.fingerprint("t", this.columnsOf(table));
    const own = this.driver.own("records");
    for (const chunk of chunks(kept, 200)) {
      await tx.all(
        `with v (collection, id, base, want, modified_at) as (values ${chunk.map(() => "(?, ?, ?, ?, ?)").join(", ")})
         insert into ${own} (collection, id, base, fp, modified_at)
         select v.collection, v.id, v.base,
           case when v.want = 'yes' then (select ${fp} from ${table.sql} t where t.${quote(table.id.name)} = ${this.driver.asColumn("v.id", table.id)}) end,
           v.modified_at
         from v where true
         on conflict (collection, id) do update set base = excluded.base, fp = excluded.fp, modified_at = excluded.modified_at`,
        chunk.flatMap((r) => {
          const unmodified = r.base !== null && r.digest === r.base.digest && r.data !== null && this.idParam(table, r.id) !== undefined;
          return [collection, r.id, JSON.stringify(r.base), unmodified ? "yes" : "no", r.modifiedAt];
        }),
      );
    }
  }

  /** One upsert statement for these records' rows: the id and the columns of readable fields (absent fields become NULL). */
  private async upsertRows(tx: SqlExecutor, table: Table, written: Table["fields"], records: readonly LocalRecord[]): Promise<void> {
    const params: unknown[] = [];
    for (const record of records) {
      const data = record.data as JsonObject;
      const id = this.idParam(table, record.id);
      if (id === undefined) throw new RowProblem(table.id.name, `the id "${record.id}" does not fit the id column (${table.id.sqlType})`);
      params.push(id);
      for (const { field, column } of written) {
        try {
          params.push(this.driver.toDatabase(data[field], column));
        } catch (error) {
          throw new RowProblem(column.name, `column "${column.name}": ${(error as Error).message}`);
        }
      }
    }
    const columns = [table.id, ...written.map((w) => w.column)];
    const row = `(${columns.map((c) => this.driver.placeholder(c)).join(", ")})`;
    const update = written.map((w) => `${quote(w.column.name)} = excluded.${quote(w.column.name)}`).join(", ");
    await tx.all(
      `insert into ${table.sql} (${columns.map((c) => quote(c.name)).join(", ")}) values ${records.map(() => row).join(", ")}
       on conflict (${quote(table.id.name)}) do ${update ? `update set ${update}` : "nothing"}`,
      params,
    );
  }

  private async deleteRecord(tx: SqlExecutor, key: RecordKey): Promise<void> {
    const table = this.table(key.collection);
    if (!table) return;
    await this.deleteRows(tx, table, [key.id]);
    await tx.all(`delete from ${this.driver.own("records")} where collection = ? and id = ?`, [key.collection, key.id]);
    this.unmappable.delete(`${key.collection}\u0000${key.id}`);
  }

  /** The id as a value of the id column's type, or undefined when no row of this table can have it. */
  private idParam(table: Table, id: string): unknown {
    if (table.id.kind === "integer" && !/^-?[0-9]{1,18}$/.test(id)) return undefined;
    if (table.id.sqlType === "uuid" && !/^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$/.test(id)) return undefined;
    try {
      return this.driver.toDatabase(id, table.id);
    } catch {
      return undefined;
    }
  }

  private async deleteRows(tx: SqlExecutor, table: Table, ids: readonly string[]): Promise<void> {
    const values = ids.map((id) => this.idParam(table, id)).filter((v) => v !== undefined);
    if (values.length === 0) return;
    await tx.all(`delete from ${table.sql} where ${quote(table.id.name)} in (${values.map(() => this.driver.placeholder(table.id)).join(", ")})`, values);
  }

  // --- state

  private async state(key: string): Promise<JsonValue | undefined> {
    const [row] = await this.driver.all(`select value from ${this.driver.own("state")} where key = ?`, [key]);
    return row ? (JSON.parse(String(row.value)) as JsonValue) : undefined;
  }

  private async setState(tx: SqlExecutor, key: string, value: JsonValue | null | undefined): Promise<void> {
    if (value === null || value === undefined) {
      await tx.all(`delete from ${this.driver.own("state")} where key = ?`, [key]);
      return;
    }
    await tx.all(
      `insert into ${this.driver.own("state")} (key, value) values (?, ?) on conflict (key) do update set value = excluded.value`,
      [key, JSON.stringify(value)],
    );
  }

  private async hubConfig(): Promise<ConfigResponse | null> {
    if (this.config === undefined) {
      const value = await this.state("meta:config");
      this.config = isJsonObject(value) ? (value as unknown as ConfigResponse) : null;
    }
    return this.config;
  }
}

function* chunks<T>(items: readonly T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

/** The last record written for each id (a multi-row upsert may not touch a row twice). */
function lastById(records: readonly LocalRecord[]): LocalRecord[] {
  return [...new Map(records.map((r) => [r.id, r])).values()];
}

export interface Problem {
  collection: string;
  id: string;
  column: string;
  message: string;
}

interface Table {
  mapping: CollectionMapping;
  /** The quoted table name. */
  sql: string;
  id: ColumnInfo;
  /** Every other column, with the field it holds. */
  fields: { field: string; column: ColumnInfo }[];
  fieldNames: Set<string>;
}

class RowProblem extends Error {
  constructor(
    readonly column: string,
    message: string,
  ) {
    super(message);
  }
}

/** Field names, or every field ("*"); null: none. */
type Fields = ReadonlySet<string> | "*" | null;

function allows(fields: Fields, field: string): boolean {
  return fields === "*" || (fields !== null && fields.has(field));
}

function fieldsOf(list: readonly string[] | undefined): Fields {
  if (!list) return null;
  return list.includes("*") ? "*" : new Set(list);
}

/** The fields this system may read in a collection; before the first sync (no configuration yet) none. */
function readableFields(config: ConfigResponse | null, collection: string): Fields {
  return fieldsOf(config?.collections[collection]?.read?.fields);
}

function writableFields(config: ConfigResponse | null, collection: string): Fields {
  return fieldsOf(config?.collections[collection]?.write?.fields);
}

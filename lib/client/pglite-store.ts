import { mkdir } from "node:fs/promises";
import { PGlite, type Transaction } from "@electric-sql/pglite";
import type { JsonObject, JsonValue, PushChange } from "../sync/protocol";
import type { LocalRecord, LocalStore, OutboxEntry, QuarantineInfo, StoreWrite } from "./store";

/**
 * A durable store on disk through PGlite (Postgres in WebAssembly): one folder
 * per client, surviving restarts; every `write` is one transaction. Data is
 * kept as JSON text, exactly as the client wrote it. Only one process may open
 * a folder at a time (PGlite has no lock: a second one would lose data).
 */
export class PgliteStore implements LocalStore {
  private constructor(private readonly pg: PGlite) {}

  /** Opens (creating if needed) the store in `dir`; `memory://` keeps it in memory. */
  static async open(dir: string): Promise<PgliteStore> {
    if (!dir.startsWith("memory://")) await mkdir(dir, { recursive: true });
    const pg = await PGlite.create(dir);
    await pg.exec(SCHEMA);
    return new PgliteStore(pg);
  }

  async getRecord(collection: string, id: string): Promise<LocalRecord | undefined> {
    const { rows } = await this.pg.query<RecordRow>(`${SELECT_RECORD} where collection = $1 and id = $2`, [collection, id]);
    return rows[0] && toRecord(rows[0]);
  }

  async getRecords(collection: string, ids: readonly string[]): Promise<LocalRecord[]> {
    const found: LocalRecord[] = [];
    for (const part of chunks(ids, CHUNK)) {
      const { rows } = await this.pg.query<RecordRow>(
        `${SELECT_RECORD} where collection = $1 and id in (select json_array_elements_text($2::json))`,
        [collection, JSON.stringify(part)],
      );
      for (const row of rows) found.push(toRecord(row));
    }
    return found;
  }

  async listRecords(collection: string): Promise<LocalRecord[]> {
    const { rows } = await this.pg.query<RecordRow>(`${SELECT_RECORD} where collection = $1 order by id`, [collection]);
    return rows.map(toRecord);
  }

  async modifiedRecords(): Promise<LocalRecord[]> {
    const { rows } = await this.pg.query<RecordRow>(`${SELECT_RECORD} where modified`);
    return rows.map(toRecord);
  }

  async collections(): Promise<string[]> {
    const { rows } = await this.pg.query<{ collection: string }>(
      "select collection from checkpoints union select distinct collection from records order by 1",
    );
    return rows.map((r) => r.collection);
  }

  async outbox(): Promise<OutboxEntry[]> {
    const { rows } = await this.pg.query<OutboxRow>("select change_id, collection, id, change, record, quarantine from outbox order by seq");
    return rows.map((r) => ({
      changeId: r.change_id,
      collection: r.collection,
      id: r.id,
      change: JSON.parse(r.change) as PushChange,
      record: JSON.parse(r.record) as JsonObject | null,
      quarantine: r.quarantine === null ? null : (JSON.parse(r.quarantine) as QuarantineInfo),
    }));
  }

  async checkpoint(collection: string): Promise<string | null> {
    const { rows } = await this.pg.query<{ checkpoint: string }>("select checkpoint from checkpoints where collection = $1", [collection]);
    return rows[0]?.checkpoint ?? null;
  }

  async getMeta(name: string): Promise<JsonValue | undefined> {
    const { rows } = await this.pg.query<{ value: string }>("select value from meta where key = $1", [name]);
    return rows[0] ? (JSON.parse(rows[0].value) as JsonValue) : undefined;
  }

  async write(write: StoreWrite): Promise<void> {
    await this.pg.transaction(async (tx) => {
      await deleteRecords(tx, write);
      await putRecords(tx, write.putRecords ?? []);
      for (const ids of chunks(write.deleteOutbox ?? [], CHUNK)) {
        await tx.query("delete from outbox where change_id in (select json_array_elements_text($1::json))", [JSON.stringify(ids)]);
      }
      // Chunks in the given order, and `ord` keeps the order inside each: new entries get increasing seq.
      for (const entries of chunks(write.putOutbox ?? [], CHUNK)) {
        const rows = entries.map((e, ord) => ({
          ord,
          change_id: e.changeId,
          collection: e.collection,
          id: e.id,
          change: JSON.stringify(e.change),
          record: JSON.stringify(e.record),
          quarantine: e.quarantine === null ? null : JSON.stringify(e.quarantine),
        }));
        await tx.query(
          `insert into outbox (change_id, collection, id, change, record, quarantine)
           select change_id, collection, id, change, record, quarantine
           from json_to_recordset($1::json) as x(ord int, change_id text, collection text, id text, change text, record text, quarantine text)
           order by ord
           on conflict (change_id) do update set change = excluded.change, record = excluded.record, quarantine = excluded.quarantine`,
          [JSON.stringify(rows)],
        );
      }
      for (const [collection, checkpoint] of Object.entries(write.checkpoints ?? {})) {
        if (checkpoint === null) await tx.query("delete from checkpoints where collection = $1", [collection]);
        else {
          await tx.query(
            "insert into checkpoints (collection, checkpoint) values ($1, $2) on conflict (collection) do update set checkpoint = excluded.checkpoint",
            [collection, checkpoint],
          );
        }
      }
      for (const [name, value] of Object.entries(write.meta ?? {})) {
        await tx.query("insert into meta (key, value) values ($1, $2) on conflict (key) do update set value = excluded.value", [
          name,
          JSON.stringify(value),
        ]);
      }
    });
  }

  async close(): Promise<void> {
    await this.pg.close();
  }
}

const SCHEMA = `
create table if not exists records (
  collection text not null,
  id text not null,
  data text,
  digest text not null,
  base text,
  modified_at text,
  modified boolean not null,
  primary key (collection, id)
);
create index if not exists records_modified on records (collection, id) where modified;
create table if not exists outbox (
  seq bigserial primary key,
  change_id text not null unique,
  collection text not null,
  id text not null,
  change text not null,
  record text not null,
  quarantine text
);
create table if not exists checkpoints (collection text primary key, checkpoint text not null);
create table if not exists meta (key text primary key, value text not null);
`;

const SELECT_RECORD = "select collection, id, data, digest, base, modified_at from records";

interface RecordRow {
  collection: string;
  id: string;
  data: string | null;
  digest: string;
  base: string | null;
  modified_at: string | null;
}

interface OutboxRow {
  change_id: string;
  collection: string;
  id: string;
  change: string;
  record: string;
  quarantine: string | null;
}

function toRecord(row: RecordRow): LocalRecord {
  return {
    collection: row.collection,
    id: row.id,
    data: row.data === null ? null : (JSON.parse(row.data) as JsonObject),
    digest: row.digest,
    base: row.base === null ? null : (JSON.parse(row.base) as LocalRecord["base"]),
    modifiedAt: row.modified_at,
  };
}

/**
 * Rows per statement. Every statement of a write is a multi-row one over a
 * JSON array (json_to_recordset): 100,000 records are 50 statements, not
 * 100,000, and no statement's parameter grows without bound (a 100,000-entry
 * outbox as one JSON text is ~50 MB inside the WebAssembly heap). Measured on
 * PGlite with 100,000 records of ~200 bytes: json_to_recordset inserts as fast
 * as multi-row VALUES with bound parameters, and upserts faster.
 */
const CHUNK = 2000;

function* chunks<T>(items: readonly T[], size: number): Generator<readonly T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

async function deleteRecords(tx: Transaction, write: StoreWrite): Promise<void> {
  for (const keys of chunks(write.deleteRecords ?? [], CHUNK)) {
    await tx.query(
      `delete from records r using json_to_recordset($1::json) as k(collection text, id text)
       where r.collection = k.collection and r.id = k.id`,
      [JSON.stringify(keys.map((k) => ({ collection: k.collection, id: k.id })))],
    );
  }
}

/** One statement per chunk: a pulled page of 10,000 records is a few round trips, not 10,000. */
async function putRecords(tx: Transaction, given: readonly LocalRecord[]): Promise<void> {
  // One statement cannot upsert a row twice: the last write of a key wins, as in MemoryStore.
  const records = [...new Map(given.map((r) => [`${r.collection}\u0000${r.id}`, r])).values()];
  for (const part of chunks(records, CHUNK)) {
    const rows = part.map((r) => ({
      collection: r.collection,
      id: r.id,
      data: r.data === null ? null : JSON.stringify(r.data),
      digest: r.digest,
      base: r.base === null ? null : JSON.stringify(r.base),
      modified_at: r.modifiedAt,
      modified: r.digest !== r.base?.digest,
    }));
    await tx.query(
      `insert into records (collection, id, data, digest, base, modified_at, modified)
       select collection, id, data, digest, base, modified_at, modified
       from json_to_recordset($1::json) as x(collection text, id text, data text, digest text, base text, modified_at text, modified boolean)
       on conflict (collection, id) do update set data = excluded.data, digest = excluded.digest, base = excluded.base,
         modified_at = excluded.modified_at, modified = excluded.modified`,
      [JSON.stringify(rows)],
    );
  }
}

import { sql, type SQL } from "drizzle-orm";
import type { Database } from "../db/client";
import { rowsOf } from "../db/client";
import { causes, violatesKey } from "../db/errors";
import { records, recordHistory, type RecordOrigin } from "../db/schema";
import type { Position } from "./checkpoint";
import { changeNotificationSql } from "./events";
import type { JsonObject } from "./protocol";

/** A new version of a record, ready to be stored. */
export interface NewVersion {
  id: string;
  version: number;
  /** The whole record; for a tombstone, the last live data (kept for scope checks, never served). */
  data: JsonObject;
  deleted: boolean;
  digest: string;
  origin: RecordOrigin;
  changeId: string | null;
  writtenBy: string;
  modifiedAt: Date;
}

/**
 * Another writer created or changed one of the records between the caller's
 * read of its current state and this write. Nothing of the transaction may be
 * kept: the caller rolls it back and decides again on fresh state
 * (retryWrites).
 */
export class WriteRace extends Error {
  constructor(collection: string, ids: readonly string[]) {
    super(`records ${ids.map((id) => JSON.stringify(id)).join(", ")} of "${collection}" were written concurrently`);
  }
}

/**
 * Locks the current rows of these records until the transaction ends (in id
 * order, so two writers never wait for each other in a circle), and returns
 * nothing: read their state after this. Records that do not exist yet have
 * no row to lock; a concurrent creation of one of them is caught by
 * writeVersions (WriteRace).
 *
 * Writers of different records never wait for each other: this is the only
 * lock a write takes (besides the conflict counter of the writing system).
 */
export async function lockRecords(tx: Database, collection: string, ids: readonly string[]): Promise<void> {
  if (ids.length === 0) return;
  await tx.execute(sql`
    select 1 from ${records}
    where ${records.collection} = ${collection}
      and ${records.id} in (select jsonb_array_elements_text(${JSON.stringify([...new Set(ids)])}::jsonb))
    order by ${records.id}
    for update`);
}

/**
 * Stores versions of records of one collection inside the caller's
 * transaction, which must have locked the records first (lockRecords) and
 * decided on the state read after that: draws their change sequence numbers
 * and feed position, moves each record's current state to its last version,
 * appends every version to history, and notifies listeners on commit.
 *
 * The feed position of every version written here is (X, seq), where X is
 * the larger of this transaction's id and the position xid of the records'
 * current versions: positions grow with each record's versions, and no
 * version gets a position below the id of a transaction still running (see
 * `xid` in lib/db/schema/records.ts and pullChanges).
 *
 * Returns the position of each version, in order. Throws WriteRace when a record was created by a concurrent transaction
 * since the caller read it (the caller retries; see retryWrites).
 */
export async function writeVersions(tx: Database, collection: string, versions: readonly NewVersion[]): Promise<Position[]> {
  if (versions.length === 0) return [];
  const w = versionWrites(collection, versions);
  const [result] = rowsOf<VersionWriteResult>(await tx.execute(sql`with ${w.ctes} select ${w.columns}`));
  return w.positions(result);
}

/** What the columns of versionWrites() answer. */
export interface VersionWriteResult {
  written: string | number;
  xid: string;
  seqs: string;
}

/**
 * The SQL that stores versions of records of one collection, as common table
 * expressions (`ctes`, to follow WITH) and output columns (`columns`, for the
 * final SELECT), so a caller can write more in the same statement (a push
 * adds its conflict log and receipts). One statement, one round trip: draw
 * the change numbers (in order) and the position xid, move each record to its
 * last version, append every version to history, and notify on commit.
 *
 * Concurrency: the version a record moves to is unique in history, so two
 * writers that decided on the same current version collide on history's
 * primary key and the second one fails (a unique violation that isWriteRace
 * recognises) — whether or not the records were locked first. `positions()`
 * reads the answer, and throws WriteRace if fewer records than expected were
 * written (which the key already prevents).
 */
export function versionWrites(
  collection: string,
  versions: readonly NewVersion[],
): { ctes: SQL; columns: SQL; positions(result: VersionWriteResult | undefined): Position[] } {
  // Each record's last version in this batch replaces the version before its
  // first one (0: none), which must still be the current one.
  const first = new Map<string, number>();
  const last = new Map<string, number>();
  versions.forEach((v, i) => {
    if (!first.has(v.id)) first.set(v.id, v.version);
    last.set(v.id, i);
  });
  // Rows travel as one jsonb parameter expanded by jsonb_to_recordset: a
  // 1,000-row batch is one bound value instead of 11,000, which spares the
  // driver and the query builder most of a push's CPU time.
  const rows = versions.map((v, i) => ({
    ord: i + 1,
    id: v.id,
    version: v.version,
    latest: last.get(v.id) === i,
    prior: (first.get(v.id) as number) - 1,
    data: v.data,
    digest: v.digest,
    deleted: v.deleted,
    origin: v.origin,
    change_id: v.changeId,
    written_by: v.writtenBy,
    modified_at: v.modifiedAt.toISOString(),
  }));
  const now = new Date().toISOString();
  const ctes = sql`
      vx as (
        select * from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(
          ord integer, id text, version integer, latest boolean, prior integer, data jsonb, digest text, deleted boolean,
          origin text, change_id text, written_by text, modified_at timestamptz)
      ),
      vs as (select g as ord, nextval('change_seq') as seq from generate_series(1, ${rows.length}) g),
      vp as (
        select greatest(pg_current_xact_id(), coalesce(max(r.xid), '0'::xid8)) as xid
        from ${records} r
        where r.collection = ${collection} and r.id in (select id from vx)
      ),
      v as (select vx.*, vs.seq, vp.xid from vx join vs using (ord) cross join vp),
      v_updated as (
        update ${records} r set
          data = v.data, version = v.version, digest = v.digest, deleted = v.deleted, seq = v.seq, xid = v.xid,
          updated_by = v.written_by, updated_at = ${now}::timestamptz, modified_at = v.modified_at
        from v
        where v.latest and v.prior > 0 and r.collection = ${collection} and r.id = v.id and r.version = v.prior
        returning r.id
      ),
      v_created as (
        insert into ${records} (collection, id, data, version, digest, deleted, seq, xid, updated_by, updated_at, modified_at)
        select ${collection}, v.id, v.data, v.version, v.digest, v.deleted, v.seq, v.xid, v.written_by, ${now}::timestamptz, v.modified_at
        from v where v.latest and v.prior = 0
        order by v.id
        on conflict (collection, id) do nothing
        returning id
      ),
      v_kept as (
        insert into ${recordHistory} (collection, id, version, data, digest, deleted, seq, xid, origin, change_id, written_by, written_at, modified_at)
        select ${collection}, v.id, v.version, v.data, v.digest, v.deleted, v.seq, v.xid, v.origin, v.change_id, v.written_by, ${now}::timestamptz, v.modified_at
        from v
        returning 1
      )`;
  const columns = sql`
      (select count(*) from v_updated) + (select count(*) from v_created) + 0 * (select count(*) from v_kept) as written,
      (select xid::text from vp) as xid,
      (select json_agg(seq order by ord) from vs)::text as seqs,
      ${changeNotificationSql(collection, { from: sql`(select min(seq) from vs)`, to: sql`(select max(seq) from vs)`, xid: sql`(select xid::text from vp)` })} as notified`;
  return {
    ctes,
    columns,
    positions(result) {
      if (Number(result?.written) !== last.size) throw new WriteRace(collection, [...last.keys()]);
      const xid = BigInt(result?.xid ?? "0");
      return (JSON.parse(result?.seqs ?? "[]") as number[]).map((seq) => ({ xid, seq: Number(seq) }));
    },
  };
}

/** SQLSTATEs after which a writing transaction may simply run again: deadlock_detected, serialization_failure. */
const RETRYABLE_SQLSTATES = new Set(["40P01", "40001"]);
/** A unique_violation on history's key: another writer created the same record first (see writeVersions). */
const HISTORY_KEY = "record_history_collection_id_version_pk";

/** Whether `error` (or a cause of it: drizzle wraps driver errors) says the transaction lost a race and may run again. */
export function isWriteRace(error: unknown): boolean {
  for (const e of causes(error)) {
    if (e instanceof WriteRace) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && RETRYABLE_SQLSTATES.has(code)) return true;
  }
  return violatesKey(error, HISTORY_KEY);
}

/**
 * Runs a writing transaction, and runs it again (up to `attempts` times in
 * all, after a short random pause) when it lost a race to another writer of
 * the same records: a WriteRace, a deadlock or a serialization failure. Every
 * attempt decides on the state it reads itself, so a retry is as if the
 * request had arrived a moment later. `retryAlso` names more errors of the
 * caller's own that mean the same.
 */
export async function retryWrites<T>(
  run: () => Promise<T>,
  { attempts = 5, retryAlso }: { attempts?: number; retryAlso?: (error: unknown) => boolean } = {},
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      if (attempt >= attempts || !(isWriteRace(error) || retryAlso?.(error))) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * attempt));
    }
  }
}

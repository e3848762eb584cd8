import { sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { rowsOf } from "../db/client";
import { records, recordHistory, type RecordOrigin } from "../db/schema";
import { notifyChanges } from "./events";
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
 * Stores versions of records of one collection inside the caller's
 * transaction, which must hold the collection lock (lockCollection): draws
 * their change sequence numbers, appends them to history, moves each record's
 * current state to its last version, and notifies listeners on commit.
 * Returns the sequence number of each version, in order.
 */
export async function writeVersions(tx: Database, collection: string, versions: readonly NewVersion[]): Promise<number[]> {
  if (versions.length === 0) return [];
  const seqs = rowsOf<{ seq: string | number }>(
    await tx.execute(sql`select nextval('change_seq') as seq from generate_series(1, ${versions.length})`),
  )
    .map((r) => Number(r.seq))
    .sort((a, b) => a - b);
  const now = new Date();

  await tx.insert(recordHistory).values(
    versions.map((v, i) => ({
      collection,
      id: v.id,
      version: v.version,
      data: v.data,
      digest: v.digest,
      deleted: v.deleted,
      seq: seqs[i] as number,
      origin: v.origin,
      changeId: v.changeId,
      writtenBy: v.writtenBy,
      writtenAt: now,
      modifiedAt: v.modifiedAt,
    })),
  );

  // One row per record: its last version in this batch.
  const latest = new Map<string, { v: NewVersion; seq: number }>();
  versions.forEach((v, i) => latest.set(v.id, { v, seq: seqs[i] as number }));
  await tx
    .insert(records)
    .values(
      [...latest.values()].map(({ v, seq }) => ({
        collection,
        id: v.id,
        data: v.data,
        version: v.version,
        digest: v.digest,
        deleted: v.deleted,
        seq,
        updatedBy: v.writtenBy,
        updatedAt: now,
        modifiedAt: v.modifiedAt,
      })),
    )
    .onConflictDoUpdate({
      target: [records.collection, records.id],
      set: {
        data: sql`excluded.data`,
        version: sql`excluded.version`,
        digest: sql`excluded.digest`,
        deleted: sql`excluded.deleted`,
        seq: sql`excluded.seq`,
        updatedBy: sql`excluded.updated_by`,
        updatedAt: sql`excluded.updated_at`,
        modifiedAt: sql`excluded.modified_at`,
      },
    });

  await notifyChanges(tx, collection, seqs[0] as number, seqs[seqs.length - 1] as number);
  return seqs;
}

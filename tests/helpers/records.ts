import { and, asc, eq } from "drizzle-orm";
import type { Database } from "@/lib/db/client";
import { recordHistory, records, type JsonObject } from "@/lib/db/schema";
import type { Position } from "@/lib/sync/checkpoint";
import { digestOf } from "@/lib/sync/digest";
import { lockRecords, writeVersions } from "@/lib/sync/versions";

export type WriteInput = { collection: string; id: string; by: string; modifiedAt?: Date } & (
  | { data: JsonObject; deleted?: never }
  | { deleted: true; data?: never }
);

export interface Written {
  version: number;
  seq: number;
  /** The version's feed position. */
  position: Position;
  digest: string;
}

/**
 * Writes the next version of a record the way the push engine does, without
 * its checks: the record locked, its next version (version + 1, digest of the
 * data, a tombstone keeping the last live data so scopes still evaluate)
 * stored by the engine's own writeVersions (seq, feed position, history,
 * notification on commit). Tests seed and move records with it.
 */
export async function writeRecord(db: Database, input: WriteInput): Promise<Written> {
  return db.transaction(async (tx) => {
    await lockRecords(tx, input.collection, [input.id]);
    const [current] = await tx
      .select({ version: records.version, data: records.data })
      .from(records)
      .where(and(eq(records.collection, input.collection), eq(records.id, input.id)));
    const version = (current?.version ?? 0) + 1;
    const deleted = input.deleted === true;
    const data = deleted ? (current?.data ?? {}) : (input.data as JsonObject);
    const digest = digestOf(deleted ? null : data);
    const modifiedAt = input.modifiedAt ?? new Date();
    const [position] = (await writeVersions(tx, input.collection, [
      { id: input.id, version, data, deleted, digest, origin: "push", changeId: null, writtenBy: input.by, modifiedAt },
    ])) as [Position];
    return { version, seq: position.seq, position, digest };
  });
}

/** Writes several records in order (each its own version and seq). */
export async function writeRecords(db: Database, inputs: readonly WriteInput[]): Promise<Written[]> {
  const out: Written[] = [];
  for (const input of inputs) out.push(await writeRecord(db, input));
  return out;
}

/** The stored state of a record, or undefined. */
export async function readRecord(db: Database, collection: string, id: string) {
  const [row] = await db
    .select()
    .from(records)
    .where(and(eq(records.collection, collection), eq(records.id, id)));
  return row;
}

/** Every stored version of a record, oldest first. */
export async function readHistory(db: Database, collection: string, id: string) {
  return db
    .select()
    .from(recordHistory)
    .where(and(eq(recordHistory.collection, collection), eq(recordHistory.id, id)))
    .orderBy(asc(recordHistory.version));
}

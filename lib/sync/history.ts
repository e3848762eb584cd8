import { and, desc, eq, lt } from "drizzle-orm";
import { z } from "zod";
import type { Database } from "../db/client";
import { auditLog, recordHistory, records, type RecordOrigin } from "../db/schema";
import { ServiceError } from "../errors";
import { digestOf } from "./digest";
import { jsonEqual } from "./json";
import type { JsonObject } from "./protocol";
import { writeVersions, type NewVersion } from "./versions";

/**
 * Record history for operators: every version of a record, the current row,
 * and restoring an old version as a new one. Verbs take `({ db, actor }, input)`;
 * admin routes call them after checking the admin token.
 */

export interface ReadContext {
  db: Database;
}

export interface OperatorContext {
  db: Database;
  /** Who acts, as the admin context names it (e.g. `admin-token`). */
  actor: string;
}

/** How versions written by an operator are signed in history and `records.updated_by`. */
export function operatorName(actor: string): string {
  return `operator:${actor}`;
}

/** `limit` of an admin listing: a whole number from 1 to `max`, as a query-string value. */
export function pageLimitSchema(max: number) {
  return z
    .string()
    .regex(/^[1-9][0-9]{0,5}$/, `limit must be a whole number from 1 to ${max}`)
    .transform(Number)
    .refine((n) => n <= max, `limit must be at most ${max}`);
}

export const MAX_VERSION = 2_147_483_647; // record versions are Postgres integers

/** A record version as a query-string value (a cursor) or JSON number. */
const versionCursorSchema = z
  .string()
  .regex(/^[1-9][0-9]{0,9}$/, "before must be a version number (the `next` of the previous page)")
  .transform(Number)
  .refine((n) => n <= MAX_VERSION, `before must be at most ${MAX_VERSION}`);

export const HISTORY_DEFAULT_LIMIT = 100;
export const HISTORY_MAX_LIMIT = 500;

/** The query string of GET /api/admin/records/{c}/{id}/history. */
export const historyQuerySchema = z.strictObject({
  before: versionCursorSchema.optional(),
  limit: pageLimitSchema(HISTORY_MAX_LIMIT).optional(),
});

/** The body of POST /api/admin/records/{c}/{id}/restore. */
export const restoreRequestSchema = z.strictObject({
  version: z
    .number({ error: "version must be a number: the version to restore" })
    .int("version must be a whole number")
    .min(1, "version must be at least 1")
    .max(MAX_VERSION, `version must be at most ${MAX_VERSION}`),
});

export type RestoreRequest = z.infer<typeof restoreRequestSchema>;

export interface RecordKey {
  collection: string;
  id: string;
}

/** A record's state as operators see it: a tombstone carries no data. */
export interface RecordState {
  version: number;
  digest: string;
  deleted: boolean;
  data?: JsonObject;
}

export interface CurrentRecord extends RecordState {
  collection: string;
  id: string;
  seq: number;
  updatedBy: string;
  updatedAt: string;
  modifiedAt: string;
}

export interface HistoryEntry extends RecordState {
  seq: number;
  origin: RecordOrigin;
  changeId: string | null;
  writtenBy: string;
  writtenAt: string;
  modifiedAt: string;
}

export interface HistoryPage {
  versions: HistoryEntry[];
  /** The `before` of the next (older) page; null on the last page. */
  next: number | null;
}

export interface RestoreResult {
  record: RecordState;
  /** The version whose data was restored. */
  restoredFrom: number;
  /** Whether a new version was written (false when the record already held that data). */
  written: boolean;
  message: string;
}

/** A record's state without the last live data a tombstone keeps for scope checks. */
export function recordState(row: { version: number; digest: string; deleted: boolean; data: JsonObject }): RecordState {
  return row.deleted
    ? { version: row.version, digest: row.digest, deleted: true }
    : { version: row.version, digest: row.digest, deleted: false, data: row.data };
}

export function recordLabel(key: RecordKey): string {
  return `${key.collection}/${key.id}`;
}

/** GET /api/admin/records/{c}/{id}: the record's current row, tombstones included. */
export async function getRecord(ctx: ReadContext, key: RecordKey): Promise<CurrentRecord> {
  const [row] = await ctx.db
    .select()
    .from(records)
    .where(and(eq(records.collection, key.collection), eq(records.id, key.id)));
  if (!row) throw unknownRecord(key);
  return {
    collection: row.collection,
    id: row.id,
    ...recordState(row),
    seq: row.seq,
    updatedBy: row.updatedBy,
    updatedAt: row.updatedAt.toISOString(),
    modifiedAt: row.modifiedAt.toISOString(),
  };
}

/**
 * GET /api/admin/records/{c}/{id}/history: every version of a record, newest
 * first, in keyset pages of versions below `before`. Each page is one range
 * scan of the (collection, id, version) primary key, so a record with any
 * number of versions pages in constant time per page.
 */
export async function getRecordHistory(
  ctx: ReadContext,
  input: RecordKey & { before?: number; limit?: number },
): Promise<HistoryPage> {
  const limit = input.limit ?? HISTORY_DEFAULT_LIMIT;
  const rows = await ctx.db
    .select()
    .from(recordHistory)
    .where(
      and(
        eq(recordHistory.collection, input.collection),
        eq(recordHistory.id, input.id),
        input.before === undefined ? undefined : lt(recordHistory.version, input.before),
      ),
    )
    .orderBy(desc(recordHistory.version))
    .limit(limit + 1);

  if (rows.length === 0 && (input.before === undefined || !(await hasHistory(ctx.db, input)))) {
    throw new ServiceError(
      "not_found",
      `Record "${input.id}" of collection "${input.collection}" has no history: it was never written. Check the collection and the id (ids are case-sensitive; encode "/" as %2F in the path).`,
    );
  }
  const hasMore = rows.length > limit;
  const page = hasMore ? rows.slice(0, limit) : rows;
  return {
    versions: page.map((row) => ({
      ...recordState(row),
      seq: row.seq,
      origin: row.origin,
      changeId: row.changeId,
      writtenBy: row.writtenBy,
      writtenAt: row.writtenAt.toISOString(),
      modifiedAt: row.modifiedAt.toISOString(),
    })),
    next: hasMore ? (page[page.length - 1]?.version ?? null) : null,
  };
}

async function hasHistory(db: Database, key: RecordKey): Promise<boolean> {
  const [row] = await db
    .select({ version: recordHistory.version })
    .from(recordHistory)
    .where(and(eq(recordHistory.collection, key.collection), eq(recordHistory.id, key.id)))
    .limit(1);
  return row !== undefined;
}

/**
 * POST /api/admin/records/{c}/{id}/restore: writes the data of an earlier
 * version as a new version (origin `restore`), so the restore reaches clients
 * through /changes and /events like any other change. Restoring a tombstone
 * deletes the record; restoring data the record already holds writes nothing.
 * Pending conflicts on the record stay pending: the record has moved on, so
 * resolving them asks the operator to look again.
 */
export async function restoreRecordVersion(
  ctx: OperatorContext,
  input: RecordKey & RestoreRequest,
): Promise<RestoreResult> {
  const label = recordLabel(input);
  return ctx.db.transaction(async (tx) => {
    // Locked until commit: the record's next version is decided on the version read here (lib/sync/versions.ts).
    const [current] = await tx
      .select()
      .from(records)
      .where(and(eq(records.collection, input.collection), eq(records.id, input.id)))
      .for("update");
    if (!current) throw unknownRecord(input);
    const [target] = await tx
      .select()
      .from(recordHistory)
      .where(
        and(
          eq(recordHistory.collection, input.collection),
          eq(recordHistory.id, input.id),
          eq(recordHistory.version, input.version),
        ),
      );
    if (!target) {
      throw new ServiceError(
        "not_found",
        `Record ${label} has no version ${input.version}; its versions run from 1 to ${current.version}. Pick one from its history.`,
      );
    }

    const unchanged = target.deleted ? current.deleted : !current.deleted && jsonEqual(target.data, current.data);
    if (unchanged) {
      // Nothing changes, so nothing is written: no version and no audit row.
      return {
        record: recordState(current),
        restoredFrom: input.version,
        written: false,
        message: `Record ${label} already holds the data of version ${input.version} (it is at version ${current.version}), so no version was written.`,
      };
    }

    const version: NewVersion = {
      id: input.id,
      version: current.version + 1,
      // A tombstone keeps the last live data, so read scopes can still be evaluated for it.
      data: target.deleted ? current.data : target.data,
      deleted: target.deleted,
      digest: digestOf(target.deleted ? null : target.data),
      origin: "restore",
      changeId: null,
      writtenBy: operatorName(ctx.actor),
      modifiedAt: new Date(),
    };
    await writeVersions(tx, input.collection, [version]);
    await tx.insert(auditLog).values({
      actor: ctx.actor,
      action: "record.restore",
      target: `record:${label}`,
      details: {
        collection: input.collection,
        record: input.id,
        restoredFrom: input.version,
        previousVersion: current.version,
        resultVersion: version.version,
        deleted: version.deleted,
      },
    });
    const message = version.deleted
      ? `Record ${label} was deleted, as it was at version ${input.version}; the deletion is version ${version.version}.`
      : `Version ${input.version} of record ${label} was restored as version ${version.version}.`;
    return { record: recordState(version), restoredFrom: input.version, written: true, message };
  });
}

function unknownRecord(key: RecordKey): ServiceError {
  return new ServiceError(
    "not_found",
    `There is no record "${key.id}" in collection "${key.collection}". Check the collection and the id (ids are case-sensitive; encode "/" as %2F in the path).`,
  );
}

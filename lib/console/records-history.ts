import { and, eq, inArray } from "drizzle-orm";
import { z } from "zod";
import { recordHistory } from "../db/schema";
import { ServiceError } from "../errors";
import { getRecord, getRecordHistory, MAX_VERSION, recordState, restoreRequestSchema, type CurrentRecord, type HistoryPage, type ReadContext, type RecordState } from "../sync/history";
import { collectionNameSchema, recordIdSchema } from "../sync/protocol";
import { diffRecords, type FieldDiff } from "./records-diff";
import { parseFilters, type ParsedFilters, type SearchParams } from "./query";

/**
 * A record's page in the console: its current state, its history (newest
 * first, keyset pages) and the difference between any two of its versions.
 */

export const HISTORY_PAGE_SIZE = 20;

const versionSchema = z
  .string()
  .regex(/^[1-9][0-9]{0,9}$/, "a version is a whole number from 1")
  .transform(Number)
  .refine((n) => n <= MAX_VERSION, "that version is too large");

export const recordPageShape = { a: versionSchema, b: versionSchema, before: versionSchema };
export type RecordPageQuery = { [K in keyof typeof recordPageShape]: z.infer<(typeof recordPageShape)[K]> };

export function parseRecordPageQuery(params: SearchParams): ParsedFilters<RecordPageQuery> {
  return parseFilters(params, recordPageShape, { a: "Version A", b: "Version B", before: "History cursor" });
}

export const recordKeySchema = z.object({ collection: collectionNameSchema, id: recordIdSchema });

export interface VersionSide extends RecordState {
  version: number;
  writtenBy: string;
  writtenAt: string;
}

export interface VersionDiff {
  a: VersionSide;
  b: VersionSide;
  rows: FieldDiff[];
}

export interface RecordDetail {
  record: CurrentRecord;
  history: HistoryPage;
}

export async function getRecordDetail(
  ctx: ReadContext,
  input: { collection: string; id: string; before?: number },
): Promise<RecordDetail> {
  const record = await getRecord(ctx, input);
  const history = await getRecordHistory(ctx, { ...input, limit: HISTORY_PAGE_SIZE });
  return { record, history };
}

/**
 * Versions `a` and `b` of a record and the field differences from a to b. A
 * deleted version has no data, so every field of the other side shows as
 * added or removed. Both versions come from one primary-key lookup.
 */
export async function diffVersions(
  ctx: ReadContext,
  input: { collection: string; id: string; a: number; b: number },
): Promise<VersionDiff> {
  const rows = await ctx.db
    .select()
    .from(recordHistory)
    .where(
      and(
        eq(recordHistory.collection, input.collection),
        eq(recordHistory.id, input.id),
        inArray(recordHistory.version, [input.a, input.b]),
      ),
    );
  const side = (version: number): VersionSide => {
    const row = rows.find((r) => r.version === version);
    if (!row) {
      throw new ServiceError("not_found", `Record ${input.collection}/${input.id} has no version ${version}. Pick versions from its history.`);
    }
    return { ...recordState(row), writtenBy: row.writtenBy, writtenAt: row.writtenAt.toISOString() };
  };
  const a = side(input.a);
  const b = side(input.b);
  return { a, b, rows: diffRecords(a.data ?? null, b.data ?? null) };
}

/** The restore form as the server action receives it: the record's key and the admin API's restore body. */
export const restoreFormSchema = recordKeySchema.extend(restoreRequestSchema.shape);

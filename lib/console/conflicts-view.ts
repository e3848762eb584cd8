import { z } from "zod";
import { ServiceError } from "../errors";
import { clientAnswer, getConflict, RESOLUTIONS, RESOLVE_BODY_LIMIT, type ConflictEntry } from "../sync/conflicts";
import { getRecord, type ReadContext } from "../sync/history";
import { isJsonObject, type JsonObject } from "../sync/protocol";
import { describeProblem, parseStrictJson } from "../sync/strict-json";
import { conflictHighlights, threeWayDiff, type FieldMark, type ThreeWayRow } from "./records-diff";

/**
 * One conflict as the console shows it: the three sides (base, server,
 * client) with their field-level differences, the record as it is now (whose
 * version a resolution must name), and a starting point for an edited merge.
 */

export interface ConflictView {
  conflict: ConflictEntry;
  /** The record now; a resolution is decided on this version. */
  current: { version: number; deleted: boolean; updatedBy: string; updatedAt: string } | null;
  rows: ThreeWayRow[];
  highlights: { base: Record<string, FieldMark>; server: Record<string, FieldMark>; client: Record<string, FieldMark> };
  /** The current record with the client's changed fields laid over it: what "Take client" would write (the starting point of "Edit merge"). */
  mergeProposal: JsonObject | null;
}

export async function getConflictView(ctx: ReadContext, id: number): Promise<ConflictView> {
  const conflict = await getConflict(ctx, { id });
  let current: ConflictView["current"] = null;
  // The record as it is now: "Take client" lays the client's fields over this copy, not over the conflict's old one.
  let live: JsonObject | null = null;
  try {
    const record = await getRecord(ctx, { collection: conflict.collection, id: conflict.recordId });
    current = { version: record.version, deleted: record.deleted, updatedBy: record.updatedBy, updatedAt: record.updatedAt };
    live = record.deleted ? null : (record.data ?? null);
  } catch (error) {
    if (!(error instanceof ServiceError && error.code === "not_found")) throw error;
  }
  const server = conflict.serverDeleted ? null : conflict.serverData;
  const rows = threeWayDiff(conflict.baseData, server, conflict.clientData);
  const mergeProposal = clientAnswer(live, conflict.baseData, conflict.clientData) ?? live;
  return { conflict, current, rows, highlights: conflictHighlights(rows), mergeProposal };
}

/** JSON text typed by an operator → a record's data, or a sentence saying what is wrong and where. */
export function parseRecordJson(text: string): { ok: true; data: JsonObject } | { ok: false; message: string } {
  const parsed = parseStrictJson(text);
  if (!parsed.ok) return { ok: false, message: `${describeProblem(parsed.problem, "The merged record")} Nothing was changed.` };
  const value = parsed.value;
  if (!isJsonObject(value)) {
    return { ok: false, message: "The merged record must be a JSON object ({ … }), the whole record as it should be. Nothing was changed." };
  }
  return { ok: true, data: value };
}

/** The resolve form as the server action receives it. */
export const resolveFormSchema = z.strictObject({
  id: z.coerce
    .number({ error: "the conflict id is missing" })
    .int()
    .positive({ error: "the conflict id is missing" }),
  resolution: z.enum(RESOLUTIONS, { error: "choose Keep server, Take client or Edit merge" }),
  expectedVersion: z.coerce
    .number({ error: "the version you looked at is missing; reload the page" })
    .int("the version you looked at must be a whole number")
    .min(1, "the version you looked at must be at least 1"),
  data: z.string().max(RESOLVE_BODY_LIMIT, "the merged record is larger than 1 MiB of text").optional(),
});

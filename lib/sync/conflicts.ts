import { and, desc, eq, gte, lt, notInArray, type SQL } from "drizzle-orm";
import { union } from "drizzle-orm/pg-core";
import { z } from "zod";
import { auditLog, conflicts, records, type ConflictOutcome, type ConflictRow } from "../db/schema";
import { ServiceError } from "../errors";
import { STRATEGIES } from "../policy/document";
import { canonicalSize, digestOf } from "./digest";
import {
  operatorName,
  pageLimitSchema,
  recordLabel,
  recordState,
  type OperatorContext,
  type ReadContext,
  type RecordState,
} from "./history";
import { changedFields, jsonEqual, overlay } from "./json";
import { unstorableReason } from "./json-safety";
import { collectionNameSchema, hasKeyDeep, isJsonObject, MAX_RECORD_BYTES, type JsonObject } from "./protocol";
import { writeVersions, type NewVersion } from "./versions";

/**
 * The conflict log for operators (claim 4, last case: a conflict the policy
 * leaves to a person): listing, one entry with both sides, and resolution.
 *
 * A conflict's `status` is derived from its outcome: `pending` (held for an
 * operator), `resolved` (an operator decided), `settled` (the strategy decided
 * at push time: server-won, client-won or merged). Only pending conflicts can
 * be resolved.
 */

export const CONFLICT_STATUSES = ["pending", "resolved", "settled"] as const;
export type ConflictStatus = (typeof CONFLICT_STATUSES)[number];

export const RESOLUTIONS = ["server", "client", "custom"] as const;
export type Resolution = (typeof RESOLUTIONS)[number];

export function statusOf(outcome: ConflictOutcome): ConflictStatus {
  return outcome === "pending" || outcome === "resolved" ? outcome : "settled";
}

// ---------------------------------------------------------------------------
// Input schemas (query strings and bodies arrive as strings and JSON)

/** A conflict id: conflicts are numbered by a bigserial, so up to 2^53 - 1. */
export const conflictIdSchema = z
  .string()
  .regex(/^[1-9][0-9]{0,15}$/, "a conflict id is a positive whole number")
  .transform(Number)
  .refine(Number.isSafeInteger, "a conflict id is at most 9007199254740991");

const ISO_DATE_TIME = /^\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))?$/;

function isoTime(name: string) {
  return z
    .string()
    .refine(
      (s) => ISO_DATE_TIME.test(s) && !Number.isNaN(Date.parse(s)),
      `${name} must be an ISO 8601 date or date-time with a time zone, e.g. 2026-11-25 or 2026-11-25T10:00:00Z`,
    )
    .transform((s) => new Date(s));
}

/** A system name, or `operator:<name>` for copies an operator wrote. */
const systemFilterSchema = z
  .string()
  .regex(/^[^\p{Cc}\p{Cs}]{1,256}$/u, "system must be a system name (e.g. crm) or operator:<name>");

export const CONFLICTS_DEFAULT_LIMIT = 50;
export const CONFLICTS_MAX_LIMIT = 500;

/** The query string of GET /api/admin/conflicts. */
export const listConflictsQuerySchema = z
  .strictObject({
    status: z
      .enum([...CONFLICT_STATUSES, "all"], { error: "status must be one of pending, resolved, settled or all" })
      .optional(),
    collection: collectionNameSchema.optional(),
    system: systemFilterSchema.optional(),
    strategy: z.enum(STRATEGIES, { error: `strategy must be one of ${STRATEGIES.join(", ")}` }).optional(),
    since: isoTime("since").optional(),
    until: isoTime("until").optional(),
    before: conflictIdSchema.optional(),
    limit: pageLimitSchema(CONFLICTS_MAX_LIMIT).optional(),
    /** With `system`: the conflict that system's push result called `conflict.id` (its own numbering). */
    ref: conflictIdSchema.optional(),
  })
  .refine((q) => q.ref === undefined || q.system !== undefined, {
    path: ["ref"],
    message: "ref is a system's own conflict number: send it with system=<the system that pushed>",
  });

export type ListConflictsInput = z.infer<typeof listConflictsQuerySchema>;

/**
 * Custom data is a record's data like any other: a JSON object of at most 256
 * KiB canonical JSON (checked by the verb, as 413), with no `__proto__` keys
 * (JavaScript would turn them into a prototype change instead of a field).
 */
const customDataSchema = z
  .custom<JsonObject>(isJsonObject, { message: "data must be a JSON object (the whole record)" })
  .refine((v) => !hasKeyDeep(v, "__proto__"), { message: 'data must not contain a key named "__proto__"' });

/** The body of POST /api/admin/conflicts/{id}/resolve. */
export const resolveConflictSchema = z
  .strictObject({
    resolution: z.enum(RESOLUTIONS, { error: 'resolution must be "server", "client" or "custom"' }),
    data: customDataSchema.optional(),
    /**
     * The record version the operator looked at. Defaults to the version the
     * conflict was raised against; after a refusal because the record moved
     * on, the operator looks again and confirms the version they now decide on.
     */
    expectedVersion: z
      .number({ error: "expectedVersion must be a number: the record version you looked at" })
      .int("expectedVersion must be a whole number")
      .min(1, "expectedVersion must be at least 1")
      .optional(),
  })
  .superRefine((body, issue) => {
    if (body.resolution === "custom" && body.data === undefined) {
      issue.addIssue({
        code: "custom",
        path: ["data"],
        message: 'data is required with resolution "custom": send the whole record as it should be',
      });
    }
    if (body.resolution !== "custom" && body.data !== undefined) {
      issue.addIssue({
        code: "custom",
        path: ["data"],
        message: `data is only allowed with resolution "custom"; "${body.resolution}" takes the ${body.resolution}'s copy`,
      });
    }
  });

export type ResolveConflictRequest = z.infer<typeof resolveConflictSchema>;

/** Bodies of resolve requests: a 256 KiB record with room for whitespace and escapes. */
export const RESOLVE_BODY_LIMIT = 4 * MAX_RECORD_BYTES;

// ---------------------------------------------------------------------------
// Output shapes

export interface ConflictSummary {
  id: number;
  /** The conflict's number among the pushing system's own conflicts: the `conflict.id` its push result showed. */
  clientRef: number | null;
  collection: string;
  recordId: string;
  clientSystem: string;
  serverSystem: string;
  changeId: string;
  strategy: string;
  outcome: ConflictOutcome;
  status: ConflictStatus;
  baseVersion: number | null;
  serverVersion: number;
  resultVersion: number | null;
  createdAt: string;
  resolution: string | null;
  resolvedBy: string | null;
  resolvedAt: string | null;
}

export interface ConflictEntry extends ConflictSummary {
  /** The base version's data (null for a creation over an existing record, or a deleted base). */
  baseData: JsonObject | null;
  /** The server's copy the change collided with (null when it was deleted). */
  serverData: JsonObject | null;
  serverDeleted: boolean;
  /** The change exactly as the client sent it. */
  clientChange: JsonObject;
  /** The client's whole record as it meant it, or null for a delete. */
  clientData: JsonObject | null;
  details: JsonObject | null;
}

export interface ConflictPage {
  conflicts: ConflictSummary[];
  /** The `before` of the next (older) page; null on the last page. */
  next: number | null;
}

export interface ResolveResult {
  conflict: ConflictEntry;
  /** The record after the resolution. */
  record: RecordState;
  /** Whether a new version was written (false when the answer already was the record's data). */
  written: boolean;
  message: string;
}

const summaryColumns = {
  id: conflicts.id,
  clientRef: conflicts.clientRef,
  collection: conflicts.collection,
  recordId: conflicts.recordId,
  clientSystem: conflicts.clientSystem,
  serverSystem: conflicts.serverSystem,
  changeId: conflicts.changeId,
  strategy: conflicts.strategy,
  outcome: conflicts.outcome,
  baseVersion: conflicts.baseVersion,
  serverVersion: conflicts.serverVersion,
  resultVersion: conflicts.resultVersion,
  createdAt: conflicts.createdAt,
  resolution: conflicts.resolution,
  resolvedBy: conflicts.resolvedBy,
  resolvedAt: conflicts.resolvedAt,
};

type SummaryRow = Pick<ConflictRow, keyof typeof summaryColumns>;

function toSummary(row: SummaryRow): ConflictSummary {
  return {
    id: row.id,
    clientRef: row.clientRef,
    collection: row.collection,
    recordId: row.recordId,
    clientSystem: row.clientSystem,
    serverSystem: row.serverSystem,
    changeId: row.changeId,
    strategy: row.strategy,
    outcome: row.outcome,
    status: statusOf(row.outcome),
    baseVersion: row.baseVersion,
    serverVersion: row.serverVersion,
    resultVersion: row.resultVersion,
    createdAt: row.createdAt.toISOString(),
    resolution: row.resolution,
    resolvedBy: row.resolvedBy,
    resolvedAt: row.resolvedAt?.toISOString() ?? null,
  };
}

function toEntry(row: ConflictRow): ConflictEntry {
  return {
    ...toSummary(row),
    baseData: row.baseData,
    serverData: row.serverData,
    serverDeleted: row.serverDeleted,
    clientChange: row.clientChange,
    clientData: row.clientData,
    details: row.details,
  };
}

// ---------------------------------------------------------------------------
// Listing and reading

/** The log's filters (all but the system, whose two sides each caller pages its own way) as SQL conditions. */
export function conflictConditions(f: {
  status?: ConflictStatus | "all";
  collection?: string;
  strategy?: string;
  since?: Date;
  until?: Date;
}): (SQL | undefined)[] {
  return [
    f.status === "pending" || f.status === "resolved" ? eq(conflicts.outcome, f.status) : undefined,
    f.status === "settled" ? notInArray(conflicts.outcome, ["pending", "resolved"]) : undefined,
    f.collection === undefined ? undefined : eq(conflicts.collection, f.collection),
    f.strategy === undefined ? undefined : eq(conflicts.strategy, f.strategy),
    f.since === undefined ? undefined : gte(conflicts.createdAt, f.since),
    f.until === undefined ? undefined : lt(conflicts.createdAt, f.until),
  ];
}

/**
 * GET /api/admin/conflicts: newest first, in keyset pages of ids below
 * `before`. Every filter is an equality or range the existing indexes serve
 * ((outcome, id), (collection, id), (client_system, id), created_at), and a
 * page reads at most `limit + 1` rows per branch: no OFFSET, no count of the
 * whole log, so a page costs the same with 100 or 100,000 conflicts.
 *
 * `system` matches either side of a conflict. It runs as a union of two
 * branches, one per side, each ordered by id and limited to the page, rather
 * than an OR that would keep the planner from using (client_system, id).
 */
export async function listConflicts(ctx: ReadContext, input: ListConflictsInput): Promise<ConflictPage> {
  const limit = input.limit ?? CONFLICTS_DEFAULT_LIMIT;
  const filters: (SQL | undefined)[] = [
    ...conflictConditions(input),
    input.before === undefined ? undefined : lt(conflicts.id, input.before),
  ];
  const branch = (side?: SQL) =>
    ctx.db
      .select(summaryColumns)
      .from(conflicts)
      .where(and(...filters, side))
      .orderBy(desc(conflicts.id))
      .limit(limit + 1);

  const rows: SummaryRow[] =
    input.system === undefined
      ? await branch()
      : input.ref !== undefined
        ? await branch(and(eq(conflicts.clientSystem, input.system), eq(conflicts.clientRef, input.ref)))
      : await union(branch(eq(conflicts.clientSystem, input.system)), branch(eq(conflicts.serverSystem, input.system)))
          .orderBy(desc(conflicts.id))
          .limit(limit + 1);

  const hasMore = rows.length > limit;
  const page = hasMore ? rows.slice(0, limit) : rows;
  return {
    conflicts: page.map(toSummary),
    next: hasMore ? (page[page.length - 1]?.id ?? null) : null,
  };
}

/** GET /api/admin/conflicts/{id}: the whole entry, with both sides, the base and the client's change as sent. */
export async function getConflict(ctx: ReadContext, input: { id: number }): Promise<ConflictEntry> {
  const [row] = await ctx.db.select().from(conflicts).where(eq(conflicts.id, input.id));
  if (!row) throw unknownConflict(input.id);
  return toEntry(row);
}

// ---------------------------------------------------------------------------
// Resolution

/**
 * What the `client` resolution writes: the client's changed fields (against
 * its base) laid over the record as it is now, or the client's delete.
 */
export function clientAnswer(live: JsonObject | null, base: JsonObject | null, mine: JsonObject | null): JsonObject | null {
  if (mine === null) return null;
  return live ? overlay(live, mine, changedFields(base, mine)) : mine;
}

/**
 * POST /api/admin/conflicts/{id}/resolve: an operator settles a pending
 * conflict. In one transaction holding the collection lock (so no push can
 * interleave), it checks that the record is still at the version the
 * operator decided on, writes the answer as a new version (origin
 * `resolution`, so it reaches clients through /changes and /events), marks
 * the conflict resolved and writes the audit row.
 *
 * - `server`: the server's copy already is the answer; nothing is written.
 * - `client`: the client's change over the server's copy, as client-wins
 *   would have settled it: the fields the client changed since its base take
 *   its values, the others keep the server's; a client delete deletes.
 * - `custom`: exactly the operator's data.
 *
 * Other pending conflicts on the same record stay pending. A written
 * resolution moves the record on, so resolving one of them is refused until
 * the operator has looked again (and confirms with `expectedVersion`).
 */
export async function resolveConflict(
  ctx: OperatorContext,
  input: { id: number } & ResolveConflictRequest,
): Promise<ResolveResult> {
  // First: the checks below walk the data recursively, and this one bounds its depth.
  const unstorable = input.data === undefined ? null : unstorableReason(input.data, "data");
  if (unstorable) {
    throw new ServiceError("invalid_request", `The custom data cannot be stored: ${unstorable}. Nothing was changed.`, [
      { path: "data", message: unstorable },
    ]);
  }
  if (input.data !== undefined && canonicalSize(input.data) > MAX_RECORD_BYTES) {
    throw new ServiceError(
      "payload_too_large",
      `The custom data is larger than ${MAX_RECORD_BYTES / 1024} KiB as canonical JSON; a record may be at most that size. Nothing was changed.`,
    );
  }
  // Checked here as well as in resolveConflictSchema: the console's server action reaches this verb without the API's schema.
  if (input.data !== undefined && hasKeyDeep(input.data, "__proto__")) {
    throw new ServiceError("invalid_request", 'The custom data must not contain a key named "__proto__". Nothing was changed.', [
      { path: "data", message: 'must not contain a key named "__proto__"' },
    ]);
  }
  const [head] = await ctx.db.select({ collection: conflicts.collection }).from(conflicts).where(eq(conflicts.id, input.id));
  if (!head) throw unknownConflict(input.id);

  return ctx.db.transaction(async (tx) => {
    // Read again under its row lock: a concurrent resolution of this conflict has committed by now.
    const [row] = await tx.select().from(conflicts).where(eq(conflicts.id, input.id)).for("update");
    if (!row) throw unknownConflict(input.id);
    const label = recordLabel({ collection: row.collection, id: row.recordId });
    if (row.outcome !== "pending") throw alreadySettled(row);

    // Locked until commit: the record's next version is decided on the version read here (lib/sync/versions.ts).
    const [current] = await tx
      .select()
      .from(records)
      .where(and(eq(records.collection, row.collection), eq(records.id, row.recordId)))
      .for("update");
    if (!current) {
      throw new ServiceError("internal", `Record ${label} of conflict ${row.id} is missing from the records table.`);
    }
    const expected = input.expectedVersion ?? row.serverVersion;
    if (current.version !== expected) {
      throw new ServiceError(
        "conflict",
        `Record ${label} has moved on: it is at version ${current.version}, written by ${current.updatedBy} at ${current.updatedAt.toISOString()}, ` +
          `but this resolution was decided on version ${expected}${input.expectedVersion === undefined ? " (the server's copy when the conflict arose)" : ""}. ` +
          `Nothing was changed. Look at the record and its history again; to resolve against version ${current.version}, send the resolution again with "expectedVersion": ${current.version}.`,
        {
          conflictId: row.id,
          collection: row.collection,
          recordId: row.recordId,
          expectedVersion: expected,
          currentVersion: current.version,
          updatedBy: current.updatedBy,
          updatedAt: current.updatedAt.toISOString(),
        },
      );
    }

    const currentLive = current.deleted ? null : current.data;
    // undefined: keep the server's copy; null: delete; an object: the new data.
    let answer: JsonObject | null | undefined;
    if (input.resolution === "client") {
      answer = clientAnswer(currentLive, row.baseData, row.clientData);
    } else if (input.resolution === "custom") {
      answer = input.data as JsonObject;
    }
    const unchanged = answer === undefined || (answer === null ? current.deleted : currentLive !== null && jsonEqual(answer, currentLive));

    let state: RecordState = recordState(current);
    if (!unchanged) {
      const version: NewVersion = {
        id: row.recordId,
        version: current.version + 1,
        // A tombstone keeps the last live data, so read scopes can still be evaluated for it.
        data: answer ?? current.data,
        deleted: answer === null,
        digest: digestOf(answer ?? null),
        origin: "resolution",
        changeId: null,
        writtenBy: operatorName(ctx.actor),
        modifiedAt: new Date(),
      };
      await writeVersions(tx, row.collection, [version]);
      state = recordState(version);
    }

    const resolvedAt = new Date();
    const [updated] = await tx
      .update(conflicts)
      .set({
        outcome: "resolved",
        resolution: input.resolution,
        resolvedBy: ctx.actor,
        resolvedAt,
        resultVersion: state.version,
      })
      .where(and(eq(conflicts.id, row.id), eq(conflicts.outcome, "pending")))
      .returning();
    if (!updated) throw new ServiceError("internal", `Conflict ${row.id} changed while it was being resolved.`);

    await tx.insert(auditLog).values({
      actor: ctx.actor,
      action: "conflict.resolve",
      target: `conflict:${row.id}`,
      details: {
        resolution: input.resolution,
        collection: row.collection,
        record: row.recordId,
        previousVersion: current.version,
        resultVersion: state.version,
        written: !unchanged,
      },
    });

    const what = { server: "the server's copy", client: "the client's change", custom: "custom data" }[input.resolution];
    const message = unchanged
      ? `Conflict ${row.id} is resolved with ${what}. Record ${label} already held that data, so no version was written; it stays at version ${state.version}.`
      : `Conflict ${row.id} is resolved with ${what}, written as version ${state.version} of record ${label}${state.deleted ? " (a deletion)" : ""}; clients receive it through /changes.`;
    return { conflict: toEntry(updated), record: state, written: !unchanged, message };
  });
}

function unknownConflict(id: number): ServiceError {
  return new ServiceError(
    "not_found",
    `There is no conflict ${id}. List conflicts with GET /api/admin/conflicts to find its id.`,
  );
}

function alreadySettled(row: ConflictRow): ServiceError {
  const how =
    row.outcome === "resolved"
      ? `settled: resolved by ${row.resolvedBy ?? "an operator"} with "${row.resolution ?? "?"}" at ${row.resolvedAt?.toISOString() ?? "an unknown time"}`
      : `settled by ${row.strategy} as ${row.outcome}`;
  return new ServiceError(
    "conflict",
    `Conflict ${row.id} is already ${how}; only pending conflicts can be resolved. Nothing was changed. To change record ${recordLabel({ collection: row.collection, id: row.recordId })} now, restore a version from its history.`,
    { conflictId: row.id, outcome: row.outcome, strategy: row.strategy, resultVersion: row.resultVersion },
  );
}

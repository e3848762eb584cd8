import { and, asc, count, desc, eq, gt, gte, lt, sql, type SQL } from "drizzle-orm";
import { union } from "drizzle-orm/pg-core";
import { z } from "zod";
import { conflicts, type ConflictOutcome } from "../db/schema";
import { STRATEGIES } from "../policy/document";
import { CONFLICT_STATUSES, conflictConditions, conflictIdSchema, statusOf, type ConflictStatus } from "../sync/conflicts";
import type { ReadContext } from "../sync/history";
import { collectionNameSchema } from "../sync/protocol";
import { parseFilters, type ParsedFilters, type SearchParams } from "./query";

/**
 * The console's conflict log: filters from the query string, keyset pages in
 * both directions (newer and older), and the number of pending conflicts.
 * Every filter is an equality or range that an index serves together with the
 * id order: (outcome, id), (collection, id), (client_system, id),
 * (server_system, id), (strategy, id), created_at.
 */

export const CONFLICT_PAGE_SIZE = 25;

/**
 * A date or a date-time; without a zone it is UTC (the console shows UTC
 * everywhere). `<input type="datetime-local">` sends `2026-11-25T10:00`.
 */
const TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?)?(Z|[+-]\d{2}:\d{2})?$/;

export const consoleTimeSchema = z
  .string()
  .regex(TIME, "use a date such as 2026-11-25 or a date-time such as 2026-11-25T10:00 (UTC)")
  .transform((s, ctx) => {
    const m = TIME.exec(s)!;
    const iso = m[4] === undefined ? `${s.slice(0, 10)}T00:00:00Z` : m[7] === undefined ? `${s.replace(" ", "T")}Z` : s.replace(" ", "T");
    const date = new Date(iso);
    const day = s.slice(0, 10);
    const dayDate = new Date(`${day}T00:00:00Z`);
    if (Number.isNaN(date.getTime()) || Number.isNaN(dayDate.getTime()) || dayDate.toISOString().slice(0, 10) !== day) {
      ctx.addIssue({ code: "custom", message: "that date does not exist" });
      return z.NEVER;
    }
    return date;
  });

const systemSchema = z.string().regex(/^[^\p{Cc}\p{Cs}]{1,256}$/u, "a system name such as crm, or operator:<name>");

export const conflictFilterShape = {
  status: z.enum([...CONFLICT_STATUSES, "all"], { error: "choose pending, resolved, settled or all" }),
  collection: collectionNameSchema,
  system: systemSchema,
  strategy: z.enum(STRATEGIES, { error: `choose one of ${STRATEGIES.join(", ")}` }),
  from: consoleTimeSchema,
  to: consoleTimeSchema,
  before: conflictIdSchema,
  after: conflictIdSchema,
};

const LABELS = {
  status: "Status",
  collection: "Collection",
  system: "System",
  strategy: "Strategy",
  from: "From",
  to: "To",
  before: "Page cursor",
  after: "Page cursor",
} as const;

export type ConflictFilters = { [K in keyof typeof conflictFilterShape]: z.infer<(typeof conflictFilterShape)[K]> };

/** The filters of /conflicts from its query string: good values apply, bad ones are reported. */
export function parseConflictFilters(params: SearchParams): ParsedFilters<ConflictFilters> {
  const parsed = parseFilters(params, conflictFilterShape, LABELS);
  const { from, to } = parsed.values;
  if (from && to && from >= to) {
    parsed.errors.push("The time range is empty: From must be earlier than To. Both were ignored.");
    delete parsed.values.from;
    delete parsed.values.to;
  }
  return parsed;
}

export interface ConflictLogRow {
  id: number;
  createdAt: Date;
  collection: string;
  recordId: string;
  clientSystem: string;
  serverSystem: string;
  strategy: string;
  outcome: ConflictOutcome;
  status: ConflictStatus;
  resolution: string | null;
  resolvedBy: string | null;
  resolvedAt: Date | null;
  resultVersion: number | null;
}

export interface ConflictLogPage {
  rows: ConflictLogRow[];
  /** `after` for the newer page, or null when this is the newest. */
  newer: number | null;
  /** `before` for the older page, or null when this is the oldest. */
  older: number | null;
}

const columns = {
  id: conflicts.id,
  createdAt: conflicts.createdAt,
  collection: conflicts.collection,
  recordId: conflicts.recordId,
  clientSystem: conflicts.clientSystem,
  serverSystem: conflicts.serverSystem,
  strategy: conflicts.strategy,
  outcome: conflicts.outcome,
  resolution: conflicts.resolution,
  resolvedBy: conflicts.resolvedBy,
  resolvedAt: conflicts.resolvedAt,
  resultVersion: conflicts.resultVersion,
};

function filterConditions(f: Partial<ConflictFilters>): (SQL | undefined)[] {
  return conflictConditions({ ...f, since: f.from, until: f.to });
}

/**
 * One page of the log, newest first. `before` pages towards older entries,
 * `after` towards newer ones; each reads at most `limit + 1` rows per branch
 * through an index in id order (no OFFSET, no count of the matches), so the
 * last page of 100,000 conflicts costs what the first does. `system` matches
 * either side, as a union of two index-ordered branches rather than an OR.
 */
export async function listConflictLog(
  ctx: ReadContext,
  filters: Partial<ConflictFilters>,
  limit = CONFLICT_PAGE_SIZE,
): Promise<ConflictLogPage> {
  const towardsNewer = filters.after !== undefined && filters.before === undefined;
  const cursor = towardsNewer ? gt(conflicts.id, filters.after!) : filters.before === undefined ? undefined : lt(conflicts.id, filters.before);
  const order = towardsNewer ? asc(conflicts.id) : desc(conflicts.id);
  const where = [...filterConditions(filters), cursor];
  // A short time range far back in the log: walking the id index from the
  // newest entry would pass every later conflict (ids and times rise together,
  // which the planner cannot know). When the range holds few entries, read
  // them through the created_at index and sort them instead: ordering by
  // `id + 0` keeps the planner off the id index.
  const narrow = (filters.from !== undefined || filters.to !== undefined) && (await countInTimeRange(ctx, filters)) < TIME_RANGE_SORT_LIMIT;
  const branchOrder = narrow ? (towardsNewer ? sql`${conflicts.id} + 0 asc` : sql`${conflicts.id} + 0 desc`) : order;
  const branch = (side?: SQL) =>
    ctx.db
      .select(columns)
      .from(conflicts)
      .where(and(...where, side))
      .orderBy(branchOrder)
      .limit(limit + 1);
  const fetched =
    filters.system === undefined
      ? await branch()
      : await union(branch(eq(conflicts.clientSystem, filters.system)), branch(eq(conflicts.serverSystem, filters.system)))
          .orderBy(order)
          .limit(limit + 1);

  const hasMore = fetched.length > limit;
  const page = (hasMore ? fetched.slice(0, limit) : fetched).map((r) => ({ ...r, status: statusOf(r.outcome) }));
  if (towardsNewer) page.reverse();
  const first = page[0]?.id ?? null;
  const last = page[page.length - 1]?.id ?? null;
  return {
    rows: page,
    // Coming from an older page means there are older entries; coming from a newer page, newer ones.
    newer: towardsNewer ? (hasMore ? first : null) : filters.before !== undefined ? first : null,
    older: towardsNewer ? last : hasMore ? last : null,
  };
}

/** Up to this many entries in a time range are read through created_at and sorted. */
export const TIME_RANGE_SORT_LIMIT = 5000;

/** Entries in the filter's time range, counted up to TIME_RANGE_SORT_LIMIT (an index-only scan of created_at). */
async function countInTimeRange(ctx: ReadContext, f: Partial<ConflictFilters>): Promise<number> {
  const inRange = ctx.db
    .select({ one: sql`1` })
    .from(conflicts)
    .where(
      and(
        f.from === undefined ? undefined : gte(conflicts.createdAt, f.from),
        f.to === undefined ? undefined : lt(conflicts.createdAt, f.to),
      ),
    )
    .limit(TIME_RANGE_SORT_LIMIT)
    .as("in_range");
  const [row] = await ctx.db.select({ n: count() }).from(inRange);
  return Number(row?.n ?? 0);
}

/** Pending conflicts in the whole log: an index-only count over (outcome, id). */
export async function countPendingConflicts(ctx: ReadContext): Promise<number> {
  const [row] = await ctx.db.select({ n: count() }).from(conflicts).where(eq(conflicts.outcome, "pending"));
  return Number(row?.n ?? 0);
}

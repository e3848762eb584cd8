import { and, eq, gte, inArray, sql } from "drizzle-orm";
import { rowsOf, type Database } from "../db/client";
import { activity, conflicts, records, systemCursors, systems } from "../db/schema";
import { describeScope } from "../policy/compile";
import type { ActivePolicy } from "../policy/store";
import { flushActivity } from "../sync/activity";

/**
 * The console's Overview: every system of the active policy with its last
 * sync, its lag per collection and its error state; sync activity over time;
 * and the conflicts waiting for an operator. Every figure is a bounded query
 * (counts stop at LAG_CAP), so the page costs the same at a thousand records
 * and at a million.
 */

/** Counts stop here: "10,000+" tells an operator enough, and stays an index range scan of bounded length. */
export const LAG_CAP = 10_000;

/** A count that may have stopped at LAG_CAP. */
export interface CappedCount {
  count: number;
  capped: boolean;
}

export interface CollectionLag {
  collection: string;
  /** Changes to the collection after the last one the system was sent (capped). */
  behind: CappedCount;
  /** The highest change sequence number sent to the system, null when it never pulled the collection. */
  cursor: number | null;
  pulledAt: Date | null;
}

export interface SystemStatus {
  name: string;
  displayName: string;
  lastPushAt: Date | null;
  lastPullAt: Date | null;
  /** The later of the two. */
  lastSyncAt: Date | null;
  /** The last error answered to the system, while no successful call came after it. */
  error: { message: string; at: Date | null } | null;
  lastErrorAt: Date | null;
  lag: CollectionLag[];
}

/** The status of every system the active policy declares, in policy order. */
export async function listSystemStatus(db: Database, policy: ActivePolicy, only?: string): Promise<SystemStatus[]> {
  // Cursors noted in the last few seconds are still in memory: write them first, so lag is current.
  await flushActivity(db);
  const compiled = policy.compiled;
  const names = compiled.systemNames().filter((n) => only === undefined || n === only);
  if (names.length === 0) return [];
  const rows = await db.select().from(systems).where(inArray(systems.name, names));
  const byName = new Map(rows.map((r) => [r.name, r]));
  const cursorRows = await db.select().from(systemCursors).where(inArray(systemCursors.system, names));
  const cursors = new Map(cursorRows.map((c) => [`${c.system}\u0000${c.collection}`, c]));

  // Independent bounded counts: on Postgres they run side by side on the pool.
  const lags = await Promise.all(
    names.map((name) =>
      Promise.all(
        compiled
          .collectionNames()
          // Lag is about the feed: only collections the system may read have one.
          .filter((collection) => describeScope(compiled.scope(name, collection, "read")) !== null)
          .map(async (collection): Promise<CollectionLag> => {
            const cursor = cursors.get(`${name}\u0000${collection}`);
            return {
              collection,
              behind: await countChangesAfter(db, collection, cursor?.seq ?? 0),
              cursor: cursor?.seq ?? null,
              pulledAt: cursor?.at ?? null,
            };
          }),
      ),
    ),
  );

  const result: SystemStatus[] = [];
  for (const [i, name] of names.entries()) {
    const row = byName.get(name);
    const lag = lags[i] ?? [];
    const lastPushAt = row?.lastPushAt ?? null;
    const lastPullAt = row?.lastPullAt ?? null;
    const lastSyncAt = latest(lastPushAt, lastPullAt);
    result.push({
      name,
      displayName: compiled.policy.systems[name]?.name ?? name,
      lastPushAt,
      lastPullAt,
      lastSyncAt,
      error: row?.lastError ? { message: row.lastError, at: row.lastErrorAt } : null,
      lastErrorAt: row?.lastErrorAt ?? null,
      lag,
    });
  }
  return result;
}

/**
 * Changes to a collection after `seq`, counted up to LAG_CAP: a range scan of
 * records_collection_seq_idx that stops after LAG_CAP + 1 rows. It counts the
 * collection's changes, not only those in the system's read scope (filtering
 * by scope would make the cost grow with the records outside it), so it is an
 * upper bound of what the system's next pull returns.
 */
export async function countChangesAfter(db: Database, collection: string, seq: number): Promise<CappedCount> {
  const [row] = rowsOf<{ n: number | string }>(
    await db.execute(sql`
      select count(*) as n from (
        select 1 from ${records}
        where ${records.collection} = ${collection} and ${records.seq} > ${seq}
        limit ${LAG_CAP + 1}
      ) as t`),
  );
  const n = Number(row?.n ?? 0);
  return n > LAG_CAP ? { count: LAG_CAP, capped: true } : { count: n, capped: false };
}

/** Conflicts held for an operator (manual strategy), counted up to LAG_CAP. */
export async function countPendingConflicts(db: Database): Promise<CappedCount> {
  const inner = db
    .select({ one: sql`1` })
    .from(conflicts)
    .where(eq(conflicts.outcome, "pending"))
    .limit(LAG_CAP + 1)
    .as("t");
  const [row] = await db.select({ n: sql<number | string>`count(*)` }).from(inner);
  const n = Number(row?.n ?? 0);
  return n > LAG_CAP ? { count: LAG_CAP, capped: true } : { count: n, capped: false };
}

// ---------------------------------------------------------------------------
// Activity over time

export const CONFLICT_SERIES = ["client-won", "server-won", "merged", "pending"] as const;

/** One bar of a chart: the bucket's start (ISO) and a count per series. */
export interface ActivityPoint {
  at: string;
  pushes: number;
  pulls: number;
  errors: number;
  "client-won": number;
  "server-won": number;
  merged: number;
  pending: number;
}

export interface ActivityCharts {
  /** The last 24 hours, one point per hour, oldest first. */
  day: ActivityPoint[];
  /** The last 60 minutes, one point per minute, oldest first. */
  hour: ActivityPoint[];
  totals: { pushes: number; pulls: number; conflicts: number; errors: number };
}

const HOUR_MS = 3_600_000;
const MINUTE_MS = 60_000;

function emptyPoint(at: number): ActivityPoint {
  return { at: new Date(at).toISOString(), pushes: 0, pulls: 0, errors: 0, "client-won": 0, "server-won": 0, merged: 0, pending: 0 };
}

/** Which series an activity kind adds to (pushes count changes, pulls count requests). */
function seriesOf(kind: string): keyof Omit<ActivityPoint, "at"> | null {
  if (kind.startsWith("push.")) return "pushes";
  if (kind === "pull.requests") return "pulls";
  if (kind === "error") return "errors";
  if (kind.startsWith("conflict.")) {
    const outcome = kind.slice("conflict.".length);
    return (CONFLICT_SERIES as readonly string[]).includes(outcome) ? (outcome as (typeof CONFLICT_SERIES)[number]) : null;
  }
  return null;
}

/**
 * Pushes (changes), pulls (requests), errors and conflicts by outcome, for one
 * system or all: 24 hours by hour and the last hour by minute. Reads at most
 * a day of per-minute rows of the activity table (its primary key starts with
 * the bucket). Counts made in the last few seconds are flushed first, so the
 * page shows the current figures.
 */
export async function activityCharts(db: Database, options: { system?: string; now?: Date } = {}): Promise<ActivityCharts> {
  await flushActivity(db);
  const now = (options.now ?? new Date()).getTime();
  const hourStart = Math.floor(now / HOUR_MS) * HOUR_MS;
  const minuteStart = Math.floor(now / MINUTE_MS) * MINUTE_MS;
  const dayFrom = hourStart - 23 * HOUR_MS;
  const hourFrom = minuteStart - 59 * MINUTE_MS;

  const bySystem = options.system === undefined ? [] : [eq(activity.system, options.system)];
  // Summed in SQL to the chart's resolution: 24 × kinds rows by hour, 60 × kinds by minute.
  // Hours in UTC whatever the session's time zone; as epoch milliseconds, which both drivers return alike.
  const hourBucket = sql<number | string>`extract(epoch from date_trunc('hour', ${activity.bucket}, 'UTC')) * 1000`;
  const byHour = await db
    .select({ bucket: hourBucket, kind: activity.kind, count: sql<number | string>`sum(${activity.count})` })
    .from(activity)
    .where(and(gte(activity.bucket, new Date(dayFrom)), ...bySystem))
    .groupBy(hourBucket, activity.kind);
  const byMinute = await db
    .select({ bucket: activity.bucket, kind: activity.kind, count: sql<number | string>`sum(${activity.count})` })
    .from(activity)
    .where(and(gte(activity.bucket, new Date(hourFrom)), ...bySystem))
    .groupBy(activity.bucket, activity.kind);

  const day = Array.from({ length: 24 }, (_, i) => emptyPoint(dayFrom + i * HOUR_MS));
  const hour = Array.from({ length: 60 }, (_, i) => emptyPoint(hourFrom + i * MINUTE_MS));
  const totals = { pushes: 0, pulls: 0, conflicts: 0, errors: 0 };
  for (const row of byHour) {
    const series = seriesOf(row.kind);
    if (!series) continue;
    const n = Number(row.count);
    const d = day[Math.round((Number(row.bucket) - dayFrom) / HOUR_MS)];
    if (d) d[series] += n;
    if (series === "pushes" || series === "pulls" || series === "errors") totals[series] += n;
    else totals.conflicts += n;
  }
  for (const row of byMinute) {
    const series = seriesOf(row.kind);
    if (!series) continue;
    const m = hour[Math.floor((row.bucket.getTime() - hourFrom) / MINUTE_MS)];
    if (m) m[series] += Number(row.count);
  }
  return { day, hour, totals };
}

// ---------------------------------------------------------------------------

export interface Overview {
  /** When the figures were read (the page's "now" for ages). */
  generatedAt: Date;
  policyVersion: number;
  systems: SystemStatus[];
  charts: ActivityCharts;
  pendingConflicts: CappedCount;
}

export async function getOverview(db: Database, policy: ActivePolicy, now = new Date()): Promise<Overview> {
  const charts = await activityCharts(db, { now });
  return {
    generatedAt: now,
    policyVersion: policy.version,
    systems: await listSystemStatus(db, policy),
    charts,
    pendingConflicts: await countPendingConflicts(db),
  };
}

function latest(a: Date | null, b: Date | null): Date | null {
  if (!a) return b;
  if (!b) return a;
  return a > b ? a : b;
}

/** "10,000+" for a capped count. */
export function formatCount(c: CappedCount): string {
  return `${c.count.toLocaleString("en-US")}${c.capped ? "+" : ""}`;
}

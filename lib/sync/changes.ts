import { sql, type SQL } from "drizzle-orm";
import { rowsOf, type Database } from "../db/client";
import { systems } from "../db/schema";
import { ServiceError } from "../errors";
import { log } from "../log";
import { allFields, scopeSql, type Scope } from "../policy/compile";
import type { SyncContext } from "./context";
import { countActivity, noteCursor } from "./activity";
import { checkpointSealer, comparePositions, type CheckpointScope, type CheckpointSealer, type FeedPosition, type Position } from "./checkpoint";
import { HORIZON_SQL } from "./horizon";
import { projectForReader } from "./projection";
import {
  DEFAULT_PAGE_LIMIT,
  DELETED_DIGEST,
  MAX_PAGE_LIMIT,
  type ChangeEntry,
  type ChangesResponse,
  type JsonObject,
} from "./protocol";
import { requireScope } from "./scope";

// ---------------------------------------------------------------------------
// Checkpoints

// ---------------------------------------------------------------------------
// The delta feed

export interface PullChangesInput {
  collection: string;
  /** A checkpoint from an earlier answer; absent: from the beginning. */
  since?: string;
  limit?: number;
}

interface FeedRow {
  /** The collection's highest seq in the statement's snapshot (for the console's lag); on every row, and alone on an empty page. */
  max_seq: number | string | null;
  /** The statement's visibility horizon (pg_snapshot_xmin, decimal); on every row. */
  horizon: string;
  id: string | null;
  version: number;
  digest: string;
  deleted: boolean;
  seq: number | string;
  xid: string;
  /** Whether the current version is in the reader's scope (else the row is a removal). */
  visible: boolean;
  /** The stored data as JSON text, only for a live record in scope. */
  data: string | null;
}

/**
 * GET /api/v1/collections/{c}/changes: the records in the caller's read scope
 * that changed after `since`, oldest first (protocol.md). A record that is in
 * scope now comes with its projected data, or as a tombstone; one that is out
 * of scope now but that the reader may still hold comes as `removed`, without
 * data; any other change is skipped, and the checkpoint moves past it.
 *
 * One SQL statement, so one snapshot, reads the page and the feed's
 * horizon. Writers of a collection do not wait for each other, so they
 * commit out of order; the feed therefore goes by position (xid, seq) and
 * serves only positions below the horizon (the oldest transaction id still
 * running when the statement began, see lib/sync/horizon.ts): every transaction
 * with a smaller id has ended, and every version written later gets a larger
 * position (lib/sync/versions.ts), so nothing can appear below a checkpoint
 * once it was issued. When nothing more is left the checkpoint jumps to the
 * horizon, and the next call does not scan invisible changes again. A
 * committed change above the horizon waits for the older transactions to end
 * (milliseconds; a long-running write transaction elsewhere in the database
 * holds the feed back, see README "Concurrency"). The work is a range scan of
 * records_collection_position_idx from the checkpoint plus, for changes out
 * of scope now, a look at that record's history through its primary key: it
 * grows with the changes since the checkpoint, not with the collection.
 */
export async function pullChanges({ ctx, input }: { ctx: SyncContext; input: PullChangesInput }): Promise<ChangesResponse> {
  const scope = requireScope(ctx, input.collection, "read");
  const sealer = await checkpointSealer(ctx.db);
  const checkpointScope = { system: ctx.system, collection: input.collection };
  const since = input.since === undefined ? null : openSince(sealer, checkpointScope, input.since);
  const limit = input.limit ?? DEFAULT_PAGE_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
    throw new ServiceError("invalid_request", `limit must be a whole number from 1 to ${MAX_PAGE_LIMIT}.`);
  }

  // One row more than the page tells whether there is more, so the last page says hasMore: false.
  const rows = rowsOf<FeedRow>(await ctx.db.execute(feedSql(input.collection, scope, since, limit + 1)));
  const maxSeq = Number(rows[0]?.max_seq ?? 0);
  const horizon: Position = { xid: BigInt(rows[0]?.horizon ?? "0"), seq: 0 };
  // The statement leaves out an outer ORDER BY (a sort of the whole page, which
  // spills to disk at 10,000 rows): a nested loop over one row emits the page in
  // its own order. Sorting an already sorted array costs one pass.
  const found = rows.filter((row) => row.id !== null).sort((a, b) => comparePositions(positionOf(a), positionOf(b)));
  const hasMore = found.length > limit;
  const page = hasMore ? found.slice(0, limit) : found;

  const everyField = allFields(scope);
  const changes = page.map((row) => toEntry(scope, everyField, row));

  let checkpoint: string;
  const last = page.at(-1);
  if (hasMore && last) {
    const run = since?.run ?? { start: horizon, origin: since === null ? null : since.at };
    checkpoint = sealer.seal(checkpointScope, { at: positionOf(last), run });
  } else {
    // Everything below the horizon has been served; the horizon never moves back, but a checkpoint never does either.
    const at = since !== null && comparePositions(since.at, horizon) > 0 ? since.at : horizon;
    checkpoint = sealer.seal(checkpointScope, { at, run: null });
  }

  await notePull(ctx);
  countActivity(ctx.db, ctx.system, "pull.requests");
  countActivity(ctx.db, ctx.system, "pull.records", changes.length);
  // The console's lag counts by seq (an estimate while writers are in flight).
  noteCursor(ctx.db, ctx.system, input.collection, hasMore && last ? Number(last.seq) : maxSeq);
  return { changes, checkpoint, hasMore };
}

/**
 * The position inside a `since` checkpoint. A string that is no checkpoint
 * is a bad request; one this hub cannot open (an older hub's plain form, a
 * rotated key, another collection's) asks the client to resync: it
 * reconciles through the manifest and keeps its pending changes.
 */
export function openSince(sealer: CheckpointSealer, scope: CheckpointScope, since: string): FeedPosition {
  const opened = sealer.open(scope, since);
  if (opened.ok) return opened.position;
  if (opened.reason === "malformed") {
    throw new ServiceError("invalid_request", "since must be a checkpoint returned by this server (or absent, to start from the beginning).");
  }
  throw new ServiceError(
    "resync_required",
    `This checkpoint was not issued for collection "${scope.collection}" by this hub's current key (it may come from an older hub version); reconcile with the manifest, then pull from the beginning.`,
  );
}

function positionOf(row: FeedRow): Position {
  return { xid: BigInt(row.xid), seq: Number(row.seq) };
}

/** A position as SQL: a row value comparable with `(xid, seq)`. */
function positionSql(p: Position): SQL {
  return sql`(${p.xid.toString()}::xid8, ${p.seq}::bigint)`;
}

function toEntry(scope: Scope, everyField: boolean, row: FeedRow): ChangeEntry {
  const id = row.id as string;
  if (!row.visible) return { id, removed: true };
  if (row.deleted) return { id, version: row.version, digest: DELETED_DIGEST, deleted: true };
  if (row.data === null) return { id, removed: true };
  const data = JSON.parse(row.data) as JsonObject;
  // The SQL scope selected the row, so with every grant exposing every field the stored digest is the reader's.
  if (everyField) return { id, version: row.version, digest: row.digest, data };
  const copy = projectForReader(scope, data, row.digest);
  // The SQL and in-process predicates agree (tests prove it); should they ever
  // not, fail closed: the reader drops its copy and sees no data.
  if (copy === null) return { id, removed: true };
  return { id, version: row.version, digest: copy.digest, data: copy.data };
}

/**
 * The page, the feed's horizon and the collection's highest seq in one
 * statement. The left join keeps one row (with a null id) when the page is
 * empty, to carry them.
 */
function feedSql(collection: string, scope: Scope, since: FeedPosition | null, fetch: number): SQL {
  const horizon = sql`m.horizon`;
  return sql`
    select m.max_seq, m.horizon::text as horizon, p.id, p.version, p.digest, p.deleted, p.seq, p.xid::text as xid, p.visible, p.data
    from (select max(seq) as max_seq, ${HORIZON_SQL} as horizon from records where collection = ${collection}) m
    left join lateral (${since === null ? firstPageSql(collection, scope, horizon, fetch) : pageSql(collection, scope, since, horizon, fetch)}) p on true`;
}

/**
 * From the beginning the reader holds nothing: only live records in scope, no
 * tombstones or removals. A record whose current version is above the
 * horizon is left out now and served by a later pull (it holds nothing of it
 * meanwhile, which at worst earns it a needless `removed` later).
 */
function firstPageSql(collection: string, scope: Scope, horizon: SQL, fetch: number): SQL {
  return sql`
    select r.id, r.version, r.digest, r.deleted, r.seq, r.xid, true as visible, r.data::text as data
    from records r
    where r.collection = ${collection} and r.xid < ${horizon} and not r.deleted and ${scopeSql(scope, sql`r.data`)}
    order by r.xid, r.seq
    limit ${fetch}`;
}

/**
 * After a checkpoint the page comes from history, not from the records'
 * current rows: for each record with a version between the checkpoint and
 * the horizon, its latest version below the horizon. The current row may
 * already be a newer version above the horizon (its writer committed while
 * an older transaction still ran); serving only current rows would then skip
 * the version below the horizon, and the reader would not hold "its version
 * at the checkpoint" that mayHoldSql relies on (a deletion or a move out of
 * scope could be missed). The newer version is served by a later pull.
 */
function pageSql(collection: string, scope: Scope, since: FeedPosition, horizon: SQL, fetch: number): SQL {
  // `offset 0` keeps the scope test in the inner select list: pushed into the
  // outer filter it would be evaluated twice per row. The data of a record out
  // of scope or deleted never leaves the database. "Latest below the horizon"
  // is one probe of the primary key for the next version (a scalar subquery:
  // NOT EXISTS may be planned as a hash of the whole history).
  return sql`
    select c.id, c.version, c.digest, c.deleted, c.seq, c.xid, c.visible,
      case when c.visible and not c.deleted then c.data end as data
    from (
      select h.id, h.version, h.digest, h.deleted, h.seq, h.xid, ${scopeSql(scope, sql`h.data`)} as visible, h.data::text as data
      from record_history h
      where h.collection = ${collection} and (h.xid, h.seq) > ${positionSql(since.at)} and h.xid < ${horizon}
        and not coalesce((
          select n.xid < ${horizon} from record_history n
          where n.collection = ${collection} and n.id = h.id and n.version = h.version + 1), false)
      order by h.xid, h.seq
      offset 0
    ) c
    where c.visible or ${mayHoldSql(collection, scope, since, { id: sql`c.id`, position: sql`(c.xid, c.seq)` })}
    order by c.xid, c.seq
    limit ${fetch}`;
}

/**
 * Whether the reader may hold a live copy of the record: one of the versions
 * it can have been sent (see FeedPosition) is live and in its scope. Runs only
 * for records out of scope now (`or` stops at a true `visible`), as a few
 * probes of record_history's primary key (collection, id, version); a
 * record's positions grow with its versions, so "the version at p" is the
 * highest version with a position at or below p. Scalar subqueries rather
 * than EXISTS: the planner may turn an EXISTS into a hashed subplan that reads
 * the whole collection's history.
 */
function mayHoldSql(collection: string, scope: Scope, since: FeedPosition, row: { id: SQL; position: SQL }): SQL {
  const versionAt = (p: Position) => sql`
      select h.version from record_history h
      where h.collection = ${collection} and h.id = ${row.id} and (h.xid, h.seq) <= ${positionSql(p)}
      order by h.version desc
      limit 1`;
  const heldAt = (p: Position) => sql`coalesce((
      select not h.deleted and ${scopeSql(scope, sql`h.data`)}
      from record_history h
      where h.collection = ${collection} and h.id = ${row.id} and (h.xid, h.seq) <= ${positionSql(p)}
      order by h.version desc
      limit 1), false)`;
  const { run } = since;
  if (run === null) return heldAt(since.at);

  // Inside a run: the version at `start` and every later one up to `at`, or the version at `origin`.
  // A record whose current version predates the run's start (its position <= start)
  // has no version from `start` on at or below `at`: `and` skips the probes.
  const during = sql`(${row.position} > ${positionSql(run.start)} and coalesce((
      select bool_or(not h.deleted and ${scopeSql(scope, sql`h.data`)})
      from record_history h
      where h.collection = ${collection} and h.id = ${row.id} and (h.xid, h.seq) <= ${positionSql(since.at)}
        and h.version >= coalesce((${versionAt(run.start)}), 0)), false))`;
  return run.origin === null ? during : sql`(${during} or ${heldAt(run.origin)})`;
}

// ---------------------------------------------------------------------------
// systems.last_pull_at

const PULL_NOTE_INTERVAL_MS = 60_000;
const pullNoted = new WeakMap<Database, Map<string, number>>();

/**
 * Records that the system pulled, at most once a minute per system and
 * process: the console needs "last pull" to the minute, not a write on every
 * pull. A failure here never fails the pull.
 */
async function notePull(ctx: SyncContext): Promise<void> {
  let noted = pullNoted.get(ctx.db);
  if (!noted) {
    noted = new Map();
    pullNoted.set(ctx.db, noted);
  }
  const now = Date.now();
  if (now - (noted.get(ctx.system) ?? -Infinity) < PULL_NOTE_INTERVAL_MS) return;
  noted.set(ctx.system, now);
  try {
    await ctx.db
      .insert(systems)
      .values({ name: ctx.system, lastPullAt: new Date(now) })
      .onConflictDoUpdate({ target: systems.name, set: { lastPullAt: sql`excluded.last_pull_at` } });
  } catch (error) {
    log.warn(`could not record the last pull of system "${ctx.system}": ${(error as Error).message}`);
  }
}

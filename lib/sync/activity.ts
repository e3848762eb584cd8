import { and, eq, isNotNull, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { activity, systemCursors, systems } from "../db/schema";
import { log } from "../log";

/**
 * Sync activity for the console's charts and lag figures, counted in memory
 * and added to the `activity` and `system_cursors` tables every few seconds,
 * so a busy hub writes a handful of rows per system and minute rather than a
 * row per request. A crash loses at most the last few seconds of counts
 * (never data: these are statistics).
 *
 * Kinds: `push.<status>` (per change: applied, unchanged, conflict, forbidden,
 * invalid, ...), `conflict.<outcome>`, `pull.requests`, `pull.records`,
 * `error` (a request of the system answered with an error).
 */
const FLUSH_MS = 5_000;
const BUCKET_MS = 60_000;

interface Pending {
  counts: Map<string, number>;
  cursors: Map<string, { system: string; collection: string; seq: number; at: number }>;
  timer: NodeJS.Timeout | null;
  flushing: Promise<void> | null;
}

/** Counts made against a transaction, held until it commits (see deferActivity). */
type DeferredCall =
  | { kind: "count"; system: string; what: string; n: number; at: number }
  | { kind: "cursor"; system: string; collection: string; seq: number; at: number };

interface ActivityState {
  pending: WeakMap<Database, Pending>;
  deferred: WeakMap<Database, DeferredCall[]>;
  errorNoted: WeakMap<Database, Map<string, number>>;
  /** Systems whose stored error state is known to be clear, per database. */
  clean: WeakMap<Database, Set<string>>;
}

/*
 * Next.js loads a module once for route handlers and again for pages (separate
 * module graphs in one process). Module-level maps would give the process two
 * sets of counters, and the console's flush would not see the routes' counts:
 * the state lives on globalThis under a registered symbol instead.
 */
const STATE_KEY = Symbol.for("concord.sync.activity");
const holder = globalThis as typeof globalThis & { [STATE_KEY]?: ActivityState };
const shared: ActivityState = (holder[STATE_KEY] ??= {
  pending: new WeakMap(),
  deferred: new WeakMap(),
  errorNoted: new WeakMap(),
  clean: new WeakMap(),
});

function stateOf(db: Database): Pending {
  let state = shared.pending.get(db);
  if (!state) {
    state = { counts: new Map(), cursors: new Map(), timer: null, flushing: null };
    shared.pending.set(db, state);
  }
  return state;
}

function schedule(db: Database, state: Pending): void {
  if (state.timer) return;
  state.timer = setTimeout(() => {
    state.timer = null;
    void flushActivity(db);
  }, FLUSH_MS);
  state.timer.unref();
}

export interface DeferredActivity {
  /** Counts what was noted against the transaction on the hub's own database (call after commit). */
  commit(db: Database): void;
}

/**
 * Sync verbs count against `ctx.db`. When that is a transaction (a bundle
 * applies its pushes and pulls in one), counting against it would leave the
 * counts on an object that is gone after commit, and the periodic flush would
 * fail on it forever. Inside `deferActivity(tx)` counts against `tx` are kept
 * aside; `commit(hubDb)` counts them for real once the transaction committed,
 * and a rolled-back transaction's counts are simply dropped with it.
 */
export function deferActivity(tx: Database): DeferredActivity {
  const calls: DeferredCall[] = [];
  shared.deferred.set(tx, calls);
  return {
    commit(db) {
      shared.deferred.delete(tx);
      for (const c of calls) {
        if (c.kind === "count") countActivity(db, c.system, c.what, c.n, c.at);
        else noteCursor(db, c.system, c.collection, c.seq, c.at);
      }
      calls.length = 0;
    },
  };
}

/** Counts `n` events of `kind` for `system` in the current minute. */
export function countActivity(db: Database, system: string, kind: string, n = 1, at = Date.now()): void {
  if (n <= 0) return;
  const deferred = shared.deferred.get(db);
  if (deferred) {
    deferred.push({ kind: "count", system, what: kind, n, at });
    return;
  }
  const state = stateOf(db);
  const key = `${Math.floor(at / BUCKET_MS) * BUCKET_MS}\u0000${system}\u0000${kind}`;
  state.counts.set(key, (state.counts.get(key) ?? 0) + n);
  schedule(db, state);
}

/** Notes that `system` has been sent the changes of `collection` up to `seq`. */
export function noteCursor(db: Database, system: string, collection: string, seq: number, at = Date.now()): void {
  const deferred = shared.deferred.get(db);
  if (deferred) {
    deferred.push({ kind: "cursor", system, collection, seq, at });
    return;
  }
  const state = stateOf(db);
  const key = `${system}\u0000${collection}`;
  const before = state.cursors.get(key);
  if (before && before.seq >= seq) return;
  state.cursors.set(key, { system, collection, seq, at });
  schedule(db, state);
}

/** Writes what was counted so far. Tests and the console call it to see current figures. */
export async function flushActivity(db: Database): Promise<void> {
  const state = stateOf(db);
  if (state.flushing) await state.flushing;
  if (state.counts.size === 0 && state.cursors.size === 0) return;
  const counts = state.counts;
  const cursors = state.cursors;
  state.counts = new Map();
  state.cursors = new Map();
  state.flushing = (async () => {
    try {
      if (counts.size > 0) {
        const rows = [...counts].map(([key, count]) => {
          const [bucket, system, kind] = key.split("\u0000") as [string, string, string];
          return { bucket: new Date(Number(bucket)), system, kind, count };
        });
        await db
          .insert(activity)
          .values(rows)
          .onConflictDoUpdate({
            target: [activity.bucket, activity.system, activity.kind],
            set: { count: sql`${activity.count} + excluded.count` },
          });
      }
      if (cursors.size > 0) {
        const rows = [...cursors.values()].map((c) => ({ ...c, at: new Date(c.at) }));
        await db
          .insert(systemCursors)
          .values(rows)
          .onConflictDoUpdate({
            target: [systemCursors.system, systemCursors.collection],
            set: {
              seq: sql`greatest(${systemCursors.seq}, excluded.seq)`,
              at: sql`greatest(${systemCursors.at}, excluded.at)`,
            },
          });
      }
    } catch (error) {
      // Keep the counts for the next attempt rather than drop them.
      for (const [key, n] of counts) state.counts.set(key, (state.counts.get(key) ?? 0) + n);
      for (const [key, c] of cursors) if ((state.cursors.get(key)?.seq ?? -1) < c.seq) state.cursors.set(key, c);
      schedule(db, state);
      log.warn(`could not record sync activity (will retry): ${(error as Error).message}`);
    } finally {
      state.flushing = null;
    }
  })();
  await state.flushing;
}

/**
 * Records that a request of `system` was answered with an error, for the
 * console's error state: at most one write per system every 5 seconds, and a
 * failure here never changes the answer.
 */
export async function noteSystemError(db: Database, system: string, code: string, message: string): Promise<void> {
  countActivity(db, system, "error");
  shared.clean.get(db)?.delete(system);
  const noted = shared.errorNoted.get(db) ?? new Map<string, number>();
  shared.errorNoted.set(db, noted);
  const now = Date.now();
  if ((noted.get(system) ?? 0) > now - 5_000) return;
  noted.set(system, now);
  try {
    const text = `${code}: ${message}`.slice(0, 500);
    await db
      .insert(systems)
      .values({ name: system, lastError: text, lastErrorAt: new Date(now) })
      .onConflictDoUpdate({ target: systems.name, set: { lastError: text, lastErrorAt: new Date(now) } });
  } catch (error) {
    log.warn(`could not record the error state of system "${system}": ${(error as Error).message}`);
  }
}

/**
 * A request of `system` succeeded: clears its stored error state, so the
 * console's error badge goes once the system works again. One conditional
 * write per system after each error (and after a start), not one per request.
 */
export async function noteSystemSuccess(db: Database, system: string): Promise<void> {
  let clean = shared.clean.get(db);
  if (!clean) {
    clean = new Set();
    shared.clean.set(db, clean);
  }
  if (clean.has(system)) return;
  clean.add(system);
  // The next error is written at once, not held back by the 5-second throttle.
  shared.errorNoted.get(db)?.delete(system);
  try {
    await db
      .update(systems)
      .set({ lastError: null })
      .where(and(eq(systems.name, system), isNotNull(systems.lastError)));
  } catch (error) {
    clean.delete(system);
    log.warn(`could not clear the error state of system "${system}": ${(error as Error).message}`);
  }
}

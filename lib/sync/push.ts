import { createHash } from "node:crypto";
import { sql, type SQL } from "drizzle-orm";
import type { Database } from "../db/client";
import { rowsOf } from "../db/client";
import { violatesKey } from "../db/errors";
import { noteRowsWritten } from "../db/statistics";
import { conflicts, pushReceipts, records, systems, type ConflictOutcome } from "../db/schema";
import { ServiceError } from "../errors";
import { countActivity } from "./activity";
import type { SyncContext } from "./context";
import { canonicalJson } from "./digest";
import { unstorableReason } from "./json-safety";
import { decide, render, type Decision, type Outcome, type PushSettings, type StoredVersion, type Subject } from "./push-decide";
import {
  COLLECTION_PATTERN,
  isJsonObject,
  MAX_RECORD_BYTES,
  PUSH_STATUSES,
  type JsonObject,
  type PushChange,
  type PushResponse,
  type PushResult,
  type PushStatus,
} from "./protocol";
import { isWriteRace, lockRecords, retryWrites, versionWrites, type NewVersion, type VersionWriteResult } from "./versions";

export interface PushInput {
  collection: string;
  changes: readonly PushChange[];
}

/** Decisions worth replaying for a re-sent changeId: the ones that decided something. */
const RECEIPT_STATUSES = new Set<PushStatus>(["applied", "unchanged", "merged", "rejected", "pending"]);

/**
 * POST /api/v1/collections/{c}/push — the server side of claims 3 and 4.
 *
 * All changes of a request are decided (push-decide.ts) and stored in one
 * transaction that locks the records it writes (not the collection: writers
 * of other records go on), so versions have no gaps or duplicates under any
 * number of writers and instances, and every result is durable before it is
 * returned. Each change is either applied, or its
 * content is kept in the conflict log, or it is refused (forbidden/invalid)
 * with nothing written.
 */
export async function pushChanges({ ctx, input }: { ctx: SyncContext; input: PushInput }): Promise<PushResponse> {
  const { collection } = input;
  const compiled = ctx.policy.compiled;
  if (!COLLECTION_PATTERN.test(collection)) {
    throw new ServiceError("invalid_request", "The collection name in the path is invalid.");
  }
  if (!compiled.hasCollection(collection)) {
    throw new ServiceError(
      "unknown_collection",
      `There is no collection "${collection}" in the active policy (version ${ctx.policy.version}).`,
    );
  }
  const readScope = compiled.scope(ctx.system, collection, "read");
  const writeScope = compiled.scope(ctx.system, collection, "write");
  if (readScope.grants.length === 0 && writeScope.grants.length === 0) {
    throw new ServiceError(
      "forbidden",
      `System "${ctx.system}" may neither read nor write collection "${collection}" under policy version ${ctx.policy.version}.`,
    );
  }
  const checked = input.changes.map((change, i) => checkChange(change, i));

  const settings: PushSettings = {
    system: ctx.system,
    collection,
    readScope,
    writeScope,
    conflict: compiled.conflict(ctx.system, collection),
    priorityOf: (system: string) => (system.startsWith("operator:") ? null : compiled.priority(system)),
  };

  const { results, conflictOutcomes, written } = await storePush(ctx.db, settings, input.changes, checked);
  // Statistics that lag behind a fast-growing table make the planner scan where it should probe.
  if (!isTransaction(ctx.db)) noteRowsWritten(ctx.db, written);
  await touchSystem(ctx.db, ctx.system);
  const byStatus = new Map<string, number>();
  for (const r of results) byStatus.set(r.status, (byStatus.get(r.status) ?? 0) + 1);
  for (const [status, n] of byStatus) countActivity(ctx.db, ctx.system, `push.${status}`, n);
  // Counted from the conflict log rows this request wrote: a re-sent change is not counted twice.
  const byOutcome = new Map<ConflictOutcome, number>();
  for (const outcome of conflictOutcomes) byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
  for (const [outcome, n] of byOutcome) countActivity(ctx.db, ctx.system, `conflict.${outcome}`, n);
  return { results };
}

/**
 * Two copies of one changeId pushed at once (to one collection): the loser's
 * receipt collides on the receipts' key; it runs again and finds the
 * winner's decision.
 */
function isReceiptRace(error: unknown): boolean {
  return violatesKey(error, "push_receipts_system_collection_change_id_pk");
}

/**
 * Decides and stores a push. First optimistically, in two round trips and no
 * explicit transaction: one statement reads receipts, current versions and
 * bases; the decisions are made here; one statement writes versions,
 * history, conflict log, receipts and the notification. Nothing is locked:
 * a concurrent write of one of the records makes the write statement fail
 * on history's key (versions are unique), as does a concurrent copy of a
 * changeId on the receipts' key, and the statement leaves nothing behind.
 * Then (and always inside a caller's transaction, e.g. a bundle) the records
 * are locked while deciding, so a push under contention waits instead of
 * losing again; deadlocks and remaining races run again (retryWrites).
 */
async function storePush(db: Database, s: PushSettings, changes: readonly PushChange[], checked: readonly Checked[]): Promise<Pushed> {
  const locked = () =>
    retryWrites(() => db.transaction((tx) => pushOnce(tx, s, changes, checked, true)), { retryAlso: isReceiptRace });
  if (isTransaction(db)) return locked();
  try {
    return await pushOnce(db, s, changes, checked, false);
  } catch (error) {
    if (!isWriteRace(error) && !isReceiptRace(error)) throw error;
    return locked();
  }
}

/** Whether `db` is a transaction (drizzle's transaction handle has rollback()). */
function isTransaction(db: Database): boolean {
  return typeof (db as { rollback?: unknown }).rollback === "function";
}

/** What one push answered, and the outcome of each conflict it logged. */
interface Pushed {
  results: PushResult[];
  conflictOutcomes: ConflictOutcome[];
  /** How many versions it wrote. */
  written: number;
}

/** A decision already taken for a changeId: from an earlier request's receipt, or earlier in this one. */
interface Taken {
  recordId: string;
  /** SHA-256 of the change's canonical JSON; null for receipts stored before it was kept. */
  changeDigest: string | null;
  decision: Decision;
  /** Known for decisions of this request; loaded from history for earlier ones. */
  subject?: Subject;
}

/** One change read once before its transaction: what cannot be stored in it, and its fingerprint for receipts. */
interface Checked {
  /** Why its data or patch cannot be stored (it is refused alone, as `invalid`), or null. */
  unstorable: string | null;
  /** SHA-256 of the change's canonical JSON, which tells a re-send from a reused changeId; null when unstorable. */
  digest: string | null;
  /** The digest of its `data` (protocol.md), when it has storable data: hashed here once, reused by decide(). */
  dataDigest?: string;
}

/** 413 for the whole request when a body is over the record limit (before anything is written). */
function checkChange(change: PushChange, i: number): Checked {
  const body = change.data ?? change.patch;
  const unstorable = body ? unstorableReason(body, change.data ? "data" : "patch") : null;
  // A body that cannot be stored has no canonical form: decide() refuses it, and it matches no receipt.
  if (unstorable) return { unstorable, digest: null };
  const bodyText = body ? canonicalJson(body) : "";
  if (Buffer.byteLength(bodyText, "utf8") > MAX_RECORD_BYTES) {
    throw new ServiceError(
      "payload_too_large",
      `changes[${i}].${change.data ? "data" : "patch"} is larger than ${MAX_RECORD_BYTES / 1024} KiB as canonical JSON; a record may be at most that size. Nothing was applied.`,
    );
  }
  // The body's canonical text is reused: the change is its envelope (changeId, id, base, delete, time), its kind and that text.
  const { data: _data, patch: _patch, ...envelope } = change;
  const kind = change.data ? "data" : change.patch ? "patch" : "deleted";
  const digest = createHash("sha256").update(`${canonicalJson(envelope as JsonObject)}\n${kind}\n`).update(bodyText).digest("hex");
  if (!change.data) return { unstorable, digest };
  return { unstorable, digest, dataDigest: createHash("sha256").update(bodyText, "utf8").digest("hex") };
}

async function pushOnce(db: Database, s: PushSettings, changes: readonly PushChange[], checked: readonly Checked[], lock: boolean): Promise<Pushed> {
  const receivedAt = new Date();
  // Locked first, then read: rows a locking read waited for would be newer than the rest of its snapshot.
  if (lock) await lockRecords(db, s.collection, changes.map((c) => c.id));
  const { taken, state, history } = await readForPush(db, s, changes);
  const baseOf = (id: string) => (version: number) => history.get(baseKey(id, version));

  const answers: { change: PushChange; decision: Decision; subject: Subject }[] = [];
  const versions: NewVersion[] = [];
  const logged: { outcome: Outcome; decision: Decision }[] = [];
  const receipts: { change: PushChange; digest: string | null; decision: Decision }[] = [];

  for (const [i, change] of changes.entries()) {
    const { digest, unstorable, dataDigest } = checked[i] as Checked;
    const previous = taken.get(change.changeId);
    if (previous) {
      const reused = previous.recordId !== change.id || digest === null || (previous.changeDigest !== null && previous.changeDigest !== digest);
      answers.push(
        reused
          ? {
              change,
              decision: {
                status: "invalid",
                reason: `changeId "${change.changeId}" was already used for another change${previous.recordId !== change.id ? ` (to record "${previous.recordId}")` : ""} in this collection; give every change a new changeId.`,
              },
              subject: null,
            }
          : { change, decision: previous.decision, subject: previous.subject ?? null },
      );
      continue;
    }
    const outcome = decide(s, change, state.get(change.id), baseOf(change.id), receivedAt, unstorable, dataDigest);
    const { decision, write } = outcome;
    if (write) {
      versions.push(write);
      // A later change of this request may be based on the version this one supersedes: keep it as a base.
      const superseded = state.get(change.id);
      if (superseded) history.set(baseKey(change.id, superseded.version), superseded);
      const stored: StoredVersion = {
        version: write.version,
        data: write.data,
        deleted: write.deleted,
        digest: write.digest,
        updatedBy: s.system,
        modifiedAt: write.modifiedAt,
      };
      state.set(change.id, stored);
      history.set(baseKey(change.id, write.version), stored);
    }
    if (outcome.conflict) logged.push({ outcome, decision });
    answers.push({ change, decision, subject: outcome.subject });
    // forbidden/invalid wrote nothing: re-sending them is decided again, e.g. after a policy change.
    if (RECEIPT_STATUSES.has(decision.status)) {
      taken.set(change.changeId, { recordId: change.id, changeDigest: digest, decision, subject: outcome.subject });
      receipts.push({ change, digest, decision });
    }
  }

  await writePush(db, s, versions, logged, receipts);
  const results = answers.map((a) => render(s.readScope, a.change, a.decision, a.subject));
  return { results, conflictOutcomes: logged.map((l) => l.outcome.conflict?.outcome as ConflictOutcome), written: versions.length };
}

/**
 * One statement writes everything a push decided: the new versions (with
 * history and the notification, versions.ts), the conflicts it logged,
 * numbered in the pushing system's own sequence (conflicts.client_ref, the
 * `conflict.id` its results show; the counter row stays locked until the
 * statement commits, so the numbers have no gaps or duplicates), and the
 * receipts of its decisions, each with its conflict's number.
 */
async function writePush(
  db: Database,
  s: PushSettings,
  versions: readonly NewVersion[],
  logged: readonly { outcome: Outcome; decision: Decision }[],
  receipts: readonly { change: PushChange; digest: string | null; decision: Decision }[],
): Promise<void> {
  const ctes: SQL[] = [];
  const columns: SQL[] = [sql`1 as one`];
  const w = versions.length > 0 ? versionWrites(s.collection, versions) : null;
  if (w) {
    ctes.push(w.ctes);
    columns.push(w.columns);
  }
  const n = logged.length;
  if (n > 0) {
    const rows = logged.map(({ outcome }, i) => {
      const c = outcome.conflict as typeof conflicts.$inferInsert;
      return {
        ord: i + 1,
        collection: c.collection,
        record_id: c.recordId,
        client_system: c.clientSystem,
        server_system: c.serverSystem,
        change_id: c.changeId,
        base_version: c.baseVersion ?? null,
        base_data: c.baseData ?? null,
        server_version: c.serverVersion,
        server_data: c.serverData ?? null,
        server_deleted: c.serverDeleted ?? false,
        client_change: c.clientChange,
        client_data: c.clientData ?? null,
        strategy: c.strategy,
        outcome: c.outcome,
        details: c.details ?? null,
        result_version: c.resultVersion ?? null,
      };
    });
    ctes.push(sql`
      c_counter as (
        insert into ${systems} (name, conflict_refs) values (${s.system}, ${n})
        on conflict (name) do update set conflict_refs = ${systems.conflictRefs} + ${n}
        returning conflict_refs as last
      ),
      c_logged as (
        insert into ${conflicts} (collection, record_id, client_system, client_ref, server_system, change_id, base_version, base_data,
          server_version, server_data, server_deleted, client_change, client_data, strategy, outcome, details, result_version)
        select c.collection, c.record_id, c.client_system, (select last from c_counter) - ${n} + c.ord, c.server_system, c.change_id,
          c.base_version, c.base_data, c.server_version, c.server_data, c.server_deleted, c.client_change, c.client_data, c.strategy,
          c.outcome, c.details, c.result_version
        from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as c(ord integer, collection text, record_id text, client_system text,
          server_system text, change_id text, base_version integer, base_data jsonb, server_version integer, server_data jsonb,
          server_deleted boolean, client_change jsonb, client_data jsonb, strategy text, outcome text, details jsonb, result_version integer)
        returning 1
      )`);
    columns.push(sql`(select last from c_counter) as conflict_last, (select count(*) from c_logged) as conflicts_logged`);
  }
  if (receipts.length > 0) {
    const ordOf = new Map(logged.map((l, i) => [l.decision, i + 1]));
    // One jsonb parameter for the whole batch; a receipt's conflict gets its number from the counter above.
    const rows = receipts.map((r) => ({
      change_id: r.change.changeId,
      record_id: r.change.id,
      result: r.decision,
      change_digest: r.digest,
      conflict_ord: ordOf.get(r.decision) ?? null,
    }));
    const numbered = n > 0 ? sql`(select last from c_counter) - ${n} + x.conflict_ord` : sql`0`;
    // A plain insert: a concurrent copy of a changeId fails on the key, and the whole statement with it.
    ctes.push(sql`
      r_kept as (
        insert into ${pushReceipts} (system, collection, change_id, record_id, result, change_digest)
        select ${s.system}, ${s.collection}, x.change_id, x.record_id,
          case when x.conflict_ord is null then x.result else jsonb_set(x.result, '{conflict,id}', to_jsonb(${numbered})) end,
          x.change_digest
        from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(change_id text, record_id text, result jsonb, change_digest text, conflict_ord integer)
        returning 1
      )`);
    columns.push(sql`(select count(*) from r_kept) as receipts_kept`);
  }
  if (ctes.length === 0) return;
  const [result] = rowsOf<VersionWriteResult & { conflict_last?: string | number }>(
    await db.execute(sql`with ${sql.join(ctes, sql`, `)} select ${sql.join(columns, sql`, `)}`),
  );
  w?.positions(result);
  if (n > 0) {
    const first = Number(result?.conflict_last) - n + 1;
    logged.forEach(({ decision }, i) => {
      if (decision.conflict) decision.conflict.id = first + i;
    });
  }
}

/** Everything a push decides on, read in one statement. */
interface PushState {
  /** Decisions already taken for this request's changeIds in this collection. */
  taken: Map<string, Taken>;
  /** The current version of each record the request names. */
  state: Map<string, StoredVersion>;
  /** History rows for the base versions of changes based on an older version than the server's. */
  history: Bases;
}

/**
 * Reads, in one statement: the receipts of this request's changeIds in this
 * collection, with the version each one speaks of (read back from history so
 * the answer is rendered under today's policy, push-decide.ts render); the
 * current versions of the records it names; and the history rows of older base versions. Lateral lookups are one
 * primary-key probe each: a plain join could hash whole tables.
 */
async function readForPush(db: Database, s: PushSettings, changes: readonly PushChange[]): Promise<PushState> {
  const changeIds = [...new Set(changes.map((c) => c.changeId))];
  const ids = [...new Set(changes.map((c) => c.id))];
  const bases = changes.filter((c) => c.baseVersion !== null).map((c) => ({ id: c.id, version: c.baseVersion }));
  const [row] = rowsOf<{ receipts: string; state: string; bases: string }>(
    await db.execute(sql`
      select
        (select coalesce(json_agg(t), '[]')::text from (
          select r.change_id, r.record_id, r.result, r.change_digest, h.data, h.deleted
          from jsonb_array_elements_text(${JSON.stringify(changeIds)}::jsonb) as c(change_id)
          join lateral (
            select * from ${pushReceipts} p
            where p.system = ${s.system} and p.collection = ${s.collection} and p.change_id = c.change_id
          ) r on true
          left join lateral (
            select hh.data, hh.deleted from record_history hh
            where hh.collection = r.collection and hh.id = r.record_id and hh.version = (r.result->>'version')::integer
          ) h on true) t) as receipts,
        (select coalesce(json_agg(t), '[]')::text from (
          select r.id, r.version, r.data, r.deleted, r.digest, r.updated_by, r.modified_at
          from ${records} r
          where r.collection = ${s.collection} and r.id in (select jsonb_array_elements_text(${JSON.stringify(ids)}::jsonb))
          ) t) as state,
        (select coalesce(json_agg(t), '[]')::text from (
          select h.id, h.version, h.data, h.deleted, h.digest, h.written_by as updated_by, h.modified_at
          from jsonb_to_recordset(${JSON.stringify(bases)}::jsonb) as b(id text, version integer)
          join ${records} r on r.collection = ${s.collection} and r.id = b.id and b.version < r.version
          join record_history h on h.collection = ${s.collection} and h.id = b.id and h.version = b.version) t) as bases`),
  );
  interface Stored {
    id: string;
    version: number;
    data: JsonObject;
    deleted: boolean;
    digest: string;
    updated_by: string;
    modified_at: string;
  }
  const stored = (r: Stored): StoredVersion => ({
    version: Number(r.version),
    data: r.data,
    deleted: r.deleted,
    digest: r.digest,
    updatedBy: r.updated_by,
    modifiedAt: new Date(r.modified_at),
  });
  const taken = new Map<string, Taken>();
  const receipts = JSON.parse(row?.receipts ?? "[]") as {
    change_id: string;
    record_id: string;
    result: JsonObject;
    change_digest: string | null;
    data: JsonObject | null;
    deleted: boolean | null;
  }[];
  for (const r of receipts) {
    taken.set(r.change_id, {
      recordId: r.record_id,
      changeDigest: r.change_digest,
      decision: decisionOf(r.result),
      subject: r.data === null ? null : { data: r.data, deleted: r.deleted === true },
    });
  }
  const state = new Map((JSON.parse(row?.state ?? "[]") as Stored[]).map((r) => [r.id, stored(r)]));
  const history: Bases = new Map((JSON.parse(row?.bases ?? "[]") as Stored[]).map((r) => [baseKey(r.id, Number(r.version)), stored(r)]));
  return { taken, state, history };
}

/**
 * A stored decision. Receipts written before decisions were stored hold the
 * answer given then: its status, version, reason and conflict are the
 * decision; its data and digest are dropped (they are rendered again).
 */
export function decisionOf(stored: JsonObject): Decision {
  const status = PUSH_STATUSES.find((s) => s === stored.status) ?? "invalid";
  const decision: Decision = { status };
  if (typeof stored.version === "number") decision.version = stored.version;
  if (typeof stored.reason === "string") decision.reason = stored.reason;
  if (typeof stored.own === "string") decision.own = stored.own;
  const conflict = stored.conflict;
  if (isJsonObject(conflict) && typeof conflict.id === "number" && typeof conflict.strategy === "string") {
    decision.conflict = { id: conflict.id, strategy: conflict.strategy };
  }
  return decision;
}

type Bases = Map<string, StoredVersion>;

function baseKey(id: string, version: number): string {
  return `${version}\u0000${id}`;
}

const touched = new WeakMap<Database, Map<string, number>>();

/** Records the system's last push, at most once a minute per process. */
async function touchSystem(db: Database, system: string): Promise<void> {
  const now = Date.now();
  const seen = touched.get(db) ?? new Map<string, number>();
  touched.set(db, seen);
  if ((seen.get(system) ?? 0) > now - 60_000) return;
  seen.set(system, now);
  await db
    .insert(systems)
    .values({ name: system, lastSeenAt: new Date(now), lastPushAt: new Date(now) })
    .onConflictDoUpdate({ target: systems.name, set: { lastSeenAt: new Date(now), lastPushAt: new Date(now) } });
}

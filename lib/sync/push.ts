import { createHash } from "node:crypto";
import { sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { rowsOf } from "../db/client";
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
import { retryWrites, writeVersions, type NewVersion } from "./versions";

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

  // Lost races run again on fresh state: a record created by another writer
  // meanwhile (WriteRace), a deadlock, or two copies of one changeId pushed at
  // once, where the loser then finds the winner's decision (ReceiptRace).
  const { results, conflictOutcomes } = await retryWrites(
    () => ctx.db.transaction((tx) => pushInTransaction(tx, settings, input.changes, checked)),
    { retryAlso: (error) => error instanceof ReceiptRace },
  );
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

class ReceiptRace extends Error {}

/** What one push transaction answered, and the outcome of each conflict it logged. */
interface Pushed {
  results: PushResult[];
  conflictOutcomes: ConflictOutcome[];
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
  return { unstorable, digest };
}

async function pushInTransaction(tx: Database, s: PushSettings, changes: readonly PushChange[], checked: readonly Checked[]): Promise<Pushed> {
  const receivedAt = new Date();
  const taken = await loadReceipts(tx, s, changes);

  const fresh = changes.filter((c) => !taken.has(c.changeId));
  const state = await loadState(tx, s.collection, [...new Set(fresh.map((c) => c.id))]);
  const history = await loadBases(tx, s.collection, fresh, state);
  const baseOf = (id: string) => (version: number) => history.get(baseKey(id, version));

  const answers: { change: PushChange; decision: Decision; subject: Subject }[] = [];
  const versions: NewVersion[] = [];
  const logged: { outcome: Outcome; decision: Decision }[] = [];
  const receipts: { change: PushChange; digest: string | null; decision: Decision }[] = [];

  for (const [i, change] of changes.entries()) {
    const { digest, unstorable } = checked[i] as Checked;
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
    const outcome = decide(s, change, state.get(change.id), baseOf(change.id), receivedAt, unstorable);
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

  await writeVersions(tx, s.collection, versions);
  if (logged.length > 0) await logConflicts(tx, s.system, logged);

  if (receipts.length > 0) {
    // One jsonb parameter for the whole batch (see writeVersions).
    const rows = receipts.map((r) => ({ change_id: r.change.changeId, record_id: r.change.id, result: r.decision, change_digest: r.digest }));
    const stored = rowsOf<{ change_id: string }>(
      await tx.execute(sql`
        insert into ${pushReceipts} (system, collection, change_id, record_id, result, change_digest)
        select ${s.system}, ${s.collection}, x.change_id, x.record_id, x.result, x.change_digest
        from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(change_id text, record_id text, result jsonb, change_digest text)
        on conflict do nothing
        returning change_id`),
    );
    if (stored.length !== receipts.length) throw new ReceiptRace("a changeId was stored concurrently");
  }

  const results = answers.map((a) => render(s.readScope, a.change, a.decision, a.subject));
  return { results, conflictOutcomes: logged.map((l) => l.outcome.conflict?.outcome as ConflictOutcome) };
}

/**
 * Logs the conflicts of this push and numbers them in the pushing system's
 * own sequence (conflicts.client_ref): the number its results show as
 * `conflict.id`. The counter row is locked until the push commits, so the
 * numbers have no gaps or duplicates.
 */
async function logConflicts(tx: Database, system: string, logged: { outcome: Outcome; decision: Decision }[]): Promise<void> {
  const [counter] = await tx
    .insert(systems)
    .values({ name: system, conflictRefs: logged.length })
    .onConflictDoUpdate({ target: systems.name, set: { conflictRefs: sql`${systems.conflictRefs} + ${logged.length}` } })
    .returning({ last: systems.conflictRefs });
  const first = Number(counter?.last) - logged.length + 1;
  await tx.insert(conflicts).values(
    logged.map(({ outcome, decision }, i) => {
      if (decision.conflict) decision.conflict.id = first + i;
      return { ...(outcome.conflict as typeof conflicts.$inferInsert), clientRef: first + i };
    }),
  );
}

/**
 * The decisions already taken for this request's changeIds in this
 * collection, with the version each one speaks of, read back from history so
 * the answer is rendered under today's policy (push-decide.ts render).
 */
async function loadReceipts(tx: Database, s: PushSettings, changes: readonly PushChange[]): Promise<Map<string, Taken>> {
  const taken = new Map<string, Taken>();
  const changeIds = [...new Set(changes.map((c) => c.changeId))];
  if (changeIds.length === 0) return taken;
  const rows = rowsOf<{
    change_id: string;
    record_id: string;
    result: JsonObject | string;
    change_digest: string | null;
    data: JsonObject | string | null;
    deleted: boolean | null;
  }>(
    // Lateral lookups, one primary-key probe each: a plain join could hash the whole receipts or history table.
    await tx.execute(sql`
      select r.change_id, r.record_id, r.result, r.change_digest, h.data, h.deleted
      from jsonb_array_elements_text(${JSON.stringify(changeIds)}::jsonb) as c(change_id)
      join lateral (
        select * from ${pushReceipts} p
        where p.system = ${s.system} and p.collection = ${s.collection} and p.change_id = c.change_id
      ) r on true
      left join lateral (
        select hh.data, hh.deleted from record_history hh
        where hh.collection = r.collection and hh.id = r.record_id and hh.version = (r.result->>'version')::integer
      ) h on true`),
  );
  for (const row of rows) {
    const data = typeof row.data === "string" ? (JSON.parse(row.data) as JsonObject) : row.data;
    const stored = typeof row.result === "string" ? (JSON.parse(row.result) as JsonObject) : row.result;
    taken.set(row.change_id, {
      recordId: row.record_id,
      changeDigest: row.change_digest,
      decision: decisionOf(stored),
      subject: data === null ? null : { data, deleted: row.deleted === true },
    });
  }
  return taken;
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

/** A list of strings as one jsonb parameter, usable as `x in (…)` (one bound value however long the list). */
function jsonList(values: readonly string[]) {
  return sql`select jsonb_array_elements_text(${JSON.stringify(values)}::jsonb)`;
}

/** The current versions of these records, locked until the transaction ends (in id order: see lockRecords). */
async function loadState(tx: Database, collection: string, ids: string[]): Promise<Map<string, StoredVersion>> {
  const state = new Map<string, StoredVersion>();
  if (ids.length === 0) return state;
  const rows = await tx
    .select({
      id: records.id,
      version: records.version,
      data: records.data,
      deleted: records.deleted,
      digest: records.digest,
      updatedBy: records.updatedBy,
      modifiedAt: records.modifiedAt,
    })
    .from(records)
    .where(sql`${records.collection} = ${collection} and ${records.id} in (${jsonList(ids)})`)
    .orderBy(records.id)
    .for("update");
  for (const r of rows) state.set(r.id, r);
  return state;
}

type Bases = Map<string, StoredVersion>;

function baseKey(id: string, version: number): string {
  return `${version}\u0000${id}`;
}

/** History rows for the base versions of changes based on an older version than the server's. */
async function loadBases(
  tx: Database,
  collection: string,
  changes: readonly PushChange[],
  state: Map<string, StoredVersion>,
): Promise<Bases> {
  const wanted = new Map<string, { id: string; version: number }>();
  for (const c of changes) {
    const current = state.get(c.id);
    if (c.baseVersion !== null && current && c.baseVersion < current.version) {
      wanted.set(baseKey(c.id, c.baseVersion), { id: c.id, version: c.baseVersion });
    }
  }
  const bases: Bases = new Map();
  if (wanted.size === 0) return bases;
  const pairs = [...wanted.values()].map((w) => sql`(${w.id}, ${w.version}::integer)`);
  const rows = rowsOf<{
    id: string;
    version: number;
    data: JsonObject | string;
    deleted: boolean;
    digest: string;
    written_by: string;
    modified_at: Date | string;
  }>(
    await tx.execute(
      sql`select id, version, data, deleted, digest, written_by, modified_at from record_history
          where collection = ${collection} and (id, version) in (${sql.join(pairs, sql`, `)})`,
    ),
  );
  for (const r of rows) {
    const data = typeof r.data === "string" ? (JSON.parse(r.data) as JsonObject) : r.data;
    bases.set(baseKey(r.id, Number(r.version)), {
      version: Number(r.version),
      data,
      deleted: r.deleted,
      digest: r.digest,
      updatedBy: r.written_by,
      modifiedAt: new Date(r.modified_at),
    });
  }
  return bases;
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

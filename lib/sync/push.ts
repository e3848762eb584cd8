import { and, eq, sql } from "drizzle-orm";
import mergePatch from "json-merge-patch";
import type { Database } from "../db/client";
import { rowsOf } from "../db/client";
import { countActivity } from "./activity";
import { conflicts, pushReceipts, records, systems, type ConflictOutcome } from "../db/schema";
import { ServiceError } from "../errors";
import { fieldsFor, type Scope } from "../policy/compile";
import type { Strategy } from "../policy/document";
import type { SyncContext } from "./context";
import { canonicalSize, digestOf } from "./digest";
import { changedFields, jsonEqual, overlay } from "./json";
import { lockCollection } from "./lock";
import { projectForReader } from "./projection";
import {
  COLLECTION_PATTERN,
  DELETED_DIGEST,
  MAX_RECORD_BYTES,
  hasKeyDeep,
  isJsonObject,
  type JsonObject,
  type PushChange,
  type PushResponse,
  type PushResult,
} from "./protocol";
import { effectiveModifiedAt, STRATEGIES, type Settlement } from "./strategies";
import { writeVersions, type NewVersion } from "./versions";
import { checkWrite } from "./write-check";

export interface PushInput {
  collection: string;
  changes: readonly PushChange[];
}

/** Results worth replaying for a re-sent changeId: the ones that decided something. */
const RECEIPT_STATUSES = new Set(["applied", "unchanged", "merged", "rejected", "pending"]);

/**
 * POST /api/v1/collections/{c}/push — the server side of claims 3 and 4.
 *
 * All changes of a request are decided and stored in one transaction that
 * holds the collection lock, so versions have no gaps or duplicates under any
 * number of writers and instances, and every result is durable before it is
 * returned. Each change is either applied, or its content is kept in the
 * conflict log, or it is refused (forbidden/invalid) with nothing written.
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
  input.changes.forEach((change, i) => {
    const body = change.data ?? change.patch;
    if (body && canonicalSize(body) > MAX_RECORD_BYTES) {
      throw new ServiceError(
        "payload_too_large",
        `changes[${i}].${change.data ? "data" : "patch"} is larger than ${MAX_RECORD_BYTES / 1024} KiB as canonical JSON; a record may be at most that size. Nothing was applied.`,
      );
    }
  });

  const settings = {
    system: ctx.system,
    collection,
    readScope,
    writeScope,
    conflict: compiled.conflict(ctx.system, collection),
    priorityOf: (system: string) => (system.startsWith("operator:") ? null : compiled.priority(system)),
  };

  let pushed: Pushed | undefined;
  for (let attempt = 0; pushed === undefined; attempt++) {
    try {
      pushed = await ctx.db.transaction((tx) => pushInTransaction(tx, settings, input.changes));
    } catch (error) {
      // Two copies of one changeId pushed at once to different collections race on
      // the receipt: the loser retries and finds the winner's result.
      if (!(error instanceof ReceiptRace) || attempt >= 2) throw error;
    }
  }
  const { results, conflictOutcomes } = pushed;
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

interface PushSettings {
  system: string;
  collection: string;
  readScope: Scope;
  writeScope: Scope;
  conflict: { strategy: Strategy; fallback: Exclude<Strategy, "field-merge"> };
  priorityOf: (system: string) => number | null;
}

interface ServerState {
  version: number;
  data: JsonObject;
  deleted: boolean;
  digest: string;
  updatedBy: string;
  modifiedAt: Date;
}

interface PendingConflict {
  result: PushResult;
  row: typeof conflicts.$inferInsert;
}

async function pushInTransaction(
  tx: Database,
  s: PushSettings,
  changes: readonly PushChange[],
): Promise<Pushed> {
  await lockCollection(tx, s.collection);
  const receivedAt = new Date();

  const changeIds = [...new Set(changes.map((c) => c.changeId))];
  const receipts = new Map<string, PushResult>();
  if (changeIds.length > 0) {
    const rows = await tx
      .select({ changeId: pushReceipts.changeId, result: pushReceipts.result })
      .from(pushReceipts)
      .where(and(eq(pushReceipts.system, s.system), sql`${pushReceipts.changeId} in (${jsonList(changeIds)})`));
    for (const row of rows) receipts.set(row.changeId, row.result as unknown as PushResult);
  }

  const fresh = changes.filter((c) => !receipts.has(c.changeId));
  const state = await loadState(tx, s.collection, [...new Set(fresh.map((c) => c.id))]);
  const history = await loadBases(tx, s.collection, fresh, state);

  const results: PushResult[] = [];
  const byChangeId = new Map<string, PushResult>(receipts);
  const versions: NewVersion[] = [];
  const pendingConflicts: PendingConflict[] = [];
  const newReceipts: PushResult[] = [];

  for (const change of changes) {
    const previous = byChangeId.get(change.changeId);
    if (previous) {
      results.push(previous);
      continue;
    }
    const outcome = decide(s, change, state.get(change.id), history, receivedAt);
    if (outcome.write) {
      versions.push(outcome.write);
      // A later change of this request may be based on the version this one supersedes: keep it as a base.
      const superseded = state.get(change.id);
      if (superseded) history.set(baseKey(change.id, superseded.version), { data: superseded.data, deleted: superseded.deleted });
      state.set(change.id, {
        version: outcome.write.version,
        data: outcome.write.data,
        deleted: outcome.write.deleted,
        digest: outcome.write.digest,
        updatedBy: s.system,
        modifiedAt: outcome.write.modifiedAt,
      });
      history.set(baseKey(change.id, outcome.write.version), { data: outcome.write.data, deleted: outcome.write.deleted });
    }
    if (outcome.conflict) pendingConflicts.push({ result: outcome.result, row: outcome.conflict });
    results.push(outcome.result);
    // forbidden/invalid wrote nothing: re-sending them is re-evaluated, e.g. after a policy change.
    if (RECEIPT_STATUSES.has(outcome.result.status)) {
      byChangeId.set(change.changeId, outcome.result);
      newReceipts.push(outcome.result);
    }
  }

  await writeVersions(tx, s.collection, versions);

  if (pendingConflicts.length > 0) {
    const inserted = await tx
      .insert(conflicts)
      .values(pendingConflicts.map((p) => p.row))
      .returning({ id: conflicts.id, changeId: conflicts.changeId });
    const idByChange = new Map(inserted.map((r) => [r.changeId, r.id]));
    for (const p of pendingConflicts) {
      if (p.result.conflict) p.result.conflict.id = idByChange.get(p.result.changeId) ?? p.result.conflict.id;
    }
  }

  if (newReceipts.length > 0) {
    // One jsonb parameter for the whole batch (see writeVersions).
    const rows = newReceipts.map((r) => ({ change_id: r.changeId, record_id: r.id, result: r }));
    const stored = rowsOf<{ change_id: string }>(
      await tx.execute(sql`
        insert into ${pushReceipts} (system, change_id, collection, record_id, result)
        select ${s.system}, x.change_id, ${s.collection}, x.record_id, x.result
        from jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) as x(change_id text, record_id text, result jsonb)
        on conflict do nothing
        returning change_id`),
    );
    if (stored.length !== newReceipts.length) throw new ReceiptRace("a changeId was stored concurrently");
  }
  return { results, conflictOutcomes: pendingConflicts.map((p) => p.row.outcome) };
}

/** A list of strings as one jsonb parameter, usable as `x in (…)` (one bound value however long the list). */
function jsonList(values: readonly string[]) {
  return sql`select jsonb_array_elements_text(${JSON.stringify(values)}::jsonb)`;
}

async function loadState(tx: Database, collection: string, ids: string[]): Promise<Map<string, ServerState>> {
  const state = new Map<string, ServerState>();
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
    .where(and(eq(records.collection, collection), sql`${records.id} in (${jsonList(ids)})`));
  for (const r of rows) state.set(r.id, r);
  return state;
}

type Bases = Map<string, { data: JsonObject; deleted: boolean }>;

function baseKey(id: string, version: number): string {
  return `${version}\u0000${id}`;
}

/** History rows for the base versions of changes based on an older version than the server's. */
async function loadBases(
  tx: Database,
  collection: string,
  changes: readonly PushChange[],
  state: Map<string, ServerState>,
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
  const rows = rowsOf<{ id: string; version: number; data: JsonObject | string; deleted: boolean }>(
    await tx.execute(
      sql`select id, version, data, deleted from record_history
          where collection = ${collection} and (id, version) in (${sql.join(pairs, sql`, `)})`,
    ),
  );
  for (const r of rows) {
    const data = typeof r.data === "string" ? (JSON.parse(r.data) as JsonObject) : r.data;
    bases.set(baseKey(r.id, Number(r.version)), { data, deleted: r.deleted });
  }
  return bases;
}

interface Outcome {
  result: PushResult;
  write?: NewVersion;
  conflict?: typeof conflicts.$inferInsert;
}

/** Decides one change against the server's current state (pure apart from its inputs). */
function decide(
  s: PushSettings,
  change: PushChange,
  current: ServerState | undefined,
  bases: Bases,
  receivedAt: Date,
): Outcome {
  const { changeId, id, baseVersion } = change;
  const refuse = (status: "invalid" | "forbidden", reason: string): Outcome => ({
    result: { changeId, id, status, reason },
  });

  // Versions (claims 3 and 4).
  if (!current) {
    if (baseVersion !== null) {
      return refuse("invalid", `Record "${id}" does not exist on the server, so baseVersion must be null (a first submission).`);
    }
    if (change.deleted) return refuse("invalid", `Record "${id}" does not exist on the server; there is nothing to delete.`);
  } else if (baseVersion !== null && baseVersion > current.version) {
    return refuse(
      "invalid",
      `baseVersion ${baseVersion} is above the server's version ${current.version} of record "${id}"; pull the record and retry.`,
    );
  }

  const base =
    baseVersion === null || !current
      ? null
      : baseVersion === current.version
        ? { data: current.data, deleted: current.deleted }
        : (bases.get(baseKey(id, baseVersion)) ?? null);
  if (baseVersion !== null && !base) {
    return refuse("invalid", `Version ${baseVersion} of record "${id}" is not in the server's history.`);
  }
  const baseLive = base && !base.deleted ? base.data : null;
  const serverLive = current && !current.deleted ? current.data : null;

  // What the client means: its whole record, and the fields it changed relative to its base.
  const intent = clientIntent(s.readScope, change, baseLive ?? serverLive);
  if ("invalid" in intent) return refuse("invalid", intent.invalid);
  const mine = intent.record;
  const delta = mine === null ? [] : intent.fields.filter((f) => !jsonEqual(mine[f], baseLive?.[f]));
  // The client's change applied to the server's current copy.
  const applied = mine === null ? null : serverLive ? overlay(serverLive, mine, delta) : mine;

  if (s.writeScope.grants.length === 0) {
    return refuse("forbidden", `Collection "${s.collection}" is read-only for system "${s.system}".`);
  }

  // Nothing to write: the record as sent equals the server's (no version bump).
  if (current && (applied === null ? current.deleted : serverLive !== null && jsonEqual(applied, serverLive))) {
    const view = viewOf(s, current.deleted ? null : current.data, { own: true, digest: current.digest });
    return { result: { changeId, id, status: "unchanged", version: current.version, ...view.digestOnly } };
  }

  const check = checkWrite(s.writeScope, serverLive, applied, changedFields(serverLive, applied));
  if (!check.ok) return refuse("forbidden", check.reason);

  const modifiedAt = effectiveModifiedAt(change.modifiedAt, receivedAt);
  const version = (current?.version ?? 0) + 1;
  const conflict = current !== undefined && baseVersion !== current.version && !(baseVersion === null && current.deleted);

  const newVersion = (data: JsonObject | null, origin: "push" | "merge"): NewVersion => ({
    id,
    version,
    // A tombstone keeps the last live data so read scopes can still be evaluated for it.
    data: data ?? serverLive ?? baseLive ?? {},
    deleted: data === null,
    digest: digestOf(data),
    origin,
    changeId,
    writtenBy: s.system,
    modifiedAt,
  });

  if (!conflict) {
    const write = newVersion(applied, "push");
    const view = viewOf(s, applied, { own: true, digest: write.digest });
    return { result: { changeId, id, status: "applied", version, ...view.digestOnly }, write };
  }

  // A conflict: settle it with the strategy the policy assigns (claim 4, last case).
  const server = current as ServerState;
  const settlement: Settlement = STRATEGIES[s.conflict.strategy]({
    base: baseLive,
    server: serverLive,
    client: applied === null ? null : mine,
    clientSystem: s.system,
    serverSystem: server.updatedBy,
    clientPriority: s.priorityOf(s.system) ?? 0,
    serverPriority: s.priorityOf(server.updatedBy),
    clientModifiedAt: modifiedAt,
    serverModifiedAt: server.modifiedAt,
    fallback: s.conflict.fallback,
  });

  let written: JsonObject | null | undefined; // undefined: nothing written
  let outcome: ConflictOutcome;
  let reason: string;
  const details: JsonObject = { ...settlement.details };
  if (settlement.winner === "client") {
    written = applied;
    outcome = "client-won";
    reason = `Your change won a conflict with version ${server.version} (${s.conflict.strategy}).`;
  } else if (settlement.winner === "merged") {
    written = settlement.data;
    outcome = "merged";
    reason = `Your change and version ${server.version} were merged (${s.conflict.strategy}).`;
  } else if (settlement.winner === "pending") {
    outcome = "pending";
    reason = `Your change collides with version ${server.version} and is held for an operator (${s.conflict.strategy}); the server's copy is unchanged until it is resolved.`;
  } else {
    outcome = "server-won";
    reason = `Your change lost a conflict with version ${server.version} (${s.conflict.strategy}); it is kept in the conflict log.`;
  }

  if (written !== undefined) {
    const settled = checkWrite(s.writeScope, serverLive, written, changedFields(serverLive, written));
    if (!settled.ok) {
      // The settlement would write outside the client's rights: keep the server's copy and the client's change in the log.
      details.refused = settled.reason;
      written = undefined;
      outcome = "server-won";
      reason = `Your change lost a conflict with version ${server.version}: ${settled.reason} It is kept in the conflict log.`;
    } else if (written !== null && serverLive !== null && jsonEqual(written, serverLive)) {
      written = undefined;
      outcome = "server-won";
      reason = `Your change lost a conflict with version ${server.version} (${s.conflict.strategy}); it is kept in the conflict log.`;
    }
  }

  const write = written === undefined ? undefined : newVersion(written, outcome === "merged" ? "merge" : "push");
  const finalData = written === undefined ? (server.deleted ? null : server.data) : written;
  const finalVersion = write ? version : server.version;
  // The client holds its own record: if the result is that, it is "applied"; otherwise it needs the data.
  const own = written !== undefined && (written === null ? applied === null : mine !== null && jsonEqual(written, mine));
  const view = viewOf(s, finalData, { own, digest: write ? write.digest : server.digest });
  const clientView = viewOf(s, applied === null ? null : mine, { own: true });
  const status: PushResult["status"] =
    write === undefined
      ? outcome === "pending"
        ? "pending"
        : "rejected"
      : own || (view.digest !== undefined && view.digest === clientView.digest)
        ? "applied"
        : "merged";

  const result: PushResult = {
    changeId,
    id,
    status,
    version: finalVersion,
    ...(view.digest === undefined ? {} : { digest: view.digest }),
    ...(status === "applied" ? {} : view.body),
    conflict: { id: 0, strategy: s.conflict.strategy },
    reason,
  };
  return {
    result,
    write,
    conflict: {
      collection: s.collection,
      recordId: id,
      clientSystem: s.system,
      serverSystem: server.updatedBy,
      changeId,
      baseVersion,
      baseData: baseLive,
      serverVersion: server.version,
      serverData: serverLive,
      serverDeleted: server.deleted,
      clientChange: change as unknown as JsonObject,
      clientData: mine,
      strategy: s.conflict.strategy,
      outcome,
      details,
      resultVersion: write ? version : null,
    },
  };
}

/**
 * The client's whole record as it means it, and the fields it speaks for.
 * `data` is the record as the client sees it: fields it cannot read are kept
 * from the copy its change is based on; the fields it speaks for are those it
 * can read plus those it sent. A `patch` speaks for its keys only.
 */
function clientIntent(
  readScope: Scope,
  change: PushChange,
  source: JsonObject | null,
): { record: JsonObject | null; fields: string[] } | { invalid: string } {
  if (change.deleted) return { record: null, fields: [] };
  if (change.patch) {
    // json-merge-patch stops silently at these keys; refuse rather than apply half a patch.
    if (hasKeyDeep(change.patch, "constructor") || hasKeyDeep(change.patch, "prototype")) {
      return { invalid: 'A patch cannot set fields named "constructor" or "prototype"; send the whole record as data instead.' };
    }
    const patched: unknown = mergePatch.apply(structuredClone(source ?? {}), change.patch);
    if (!isJsonObject(patched)) return { invalid: "The patch does not produce a JSON object." };
    if (canonicalSize(patched) > MAX_RECORD_BYTES) {
      return { invalid: `The patched record would be larger than ${MAX_RECORD_BYTES / 1024} KiB.` };
    }
    return { record: patched, fields: Object.keys(change.patch) };
  }
  const data = change.data as JsonObject;
  const visible = source ? fieldsFor(readScope, source) : "*";
  if (visible === "*") {
    return { record: data, fields: [...new Set([...Object.keys(source ?? {}), ...Object.keys(data)])] };
  }
  const record: JsonObject = {};
  for (const [k, v] of Object.entries(source ?? {})) if (!visible?.has(k)) record[k] = v;
  for (const [k, v] of Object.entries(data)) record[k] = v;
  const spoken = new Set(Object.keys(data));
  for (const k of Object.keys(source ?? {})) if (visible?.has(k)) spoken.add(k);
  return { record, fields: [...spoken] };
}

/**
 * The record as the pushing system may see it: projected data and its digest.
 * For a record outside its read scope it gets nothing back — except the digest
 * of what it wrote itself (`own`), so a writer without read rights still has a
 * base. `digest` is the stored digest of the whole data, when known.
 */
function viewOf(
  s: PushSettings,
  data: JsonObject | null,
  options: { own: boolean; digest?: string },
): { digest?: string; body: { data?: JsonObject; deleted?: true }; digestOnly: { digest?: string } } {
  if (data === null) return { digest: DELETED_DIGEST, body: { deleted: true }, digestOnly: { digest: DELETED_DIGEST } };
  const view = projectForReader(s.readScope, data, options.digest);
  if (!view) {
    if (!options.own) return { body: {}, digestOnly: {} };
    const digest = options.digest ?? digestOf(data);
    return { digest, body: {}, digestOnly: { digest } };
  }
  return { digest: view.digest, body: { data: view.data }, digestOnly: { digest: view.digest } };
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

import { createHash } from "node:crypto";
import { and, eq, sql } from "drizzle-orm";
import { z } from "zod";
import type { Database } from "../db/client";
import { rowsOf } from "../db/client";
import { auditLog, bundleReceipts, pushReceipts } from "../db/schema";
import { covers } from "../policy/compile";
import { ServiceError } from "../errors";
import type { ActivePolicy } from "../policy/store";
import {
  decodeBundle,
  MAX_BUNDLE_BYTES,
  RESPONSE_FORMAT,
  sealBundle,
  type RequestBundle,
  type ResponseBundle,
  type UnsealedResponseBundle,
} from "./bundle-format";
import { deferActivity, type DeferredActivity } from "./activity";
import { pullChanges } from "./changes";
import { checkpointSealer, type CheckpointSealer } from "./checkpoint";
import type { SyncContext } from "./context";
import { canonicalSize } from "./digest";
import { operatorName } from "./history";
import { unstorableReason } from "./json-safety";
import { projectForReader } from "./projection";
import {
  DELETED_DIGEST,
  MAX_PAGE_LIMIT,
  MAX_PUSH_CHANGES,
  MAX_RECORD_BYTES,
  type ChangeEntry,
  type JsonObject,
  type PushResult,
} from "./protocol";
import { decisionOf, pushChanges } from "./push";
import { render, type Subject } from "./push-decide";

/**
 * Offline bundles (protocol.md): a site without a connection hands the hub a
 * file of pending changes and checkpoints; the hub pushes the changes, pulls
 * what changed since each checkpoint, and answers with a response bundle.
 *
 * A bundle applies in one database transaction: its pushes (each in a
 * savepoint, as pushChanges does), its pulls and its receipt commit together
 * or not at all. So a bundle that is refused, or that fails or is cut off by a
 * crash midway, changes nothing and can simply be sent again (its changeIds
 * would make a partial re-send idempotent too); and a bundle is refused as a
 * replay exactly when it completed. The price: the records it writes stay
 * locked for live pushes until it commits. Its own changes come back in the
 * client's next pull rather than in the response: the feed serves a version
 * only once the transaction that wrote it has ended (lib/sync/changes.ts).
 */

const BUNDLE_LOCK_CLASS = 0x0c0c02;

export const sha256Hex = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

/** A bundle file as the hub receives it: its text (a route, or a file uploaded in the console). */
export type BundleText = string;

/** Reads and checks a request bundle file: size, JSON, format, checksum, schema. Throws a ServiceError. */
export async function readRequestBundle(text: BundleText): Promise<RequestBundle> {
  if (Buffer.byteLength(text, "utf8") > MAX_BUNDLE_BYTES) {
    throw new ServiceError(
      "payload_too_large",
      `The bundle is larger than ${MAX_BUNDLE_BYTES / 1024 / 1024} MiB; export the pending changes as several smaller bundles.`,
    );
  }
  const decoded = await decodeBundle(text, "request", sha256Hex);
  if (!decoded.ok) {
    const { problem } = decoded;
    throw new ServiceError("invalid_request", problem.message, problem.code === "invalid" ? problem.issues : undefined);
  }
  refuseUnstorable(decoded.bundle);
  return decoded.bundle;
}

/**
 * A bundle applies whole or not at all, so a record the hub cannot store
 * (./json-safety) refuses the bundle before anything is applied, naming every
 * such change.
 */
function refuseUnstorable(bundle: RequestBundle): void {
  const issues: { path: string; message: string }[] = [];
  for (const [collection, changes] of Object.entries(bundle.changes)) {
    changes.forEach((change, i) => {
      const field = change.data !== undefined ? "data" : change.patch !== undefined ? "patch" : null;
      if (field === null) return;
      const reason = unstorableReason(change[field], `changes.${collection}.${i}.${field}`);
      if (reason) issues.push({ path: `changes.${collection}.${i}.${field}`, message: reason });
    });
  }
  if (issues.length > 0) {
    throw new ServiceError(
      "invalid_request",
      `The bundle holds ${issues.length === 1 ? "a record" : `${issues.length} records`} the hub cannot store: ${issues[0]?.message}${
        issues.length > 1 ? ` (and ${issues.length - 1} more)` : ""
      }. Nothing was applied; correct ${issues.length === 1 ? "it" : "them"} at the site and export the bundle again.`,
      issues,
    );
  }
}

/**
 * POST /api/v1/bundles: applies a system's request bundle with its own API key.
 * The key's system must be the bundle's.
 */
export async function applyBundle({ ctx, bundle }: { ctx: SyncContext; bundle: BundleText }): Promise<ResponseBundle> {
  const request = await readRequestBundle(bundle);
  if (request.system !== ctx.system) {
    throw new ServiceError(
      "forbidden",
      `This bundle was exported by system "${request.system}", but the API key belongs to "${ctx.system}"; upload it with ${request.system}'s key.`,
      [{ path: "system", message: `must be "${ctx.system}"` }],
    );
  }
  return apply(ctx, request, { appliedBy: ctx.system });
}

/**
 * An operator applies a bundle on a site's behalf (console upload): the same
 * checks as the API, except that the system comes from the bundle rather than
 * a key; the changes are the system's, and the audit log names the operator.
 */
export async function applyBundleForOperator({
  db,
  policy,
  bundle,
  actor,
  system,
}: {
  db: Database;
  policy: ActivePolicy;
  bundle: BundleText;
  actor: string;
  /** The system the operator applies it for (the console's system page): a bundle of another system is refused. */
  system?: string;
}): Promise<ResponseBundle> {
  const request = await readRequestBundle(bundle);
  if (system !== undefined && request.system !== system) {
    throw new ServiceError(
      "invalid_request",
      `This bundle was exported by system "${request.system}", not "${system}"; upload it on ${request.system}'s page.`,
      [{ path: "system", message: `must be "${system}"` }],
    );
  }
  if (!policy.compiled.hasSystem(request.system)) {
    throw new ServiceError(
      "forbidden",
      `System "${request.system}" is not declared in the active policy (version ${policy.version}), so its bundle cannot be applied.`,
      [{ path: "system", message: "must be a system of the active policy" }],
    );
  }
  return apply({ db, system: request.system, policy }, request, { appliedBy: operatorName(actor), auditActor: actor });
}

export const bundleIdSchema = z.uuid({ error: "bundleId must be a UUID" });

/**
 * The response bundle stored when a bundle was applied, to download it again.
 * 404 when that system never applied it. Under the policy it was answered
 * with, it is returned exactly as it was; after a policy change it is
 * rendered again under the active policy (reprojectResponse), so downloading
 * it later never shows what the system may no longer read.
 */
export async function getBundleResponse({
  db,
  system,
  bundleId,
  policy,
}: {
  db: Database;
  system: string;
  bundleId: string;
  policy: ActivePolicy;
}): Promise<ResponseBundle> {
  if (!bundleIdSchema.safeParse(bundleId).success) {
    throw new ServiceError("invalid_request", "bundleId must be a UUID.", [{ path: "bundleId", message: "must be a UUID" }]);
  }
  const [row] = await db
    .select({ response: bundleReceipts.response })
    .from(bundleReceipts)
    .where(and(eq(bundleReceipts.system, system), eq(bundleReceipts.bundleId, bundleId)));
  if (!row) {
    throw new ServiceError("not_found", `System "${system}" has applied no bundle ${bundleId}; nothing is stored for it.`);
  }
  const stored = row.response as unknown as ResponseBundle;
  if (stored.policyVersion === policy.version) return stored;
  return reprojectResponse(db, system, policy, stored);
}

/**
 * A stored response bundle under the active policy: every push result is
 * rendered again from its decision and the version it speaks of (as a
 * re-sent change is, push.ts), every pulled entry from that version in
 * history — an entry the system may no longer read becomes `removed`.
 */
async function reprojectResponse(db: Database, system: string, policy: ActivePolicy, stored: ResponseBundle): Promise<ResponseBundle> {
  const results: Record<string, PushResult[]> = {};
  const changes: Record<string, ChangeEntry[]> = {};
  for (const collection of new Set([...Object.keys(stored.results), ...Object.keys(stored.changes)])) {
    const scope = policy.compiled.scope(system, collection, "read");
    const storedResults = stored.results[collection] ?? [];
    const storedEntries = stored.changes[collection] ?? [];
    const wanted = [
      ...storedResults.filter((r) => r.version !== undefined).map((r) => ({ id: r.id, version: r.version as number })),
      ...storedEntries.flatMap((e) => ("version" in e ? [{ id: e.id, version: e.version }] : [])),
    ];
    const versions = await historyVersions(db, collection, wanted);
    const own = await ownDigests(db, system, collection, storedResults.map((r) => r.changeId));
    const subjectOf = (id: string, version: number | undefined): Subject => (version === undefined ? null : (versions.get(`${version}\u0000${id}`) ?? null));
    if (collection in stored.results) {
      results[collection] = storedResults.map((r) => {
        const decision = decisionOf(r as unknown as JsonObject);
        const ownDigest = own.get(r.changeId);
        if (ownDigest !== undefined) decision.own = ownDigest;
        return render(scope, r, decision, subjectOf(r.id, r.version));
      });
    }
    if (collection in stored.changes) {
      changes[collection] = storedEntries.map((e): ChangeEntry => {
        if (!("version" in e)) return e;
        const subject = subjectOf(e.id, e.version);
        if (subject === null || !covers(scope, subject.data)) return { id: e.id, removed: true };
        if (subject.deleted) return { id: e.id, version: e.version, digest: DELETED_DIGEST, deleted: true };
        const view = projectForReader(scope, subject.data) as { data: JsonObject; digest: string };
        return { id: e.id, version: e.version, digest: view.digest, data: view.data };
      });
    }
  }
  return sealBundle({ ...stored, policyVersion: policy.version, results, changes }, sha256Hex);
}

/** Versions of records from history, whole, keyed `${version}\0${id}`. */
async function historyVersions(db: Database, collection: string, wanted: { id: string; version: number }[]): Promise<Map<string, Subject>> {
  const found = new Map<string, Subject>();
  for (let i = 0; i < wanted.length; i += 1000) {
    const pairs = wanted.slice(i, i + 1000).map((w) => sql`(${w.id}, ${w.version}::integer)`);
    const rows = rowsOf<{ id: string; version: number; data: JsonObject | string; deleted: boolean }>(
      await db.execute(sql`select id, version, data, deleted from record_history
        where collection = ${collection} and (id, version) in (${sql.join(pairs, sql`, `)})`),
    );
    for (const r of rows) {
      const data = typeof r.data === "string" ? (JSON.parse(r.data) as JsonObject) : r.data;
      found.set(`${Number(r.version)}\u0000${r.id}`, { data, deleted: r.deleted });
    }
  }
  return found;
}

/** The digests of the system's own copies its receipts kept (push-decide.ts Decision.own), by changeId. */
async function ownDigests(db: Database, system: string, collection: string, changeIds: string[]): Promise<Map<string, string>> {
  const own = new Map<string, string>();
  if (changeIds.length === 0) return own;
  const rows = rowsOf<{ change_id: string; own: string | null }>(
    await db.execute(sql`select change_id, result->>'own' as own from ${pushReceipts}
      where system = ${system} and collection = ${collection}
        and change_id in (select jsonb_array_elements_text(${JSON.stringify(changeIds)}::jsonb))`),
  );
  for (const r of rows) if (r.own !== null) own.set(r.change_id, r.own);
  return own;
}

// ---------------------------------------------------------------------------

interface ApplyOptions {
  appliedBy: string;
  /** Set for an operator: writes an audit row. */
  auditActor?: string;
}

async function apply(ctx: SyncContext, request: RequestBundle, options: ApplyOptions): Promise<ResponseBundle> {
  // A replay is answered before the policy is consulted: its collections may have changed since.
  const earlier = await findReceipt(ctx.db, ctx.system, request.bundleId);
  if (earlier) throw replay(request, earlier);
  const plan = planBundle(ctx, request, await checkpointSealer(ctx.db));
  const requestChecksum = request.checksum;

  // Activity counted by the pushes and pulls below goes to the hub's database once the bundle committed.
  let deferred: DeferredActivity | undefined;
  const response = await ctx.db.transaction(async (tx) => {
    deferred = deferActivity(tx);
    // One applier per (system, bundle) at a time, on every instance: the second waits, then finds the receipt.
    await tx.execute(
      sql`select pg_advisory_xact_lock(${BUNDLE_LOCK_CLASS}, hashtext(${`${ctx.system}/${request.bundleId.toLowerCase()}`}))`,
    );
    const raced = await findReceipt(tx, ctx.system, request.bundleId);
    if (raced) throw replay(request, raced);

    const txCtx: SyncContext = { ...ctx, db: tx };
    const results: Record<string, PushResult[]> = {};
    for (const collection of plan.pushes) {
      const changes = request.changes[collection] ?? [];
      const collected: PushResult[] = [];
      for (let i = 0; i < changes.length; i += MAX_PUSH_CHANGES) {
        const { results: batch } = await pushChanges({
          ctx: txCtx,
          input: { collection, changes: changes.slice(i, i + MAX_PUSH_CHANGES) },
        });
        collected.push(...batch);
      }
      results[collection] = collected;
    }

    const changes: Record<string, ChangeEntry[]> = {};
    const checkpoints: Record<string, string> = {};
    for (const collection of plan.pulls) {
      const pulled = await pullAll(txCtx, collection, request.checkpoints[collection] ?? null);
      changes[collection] = pulled.changes;
      checkpoints[collection] = pulled.checkpoint;
    }

    const unsealed: UnsealedResponseBundle = {
      format: RESPONSE_FORMAT,
      bundleId: request.bundleId,
      system: ctx.system,
      policyVersion: ctx.policy.version,
      createdAt: new Date().toISOString(),
      results,
      changes,
      checkpoints,
    };
    const response = await sealBundle(unsealed, sha256Hex);
    await tx.insert(bundleReceipts).values({
      system: ctx.system,
      bundleId: request.bundleId,
      appliedBy: options.appliedBy,
      requestChecksum,
      responseChecksum: response.checksum,
      response: response as unknown as JsonObject,
    });
    if (options.auditActor !== undefined) {
      await tx.insert(auditLog).values({
        actor: options.auditActor,
        action: "bundle.apply",
        target: `bundle:${ctx.system}/${request.bundleId}`,
        details: {
          system: ctx.system,
          bundleId: request.bundleId,
          requestChecksum,
          responseChecksum: response.checksum,
          changes: Object.fromEntries(Object.entries(results).map(([c, r]) => [c, r.length])),
          pulled: Object.fromEntries(Object.entries(changes).map(([c, e]) => [c, e.length])),
          policyVersion: ctx.policy.version,
        },
      });
    }
    return response;
  });
  deferred?.commit(ctx.db);
  return response;
}

interface Plan {
  /** Collections with changes, in name order (the order their locks are taken). */
  pushes: string[];
  /** Collections whose changes since the checkpoint go back: those of `checkpoints` the system may read. */
  pulls: string[];
}

/**
 * Everything the bundle needs, checked before anything is applied: every
 * collection exists and the system has some right on it, checkpoints are this
 * server's, records are within the size limit. Problems are reported all at
 * once, each with its path in the bundle.
 */
function planBundle(ctx: SyncContext, request: RequestBundle, sealer: CheckpointSealer): Plan {
  const compiled = ctx.policy.compiled;
  const unknown: { path: string; message: string }[] = [];
  const forbidden: { path: string; message: string }[] = [];
  const rights = (collection: string) => ({
    read: compiled.scope(ctx.system, collection, "read").grants.length > 0,
    write: compiled.scope(ctx.system, collection, "write").grants.length > 0,
  });
  const check = (collection: string, path: string) => {
    if (!compiled.hasCollection(collection)) {
      unknown.push({ path, message: `there is no collection "${collection}" in the active policy (version ${ctx.policy.version})` });
      return false;
    }
    const r = rights(collection);
    if (!r.read && !r.write) {
      forbidden.push({ path, message: `system "${ctx.system}" may neither read nor write collection "${collection}"` });
      return false;
    }
    return true;
  };

  const pushes = Object.keys(request.changes).sort();
  for (const collection of pushes) check(collection, `changes.${collection}`);
  const pulls: string[] = [];
  const badCheckpoints: { path: string; message: string }[] = [];
  const staleCheckpoints: { path: string; message: string }[] = [];
  for (const collection of Object.keys(request.checkpoints).sort()) {
    if (!check(collection, `checkpoints.${collection}`)) continue;
    const checkpoint = request.checkpoints[collection];
    const opened = checkpoint == null ? null : sealer.open({ system: ctx.system, collection }, checkpoint);
    if (opened?.ok === false && opened.reason === "malformed") {
      badCheckpoints.push({ path: `checkpoints.${collection}`, message: "must be a checkpoint returned by this server, or null" });
    } else if (opened?.ok === false) {
      staleCheckpoints.push({ path: `checkpoints.${collection}`, message: "was not issued by this hub's current key" });
    }
    // A write-only collection has no feed: its checkpoint is ignored.
    if (rights(collection).read) pulls.push(collection);
  }

  if (unknown.length > 0) {
    throw new ServiceError(
      "unknown_collection",
      `The bundle names ${unknown.length === 1 ? "a collection" : "collections"} the hub does not have: ${unknown
        .map((u) => u.path)
        .join(", ")}. Nothing was applied.`,
      unknown,
    );
  }
  if (forbidden.length > 0) {
    throw new ServiceError(
      "forbidden",
      `System "${ctx.system}" may neither read nor write ${forbidden.map((f) => f.path).join(", ")} under policy version ${
        ctx.policy.version
      }. Nothing was applied; remove those changes from the bundle or ask an operator for rights.`,
      forbidden,
    );
  }
  if (badCheckpoints.length > 0) {
    throw new ServiceError(
      "invalid_request",
      `The bundle is invalid: ${badCheckpoints[0]?.path}: must be a checkpoint returned by this server, or null. Nothing was applied.`,
      badCheckpoints,
    );
  }
  if (staleCheckpoints.length > 0) {
    // An offline site cannot reconcile inside a bundle: it must resync (online, or by exporting from the beginning).
    throw new ServiceError(
      "resync_required",
      `The bundle's checkpoint${staleCheckpoints.length > 1 ? "s" : ""} ${staleCheckpoints.map((c) => c.path).join(", ")} ${
        staleCheckpoints.length > 1 ? "were" : "was"
      } not issued by this hub's current key (an older hub version, or a rotated key). Nothing was applied; sync the site online once, or reset those checkpoints and export the bundle again.`,
      staleCheckpoints,
    );
  }

  // pushChanges refuses an oversized record for its whole batch: find them before the first batch commits.
  const oversized: { path: string; message: string }[] = [];
  for (const collection of pushes) {
    (request.changes[collection] ?? []).forEach((change, i) => {
      const body = change.data ?? change.patch;
      if (body && canonicalSize(body) > MAX_RECORD_BYTES) {
        oversized.push({
          path: `changes.${collection}.${i}.${change.data ? "data" : "patch"}`,
          message: `larger than ${MAX_RECORD_BYTES / 1024} KiB as canonical JSON`,
        });
      }
    });
  }
  if (oversized.length > 0) {
    throw new ServiceError(
      "payload_too_large",
      `${oversized[0]?.path} is larger than ${MAX_RECORD_BYTES / 1024} KiB as canonical JSON; a record may be at most that size. Nothing was applied.`,
      oversized,
    );
  }
  return { pushes, pulls };
}

/** Every change since the checkpoint, page after page; a record changed during the pull keeps only its last entry. */
async function pullAll(ctx: SyncContext, collection: string, since: string | null): Promise<{ changes: ChangeEntry[]; checkpoint: string }> {
  const byId = new Map<string, ChangeEntry>();
  let checkpoint = since;
  for (;;) {
    const page = await pullChanges({ ctx, input: { collection, since: checkpoint ?? undefined, limit: MAX_PAGE_LIMIT } });
    for (const entry of page.changes) {
      byId.delete(entry.id);
      byId.set(entry.id, entry);
    }
    checkpoint = page.checkpoint;
    if (!page.hasMore) return { changes: [...byId.values()], checkpoint };
  }
}

async function findReceipt(db: Database, system: string, bundleId: string) {
  const [row] = await db
    .select({ appliedAt: bundleReceipts.appliedAt, requestChecksum: bundleReceipts.requestChecksum })
    .from(bundleReceipts)
    .where(and(eq(bundleReceipts.system, system), eq(bundleReceipts.bundleId, bundleId)));
  return row;
}

function replay(request: RequestBundle, earlier: { appliedAt: Date; requestChecksum: string }): ServiceError {
  const at = earlier.appliedAt.toISOString();
  return new ServiceError(
    "conflict",
    `This bundle was already applied at ${at}; import the response bundle you got then (GET /api/v1/bundles?bundleId=${request.bundleId} gives it again), or export a new bundle.`,
    { bundleId: request.bundleId, appliedAt: at, sameContent: earlier.requestChecksum === request.checksum },
  );
}

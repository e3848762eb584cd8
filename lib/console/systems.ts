import { count, desc, eq, isNull } from "drizzle-orm";
import { listApiKeys } from "../auth/api-keys";
import type { Database } from "../db/client";
import { apiKeys, bundleReceipts, type ApiKeyRow } from "../db/schema";
import { ServiceError } from "../errors";
import { describeScope, type Scope } from "../policy/compile";
import type { ActivePolicy } from "../policy/store";
import type { ResponseBundle } from "../sync/bundle-format";
import { collectionConfigs } from "../sync/config";
import { activityCharts, listSystemStatus, type ActivityCharts, type SystemStatus } from "./overview";

/**
 * The console's Systems pages: what each system of the active policy may do
 * (its compiled rights, exactly what /api/v1/config broadcasts to it, plus the
 * delete right), how it syncs, its API keys and the bundles applied for it.
 */

export interface Right {
  /** `all`, or the combined row condition. */
  where: string;
  /** `["*"]` or the field names. */
  fields: string[];
}

export interface CollectionRights {
  collection: string;
  read: Right | null;
  write: Right | null;
  /**
   * Deleting removes every field, so it needs a write grant with every field;
   * `where` is the condition of those grants.
   */
  delete: { where: string } | null;
  strategy: string;
  fallback: string;
}

/** The system's rights per collection under the active policy, as /api/v1/config broadcasts them, plus delete. */
export function effectiveRights(policy: ActivePolicy, system: string): CollectionRights[] {
  return Object.entries(collectionConfigs(policy.compiled, system)).map(([collection, c]) => ({
    collection,
    read: c.read,
    write: c.write,
    delete: deleteRight(policy.compiled.scope(system, collection, "write")),
    ...c.conflict,
  }));
}

function deleteRight(scope: Scope): { where: string } | null {
  const whole = { ...scope, grants: scope.grants.filter((g) => g.fields === "*") };
  const described = describeScope(whole);
  return described ? { where: described.where } : null;
}

export interface SystemSummary extends SystemStatus {
  priority: number;
  /** Collections it may read / write. */
  reads: number;
  writes: number;
  activeKeys: number;
}

/** Every system of the active policy, with its status and a count of its rights and live keys. */
export async function listSystems(db: Database, policy: ActivePolicy): Promise<SystemSummary[]> {
  const statuses = await listSystemStatus(db, policy);
  const keyCounts = await db
    .select({ system: apiKeys.system, n: count() })
    .from(apiKeys)
    .where(isNull(apiKeys.revokedAt))
    .groupBy(apiKeys.system);
  const keysBySystem = new Map(keyCounts.map((k) => [k.system, Number(k.n)]));
  return statuses.map((s) => {
    const rights = Object.values(collectionConfigs(policy.compiled, s.name));
    return {
      ...s,
      priority: policy.compiled.priority(s.name),
      reads: rights.filter((r) => r.read).length,
      writes: rights.filter((r) => r.write).length,
      activeKeys: keysBySystem.get(s.name) ?? 0,
    };
  });
}

export interface AppliedBundle {
  bundleId: string;
  appliedAt: Date;
  appliedBy: string;
}

export interface SystemDetail {
  status: SystemStatus;
  priority: number;
  sync: { intervalSeconds: number; realtime: boolean };
  rights: CollectionRights[];
  keys: Omit<ApiKeyRow, "keyHash">[];
  activity: ActivityCharts;
  bundles: AppliedBundle[];
}

/** Everything the system page shows; `not_found` for a system the active policy does not declare. */
export async function getSystemDetail(db: Database, policy: ActivePolicy, system: string): Promise<SystemDetail> {
  if (!policy.compiled.hasSystem(system)) {
    throw new ServiceError("not_found", `The active policy (version ${policy.version}) declares no system "${system}".`);
  }
  const [[status], keys, activity, bundles] = await Promise.all([
    listSystemStatus(db, policy, system),
    listApiKeys(db, system),
    activityCharts(db, { system }),
    listAppliedBundles(db, system),
  ]);
  const { intervalSeconds, realtime } = policy.compiled.sync(system);
  return {
    status: status as SystemStatus, // one row per declared system, and this one is declared
    priority: policy.compiled.priority(system),
    sync: { intervalSeconds, realtime },
    rights: effectiveRights(policy, system),
    keys,
    activity,
    bundles,
  };
}

/** The last bundles applied for the system (by its key or by an operator), newest first. */
export async function listAppliedBundles(db: Database, system: string, limit = 10): Promise<AppliedBundle[]> {
  return db
    .select({ bundleId: bundleReceipts.bundleId, appliedAt: bundleReceipts.appliedAt, appliedBy: bundleReceipts.appliedBy })
    .from(bundleReceipts)
    .where(eq(bundleReceipts.system, system))
    .orderBy(desc(bundleReceipts.appliedAt))
    .limit(limit);
}

export interface BundleSummary {
  bundleId: string;
  system: string;
  policyVersion: number;
  /** Per collection: how many pushed changes ended in each status. */
  results: Record<string, Record<string, number>>;
  /** Per collection: how many changes go back to the site. */
  pulled: Record<string, number>;
  changes: number;
  conflicts: number;
}

/** What an operator needs to see after applying a bundle: counts, not the data. */
export function summarizeBundle(response: ResponseBundle): BundleSummary {
  const results: Record<string, Record<string, number>> = {};
  let changes = 0;
  let conflicts = 0;
  for (const [collection, list] of Object.entries(response.results)) {
    const byStatus: Record<string, number> = {};
    for (const r of list) {
      byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
      changes += 1;
      if (r.conflict) conflicts += 1;
    }
    results[collection] = byStatus;
  }
  const pulled = Object.fromEntries(Object.entries(response.changes).map(([c, list]) => [c, list.length]));
  return { bundleId: response.bundleId, system: response.system, policyVersion: response.policyVersion, results, pulled, changes, conflicts };
}

import { desc, eq, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { auditLog, policyVersions, type PolicyVersionRow } from "../db/schema";
import { ServiceError } from "../errors";
import { CompiledPolicy } from "./compile";
import { policyChecker } from "./checker";
import type { PolicyIssue } from "./validate";

/** The NOTIFY channel on which an activation tells every instance. */
export const POLICY_CHANNEL = "concord_policy";
const ACTIVATION_LOCK_KEY = 0x0c0c0e;

export interface ActivePolicy {
  version: number;
  yaml: string;
  activatedAt: Date;
  activatedBy: string;
  compiled: CompiledPolicy;
}

export type PolicySource = "default" | "api" | "console" | "rollback";

export interface ActivateInput {
  yaml: string;
  actor: string;
  source: PolicySource;
  comment?: string | null;
  rolledBackFrom?: number | null;
  /** Activate only when no policy exists yet (first start); otherwise do nothing. */
  onlyIfNone?: boolean;
  /**
   * The active version the new text was written against (the console's
   * draft). Checked inside the activation transaction, under the activation
   * lock, so a concurrent activation cannot be silently overwritten.
   */
  expectedVersion?: number | null;
}

export interface ActivateResult {
  version: number;
  warnings: PolicyIssue[];
}

/**
 * Validates a policy file and, when valid, stores it as the next version and
 * makes it active (claim 7: policy files define rights and conflict handling).
 * An invalid file throws `policy_invalid` with line-numbered details and
 * changes nothing.
 */
export async function activatePolicy(db: Database, input: ActivateInput & { onlyIfNone: true }): Promise<ActivateResult | null>;
export async function activatePolicy(db: Database, input: ActivateInput): Promise<ActivateResult>;
export async function activatePolicy(db: Database, input: ActivateInput): Promise<ActivateResult | null> {
  // Off the event loop (lib/policy/checker.ts), and loaded into the engine
  // there too, so a file the engine cannot load is never activated.
  const result = await policyChecker().check(input.yaml);
  if (!result.ok) throw invalid(result.errors);

  const version = await db.transaction(async (tx) => {
    // Serialise activations so versions are consecutive, across instances.
    await tx.execute(sql`select pg_advisory_xact_lock(${ACTIVATION_LOCK_KEY})`);
    const [latest] = await tx
      .select({ version: policyVersions.version })
      .from(policyVersions)
      .orderBy(desc(policyVersions.version))
      .limit(1);
    if (latest && input.onlyIfNone) return null;
    const expected = input.expectedVersion;
    if (expected !== undefined && expected !== null && (latest?.version ?? 0) !== expected) {
      throw new ServiceError(
        "conflict",
        `The active policy changed meanwhile: this change was made against version ${expected}, but version ${latest?.version ?? 0} is active now. Nothing was changed; reload the active version, check it, and try again.`,
        { expectedVersion: expected, activeVersion: latest?.version ?? 0 },
      );
    }
    const next = (latest?.version ?? 0) + 1;
    await tx.insert(policyVersions).values({
      version: next,
      yaml: input.yaml,
      comment: input.comment ?? null,
      source: input.source,
      rolledBackFrom: input.rolledBackFrom ?? null,
      activatedBy: input.actor,
    });
    await tx.insert(auditLog).values({
      actor: input.actor,
      action: input.source === "rollback" ? "policy.rollback" : "policy.activate",
      target: `policy:${next}`,
      details: {
        version: next,
        source: input.source,
        comment: input.comment ?? null,
        rolledBackFrom: input.rolledBackFrom ?? null,
        warnings: result.warnings.length,
      },
    });
    await tx.execute(sql`select pg_notify(${POLICY_CHANNEL}, ${String(next)})`);
    return next;
  });
  return version === null ? null : { version, warnings: result.warnings };
}

/** Validates without activating: the same checks, nothing stored. */
export async function dryRunPolicy(yaml: string): Promise<{ warnings: PolicyIssue[] }> {
  const result = await policyChecker().check(yaml);
  if (!result.ok) throw invalid(result.errors);
  return { warnings: result.warnings };
}

/** Activates the text of an earlier version again, as a new version. */
export async function rollbackPolicy(
  db: Database,
  input: { toVersion: number; actor: string; comment?: string | null; expectedVersion?: number | null },
): Promise<ActivateResult> {
  const [row] = await db.select().from(policyVersions).where(eq(policyVersions.version, input.toVersion));
  if (!row) throw new ServiceError("not_found", `There is no policy version ${input.toVersion} to roll back to.`);
  return await activatePolicy(db, {
    yaml: row.yaml,
    actor: input.actor,
    source: "rollback",
    comment: input.comment ?? `rollback to version ${input.toVersion}`,
    rolledBackFrom: input.toVersion,
    expectedVersion: input.expectedVersion ?? null,
  });
}

export async function listPolicyVersions(
  db: Database,
): Promise<Omit<PolicyVersionRow, "yaml">[]> {
  return db
    .select({
      version: policyVersions.version,
      comment: policyVersions.comment,
      source: policyVersions.source,
      rolledBackFrom: policyVersions.rolledBackFrom,
      activatedBy: policyVersions.activatedBy,
      activatedAt: policyVersions.activatedAt,
    })
    .from(policyVersions)
    .orderBy(desc(policyVersions.version));
}

export async function getPolicyVersion(db: Database, version: number): Promise<PolicyVersionRow | undefined> {
  const [row] = await db.select().from(policyVersions).where(eq(policyVersions.version, version));
  return row;
}

// ---------------------------------------------------------------------------
// The active policy, cached per process

/**
 * The compiled form of the active policy is cached; each call checks the
 * active version number (one indexed row, or read by the caller in the same
 * statement as something else) so an activation by any instance applies
 * here on the very next request, with no window of stale rights.
 */
const cache = new WeakMap<Database, ActivePolicy>();
const loading = new WeakMap<Database, Promise<ActivePolicy>>();

export async function getActivePolicy(db: Database, knownVersion?: number): Promise<ActivePolicy> {
  // A caller that has just read the active version (authenticateApiKey reads it with the key) spares the query.
  const [latest] =
    knownVersion !== undefined
      ? [{ version: knownVersion }]
      : await db.select({ version: policyVersions.version }).from(policyVersions).orderBy(desc(policyVersions.version)).limit(1);
  if (!latest) {
    throw new ServiceError(
      "internal",
      "No policy is active. Activate one with PUT /api/admin/policy (the hub activates policies/example.yaml on first start).",
    );
  }
  const cached = cache.get(db);
  if (cached && cached.version === latest.version) return cached;
  const pending = loading.get(db);
  if (pending) {
    const loaded = await pending;
    if (loaded.version === latest.version) return loaded;
  }
  const promise = loadVersion(db, latest.version);
  loading.set(db, promise);
  try {
    const active = await promise;
    const current = cache.get(db);
    if (!current || current.version < active.version) cache.set(db, active);
    return active;
  } finally {
    if (loading.get(db) === promise) loading.delete(db);
  }
}

async function loadVersion(db: Database, version: number): Promise<ActivePolicy> {
  const row = await getPolicyVersion(db, version);
  if (!row) throw new ServiceError("internal", `Policy version ${version} disappeared while loading.`);
  // Parsed and validated in the checker's worker; only building the engine runs here.
  const result = await policyChecker().load(row.yaml);
  if (!result.ok) {
    // Only possible if validation rules tightened after the file was activated.
    const first = result.errors[0];
    throw new ServiceError(
      "internal",
      `The active policy (version ${version}) no longer validates (line ${first?.line}: ${first?.message}). Activate a corrected policy with PUT /api/admin/policy.`,
    );
  }
  return {
    version: row.version,
    yaml: row.yaml,
    activatedAt: row.activatedAt,
    activatedBy: row.activatedBy,
    compiled: await CompiledPolicy.create(result.policy),
  };
}

/** Whether any policy has ever been activated. */
export async function hasAnyPolicy(db: Database): Promise<boolean> {
  const [row] = await db.select({ version: policyVersions.version }).from(policyVersions).limit(1);
  return row !== undefined;
}

function invalid(errors: PolicyIssue[]): ServiceError {
  const first = errors[0];
  const summary = first ? ` First problem, line ${first.line} column ${first.column}: ${first.message}` : "";
  return new ServiceError(
    "policy_invalid",
    `The policy is invalid (${errors.length} problem${errors.length === 1 ? "" : "s"}); nothing was changed.${summary}`,
    errors,
  );
}

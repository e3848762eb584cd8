import { and, asc, desc, gt, lt, max, type SQL } from "drizzle-orm";
import type { Database } from "../db/client";
import { policyVersions, type PolicyVersionRow } from "../db/schema";
import { getPolicyVersion } from "../policy/store";
import { diffPolicies, type PolicyDiff } from "./policy-diff";

export type VersionSummary = Omit<PolicyVersionRow, "yaml">;

export interface VersionPage {
  rows: VersionSummary[];
  /** The newest version, i.e. the active one (0 when none). */
  activeVersion: number;
  /** Cursor for older versions (`before`), when there are any. */
  olderBefore: number | null;
  /** Cursor for newer versions (`after`), when there are any. */
  newerAfter: number | null;
}

const summary = {
  version: policyVersions.version,
  comment: policyVersions.comment,
  source: policyVersions.source,
  rolledBackFrom: policyVersions.rolledBackFrom,
  activatedBy: policyVersions.activatedBy,
  activatedAt: policyVersions.activatedAt,
};

/**
 * One page of policy versions, newest first, by keyset on the version number:
 * `before` gives the page of versions below it, `after` the page just above.
 */
export async function listVersionsPage(
  db: Database,
  input: { before?: number; after?: number; pageSize?: number },
): Promise<VersionPage> {
  const pageSize = input.pageSize ?? 20;
  const [top] = await db.select({ version: max(policyVersions.version) }).from(policyVersions);
  const activeVersion = top?.version ?? 0;
  let rows: VersionSummary[];
  if (input.after !== undefined) {
    rows = (
      await db.select(summary).from(policyVersions).where(gt(policyVersions.version, input.after)).orderBy(asc(policyVersions.version)).limit(pageSize)
    ).reverse();
  } else {
    const where: SQL | undefined = input.before !== undefined ? lt(policyVersions.version, input.before) : undefined;
    rows = await db.select(summary).from(policyVersions).where(and(where)).orderBy(desc(policyVersions.version)).limit(pageSize);
  }
  const newest = rows[0]?.version;
  const oldest = rows[rows.length - 1]?.version;
  // Versions are numbered 1, 2, 3, … without gaps (activatePolicy), so older ones exist below any version above 1.
  return {
    rows,
    activeVersion,
    olderBefore: oldest !== undefined && oldest > 1 ? oldest : null,
    newerAfter: newest !== undefined && newest < activeVersion ? newest : null,
  };
}

export interface VersionDetail {
  version: PolicyVersionRow;
  previous: number | null;
  activeVersion: number;
  /** The change from the previous version (the whole text as added for version 1). */
  diff: PolicyDiff;
}

export async function getVersionDetail(db: Database, version: number): Promise<VersionDetail | null> {
  const row = await getPolicyVersion(db, version);
  if (!row) return null;
  const prev = version > 1 ? await getPolicyVersion(db, version - 1) : undefined;
  const [top] = await db.select({ version: max(policyVersions.version) }).from(policyVersions);
  return {
    version: row,
    previous: prev?.version ?? null,
    activeVersion: top?.version ?? row.version,
    diff: diffPolicies(prev?.yaml ?? "", row.yaml),
  };
}

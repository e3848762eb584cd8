import { CompiledPolicy } from "./compile";
import { validatePolicy, type Policy, type PolicyIssue } from "./validate";

/**
 * What the policy checker's worker (lib/policy/checker.ts) does with policy
 * text:
 * - `check`: validate it and load it into the policy engine the way
 *   activation will, so a file Casbin refuses is reported as a problem of the
 *   file; answer with the problems and the names it declares (small, so
 *   handing the answer back costs the server nothing);
 * - `load`: validate it and hand back the normalised policy, which the
 *   caller compiles (the compiled engine holds functions and cannot cross
 *   threads).
 */
export type CheckMode = "check" | "load";

export type CheckResult =
  | { ok: true; warnings: PolicyIssue[]; systems: string[]; collections: string[] }
  | { ok: false; errors: PolicyIssue[]; warnings: PolicyIssue[] };

export type LoadResult = { ok: true; policy: Policy; warnings: PolicyIssue[] } | { ok: false; errors: PolicyIssue[]; warnings: PolicyIssue[] };

export async function checkPolicyText(yaml: string): Promise<CheckResult> {
  const result = validatePolicy(yaml);
  if (!result.ok) return result;
  try {
    await CompiledPolicy.create(result.policy);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return {
      ok: false,
      errors: [{ line: 1, column: 1, message: `the policy engine could not load this policy: ${message}` }],
      warnings: result.warnings,
    };
  }
  return {
    ok: true,
    warnings: result.warnings,
    systems: Object.keys(result.policy.systems),
    collections: Object.keys(result.policy.collections),
  };
}

export function loadPolicyText(yaml: string): LoadResult {
  return validatePolicy(yaml);
}

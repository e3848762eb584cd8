import type { PolicyFile, RightInput } from "./document";

/**
 * How large a policy may be. Each limit is far above any real hub's policy
 * (the example policy has 4 systems, 3 collections and 10 rules) and low
 * enough that checking and loading the largest allowed policy takes well
 * under a second, so no policy can stall the hub. The text itself is at most
 * MAX_POLICY_BYTES (256 KiB), and each condition at most 4,096 characters and
 * 256 comparisons (lib/policy/condition/ast.ts).
 */
export const POLICY_LIMITS = {
  /** Declared systems. */
  systems: 100,
  /** Declared groups. */
  groups: 100,
  /** Members of all groups together. */
  groupMembers: 2_000,
  /** Declared collections. */
  collections: 200,
  /** Rules. */
  rules: 1_000,
  /** Field names in all `fields` lists together. */
  fieldNames: 10_000,
  /** Characters of all conditions together. */
  conditionCharacters: 64 * 1024,
  /**
   * System–rule pairs: each rule counts once for every system its `who`
   * names (`"*"` names them all, a group its members). What the engine builds
   * grows with this number.
   */
  reach: 20_000,
} as const;

export interface LimitIssue {
  /** Where in the file (a path of keys), for the line and column. */
  path: readonly (string | number)[];
  message: string;
}

const n = (value: number): string => value.toLocaleString("en-US");

function rights(file: PolicyFile): RightInput[] {
  return file.rules.flatMap((rule) => [rule.read, rule.write].filter((r): r is RightInput => r !== undefined));
}

/** What a policy file exceeds, in sentences that say what to change. Empty when it is within every limit. */
export function policyLimitIssues(file: PolicyFile): LimitIssue[] {
  const issues: LimitIssue[] = [];
  const over = (count: number, limit: number, path: LimitIssue["path"], what: string, advice: string) => {
    if (count > limit) issues.push({ path, message: `${what}: ${n(count)}, at most ${n(limit)} are allowed; ${advice}` });
  };
  const systems = Object.keys(file.systems).length;
  over(systems, POLICY_LIMITS.systems, ["systems"], "the policy declares too many systems", "one hub serves at most that many business systems");
  over(Object.keys(file.groups).length, POLICY_LIMITS.groups, ["groups"], "the policy declares too many groups", "merge groups that list the same systems");
  const members = Object.values(file.groups).reduce((sum, list) => sum + list.length, 0);
  over(members, POLICY_LIMITS.groupMembers, ["groups"], "the groups list too many members together", "merge groups that list the same systems");
  over(Object.keys(file.collections).length, POLICY_LIMITS.collections, ["collections"], "the policy declares too many collections", "one hub shares at most that many collections");
  over(file.rules.length, POLICY_LIMITS.rules, ["rules"], "the policy has too many rules", 'combine rules with groups or "*" and with conditions');

  const all = rights(file);
  const fieldNames = all.reduce((sum, r) => sum + (typeof r === "string" ? 0 : (r.fields?.length ?? 0)), 0);
  over(fieldNames, POLICY_LIMITS.fieldNames, ["rules"], "the rules' field lists name too many fields together", 'use ["*"] where a rule may see every field');
  const conditionCharacters = all.reduce((sum, r) => sum + (typeof r === "string" ? r.length : (r.where?.length ?? 0)), 0);
  over(
    conditionCharacters,
    POLICY_LIMITS.conditionCharacters,
    ["rules"],
    "the rules' conditions are too long together (characters)",
    "shorten conditions, for example with `in [...]` instead of many `or`s",
  );

  // Reach: only when the counts it multiplies are within their own limits (else those issues say enough).
  if (issues.length === 0) {
    const groupSize = (name: string): number => (Object.hasOwn(file.groups, name) ? (file.groups[name]?.length ?? 0) : 0);
    const reach = file.rules.reduce((sum, rule) => {
      if (rule.who === "*") return sum + systems;
      if (rule.who.startsWith("group:")) return sum + groupSize(rule.who.slice("group:".length));
      return sum + 1;
    }, 0);
    over(
      reach,
      POLICY_LIMITS.reach,
      ["rules"],
      'the rules reach too many systems together (each rule counts once for every system its "who" names: "*" all of them, a group its members)',
      'combine rules for "*" and large groups on the same collection into fewer rules',
    );
  }
  return issues;
}

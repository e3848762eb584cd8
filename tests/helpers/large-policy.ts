import { POLICY_LIMITS } from "@/lib/policy/limits";
import { MAX_POLICY_BYTES } from "@/lib/policy/validate";

/**
 * A valid policy at the size and complexity bounds (lib/policy/limits.ts):
 * the most systems, groups, collections, rules, field names and reach
 * allowed, with conditions on every rule, just under MAX_POLICY_BYTES. The
 * slowest policy the hub accepts to check and load. `extra` adds that many
 * systems beyond the limit (a policy just over it).
 */
export function policyAtTheBounds(options: { extraSystems?: number } = {}): string {
  const systems = POLICY_LIMITS.systems + (options.extraSystems ?? 0);
  const groupSize = 20;
  const groups = POLICY_LIMITS.systems / groupSize;
  const rules = POLICY_LIMITS.rules;
  const fieldsPerRule = POLICY_LIMITS.fieldNames / rules;
  const lines = ["version: 1", "systems:"];
  for (let s = 0; s < systems; s++) lines.push(`  s${s}: {priority: ${s}}`);
  lines.push("groups:");
  for (let g = 0; g < groups; g++) {
    lines.push(`  g${g}: [${Array.from({ length: groupSize }, (_, i) => `s${g * groupSize + i}`).join(", ")}]`);
  }
  lines.push("collections:");
  for (let c = 0; c < POLICY_LIMITS.collections; c++) lines.push(`  c${c}: {conflict: ${c % 2 ? "field-merge" : "priority"}}`);
  lines.push("rules:");
  for (let r = 0; r < rules; r++) {
    const fields = Array.from({ length: fieldsPerRule }, (_, i) => `f${i}`).join(", ");
    // ~60 characters: under the total for conditions.
    const where = `region in ['n${r % 7}', 's${r % 5}'] and total > ${r} or exists(vip)`;
    lines.push(`  - who: group:g${r % groups}`, `    collection: c${r % POLICY_LIMITS.collections}`, `    read: {where: "${where}", fields: [${fields}]}`);
  }
  const text = `${lines.join("\n")}\n`;
  if (Buffer.byteLength(text) > MAX_POLICY_BYTES) throw new Error(`the bound policy is ${Buffer.byteLength(text)} bytes, over ${MAX_POLICY_BYTES}`);
  return text;
}

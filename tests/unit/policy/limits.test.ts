import { describe, expect, it } from "vitest";
import { POLICY_LIMITS } from "@/lib/policy/limits";
import { validatePolicy } from "@/lib/policy/validate";
import { policyAtTheBounds } from "@/tests/helpers/large-policy";

function policy(parts: { systems?: number; groups?: number; collections?: number; rules?: string[] }): string {
  const systems = parts.systems ?? 1;
  const lines = ["version: 1", "systems:"];
  for (let i = 0; i < systems; i++) lines.push(`  s${i}: {}`);
  if (parts.groups) {
    lines.push("groups:");
    for (let i = 0; i < parts.groups; i++) lines.push(`  g${i}: [s0]`);
  }
  lines.push("collections:");
  for (let i = 0; i < (parts.collections ?? 1); i++) lines.push(`  c${i}: {}`);
  lines.push("rules:", ...(parts.rules ?? ["  - {who: s0, collection: c0, read: all}"]));
  return `${lines.join("\n")}\n`;
}

function errorsOf(text: string) {
  const result = validatePolicy(text);
  if (result.ok) throw new Error("expected the policy to be refused");
  return result.errors;
}

describe("policy size and complexity limits", () => {
  it("accept the largest policy within every limit", () => {
    const result = validatePolicy(policyAtTheBounds());
    expect(result.ok).toBe(true);
  });

  it.each([
    ["systems", () => policy({ systems: POLICY_LIMITS.systems + 1 }), 3, /too many systems: 101, at most 100 are allowed/],
    ["groups", () => policy({ groups: POLICY_LIMITS.groups + 1 }), 5, /too many groups: 101, at most 100/],
    ["collections", () => policy({ collections: POLICY_LIMITS.collections + 1 }), 5, /too many collections: 201, at most 200/],
    [
      "rules",
      () => policy({ rules: Array.from({ length: POLICY_LIMITS.rules + 1 }, () => "  - {who: s0, collection: c0, read: all}") }),
      7,
      /too many rules: 1,001, at most 1,000 are allowed; combine rules/,
    ],
    [
      "field names",
      () => policy({ rules: Array.from({ length: 101 }, () => `  - {who: s0, collection: c0, read: {fields: [${Array.from({ length: 100 }, (_, i) => `f${i}`).join(", ")}]}}`) }),
      7,
      /field lists name too many fields together: 10,100, at most 10,000/,
    ],
    [
      "condition text",
      () => policy({ rules: Array.from({ length: 20 }, () => `  - {who: s0, collection: c0, read: "${"a == 1 or ".repeat(400)}a == 1"}`) }),
      7,
      /conditions are too long together \(characters\): 80,120, at most 65,536/,
    ],
    [
      "reach",
      () => policy({ systems: 100, rules: Array.from({ length: 201 }, () => '  - {who: "*", collection: c0, read: all}') }),
      106,
      /rules reach too many systems together .*: 20,100, at most 20,000/,
    ],
  ])("refuse too many %s with a sentence at the section's first entry", (_what, make, line, message) => {
    const errors = errorsOf(make());
    expect(errors).toHaveLength(1);
    expect(errors[0]?.message).toMatch(message);
    expect(errors[0]?.line).toBe(line);
  });

  it("count a group's members towards the reach", () => {
    const members = Array.from({ length: 100 }, (_, i) => `s${i}`).join(", ");
    const text = policy({ systems: 100, rules: Array.from({ length: 201 }, () => "  - {who: group:all, collection: c0, read: all}") }).replace(
      "collections:",
      `groups:\n  all: [${members}]\ncollections:`,
    );
    expect(errorsOf(text)[0]?.message).toMatch(/reach too many systems together/);
  });
});

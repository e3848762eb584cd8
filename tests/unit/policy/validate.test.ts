import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { validatePolicy, type PolicyIssue } from "@/lib/policy/validate";

const example = readFileSync("policies/example.yaml", "utf8");

const minimal = `version: 1
systems:
  crm: {name: CRM}
collections:
  customers: {conflict: server-wins}
rules:
  - who: crm
    collection: customers
    read: all
`;

function errorsOf(source: string): PolicyIssue[] {
  const result = validatePolicy(source);
  if (result.ok) throw new Error("expected the policy to be invalid");
  return result.errors;
}

describe("validatePolicy", () => {
  it("accepts the example policy without warnings", () => {
    const result = validatePolicy(example);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.warnings).toEqual([]);
    expect(Object.keys(result.policy.systems)).toEqual(["crm", "billing", "warehouse", "webshop"]);
    expect(result.policy.sync.systems.warehouse).toEqual({ intervalSeconds: 900, realtime: false });
    expect(result.policy.sync.systems.crm).toBeUndefined();
    expect(result.policy.sync.default).toEqual({ intervalSeconds: 60, realtime: true });
  });

  it("fills in defaults: priority 0, server-wins, fallback manual, all fields", () => {
    const result = validatePolicy(`version: 1
systems: {crm: {}}
collections: {customers: {}}
rules: [{who: crm, collection: customers, read: "region == 'north'"}]
`);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.policy.systems.crm).toEqual({ name: "crm", priority: 0 });
    expect(result.policy.collections.customers).toEqual({ conflict: "server-wins", fallback: "manual" });
    expect(result.policy.rules[0]?.read?.fields).toBe("*");
    expect(result.policy.rules[0]?.read?.whereText).toBe("region == 'north'");
  });

  // Each case: the file, then the line, column and words the operator must see.
  const cases: { name: string; source: string; line: number; column: number; message: RegExp }[] = [
    {
      name: "unknown system in who",
      source: minimal.replace("who: crm", "who: crn"),
      line: 7,
      column: 10,
      message: /unknown system "crn" in who \(did you mean "crm"\?\)/,
    },
    {
      name: "unknown collection",
      source: minimal.replace("collection: customers", "collection: customer"),
      line: 8,
      column: 17,
      message: /unknown collection "customer" \(did you mean "customers"\?\)/,
    },
    {
      name: "unknown group",
      source: minimal.replace("who: crm", "who: group:sales"),
      line: 7,
      column: 10,
      message: /unknown group "sales"/,
    },
    {
      name: "unknown strategy",
      source: minimal.replace("conflict: server-wins", "conflict: newest-wins"),
      line: 5,
      column: 25,
      message: /unknown conflict strategy "newest-wins"; use one of server-wins, client-wins/,
    },
    {
      name: "duplicate key",
      source: minimal.replace("  crm: {name: CRM}\n", "  crm: {name: CRM}\n  crm: {name: Again}\n"),
      line: 4,
      column: 3,
      message: /duplicate key/,
    },
    {
      name: "wrong type",
      source: minimal.replace("{name: CRM}", "{name: CRM, priority: high}"),
      line: 3,
      column: 30,
      message: /systems\.crm\.priority: must be a number, not the text "high"/,
    },
    {
      name: "unknown key",
      source: minimal.replace("    read: all\n", "    read: all\n    delete: all\n"),
      line: 7,
      column: 5,
      message: /unknown key "delete"/,
    },
    {
      name: "condition that does not parse, pointing inside it",
      source: minimal.replace("read: all", "read: region = 'north'"),
      line: 9,
      column: 18,
      message: /condition "region = 'north'" does not parse at character 8: .*==/,
    },
    {
      name: "condition in a quoted where, pointing inside it",
      source: minimal.replace("read: all", `read: {where: "total > 0 and and"}`),
      line: 9,
      column: 34,
      message: /does not parse at character 15/,
    },
    {
      name: "unknown system in a group",
      source: minimal.replace("collections:", "groups:\n  finance: [billing]\ncollections:"),
      line: 5,
      column: 13,
      message: /unknown system "billing" in group "finance"/,
    },
    {
      name: "unknown system in sync",
      source: `${minimal}sync:\n  warehouse: {interval: 15m}\n`,
      line: 11,
      column: 14,
      message: /unknown system "warehouse" in sync/,
    },
    {
      name: "bad interval",
      source: `${minimal}sync:\n  default: {interval: soon}\n`,
      line: 11,
      column: 23,
      message: /interval must look like 30s, 15m/,
    },
    {
      name: "YAML syntax error",
      source: "version: 1\nsystems: {crm: {name: CRM}\n",
      line: 3,
      column: 1,
      message: /./,
    },
    {
      name: "wrong format version",
      source: minimal.replace("version: 1", "version: 2"),
      line: 1,
      column: 10,
      message: /version must be 1/,
    },
  ];

  it.each(cases)("refuses $name with its line and column", ({ source, line, column, message }) => {
    const errors = errorsOf(source);
    expect(errors[0]).toMatchObject({ line, column });
    expect(errors[0]?.message).toMatch(message);
  });

  describe("a write condition tests only fields the system can read (else refusals reveal them)", () => {
    const policy = (rules: string) => `version: 1
systems: {crm: {}, billing: {}}
groups: {finance: [billing]}
collections: {customers: {}}
rules:
${rules}`;

    it("refuses a condition over a field outside the read fields, at the condition", () => {
      const errors = errorsOf(
        policy(`  - who: billing
    collection: customers
    read: {fields: [name, credit_limit]}
    write: {where: "region == 'north'", fields: [credit_limit]}
`),
      );
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({ line: 9, column: 20 });
      expect(errors[0]?.message).toMatch(/tests "region", which system "billing" cannot read in every record of "customers" it can read/);
      expect(errors[0]?.message).toMatch(/Add "region" to its read fields there/);
    });

    it("counts only fields readable under every read rule of the system, through groups too", () => {
      const errors = errorsOf(
        policy(`  - {who: group:finance, collection: customers, read: {fields: [name, region]}}
  - {who: billing, collection: customers, read: {where: "vip == true", fields: [name, notes]}}
  - {who: "*", collection: customers, write: "region == 'north' and name != null"}
`),
      );
      expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/tests "region", which system "billing"/)]);
    });

    it("accepts conditions over readable fields, nested paths of a readable field, and systems that cannot read", () => {
      for (const rules of [
        `  - {who: crm, collection: customers, read: all, write: "region == 'north'"}\n`,
        `  - {who: billing, collection: customers, read: {fields: [address]}, write: {where: "address.city == 'Oslo'", fields: [address]}}\n`,
        `  - {who: billing, collection: customers, write: "region == 'north'"}\n`,
      ]) {
        const result = validatePolicy(policy(rules));
        expect(result.ok, JSON.stringify(result)).toBe(true);
      }
    });
  });

  it("refuses two strategies for one system and collection", () => {
    const errors = errorsOf(`version: 1
systems: {crm: {}, billing: {}}
groups: {finance: [billing]}
collections: {customers: {}}
rules:
  - {who: "*", collection: customers, read: all, conflict: client-wins}
  - {who: group:finance, collection: customers, write: all, conflict: priority}
`);
    expect(errors[0]?.line).toBe(7);
    expect(errors[0]?.message).toMatch(/system "billing" gets conflict strategy priority here but client-wins from rule 1/);
  });

  it("refuses two fallbacks for one system and collection", () => {
    const errors = errorsOf(`version: 1
systems: {crm: {}}
collections: {customers: {conflict: field-merge}}
rules:
  - {who: "*", collection: customers, read: all, fallback: client-wins}
  - {who: crm, collection: customers, write: all, fallback: priority}
`);
    expect(errors[0]?.line).toBe(6);
    expect(errors[0]?.message).toMatch(/system "crm" gets fallback priority here but client-wins from rule 1/);
  });

  it("warns about rules that grant nothing and systems that reach nothing", () => {
    const result = validatePolicy(`version: 1
systems: {crm: {}, idle: {}}
collections: {customers: {}}
rules:
  - {who: crm, collection: customers, read: all}
  - {who: idle, collection: customers}
`);
    expect(result.ok).toBe(true);
    expect(result.warnings.map((w) => [w.line, w.message])).toEqual([
      [2, expect.stringMatching(/system "idle" can reach no collection/)],
      [6, expect.stringMatching(/grants nothing/)],
    ]);
  });
});

describe("hostile policy files", () => {
  it("refuses U+0000 and lone surrogates, even in a comment, at their line and column (the stored text could not hold them)", () => {
    expect(errorsOf(`${minimal}# note a\u0000b\n`)).toEqual([
      { line: minimal.split("\n").length, column: 9, message: expect.stringMatching(/U\+0000/) },
    ]);
    expect(errorsOf(`# x\ud800\n${minimal}`)).toEqual([{ line: 1, column: 4, message: expect.stringMatching(/lone surrogate/) }]);
    expect(validatePolicy(`# 😀\n${minimal}`).ok).toBe(true);
  });

  it("refuses a file over 256 KiB before parsing it", () => {
    const errors = errorsOf(`version: 1\n# ${"x".repeat(300 * 1024)}\n`);
    expect(errors[0]?.message).toMatch(/larger than 256 KiB/);
  });

  it("refuses an alias bomb", () => {
    const bomb = [
      "a: &a [x, x, x, x, x, x, x, x, x]",
      ...Array.from({ length: 8 }, (_, i) => {
        const prev = String.fromCharCode(97 + i);
        const next = String.fromCharCode(98 + i);
        return `${next}: &${next} [*${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}, *${prev}]`;
      }),
    ].join("\n");
    const errors = errorsOf(bomb);
    expect(errors[0]?.message).toMatch(/alias|could not be read/i);
  });

  it("refuses deep nesting without crashing", () => {
    const deep = `version: 1\nsystems: ${"[".repeat(20_000)}${"]".repeat(20_000)}\n`;
    const errors = errorsOf(deep);
    expect(errors.length).toBeGreaterThan(0);
  });

  it("treats SQL and quotes inside conditions as data", () => {
    const result = validatePolicy(
      minimal.replace("read: all", `read: >-\n      name == 'x\\'; drop table records; --' or region in ['a"b', "it's"]`),
    );
    expect(result.ok).toBe(true);
  });

  it("refuses a document that is not a map", () => {
    expect(errorsOf("- just\n- a list\n")[0]?.message).toMatch(/must be a map, not a list/);
    expect(errorsOf("")[0]?.message).toMatch(/empty/);
  });
});

import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { checkDraft, compileDraft } from "@/lib/console/policy-draft";

const example = readFileSync("policies/example.yaml", "utf8");

describe("checkDraft (the engine activation uses)", () => {
  it("accepts the example policy and lists its systems and collections", async () => {
    const check = await checkDraft(example);
    expect(check.ok).toBe(true);
    expect(check.errors).toEqual([]);
    expect(check.systems).toEqual(["crm", "billing", "warehouse", "webshop"]);
    expect(check.collections).toEqual(["customers", "orders", "products"]);
  });

  it("names the line and column of an unknown system in who", async () => {
    const text = example.replace("  - who: crm\n", "  - who: crmm\n");
    const line = text.split("\n").findIndex((l) => l.includes("who: crmm")) + 1;
    const check = await checkDraft(text);
    expect(check.ok).toBe(false);
    expect(check.errors).toEqual([{ line, column: 10, message: expect.stringContaining('unknown system "crmm"') as string }]);
    expect(check.errors[0]?.message).toContain('did you mean "crm"?');
  });

  it("points inside a condition that does not parse", async () => {
    const check = await checkDraft(example.replace("region in ['north', 'east']", "region in ['north', 'east'"));
    expect(check.ok).toBe(false);
    expect(check.errors[0]?.message).toMatch(/does not parse at character/);
  });

  it("reports YAML syntax errors at their line", async () => {
    const check = await checkDraft("version: 1\nsystems:\n  crm: {name: CRM\n");
    expect(check.ok).toBe(false);
    expect(check.errors[0]?.line).toBeGreaterThanOrEqual(3);
  });

  it("keeps warnings for a valid draft (a rule granting nothing)", async () => {
    const text = `${example.replace("sync:", "  - who: crm\n    collection: orders\n\nsync:")}`;
    const check = await checkDraft(text);
    expect(check.ok).toBe(true);
    expect(check.warnings.map((w) => w.message)).toContain("this rule grants nothing: give it read and/or write");
  });

  it("compileDraft refuses an invalid draft with the first problem and its line", async () => {
    await expect(compileDraft("version: 2\n")).rejects.toThrow(/The draft is invalid \(line 1: /);
  });
});

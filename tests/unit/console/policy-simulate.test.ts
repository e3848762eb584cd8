import { readFileSync } from "node:fs";
import { beforeAll, describe, expect, it } from "vitest";
import { simulateRecord } from "@/lib/console/policy-simulate";
import type { CompiledPolicy } from "@/lib/policy/compile";
import { compile } from "@/tests/helpers/policy";

let example: CompiledPolicy;
beforeAll(async () => {
  example = await compile(readFileSync("policies/example.yaml", "utf8"));
});

describe("simulateRecord", () => {
  it("crm on a northern customer: reads all, writes its fields, may not delete, field-merge", () => {
    const sim = simulateRecord(example, {
      system: "crm",
      collection: "customers",
      record: { name: "Ann", region: "north", credit_limit: 100 },
    });
    expect([sim.read.allowed, sim.write.allowed, sim.delete.allowed]).toEqual([true, true, false]);
    expect(sim.visibleFields).toBe("*");
    expect(sim.writableFields).toEqual(["address", "email", "name", "phone", "region", "segment"]);
    expect(sim.conflict).toEqual({ strategy: "field-merge", fallback: "manual", priority: 20 });
    expect(sim.fields).toEqual([
      { name: "credit_limit", readable: true, writable: false },
      { name: "name", readable: true, writable: true },
      { name: "region", readable: true, writable: true },
    ]);
    expect(sim.delete.reason).toMatch(/deleting needs write access to every field/);
  });

  it("crm on a southern customer: reads, but the record is outside its write range", () => {
    const sim = simulateRecord(example, { system: "crm", collection: "customers", record: { region: "south" } });
    expect([sim.read.allowed, sim.write.allowed, sim.delete.allowed]).toEqual([true, false, false]);
    expect(sim.write.reason).toContain("region in ['north', 'east']");
    expect(sim.writableFields).toEqual([]);
    expect(sim.delete.reason).toBe("deleting is a write: the record is outside every write range (where region in ['north', 'east'])");
  });

  it("billing sees only its fields, and gets its rule's conflict override", () => {
    const sim = simulateRecord(example, { system: "billing", collection: "customers", record: { name: "Bo", phone: "1" } });
    expect(sim.visibleFields).toEqual(["credit_limit", "email", "name", "region", "vat_id"]);
    expect(sim.fields.find((f) => f.name === "phone")).toEqual({ name: "phone", readable: false, writable: false });
    expect(sim.conflict).toEqual({ strategy: "priority", fallback: null, priority: 10 });
  });

  it("webshop may delete a new order (all fields) but not a paid one", () => {
    const fresh = simulateRecord(example, { system: "webshop", collection: "orders", record: { status: "new" } });
    expect([fresh.write.allowed, fresh.delete.allowed]).toEqual([true, true]);
    const paid = simulateRecord(example, { system: "webshop", collection: "orders", record: { status: "paid" } });
    expect([paid.read.allowed, paid.write.allowed, paid.delete.allowed]).toEqual([true, false, false]);
  });

  it("warehouse has no rule on customers", () => {
    const sim = simulateRecord(example, { system: "warehouse", collection: "customers", record: {} });
    expect(sim.read).toEqual({ allowed: false, reason: "no rule gives warehouse read access to customers" });
    expect(sim.visibleFields).toEqual([]);
  });

  it("refuses systems and collections the policy does not declare", () => {
    expect(() => simulateRecord(example, { system: "erp", collection: "customers", record: {} })).toThrow(/no system "erp"/);
    expect(() => simulateRecord(example, { system: "crm", collection: "items", record: {} })).toThrow(/no collection "items"/);
  });
});

import { beforeAll, describe, expect, it } from "vitest";
import type { JsonObject } from "@/lib/db/schema";
import { describeScope, type CompiledPolicy, type Action } from "@/lib/policy/compile";
import { compile, compileFile, expectDecision } from "@/tests/helpers/policy";

let example: CompiledPolicy;
beforeAll(async () => {
  example = await compileFile("policies/example.yaml");
});

const north: JsonObject = { name: "Ann", region: "north", source: "web", credit_limit: 100 };
const south: JsonObject = { name: "Bo", region: "south", source: "store" };
const paid: JsonObject = { status: "paid", total: 40, items: [] };
const fresh: JsonObject = { status: "new", total: 40 };
const widget: JsonObject = { sku: "W-1", title: "Widget", stock: 3 };

// system, collection, record, action, allowed, field
const matrix: [string, string, JsonObject, Action, boolean, string?][] = [
  ["crm", "customers", north, "read", true],
  ["crm", "customers", south, "read", true],
  ["crm", "customers", north, "write", true],
  ["crm", "customers", south, "write", false],
  ["crm", "customers", north, "write", true, "phone"],
  ["crm", "customers", north, "write", false, "credit_limit"],
  ["billing", "customers", south, "read", true],
  ["billing", "customers", south, "read", true, "credit_limit"],
  ["billing", "customers", south, "read", false, "phone"],
  ["billing", "customers", south, "write", true, "credit_limit"],
  ["billing", "customers", south, "write", false, "name"],
  ["webshop", "customers", north, "read", true],
  ["webshop", "customers", south, "read", false],
  ["webshop", "customers", north, "read", false, "credit_limit"],
  ["webshop", "customers", {}, "read", false],
  ["warehouse", "customers", north, "read", false],
  ["warehouse", "orders", paid, "read", true],
  ["warehouse", "orders", fresh, "read", false],
  ["warehouse", "orders", { status: "paid", total: 0 }, "read", false],
  ["warehouse", "orders", { status: "paid" }, "read", false],
  ["warehouse", "orders", paid, "read", false, "total"],
  ["warehouse", "orders", paid, "write", true, "tracking"],
  ["billing", "orders", fresh, "write", true, "paid_at"],
  ["billing", "orders", { status: "shipped" }, "write", false],
  ["webshop", "orders", fresh, "write", true, "items"],
  ["crm", "orders", fresh, "read", false],
  ["crm", "products", widget, "read", true],
  ["warehouse", "products", widget, "write", true, "stock"],
  ["warehouse", "products", widget, "write", false, "price"],
  ["webshop", "products", widget, "write", true, "price"],
  ["webshop", "products", { title: "no sku" }, "write", false],
  ["crm", "products", widget, "write", false],
];

describe("decision matrix of the example policy (Casbin and compiled scopes agree)", () => {
  it.each(matrix)("%s %s %j %s -> %s %s", (system, collection, record, action, allowed, field) => {
    expectDecision(example, system, collection, record, action, allowed, field);
  });

  it("unknown systems and collections get nothing", () => {
    expectDecision(example, "erp", "customers", north, "read", false);
    expectDecision(example, "crm", "invoices", north, "read", false);
    expect(example.scope("erp", "customers", "read").grants).toEqual([]);
  });
});

describe("strategies, priorities and schedules", () => {
  it("takes a rule's strategy over the collection's, per system", () => {
    expect(example.conflict("crm", "customers")).toEqual({ strategy: "field-merge", fallback: "manual" });
    expect(example.conflict("billing", "customers")).toEqual({ strategy: "priority", fallback: "manual" });
    expect(example.conflict("webshop", "customers")).toEqual({ strategy: "last-writer-wins", fallback: "manual" });
    expect(example.conflict("warehouse", "orders").strategy).toBe("manual");
    expect(example.conflict("billing", "orders").strategy).toBe("server-wins");
    expect(example.conflict("crm", "products").strategy).toBe("priority");
  });

  it("lets a rule override only the fallback", async () => {
    const policy = await compile(`version: 1
systems: {x: {}, y: {}}
collections: {c: {conflict: field-merge, fallback: manual}}
rules:
  - {who: "*", collection: c, read: all, write: all}
  - {who: x, collection: c, fallback: server-wins, read: all}
`);
    expect(policy.conflict("x", "c")).toEqual({ strategy: "field-merge", fallback: "server-wins" });
    expect(policy.conflict("y", "c")).toEqual({ strategy: "field-merge", fallback: "manual" });
  });

  it("gives priorities and sync schedules", () => {
    expect(example.priority("crm")).toBe(20);
    expect(example.priority("warehouse")).toBe(0);
    expect(example.sync("warehouse")).toEqual({ intervalSeconds: 900, realtime: false });
    expect(example.sync("crm")).toEqual({ intervalSeconds: 60, realtime: true });
  });

  it("describes scopes in the shape of /config", () => {
    expect(describeScope(example.scope("crm", "customers", "write"))).toEqual({
      where: "region in ['north', 'east']",
      fields: ["address", "email", "name", "phone", "region", "segment"],
    });
    expect(describeScope(example.scope("crm", "customers", "read"))).toEqual({ where: "all", fields: ["*"] });
    expect(describeScope(example.scope("crm", "orders", "read"))).toBeNull();
  });
});

describe("combining rules", () => {
  it("ORs several rules and unions the fields of those that cover the record", async () => {
    const policy = await compile(`version: 1
systems: {a: {}, b: {}}
groups: {g: [a]}
collections: {c: {}}
rules:
  - {who: a, collection: c, read: {where: "x == 1", fields: [p]}}
  - {who: group:g, collection: c, read: {where: "y == 1", fields: [q]}}
  - {who: "*", collection: c, read: {where: "z == 1", fields: [r]}}
`);
    const rec = { x: 1, y: 1, z: 0 };
    expectDecision(policy, "a", "c", rec, "read", true, "p");
    expectDecision(policy, "a", "c", rec, "read", true, "q");
    expectDecision(policy, "a", "c", rec, "read", false, "r");
    expectDecision(policy, "b", "c", rec, "read", false);
    expectDecision(policy, "b", "c", { z: 1 }, "read", true, "r");
    expectDecision(policy, "b", "c", { z: 1 }, "read", false, "p");
  });
});

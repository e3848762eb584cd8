import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import type { JsonObject } from "@/lib/db/schema";
import type { CompiledPolicy } from "@/lib/policy/compile";
import { digestOf } from "@/lib/sync/digest";
import { projectFields, projectForReader } from "@/lib/sync/projection";
import { compile } from "@/tests/helpers/policy";

const POLICY = `version: 1
systems: {all: {}, one: {}, union: {}, star: {}, none: {}, proto: {}}
collections: {items: {}}
rules:
  - {who: all, collection: items, read: all}
  - {who: one, collection: items, read: {fields: [name, region]}}
  - {who: union, collection: items, read: {where: "tier == 'gold'", fields: [name, tier, secret]}}
  - {who: union, collection: items, read: {where: "region == 'north'", fields: [name, region]}}
  - {who: star, collection: items, read: {where: "region == 'north'", fields: [name]}}
  - {who: star, collection: items, read: "tier == 'gold'"}
  - {who: proto, collection: items, read: {fields: [__proto__, name]}}
`;

let policy: CompiledPolicy;
beforeAll(async () => {
  policy = await compile(POLICY);
});

const scope = (system: string) => policy.scope(system, "items", "read");

describe("projectForReader", () => {
  const record: JsonObject = { name: "Ann", region: "north", tier: "silver", secret: 7, address: { city: "Oslo" } };

  it("keeps the whole record and reuses the stored digest when the reader sees every field", () => {
    const copy = projectForReader(scope("all"), record, "stored-digest");
    expect(copy?.data).toBe(record);
    expect(copy?.digest).toBe("stored-digest");
    expect(projectForReader(scope("all"), record)?.digest).toBe(digestOf(record));
  });

  it("projects to the grant's fields and digests the projection, not the whole record", () => {
    const copy = projectForReader(scope("one"), record, "stored-digest");
    expect(copy).toEqual({ data: { name: "Ann", region: "north" }, digest: digestOf({ name: "Ann", region: "north" }) });
  });

  it("unions the fields of every grant that covers the record, and only those", () => {
    expect(projectForReader(scope("union"), record)?.data).toEqual({ name: "Ann", region: "north" });
    expect(projectForReader(scope("union"), { ...record, tier: "gold" })?.data).toEqual({
      name: "Ann",
      region: "north",
      tier: "gold",
      secret: 7,
    });
    expect(projectForReader(scope("union"), { ...record, tier: "gold", region: "south" })?.data).toEqual({
      name: "Ann",
      tier: "gold",
      secret: 7,
    });
  });

  it("gives every field when any covering grant gives every field", () => {
    expect(projectForReader(scope("star"), record)?.data).toEqual({ name: "Ann" });
    const gold = { ...record, tier: "gold" };
    expect(projectForReader(scope("star"), gold, "d")).toEqual({ data: gold, digest: "d" });
  });

  it("is null when no grant covers the record or the reader has no right", () => {
    expect(projectForReader(scope("union"), { ...record, region: "south" })).toBeNull();
    expect(projectForReader(scope("none"), record)).toBeNull();
  });

  it("never adds fields the record lacks", () => {
    expect(projectForReader(scope("one"), { name: "Bo" })?.data).toEqual({ name: "Bo" });
    expect(projectForReader(scope("one"), {})).toEqual({ data: {}, digest: digestOf({}) });
  });

  it("keeps a field named __proto__ as data, never as the object's prototype", () => {
    const parsed = JSON.parse('{"__proto__": {"polluted": true}, "name": "P", "hidden": 1}') as JsonObject;
    const copy = projectForReader(scope("proto"), parsed);
    expect(copy).not.toBeNull();
    expect(Object.getPrototypeOf(copy?.data)).toBe(Object.prototype);
    expect(Object.keys(copy?.data ?? {}).sort()).toEqual(["__proto__", "name"]);
    expect(copy?.digest).toBe(digestOf(JSON.parse('{"__proto__": {"polluted": true}, "name": "P"}') as JsonObject));
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe("projectFields", () => {
  it("returns a new object with only the listed fields", () => {
    const data: JsonObject = { a: 1, b: [1], c: null };
    const out = projectFields(data, new Set(["a", "c", "z"]));
    expect(out).toEqual({ a: 1, c: null });
    expect(out).not.toBe(data);
    expect(data).toEqual({ a: 1, b: [1], c: null });
  });
});

describe("property: the projection is Casbin's field decisions", () => {
  const recordArb: fc.Arbitrary<JsonObject> = fc
    .record(
      {
        name: fc.constantFrom("Ann", "Bo"),
        region: fc.constantFrom("north", "south", 3, null),
        tier: fc.constantFrom("gold", "silver", true),
        secret: fc.integer(),
        extra: fc.jsonValue({ maxDepth: 1 }),
      },
      { requiredKeys: [] },
    )
    .map((r) => ({ ...r }) as JsonObject);

  it("shows a record exactly when Casbin allows reading it, and each field exactly when Casbin allows that field", () => {
    fc.assert(
      fc.property(fc.constantFrom("all", "one", "union", "star", "none"), recordArb, (system, data) => {
        const copy = projectForReader(scope(system), data);
        expect(copy !== null).toBe(policy.decide(system, "items", "read", data));
        if (copy === null) return;
        for (const field of Object.keys(data)) {
          expect(Object.hasOwn(copy.data, field), `${system} ${field}`).toBe(policy.decide(system, "items", "read", data, field));
        }
        for (const [field, value] of Object.entries(copy.data)) expect(value).toEqual(data[field]);
        expect(copy.digest).toBe(digestOf(copy.data));
      }),
      { numRuns: 300 },
    );
  });
});

import { describe, expect, it } from "vitest";
import {
  changedTopLevel,
  conflictHighlights,
  diffRecords,
  formatPath,
  threeWayDiff,
  valueAt,
} from "@/lib/console/records-diff";
import { containmentFor, filterValue, prefixUpperBound } from "@/lib/console/records-list";

describe("diffRecords", () => {
  it("lists added, removed and changed fields in path order, nested and in arrays", () => {
    const a = { name: "Ann", phone: "1", address: { city: "Oslo", zip: "0150" }, tags: ["a", "b"] };
    const b = { name: "Ann", email: "ann@x", address: { city: "Bergen", zip: "0150" }, tags: ["a", "c", "d"] };
    expect(diffRecords(a, b).map((d) => [d.path, d.kind, d.before, d.after])).toEqual([
      ["address.city", "changed", "Oslo", "Bergen"],
      ["email", "added", undefined, "ann@x"],
      ["phone", "removed", "1", undefined],
      ["tags[1]", "changed", "b", "c"],
      ["tags[2]", "added", undefined, "d"],
    ]);
  });

  it("is empty for equal records whatever the key order", () => {
    expect(diffRecords({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 })).toEqual([]);
  });

  it("treats a missing side (deleted, no base) as an empty record", () => {
    expect(diffRecords(null, { a: 1 })).toEqual([{ path: "a", segments: ["a"], kind: "added", after: 1 }]);
    expect(diffRecords({ a: 1 }, undefined)).toEqual([{ path: "a", segments: ["a"], kind: "removed", before: 1 }]);
  });

  it("reports a type change (object to scalar, null to value) as one change at that path", () => {
    expect(diffRecords({ a: { b: 1 } }, { a: 2 }).map((d) => [d.path, d.kind])).toEqual([["a", "changed"]]);
    expect(diffRecords({ a: null }, { a: 0 }).map((d) => [d.path, d.kind, d.before, d.after])).toEqual([["a", "changed", null, 0]]);
  });

  it("formats odd keys unambiguously", () => {
    expect(formatPath(["a b", 0, "c.d", "ok_1"])).toBe('["a b"][0]["c.d"].ok_1');
    expect(formatPath([])).toBe("(record)");
  });
});

describe("threeWayDiff", () => {
  const base = { name: "Ann", phone: "1", status: "new" };

  it("marks who changed each field and where both changed it differently", () => {
    const server = { name: "Ann", phone: "2", status: "paid" };
    const client = { name: "Ann B.", phone: "3", status: "paid" };
    const rows = threeWayDiff(base, server, client);
    expect(rows.map((r) => [r.path, r.serverChanged, r.clientChanged, r.conflicting])).toEqual([
      ["name", false, true, false],
      ["phone", true, true, true],
      ["status", true, true, false],
    ]);
    const marks = conflictHighlights(rows);
    expect(marks.server).toEqual({ phone: "conflict", status: "changed" });
    expect(marks.client).toEqual({ name: "changed", phone: "conflict", status: "changed" });
    expect(marks.base).toEqual({ name: "changed", phone: "conflict", status: "changed" });
  });

  it("compares server and client directly when there is no base", () => {
    const rows = threeWayDiff(null, { a: 1, b: 2 }, { a: 1, b: 3 });
    expect(rows.find((r) => r.path === "b")).toMatchObject({ server: 2, client: 3, conflicting: true });
    expect(rows.find((r) => r.path === "a")).toMatchObject({ conflicting: false });
  });

  it("handles a client delete (no client data)", () => {
    const rows = threeWayDiff(base, { ...base, phone: "2" }, null);
    expect(rows.find((r) => r.path === "phone")).toMatchObject({ server: "2", client: undefined, conflicting: true });
    expect(rows.find((r) => r.path === "name")).toMatchObject({ serverChanged: false, clientChanged: true });
  });

  it("counts a nested change as touching its parent field", () => {
    const rows = threeWayDiff({ addr: { city: "A", zip: "1" } }, { addr: { city: "B", zip: "1" } }, { addr: "gone" });
    expect(rows.map((r) => [r.path, r.serverChanged, r.clientChanged, r.conflicting])).toEqual([
      ["addr", true, true, true],
      ["addr.city", true, true, true],
    ]);
  });
});

describe("helpers", () => {
  it("valueAt walks objects and arrays and stops at missing steps", () => {
    const v = { a: { b: [10, { c: true }] } };
    expect(valueAt(v, ["a", "b", 1, "c"])).toBe(true);
    expect(valueAt(v, ["a", "x"])).toBeUndefined();
    expect(valueAt(v, ["a", "b", "0"])).toBeUndefined();
    expect(valueAt(null, ["a"])).toBeUndefined();
  });

  it("changedTopLevel marks the first segment of each change", () => {
    expect(changedTopLevel(diffRecords({ a: { b: 1 }, c: 1 }, { a: { b: 2 }, c: 1, d: 0 }))).toEqual({ a: "changed", d: "changed" });
  });

  it("filter values are JSON when they parse, text otherwise", () => {
    expect(filterValue("paid")).toBe("paid");
    expect(filterValue("42")).toBe(42);
    expect(filterValue('"42"')).toBe("42");
    expect(filterValue("true")).toBe(true);
    expect(filterValue("null")).toBeNull();
    expect(containmentFor("address.city", "Oslo")).toEqual({ address: { city: "Oslo" } });
  });

  it("prefixUpperBound is the next string after every string with the prefix, in code point order", () => {
    expect(prefixUpperBound("c1")).toBe("c2");
    expect(prefixUpperBound("a\u{10FFFF}")).toBe("b");
    expect(prefixUpperBound("\u{D7FF}")).toBe("\u{E000}");
    expect(prefixUpperBound("\u{10FFFF}")).toBeNull();
    expect(prefixUpperBound("ab\u{1F600}")).toBe("ab\u{1F601}");
  });
});

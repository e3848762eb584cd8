import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FALLBACK_STRATEGIES } from "@/lib/policy/document";
import { isPlainObject, jsonEqual } from "@/lib/sync/json";
import { threeWayMerge } from "@/lib/sync/merge";
import type { JsonObject, JsonValue } from "@/lib/sync/protocol";
import { STRATEGIES, type ConflictCase } from "@/lib/sync/strategies";

// ---------------------------------------------------------------------------
// Examples

describe("threeWayMerge", () => {
  it("takes each side's own changes, keeps unchanged fields, and drops fields one side removed", () => {
    const r = threeWayMerge({ a: 1, b: 1, c: 1, d: 1 }, { a: 2, b: 1, c: 1, d: 1 }, { a: 1, b: 3, d: 1, e: 5 }, "server");
    expect(r).toEqual({ merged: { a: 2, b: 3, d: 1, e: 5 }, collisions: [] });
  });

  it("settles a collision by `prefer`, per colliding leaf, and lists paths in key order", () => {
    const base = { z: 0, o: { y: 0, x: 0 }, a: 0 };
    const server = { z: 1, o: { y: 1, x: 0 }, a: 1 };
    const client = { z: 2, o: { y: 2, x: 2 }, a: 0 };
    expect(threeWayMerge(base, server, client, "server")).toEqual({ merged: { z: 1, o: { y: 1, x: 2 }, a: 1 }, collisions: ["o.y", "z"] });
    expect(threeWayMerge(base, server, client, "client")).toEqual({ merged: { z: 2, o: { y: 2, x: 2 }, a: 1 }, collisions: ["o.y", "z"] });
  });

  it("compares values as JSON: key order inside objects and arrays of objects does not matter, array order does", () => {
    const base = { list: [{ a: 1, b: 2 }], o: { p: 1, q: 2 } };
    const same = threeWayMerge(base, { list: [{ b: 2, a: 1 }], o: { q: 2, p: 1 } }, { list: [{ a: 1, b: 2 }], o: { p: 1, q: 2 } }, "server");
    expect(same.collisions).toEqual([]);
    const reordered = threeWayMerge({ l: [1, 2] }, { l: [2, 1] }, { l: [1, 2, 3] }, "server");
    expect(reordered).toEqual({ merged: { l: [2, 1] }, collisions: ["l"] });
  });

  it("merges two objects both sides added under the same key per key (against an empty base)", () => {
    expect(threeWayMerge({}, { o: { x: 1, y: 1 } }, { o: { y: 1, z: 1 } }, "server")).toEqual({
      merged: { o: { x: 1, y: 1, z: 1 } },
      collisions: [],
    });
    expect(threeWayMerge({ o: 5 }, { o: { x: 1 } }, { o: { x: 2 } }, "client")).toEqual({ merged: { o: { x: 2 } }, collisions: ["o.x"] });
  });

  it("a removed nested object against a change inside it collides at the object", () => {
    expect(threeWayMerge({ o: { x: 1 }, k: 1 }, { o: { x: 2 }, k: 1 }, { k: 1 }, "client")).toEqual({ merged: { k: 1 }, collisions: ["o"] });
    expect(threeWayMerge({ o: { x: 1 }, k: 1 }, { o: { x: 2 }, k: 1 }, { k: 1 }, "server")).toEqual({
      merged: { o: { x: 2 }, k: 1 },
      collisions: ["o"],
    });
  });

  it("null is a value, not a removal", () => {
    expect(threeWayMerge({ a: 1 }, { a: null }, { a: 1, b: null }, "server")).toEqual({ merged: { a: null, b: null }, collisions: [] });
    expect(threeWayMerge({ a: 1 }, { a: null }, {}, "server")).toEqual({ merged: { a: null }, collisions: ["a"] });
  });
});

// ---------------------------------------------------------------------------
// Properties
//
// A base record and two sets of edits at its leaves: every leaf of the base
// and every absent key of each of its objects is a slot; each slot is left
// alone, edited by the server only, by the client only, edited the same way by
// both, or edited differently by both. New values are tagged with the side
// and slot, so they never equal the base or each other by accident. The
// collisions a merge must find are then known: exactly the slots edited
// differently by both sides.

const KEYS = ["a", "b", "c", "d"] as const;
const scalar: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.integer({ min: -3, max: 3 }),
  fc.constantFrom("x", "y", ""),
  fc.boolean(),
  fc.constant(null),
);
const leaf: fc.Arbitrary<JsonValue> = fc.oneof(scalar, fc.array(scalar, { maxLength: 3 }));
const objectOf = (depth: number): fc.Arbitrary<JsonObject> =>
  fc.dictionary(fc.constantFrom(...KEYS), depth === 0 ? leaf : fc.oneof({ weight: 2, arbitrary: leaf }, { weight: 1, arbitrary: objectOf(depth - 1) }), {
    maxKeys: 4,
  });
const record = objectOf(2);

type Path = readonly string[];
interface Slot {
  path: Path;
  present: boolean;
}

function slotsOf(obj: JsonObject, prefix: Path = []): Slot[] {
  const slots: Slot[] = [];
  for (const key of KEYS) {
    const value = obj[key];
    const path = [...prefix, key];
    if (value === undefined) slots.push({ path, present: false });
    else if (isPlainObject(value)) slots.push(...slotsOf(value, path));
    else slots.push({ path, present: true });
  }
  return slots;
}

/** What one side writes at a slot: a new value (of some kind) or a removal. */
type Kind = "string" | "number" | "array" | "object" | "remove";
const REMOVE = Symbol("remove");
type Edit = JsonValue | typeof REMOVE;

function valueOf(kind: Kind, tag: string): Edit {
  switch (kind) {
    case "string":
      return tag;
    case "number":
      // Unique per tag, and outside the base's -3..3.
      return 1000 + [...tag].reduce((h, ch) => (h * 31 + ch.charCodeAt(0)) % 1_000_003, 7);
    case "array":
      return [tag, 1];
    case "object":
      return { v: tag };
    case "remove":
      return REMOVE;
  }
}

type Action = "none" | "server" | "client" | "same" | "both";
interface Plan {
  base: JsonObject;
  slots: { slot: Slot; action: Action; serverKind: Kind; clientKind: Kind }[];
}

const kinds = (present: boolean): fc.Arbitrary<Kind> =>
  present ? fc.constantFrom<Kind>("string", "number", "array", "object", "remove") : fc.constantFrom<Kind>("string", "number", "array", "object");

function plan(actions: fc.Arbitrary<Action>): fc.Arbitrary<Plan> {
  return record.chain((base) => {
    const slots = slotsOf(base);
    return fc
      .tuple(...slots.map((slot) => fc.record({ action: actions, serverKind: kinds(slot.present), clientKind: kinds(slot.present) })))
      .map((choices) => ({
        base,
        slots: choices
          .map((c, i) => ({ slot: slots[i] as Slot, ...c }))
          // Two different edits may not both be objects: those would merge per key instead of colliding.
          .map((s) => (s.action === "both" && s.serverKind === "object" && s.clientKind === "object" ? { ...s, clientKind: "string" as const } : s))
          // A removal on both sides is the same edit, not a differing one.
          .map((s) => (s.action === "both" && s.serverKind === "remove" && s.clientKind === "remove" ? { ...s, clientKind: "string" as const } : s)),
      }));
  });
}

function setPath(obj: JsonObject, path: Path, edit: Edit): void {
  const [head, ...rest] = path;
  if (head === undefined) return;
  if (rest.length === 0) {
    if (edit === REMOVE) delete obj[head];
    else obj[head] = edit;
    return;
  }
  const child = obj[head];
  if (isPlainObject(child)) setPath(child, rest, edit);
}

type Side = "server" | "client";
/** The base with the given sides' edits at the chosen slots. */
function apply(p: Plan, pick: (action: Action) => Side | null): JsonObject {
  const out = structuredClone(p.base);
  for (const { slot, action, serverKind, clientKind } of p.slots) {
    const side = pick(action);
    if (side === null) continue;
    const key = slot.path.join(".");
    const edit = action === "same" ? valueOf(serverKind, `same:${key}`) : side === "server" ? valueOf(serverKind, `server:${key}`) : valueOf(clientKind, `client:${key}`);
    setPath(out, slot.path, edit);
  }
  return out;
}

const serverOf = (p: Plan) => apply(p, (a) => (a === "server" || a === "same" || a === "both" ? "server" : null));
const clientOf = (p: Plan) => apply(p, (a) => (a === "client" || a === "same" || a === "both" ? "client" : null));
/** The expected merge: one side's record plus the other side's own (non-colliding) edits. */
const expectedMerge = (p: Plan, prefer: Side) =>
  apply(p, (a) => {
    if (a === "none") return null;
    if (a === "both") return prefer;
    return a === "same" ? "server" : a;
  });
const collidingPaths = (p: Plan) =>
  p.slots
    .filter((s) => s.action === "both")
    .map((s) => s.slot.path.join("."))
    .sort();

const disjoint = plan(fc.constantFrom<Action>("none", "server", "client", "same"));
const anyEdits = plan(fc.constantFrom<Action>("none", "server", "client", "same", "both"));

function caseFor(base: JsonObject, server: JsonObject, client: JsonObject, over: Partial<ConflictCase> = {}): ConflictCase {
  const t = new Date("2026-11-25T10:00:00Z");
  return {
    base,
    server,
    client,
    clientSystem: "a",
    serverSystem: "b",
    clientPriority: 0,
    serverPriority: 0,
    clientModifiedAt: t,
    serverModifiedAt: t,
    fallback: "manual",
    ...over,
  };
}

const RUNS = { numRuns: 400 };

describe("threeWayMerge properties (fast-check)", () => {
  it("disjoint changes merge the same in either order, without collisions, to both sides' edits combined", () => {
    fc.assert(
      fc.property(disjoint, (p) => {
        const s = serverOf(p);
        const c = clientOf(p);
        const one = threeWayMerge(p.base, s, c, "server");
        const other = threeWayMerge(p.base, c, s, "server");
        expect(one.collisions).toEqual([]);
        expect(other.collisions).toEqual([]);
        expect(one.merged).toEqual(other.merged);
        expect(one.merged).toEqual(expectedMerge(p, "server"));
        // prefer does not matter when nothing collides.
        expect(threeWayMerge(p.base, s, c, "client").merged).toEqual(one.merged);
      }),
      RUNS,
    );
  });

  it("field-merge combines disjoint changes into a merge, whatever the fallback", () => {
    fc.assert(
      fc.property(disjoint, fc.constantFrom(...FALLBACK_STRATEGIES), (p, fallback) => {
        const settled = STRATEGIES["field-merge"](caseFor(p.base, serverOf(p), clientOf(p), { fallback }));
        expect(settled).toEqual({ winner: "merged", data: expectedMerge(p, "server"), details: { collisions: [] } });
      }),
      RUNS,
    );
  });

  it("merging with an unchanged side gives the other side", () => {
    fc.assert(
      fc.property(record, record, fc.constantFrom<Side>("server", "client"), (base, other, prefer) => {
        expect(threeWayMerge(base, base, other, prefer)).toEqual({ merged: other, collisions: [] });
        expect(threeWayMerge(base, other, base, prefer)).toEqual({ merged: other, collisions: [] });
      }),
      RUNS,
    );
    // Also for edits of the base (the common case: a few fields changed).
    fc.assert(
      fc.property(anyEdits, (p) => {
        expect(threeWayMerge(p.base, p.base, clientOf(p), "server")).toEqual({ merged: clientOf(p), collisions: [] });
        expect(threeWayMerge(p.base, serverOf(p), p.base, "client")).toEqual({ merged: serverOf(p), collisions: [] });
      }),
      RUNS,
    );
  });

  it("merging a side with itself gives it, without collisions", () => {
    fc.assert(
      fc.property(record, record, fc.constantFrom<Side>("server", "client"), (base, side, prefer) => {
        expect(threeWayMerge(base, side, structuredClone(side), prefer)).toEqual({ merged: side, collisions: [] });
      }),
      RUNS,
    );
  });

  it("collisions are exactly the paths both sides changed differently, settled by prefer, with the rest combined", () => {
    fc.assert(
      fc.property(anyEdits, (p) => {
        const s = serverOf(p);
        const c = clientOf(p);
        const byServer = threeWayMerge(p.base, s, c, "server");
        const byClient = threeWayMerge(p.base, s, c, "client");
        expect([...byServer.collisions].sort()).toEqual(collidingPaths(p));
        expect([...byClient.collisions].sort()).toEqual(collidingPaths(p));
        expect(byServer.merged).toEqual(expectedMerge(p, "server"));
        expect(byClient.merged).toEqual(expectedMerge(p, "client"));
      }),
      RUNS,
    );
  });

  it("is symmetric on any three records: swapping the sides and prefer gives the same merge and collisions", () => {
    fc.assert(
      fc.property(record, record, record, (base, s, c) => {
        const one = threeWayMerge(base, s, c, "server");
        const other = threeWayMerge(base, c, s, "client");
        expect(other.merged).toEqual(one.merged);
        expect(other.collisions).toEqual(one.collisions);
      }),
      RUNS,
    );
  });

  it("on any three records, every reported collision really differs on all three, and takes the preferred side", () => {
    const at = (obj: JsonObject, path: string): JsonValue | undefined => {
      let v: JsonValue | undefined = obj;
      for (const key of path.split(".")) v = isPlainObject(v) ? v[key] : undefined;
      return v;
    };
    fc.assert(
      fc.property(record, record, record, fc.constantFrom<Side>("server", "client"), (base, s, c, prefer) => {
        const { merged, collisions } = threeWayMerge(base, s, c, prefer);
        for (const path of collisions) {
          expect(jsonEqual(at(s, path), at(base, path)), `${path}: server changed it`).toBe(false);
          expect(jsonEqual(at(c, path), at(base, path)), `${path}: client changed it`).toBe(false);
          expect(jsonEqual(at(s, path), at(c, path)), `${path}: differently`).toBe(false);
          expect(at(merged, path)).toEqual(at(prefer === "server" ? s : c, path));
        }
        // A top-level field that only one side changed is that side's.
        for (const key of KEYS) {
          if (jsonEqual(s[key], base[key])) expect(merged[key]).toEqual(c[key]);
          else if (jsonEqual(c[key], base[key])) expect(merged[key]).toEqual(s[key]);
        }
        if (collisions.length === 0) expect(threeWayMerge(base, s, c, prefer === "server" ? "client" : "server").merged).toEqual(merged);
      }),
      RUNS,
    );
  });
});

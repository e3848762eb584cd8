import mergePatch from "json-merge-patch";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay, canTransition, changeBody, CLIENT_STATES, digestOf, rebase, TRANSITIONS, type LocalRecord } from "@/lib/client";
import { digestOf as serverDigestOf } from "@/lib/sync/digest";
import { DELETED_DIGEST, type JsonObject } from "@/lib/sync/protocol";

const jsonObject = fc.dictionary(fc.string({ maxLength: 6 }).filter((k) => k !== "__proto__"), fc.jsonValue({ maxDepth: 3 })) as fc.Arbitrary<JsonObject>;

describe("digestOf", () => {
  it("equals the hub's digest for any JSON object", async () => {
    await fc.assert(
      fc.asyncProperty(jsonObject, async (data) => {
        expect(await digestOf(data)).toBe(serverDigestOf(data));
      }),
      { numRuns: 300 },
    );
  });

  it("is the digest of null for a deleted record, and ignores key order", async () => {
    expect(await digestOf(null)).toBe(DELETED_DIGEST);
    expect(await digestOf({ a: 1, b: [1, { c: 2, d: 3 }] })).toBe(await digestOf({ b: [1, { d: 3, c: 2 }], a: 1 }));
  });
});

function row(base: JsonObject | null, data: JsonObject | null, version = 3): LocalRecord {
  return { collection: "c", id: "r", data, digest: "x", base: base === null ? null : { version, digest: "y", data: base }, modifiedAt: null };
}

describe("changeBody", () => {
  it("sends data for a creation and deleted for a deletion", () => {
    expect(changeBody(row(null, { a: 1 }), "id1")).toEqual({ changeId: "id1", id: "r", baseVersion: null, data: { a: 1 } });
    expect(changeBody(row({ a: 1 }, null), "id2")).toEqual({ changeId: "id2", id: "r", baseVersion: 3, deleted: true });
  });

  it("sends only the changed fields as a merge patch that rebuilds the copy from the base", () => {
    fc.assert(
      fc.property(jsonObject, jsonObject, (base, local) => {
        const body = changeBody(row(base, local), "p");
        if (body.patch) expect(mergePatch.apply(structuredClone(base), body.patch)).toEqual(local);
        else expect(body.data).toEqual(local);
      }),
      { numRuns: 300 },
    );
    const body = changeBody(row({ name: "Ann", phone: "1", address: { city: "Oslo", zip: "1" } }, { name: "Ann", phone: "2", address: { city: "Oslo", zip: "2" } }), "p");
    expect(body.patch).toEqual({ phone: "2", address: { zip: "2" } });
  });

  it("falls back to data when a patch cannot say it (a null value)", () => {
    expect(changeBody(row({ a: 1 }, { a: null }), "n")).toMatchObject({ data: { a: null } });
  });
});

describe("rebase", () => {
  it("applies edits made after a change was sent over the hub's answer", () => {
    expect(rebase({ a: 1, b: 1 }, { a: 1, b: 2 }, { a: 5, b: 1, c: 1 })).toEqual({ a: 5, b: 2, c: 1 });
    expect(rebase({ a: 1 }, { a: 1 }, { a: 2 })).toEqual({ a: 2 });
    expect(rebase({ a: 1 }, null, { a: 2 })).toBeNull();
  });
});

describe("backoff", () => {
  it("grows exponentially with jitter, within [cap/2, cap], capped", () => {
    const opts = { baseMs: 100, maxMs: 5000 };
    for (let attempt = 0; attempt < 12; attempt++) {
      const cap = Math.min(5000, 100 * 2 ** attempt);
      expect(backoffDelay(attempt, { ...opts, random: () => 0 })).toBe(cap / 2);
      expect(backoffDelay(attempt, { ...opts, random: () => 0.999999 })).toBeLessThanOrEqual(cap);
    }
    const b = new Backoff({ ...opts, random: () => 0 });
    expect([b.next(), b.next(), b.next()]).toEqual([50, 100, 200]);
    b.reset();
    expect(b.next()).toBe(50);
  });
});

describe("state table", () => {
  it("names every state and only known states", () => {
    expect(Object.keys(TRANSITIONS).sort()).toEqual([...CLIENT_STATES].sort());
    for (const targets of Object.values(TRANSITIONS)) for (const s of targets) expect(CLIENT_STATES).toContain(s);
    expect(canTransition("idle", "syncing")).toBe(true);
    expect(canTransition("idle", "backoff")).toBe(false);
    expect(canTransition("syncing", "syncing")).toBe(true);
  });
});

import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { revokeApiKey } from "@/lib/auth/api-keys";
import { conflicts } from "@/lib/db/schema";
import { digestOf } from "@/lib/sync/digest";
import { DELETED_DIGEST, POLICY_VERSION_HEADER } from "@/lib/sync/protocol";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { readHistory, readRecord } from "@/tests/helpers/records";
import { changeId, conflictLogged, keysFor, push, pushOne, pushRaw } from "@/tests/helpers/sync";

let t: TestHub;
let keys: Record<string, string>;

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "crm", "billing", "warehouse", "webshop");
});
afterAll(async () => {
  await t.close();
});

const history = (collection: string, id: string) => readHistory(t.hub.db, collection, id);
const current = (collection: string, id: string) => readRecord(t.hub.db, collection, id);

const ann = { name: "Ann", email: "ann@example.com", phone: "555-0100", region: "north" };

describe("versions and digests (claims 3 and 4)", () => {
  it("initialises version 1 on first submission and adds 1 per accepted change", async () => {
    const first = await pushOne(keys.crm!, "customers", { id: "v-1", baseVersion: null, data: ann });
    expect(first).toEqual({ changeId: expect.any(String), id: "v-1", status: "applied", version: 1, digest: digestOf(ann) });

    const edited = { ...ann, phone: "555-0199" };
    const second = await pushOne(keys.crm!, "customers", { id: "v-1", baseVersion: 1, data: edited });
    expect(second).toMatchObject({ status: "applied", version: 2, digest: digestOf(edited) });

    const rows = await history("customers", "v-1");
    expect(rows.map((r) => [r.version, r.origin, r.writtenBy, r.data])).toEqual([
      [1, "push", "crm", ann],
      [2, "push", "crm", edited],
    ]);
    expect((await current("customers", "v-1"))?.version).toBe(2);
  });

  it("answers unchanged, without a version bump, when the record equals the server's", async () => {
    await pushOne(keys.crm!, "customers", { id: "v-2", baseVersion: null, data: ann });
    const same = await pushOne(keys.crm!, "customers", { id: "v-2", baseVersion: 1, data: { ...ann } });
    expect(same).toEqual({ changeId: expect.any(String), id: "v-2", status: "unchanged", version: 1, digest: digestOf(ann) });
    expect(await history("customers", "v-2")).toHaveLength(1);
  });

  it("deletes as a versioned tombstone and re-creates over it", async () => {
    // The web shop may write every field of new orders, so it may delete them.
    const order = { status: "new", total: 12, items: ["A"] };
    await pushOne(keys.webshop!, "orders", { id: "v-3", baseVersion: null, data: order });
    const deleted = await pushOne(keys.webshop!, "orders", { id: "v-3", baseVersion: 1, deleted: true });
    expect(deleted).toMatchObject({ status: "applied", version: 2, digest: DELETED_DIGEST });
    expect(await current("orders", "v-3")).toMatchObject({ version: 2, deleted: true, digest: DELETED_DIGEST, data: order });
    const again = await pushOne(keys.webshop!, "orders", { id: "v-3", baseVersion: 2, deleted: true });
    expect(again.status).toBe("unchanged");
    const recreated = await pushOne(keys.webshop!, "orders", { id: "v-3", baseVersion: null, data: order });
    expect(recreated).toMatchObject({ status: "applied", version: 3 });
    expect((await history("orders", "v-3")).map((h) => h.deleted)).toEqual([false, true, false]);
  });

  it("applies a merge patch over the base version", async () => {
    await pushOne(keys.crm!, "customers", { id: "v-4", baseVersion: null, data: { ...ann, address: { city: "Oslo", zip: "0150" } } });
    const patched = await pushOne(keys.crm!, "customers", {
      id: "v-4",
      baseVersion: 1,
      patch: { phone: null, address: { zip: "0151" } },
    });
    const { phone: _phone, ...withoutPhone } = ann;
    const expected = { ...withoutPhone, address: { city: "Oslo", zip: "0151" } };
    expect(patched).toMatchObject({ status: "applied", version: 2, digest: digestOf(expected) });
    expect((await current("customers", "v-4"))?.data).toEqual(expected);
  });

  it("refuses versions that cannot be right, writing nothing", async () => {
    await pushOne(keys.crm!, "customers", { id: "v-5", baseVersion: null, data: ann });
    const results = await push(keys.crm!, "customers", [
      { id: "v-5", baseVersion: 7, data: ann },
      { id: "v-missing", baseVersion: 3, data: ann },
      { id: "v-missing", baseVersion: null, deleted: true },
      { id: "v-5", baseVersion: 1, patch: { constructor: "x" } },
    ]);
    expect(results.map((r) => r.status)).toEqual(["invalid", "invalid", "invalid", "invalid"]);
    expect(results[0]?.reason).toMatch(/baseVersion 7 is above the server's version 1/);
    expect(results[1]?.reason).toMatch(/is not one you can read: it does not exist, or it is outside your read scope/);
    for (const r of results) expect(Object.keys(r).sort()).toEqual(["changeId", "id", "reason", "status"]);
    expect(await history("customers", "v-5")).toHaveLength(1);
    expect(await current("customers", "v-missing")).toBeUndefined();
  });
});

describe("idempotency", () => {
  it("returns the first result for a re-sent changeId and applies it once", async () => {
    const id = changeId();
    const first = await pushOne(keys.crm!, "customers", { changeId: id, id: "i-1", baseVersion: null, data: ann });
    const resent = await pushOne(keys.crm!, "customers", { changeId: id, id: "i-1", baseVersion: null, data: ann });
    expect(resent).toEqual(first);
    expect(await history("customers", "i-1")).toHaveLength(1);
  });

  it("applies once when two copies of a request arrive at once", async () => {
    const body = { changes: [{ changeId: changeId(), id: "i-2", baseVersion: null, data: ann }] };
    const [a, b] = await Promise.all([pushRaw(keys.crm!, "customers", body), pushRaw(keys.crm!, "customers", body)]);
    expect(a.body).toEqual(b.body);
    expect(await history("customers", "i-2")).toHaveLength(1);
  });

  it("is scoped per system: another system's changeId is its own", async () => {
    const id = changeId();
    await pushOne(keys.crm!, "customers", { changeId: id, id: "i-3", baseVersion: null, data: { ...ann, region: "east" } });
    const other = await pushOne(keys.billing!, "customers", { changeId: id, id: "i-3", baseVersion: 1, patch: { credit_limit: 9 } });
    expect(other).toMatchObject({ status: "applied", version: 2 });
  });
});

describe("write scopes", () => {
  it("keeps fields the writer cannot read from the server's copy", async () => {
    await pushOne(keys.crm!, "customers", { id: "w-1", baseVersion: null, data: ann });
    // billing reads name, email, region, credit_limit, vat_id; it sends the record as it sees it.
    const res = await pushOne(keys.billing!, "customers", {
      id: "w-1",
      baseVersion: 1,
      data: { name: "Ann", email: "ann@example.com", region: "north", credit_limit: 500 },
    });
    expect(res.status).toBe("applied");
    expect((await current("customers", "w-1"))?.data).toEqual({ ...ann, credit_limit: 500 });
  });

  it.each([
    ["a record outside the write range", "crm", { id: "w-south", data: { name: "Bo", region: "south" } }, /outside its write range|would leave its write range/],
    ["a field not listed", "crm", { id: "w-2", data: { ...ann, credit_limit: 1 } }, /may not write field "credit_limit"/],
    ["a move out of the write range", "crm", { id: "w-2", data: { ...ann, region: "south" } }, /would leave its write range/],
    ["a delete without every field", "billing", { id: "w-2", deleted: true as const }, /deleting needs write access to every field/],
    ["a read-only collection", "crm", { id: "p-1", collection: "products", data: { sku: "A" } }, /read-only for system "crm"/],
  ])("refuses %s as forbidden and writes nothing", async (_name, system, change, reason) => {
    await pushOne(keys.crm!, "customers", { id: "w-2", baseVersion: null, data: ann }).catch(() => undefined);
    const { collection = "customers", ...rest } = change as { collection?: string; id: string };
    const before = await current(collection, rest.id);
    const res = await pushOne(keys[system]!, collection, {
      ...(rest as { id: string }),
      baseVersion: before?.version ?? null,
    } as never);
    expect(res.status).toBe("forbidden");
    expect(res.reason).toMatch(reason);
    expect(res.data).toBeUndefined();
    expect(await current(collection, rest.id)).toEqual(before);
  });

  it("refuses a whole push to a collection the system can neither read nor write", async () => {
    const res = await pushRaw(keys.warehouse!, "customers", { changes: [{ changeId: changeId(), id: "x", baseVersion: null, data: {} }] });
    expect(res.status).toBe(403);
    expect((res.body as { error: { code: string } }).error.code).toBe("forbidden");
  });
});

describe("conflicts (server-wins and client-wins)", () => {
  it("server-wins keeps the server's copy, answers rejected with its projected data, and logs both sides", async () => {
    const order = { customer_id: "c1", items: ["A"], total: 40, status: "new", shipping_address: "Main St 1" };
    await pushOne(keys.webshop!, "orders", { id: "o-1", baseVersion: null, data: order });
    // billing saw version 1; the web shop changes the items; then billing marks it paid from version 1.
    await pushOne(keys.webshop!, "orders", { id: "o-1", baseVersion: 1, data: { ...order, items: ["A", "B"], total: 55 } });
    const res = await pushOne(keys.billing!, "orders", {
      id: "o-1",
      baseVersion: 1,
      data: { customer_id: "c1", total: 40, status: "paid", paid_at: "2026-11-25" },
    });
    expect(res).toMatchObject({
      status: "rejected",
      version: 2,
      data: { customer_id: "c1", total: 55, status: "new" },
      conflict: { id: expect.any(Number), strategy: "server-wins" },
      reason: expect.stringMatching(/lost a conflict/),
    });
    expect(res.data).not.toHaveProperty("items");
    expect(res.digest).toBe(digestOf({ customer_id: "c1", total: 55, status: "new" }));
    const logged = await conflictLogged(t.hub.db, "billing", res);
    expect(logged).toMatchObject({
      collection: "orders",
      recordId: "o-1",
      clientSystem: "billing",
      serverSystem: "webshop",
      baseVersion: 1,
      baseData: order,
      serverVersion: 2,
      strategy: "server-wins",
      outcome: "server-won",
      resultVersion: null,
    });
    expect(logged?.clientData).toMatchObject({ status: "paid", paid_at: "2026-11-25", items: ["A"] });
    expect((await current("orders", "o-1"))?.version).toBe(2);
  });

  it("a null baseVersion for an existing record is a conflict", async () => {
    await pushOne(keys.webshop!, "orders", { id: "o-2", baseVersion: null, data: { status: "new", total: 1 } });
    const res = await pushOne(keys.webshop!, "orders", { id: "o-2", baseVersion: null, data: { status: "new", total: 2 } });
    expect(res).toMatchObject({ status: "rejected", conflict: { strategy: "server-wins" } });
  });

  it("client-wins applies the client's change over the server's and says it won", async () => {
    // webshop's rule on customers uses last-writer-wins; a policy with client-wins is activated for this test.
    const { activatePolicy } = await import("@/lib/policy/store");
    const yaml = `version: 1
systems: {crm: {}, billing: {}, warehouse: {}, webshop: {}}
collections: {notes: {conflict: client-wins}}
rules: [{who: "*", collection: notes, read: all, write: all}]
`;
    const { version } = await activatePolicy(t.hub.db, { yaml, actor: "test", source: "api" });
    try {
      await pushOne(keys.crm!, "notes", { id: "n-1", baseVersion: null, data: { title: "a", body: "x" } });
      await pushOne(keys.billing!, "notes", { id: "n-1", baseVersion: 1, data: { title: "a", body: "y" } });
      const res = await pushRaw(keys.crm!, "notes", {
        changes: [{ changeId: changeId(), id: "n-1", baseVersion: 1, data: { title: "b", body: "x" } }],
      });
      expect(res.headers.get(POLICY_VERSION_HEADER)).toBe(String(version));
      const [result] = (res.body as { results: { status: string; version: number; data?: unknown; conflict?: { strategy: string } }[] }).results;
      // crm changed the title; billing's body change stays: the result combines both, so crm gets the data.
      expect(result).toMatchObject({ status: "merged", version: 3, data: { title: "b", body: "y" }, conflict: { strategy: "client-wins" } });
      const both = await pushOne(keys.billing!, "notes", { id: "n-1", baseVersion: 2, data: { title: "c", body: "y" } });
      expect(both).toMatchObject({ status: "applied", version: 4, conflict: { strategy: "client-wins" } });
      const rows = await t.hub.db.select().from(conflicts).where(eq(conflicts.recordId, "n-1"));
      expect(rows.map((r) => r.outcome)).toEqual(["client-won", "client-won"]);
    } finally {
      const { readFileSync } = await import("node:fs");
      await activatePolicy(t.hub.db, { yaml: readFileSync("policies/example.yaml", "utf8"), actor: "test", source: "api" });
    }
  });
});

describe("bad requests change nothing", () => {
  const valid = () => ({ changes: [{ changeId: changeId(), id: "bad-1", baseVersion: null, data: ann }] });
  const cases: [string, () => unknown, number, string][] = [
    ["malformed JSON", () => '{"changes": [', 400, "invalid_request"],
    ["an unknown field", () => ({ changes: [{ ...valid().changes[0], colour: "red" }] }), 400, "invalid_request"],
    ["an unknown top-level field", () => ({ ...valid(), dryRun: true }), 400, "invalid_request"],
    ["a wrong type", () => ({ changes: [{ ...valid().changes[0], baseVersion: "1" }] }), 400, "invalid_request"],
    ["data and deleted together", () => ({ changes: [{ ...valid().changes[0], deleted: true }] }), 400, "invalid_request"],
    ["data that is an array", () => ({ changes: [{ ...valid().changes[0], data: [1] }] }), 400, "invalid_request"],
    ["an id with a control character", () => ({ changes: [{ ...valid().changes[0], id: "a\u0007b" }] }), 400, "invalid_request"],
    ["an id of 257 characters", () => ({ changes: [{ ...valid().changes[0], id: "x".repeat(257) }] }), 400, "invalid_request"],
    ["a __proto__ key", () => `{"changes":[{"changeId":"p1","id":"bad-1","baseVersion":null,"data":{"__proto__":{"a":1}}}]}`, 400, "invalid_request"],
    ["1,001 changes", () => ({ changes: Array.from({ length: 1001 }, (_, i) => ({ ...valid().changes[0], changeId: `m${i}` })) }), 400, "invalid_request"],
    ["a record over 256 KiB", () => ({ changes: [{ ...valid().changes[0], data: { blob: "x".repeat(300 * 1024) } }] }), 413, "payload_too_large"],
    ["a body over 32 MiB", () => `{"changes": [${" ".repeat(33 * 1024 * 1024)}]}`, 413, "payload_too_large"],
  ];

  it.each(cases)("refuses %s", async (_name, body, status, code) => {
    const res = await pushRaw(keys.crm!, "customers", body());
    expect(res.status).toBe(status);
    expect((res.body as { error: { code: string; message: string } }).error).toMatchObject({ code, message: expect.any(String) });
    expect(res.headers.get(POLICY_VERSION_HEADER)).toMatch(/^\d+$/);
    expect(await current("customers", "bad-1")).toBeUndefined();
  });

  it("answers 404 for an unknown collection and 401 for a missing or revoked key", async () => {
    const unknown = await pushRaw(keys.crm!, "invoices", valid());
    expect(unknown.status).toBe(404);
    expect((unknown.body as { error: { code: string } }).error.code).toBe("unknown_collection");

    const anonymous = await pushRaw("", "customers", valid());
    expect(anonymous.status).toBe(401);

    const extra = await keysFor(t.hub.db, "crm");
    const prefix = extra.crm!.split("_")[1]!;
    await revokeApiKey(t.hub.db, { system: "crm", prefix, actor: "test" });
    const revoked = await pushRaw(extra.crm!, "customers", valid());
    expect(revoked.status).toBe(401);
    expect(await current("customers", "bad-1")).toBeUndefined();
  });
});

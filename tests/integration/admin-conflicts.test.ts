import { readFileSync } from "node:fs";
import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as changesRoute from "@/app/api/v1/collections/[collection]/changes/route";
import * as conflictRoute from "@/app/api/admin/conflicts/[id]/route";
import * as resolveRoute from "@/app/api/admin/conflicts/[id]/resolve/route";
import * as conflictsRoute from "@/app/api/admin/conflicts/route";
import { auditLog, conflicts } from "@/lib/db/schema";
import { activatePolicy } from "@/lib/policy/store";
import { listConflicts, type ConflictEntry, type ConflictPage, type ConflictSummary, type ResolveResult } from "@/lib/sync/conflicts";
import { digestOf } from "@/lib/sync/digest";
import { DELETED_DIGEST, type ChangesResponse } from "@/lib/sync/protocol";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";
import { readHistory, readRecord } from "@/tests/helpers/records";
import { conflictLogId, keysFor, pushOne } from "@/tests/helpers/sync";

const example = readFileSync("policies/example.yaml", "utf8");

/** A small policy for flows the example policy cannot produce (deletes held for an operator). */
const ticketsPolicy = `version: 1
systems: {crm: {}, billing: {}, warehouse: {}, webshop: {}}
collections: {tickets: {conflict: manual}}
rules: [{who: "*", collection: tickets, read: all, write: all}]
`;

let t: TestHub;
let keys: Record<string, string>;

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "crm", "billing", "warehouse", "webshop");
});
afterAll(async () => {
  await t.close();
});

function key(system: string): string {
  const k = keys[system];
  if (!k) throw new Error(`no key for ${system}`);
  return k;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------
// Conflicts made by real pushes under the example policy

const order = { customer_id: "c1", items: ["A"], total: 40, status: "new", shipping_address: "Main St 1" };

/**
 * The warehouse's strategy on orders is `manual`: billing marks an order paid
 * (v2) and corrects the payment date (v3) while the warehouse, still on v2,
 * packs it. The warehouse's change is held as pending.
 */
async function manualOrder(id: string): Promise<number> {
  await pushOne(key("webshop"), "orders", { id, baseVersion: null, data: order });
  await pushOne(key("billing"), "orders", { id, baseVersion: 1, patch: { status: "paid", paid_at: "2026-11-25" } });
  await pushOne(key("billing"), "orders", { id, baseVersion: 2, patch: { paid_at: "2026-11-26" } });
  const res = await pushOne(key("warehouse"), "orders", { id, baseVersion: 2, patch: { status: "packed", tracking: "TR-1" } });
  expect(res, JSON.stringify(res)).toMatchObject({ status: "pending", version: 3, conflict: { strategy: "manual" } });
  return conflictLogId(t.hub.db, "warehouse", res);
}

/** Orders are server-wins for billing: it marks paid an order the web shop changed meanwhile, and loses. */
async function serverWinsOrder(id: string): Promise<number> {
  await pushOne(key("webshop"), "orders", { id, baseVersion: null, data: order });
  await pushOne(key("webshop"), "orders", { id, baseVersion: 1, data: { ...order, items: ["A", "B"], total: 55 } });
  const res = await pushOne(key("billing"), "orders", { id, baseVersion: 1, patch: { status: "paid", paid_at: "2026-11-25" } });
  expect(res, JSON.stringify(res)).toMatchObject({ status: "rejected", conflict: { strategy: "server-wins" } });
  return conflictLogId(t.hub.db, "billing", res);
}

const ann = { name: "Ann", email: "ann@example.com", phone: "555-0100", region: "north" };

/** Customers are field-merge with a manual fallback for the CRM: the same field edited twice waits for an operator. */
async function fieldMergePending(id: string): Promise<number> {
  await pushOne(key("crm"), "customers", { id, baseVersion: null, data: ann });
  await pushOne(key("crm"), "customers", { id, baseVersion: 1, patch: { phone: "555-0101" } });
  const res = await pushOne(key("crm"), "customers", { id, baseVersion: 1, patch: { phone: "555-0102" } });
  expect(res, JSON.stringify(res)).toMatchObject({ status: "pending", conflict: { strategy: "field-merge" } });
  return conflictLogId(t.hub.db, "crm", res);
}

/** Disjoint edits of one customer are merged: a conflict settled at push time. */
async function fieldMergeMerged(id: string): Promise<number> {
  await pushOne(key("crm"), "customers", { id, baseVersion: null, data: ann });
  await pushOne(key("crm"), "customers", { id, baseVersion: 1, patch: { phone: "555-0101" } });
  const res = await pushOne(key("crm"), "customers", { id, baseVersion: 1, patch: { email: "ann@example.org" } });
  expect(res, JSON.stringify(res)).toMatchObject({ status: "merged", conflict: { strategy: "field-merge" } });
  return conflictLogId(t.hub.db, "crm", res);
}

// ---------------------------------------------------------------------------
// Route helpers

type Query = Record<string, string | number>;

async function list(query: Query = {}) {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)])).toString();
  return call(conflictsRoute.GET, { path: `/api/admin/conflicts${qs ? `?${qs}` : ""}` });
}

async function listOk(query: Query = {}): Promise<ConflictPage> {
  const res = await list(query);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as ConflictPage;
}

/** Every page of a listing, following `next`; checks ids fall strictly across and within pages. */
async function listAll(query: Query = {}): Promise<ConflictSummary[]> {
  const all: ConflictSummary[] = [];
  let before: number | undefined;
  for (let pages = 0; ; pages++) {
    expect(pages).toBeLessThan(1000);
    const page = await listOk(before === undefined ? query : { ...query, before });
    all.push(...page.conflicts);
    if (page.next === null) break;
    expect(page.next).toBe(page.conflicts[page.conflicts.length - 1]?.id);
    before = page.next;
  }
  const ids = all.map((c) => c.id);
  for (let i = 1; i < ids.length; i++) expect(ids[i]!).toBeLessThan(ids[i - 1]!);
  return all;
}

const idsOf = (page: { conflicts: ConflictSummary[] }) => page.conflicts.map((c) => c.id);
const desc = (...ids: number[]) => [...ids].sort((a, b) => b - a);

async function detail(id: number | string) {
  return call<{ id: string }>(conflictRoute.GET, { path: `/api/admin/conflicts/${id}`, params: { id: String(id) } });
}

async function resolve(id: number, body: unknown, token?: string | null) {
  return call<{ id: string }>(resolveRoute.POST, {
    method: "POST",
    path: `/api/admin/conflicts/${id}/resolve`,
    params: { id: String(id) },
    body: typeof body === "string" ? body : (body as object),
    token,
  });
}

async function resolveOk(id: number, body: unknown): Promise<ResolveResult> {
  const res = await resolve(id, body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as ResolveResult;
}

async function current(collection: string, id: string) {
  const row = await readRecord(t.hub.db, collection, id);
  if (!row) throw new Error(`no record ${collection}/${id}`);
  return row;
}

const history = (collection: string, id: string) => readHistory(t.hub.db, collection, id);

async function auditFor(conflictId: number) {
  return t.hub.db
    .select()
    .from(auditLog)
    .where(and(eq(auditLog.action, "conflict.resolve"), eq(auditLog.target, `conflict:${conflictId}`)));
}

async function changes(system: string, collection: string, since?: string): Promise<ChangesResponse> {
  const qs = since === undefined ? "" : `?since=${since}`;
  const res = await call<{ collection: string }>(changesRoute.GET, {
    path: `/api/v1/collections/${collection}/changes${qs}`,
    params: { collection },
    token: key(system),
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as ChangesResponse;
}

function errorOf(body: unknown): { code: string; message: string; details?: unknown } {
  return (body as { error: { code: string; message: string; details?: unknown } }).error;
}

// ---------------------------------------------------------------------------

describe("GET /api/admin/conflicts", () => {
  const f = { m1: 0, m2: 0, s1: 0, p1: 0, g1: 0 };
  let t0: string, mid: string, t1: string;

  beforeAll(async () => {
    t0 = new Date().toISOString();
    await sleep(20);
    f.m1 = await manualOrder("list-m1");
    f.s1 = await serverWinsOrder("list-s1");
    f.m2 = await manualOrder("list-m2");
    await sleep(20);
    mid = new Date().toISOString();
    await sleep(20);
    f.p1 = await fieldMergePending("list-p1");
    f.g1 = await fieldMergeMerged("list-g1");
    await sleep(20);
    t1 = new Date().toISOString();
  });

  it("lists every conflict newest first, with its status derived from the outcome", async () => {
    const page = await listOk();
    expect(idsOf(page)).toEqual(desc(f.m1, f.m2, f.s1, f.p1, f.g1));
    expect(page.next).toBeNull();
    const m1 = page.conflicts.find((c) => c.id === f.m1);
    expect(m1).toEqual({
      id: f.m1,
      clientRef: 1, // the warehouse's first conflict: what its push result called conflict.id
      collection: "orders",
      recordId: "list-m1",
      clientSystem: "warehouse",
      serverSystem: "billing",
      changeId: expect.any(String),
      strategy: "manual",
      outcome: "pending",
      status: "pending",
      baseVersion: 2,
      serverVersion: 3,
      resultVersion: null,
      createdAt: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
      resolution: null,
      resolvedBy: null,
      resolvedAt: null,
    });
    const statuses = Object.fromEntries(page.conflicts.map((c) => [c.id, [c.outcome, c.status]]));
    expect(statuses).toEqual({
      [f.m1]: ["pending", "pending"],
      [f.m2]: ["pending", "pending"],
      [f.s1]: ["server-won", "settled"],
      [f.p1]: ["pending", "pending"],
      [f.g1]: ["merged", "settled"],
    });
    // The listing leaves the sides out; the detail route has them.
    expect(m1).not.toHaveProperty("clientData");
  });

  it("filters by status, collection, system (either side), strategy and time", async () => {
    const cases: [Query, number[]][] = [
      [{ status: "all" }, [f.m1, f.m2, f.s1, f.p1, f.g1]],
      [{ status: "pending" }, [f.m1, f.m2, f.p1]],
      [{ status: "settled" }, [f.s1, f.g1]],
      [{ status: "resolved" }, []],
      [{ collection: "orders" }, [f.m1, f.m2, f.s1]],
      [{ collection: "customers" }, [f.p1, f.g1]],
      [{ collection: "products" }, []],
      [{ system: "warehouse" }, [f.m1, f.m2]],
      [{ system: "billing" }, [f.m1, f.m2, f.s1]], // the server side of m1 and m2, the client side of s1
      [{ system: "webshop" }, [f.s1]],
      [{ system: "crm" }, [f.p1, f.g1]], // both sides of one conflict: listed once
      [{ strategy: "manual" }, [f.m1, f.m2]],
      [{ strategy: "field-merge" }, [f.p1, f.g1]],
      [{ strategy: "priority" }, []],
      [{ since: t0 }, [f.m1, f.m2, f.s1, f.p1, f.g1]],
      [{ since: mid }, [f.p1, f.g1]],
      [{ until: mid }, [f.m1, f.m2, f.s1]],
      [{ since: t0, until: t1 }, [f.m1, f.m2, f.s1, f.p1, f.g1]],
      [{ until: t0 }, []],
      [{ since: "2000-01-01", until: "2000-01-02" }, []],
      [{ status: "pending", collection: "customers" }, [f.p1]],
      [{ status: "pending", system: "billing", until: mid }, [f.m1, f.m2]],
      [{ system: "crm", strategy: "field-merge", status: "settled" }, [f.g1]],
      // A system's own conflict number (its push result's conflict.id) finds that one conflict.
      [{ system: "warehouse", ref: 2 }, [f.m2]],
      [{ system: "crm", ref: 2 }, [f.g1]],
      [{ system: "billing", ref: 2 }, []],
    ];
    for (const [query, expected] of cases) {
      expect(idsOf(await listOk(query)), JSON.stringify(query)).toEqual(desc(...expected));
    }
  });

  it("pages by id with `before`: strictly decreasing, no duplicates, nothing skipped", async () => {
    const everything = idsOf(await listOk({ limit: 500 }));
    const queries: Query[] = [{ limit: 1 }, { limit: 2 }, { limit: 4 }, { limit: 1, system: "billing" }, { limit: 2, status: "pending" }];
    for (const query of queries) {
      const paged = (await listAll(query)).map((c) => c.id);
      const full = idsOf(await listOk({ ...query, limit: 500 }));
      expect(paged, JSON.stringify(query)).toEqual(full);
      expect(new Set(paged).size).toBe(paged.length);
    }
    const first = await listOk({ limit: 2 });
    expect(first.next).toBe(everything[1]);
    const second = await listOk({ limit: 2, before: first.next! });
    expect(idsOf(second)).toEqual(everything.slice(2, 4));
    expect(await listOk({ before: Math.min(...everything) })).toEqual({ conflicts: [], next: null });
  });

  const bad: [string, Query][] = [
    ["an unknown status", { status: "open" }],
    ["a limit of 0", { limit: 0 }],
    ["a limit of 501", { limit: 501 }],
    ["a fractional limit", { limit: "1.5" }],
    ["a non-numeric cursor", { before: "abc" }],
    ["an invalid collection name", { collection: "Orders" }],
    ["an unknown strategy", { strategy: "coin-flip" }],
    ["a date that is not ISO", { since: "yesterday" }],
    ["a date-time without a zone", { until: "2026-11-25T10:00:00" }],
    ["an unknown parameter", { page: 2 }],
    ["a system's conflict number without the system", { ref: 1 }],
  ];
  it.each(bad)("refuses %s with 400 naming the parameter", async (_name, query) => {
    const res = await list(query);
    expect(res.status).toBe(400);
    const error = errorOf(res.body);
    expect(error.code).toBe("invalid_request");
    expect(error.message).toMatch(/query string is invalid/);
  });
});

describe("GET /api/admin/conflicts/{id}", () => {
  it("returns the whole entry: base, both sides, the change as sent and the details", async () => {
    const id = await manualOrder("detail-1");
    const res = await detail(id);
    expect(res.status).toBe(200);
    const entry = res.body as ConflictEntry;
    const v2 = { ...order, status: "paid", paid_at: "2026-11-25" };
    expect(entry).toMatchObject({
      id,
      collection: "orders",
      recordId: "detail-1",
      status: "pending",
      baseVersion: 2,
      baseData: v2,
      serverVersion: 3,
      serverData: { ...v2, paid_at: "2026-11-26" },
      serverDeleted: false,
      clientChange: { id: "detail-1", baseVersion: 2, patch: { status: "packed", tracking: "TR-1" } },
      clientData: { ...v2, status: "packed", tracking: "TR-1" },
      details: expect.any(Object),
    });
    expect(entry.clientChange.changeId).toBe(entry.changeId);
  });

  it("answers 404 for an unknown id and 400 for an id that is not a number", async () => {
    const missing = await detail(987654321);
    expect(missing.status).toBe(404);
    expect(errorOf(missing.body)).toMatchObject({ code: "not_found", message: expect.stringMatching(/no conflict 987654321/) });
    for (const id of ["abc", "0", "-1", "1.5", "1e3", "99999999999999999999"]) {
      const res = await detail(id);
      expect(res.status, id).toBe(400);
      expect(errorOf(res.body)).toMatchObject({ code: "invalid_request", message: expect.stringMatching(/conflict id in the path is invalid/) });
    }
  });
});

describe("POST /api/admin/conflicts/{id}/resolve", () => {
  it("`client` applies the client's change over the server's copy as a new version that readers receive", async () => {
    const id = await manualOrder("res-client");
    const { checkpoint } = await changes("webshop", "orders");
    const res = await resolveOk(id, { resolution: "client" });

    // The warehouse changed status and tracking since its base; billing's later paid_at stays.
    const expected = { ...order, status: "packed", tracking: "TR-1", paid_at: "2026-11-26" };
    expect(res.written).toBe(true);
    expect(res.message).toMatch(/written as version 4/);
    expect(res.record).toEqual({ version: 4, digest: digestOf(expected), deleted: false, data: expected });
    expect(res.conflict).toMatchObject({
      id,
      outcome: "resolved",
      status: "resolved",
      resolution: "client",
      resolvedBy: "admin-token",
      resolvedAt: expect.stringMatching(/Z$/),
      resultVersion: 4,
    });

    expect(await current("orders", "res-client")).toMatchObject({ version: 4, data: expected, updatedBy: "operator:admin-token" });
    const last = (await history("orders", "res-client")).at(-1);
    expect(last).toMatchObject({ version: 4, origin: "resolution", changeId: null, writtenBy: "operator:admin-token", data: expected });

    const feed = await changes("webshop", "orders", checkpoint);
    expect(feed.changes).toContainEqual({ id: "res-client", version: 4, digest: digestOf(expected), data: expected });

    const [audit] = await auditFor(id);
    expect(audit).toMatchObject({
      actor: "admin-token",
      action: "conflict.resolve",
      target: `conflict:${id}`,
      details: { resolution: "client", collection: "orders", record: "res-client", resultVersion: 4, written: true },
    });
  });

  it("`server` keeps the server's copy: no new version, the result is the current version", async () => {
    const id = await manualOrder("res-server");
    const before = await current("orders", "res-server");
    const res = await resolveOk(id, { resolution: "server" });
    expect(res.written).toBe(false);
    expect(res.message).toMatch(/no version was written/);
    expect(res.record).toEqual({ version: 3, digest: before.digest, deleted: false, data: before.data });
    expect(res.conflict).toMatchObject({ outcome: "resolved", resolution: "server", resultVersion: 3 });
    expect(await current("orders", "res-server")).toEqual(before);
    expect(await history("orders", "res-server")).toHaveLength(3);
    expect(await auditFor(id)).toHaveLength(1);
  });

  it("keeps the losing client's change readable in the log after resolution", async () => {
    const id = await manualOrder("res-keep");
    const before = (await detail(id)).body as ConflictEntry;
    await resolveOk(id, { resolution: "server" });
    const after = (await detail(id)).body as ConflictEntry;
    expect(after.clientChange).toEqual(before.clientChange);
    expect(after.clientData).toEqual(before.clientData);
    expect(after.clientData).toMatchObject({ status: "packed", tracking: "TR-1" });
    expect(after).toMatchObject({ status: "resolved", resolution: "server" });
  });

  it("`custom` writes exactly the operator's data", async () => {
    const id = await fieldMergePending("res-custom");
    const data = { name: "Ann", email: "ann@example.com", phone: "555-0199", region: "north", note: "checked by phone" };
    const res = await resolveOk(id, { resolution: "custom", data });
    expect(res).toMatchObject({ written: true, record: { version: 3, data, digest: digestOf(data), deleted: false } });
    expect((await current("customers", "res-custom")).data).toEqual(data);
    const last = (await history("customers", "res-custom")).at(-1);
    expect(last).toMatchObject({ version: 3, origin: "resolution", writtenBy: "operator:admin-token", data });
    const [audit] = await auditFor(id);
    expect(audit?.details).toMatchObject({ resolution: "custom", record: "res-custom", resultVersion: 3 });
  });

  it("`custom` equal to the current data resolves the conflict without writing a version", async () => {
    const id = await fieldMergePending("res-same");
    const before = await current("customers", "res-same");
    const res = await resolveOk(id, { resolution: "custom", data: { ...before.data } });
    expect(res).toMatchObject({ written: false, record: { version: 2 }, conflict: { outcome: "resolved", resultVersion: 2 } });
    expect(res.message).toMatch(/already held that data, so no version was written/);
    expect(await history("customers", "res-same")).toHaveLength(2);
  });

  it("refuses with 409 when the record has moved on, changing nothing; expectedVersion confirms the new version", async () => {
    const id = await manualOrder("res-moved");
    await pushOne(key("billing"), "orders", { id: "res-moved", baseVersion: 3, patch: { paid_at: "2026-11-27" } });
    const before = await current("orders", "res-moved");
    expect(before.version).toBe(4);

    const res = await resolve(id, { resolution: "client" });
    expect(res.status).toBe(409);
    const error = errorOf(res.body);
    expect(error.code).toBe("conflict");
    expect(error.message).toMatch(/has moved on: it is at version 4, written by billing/);
    expect(error.message).toMatch(/Nothing was changed\. Look at the record and its history again/);
    expect(error.details).toMatchObject({ conflictId: id, expectedVersion: 3, currentVersion: 4, updatedBy: "billing" });
    expect(await current("orders", "res-moved")).toEqual(before);
    expect(((await detail(id)).body as ConflictEntry).status).toBe("pending");
    expect(await auditFor(id)).toHaveLength(0);

    // A stale expectedVersion is refused the same way.
    expect((await resolve(id, { resolution: "server", expectedVersion: 3 })).status).toBe(409);

    // Having looked again, the operator confirms version 4: the client's change goes over it.
    const ok = await resolveOk(id, { resolution: "client", expectedVersion: 4 });
    expect(ok.record).toMatchObject({ version: 5, data: { ...before.data, status: "packed", tracking: "TR-1" } });
    expect(ok.record.data?.paid_at).toBe("2026-11-27");
  });

  it("refuses to resolve twice, and refuses conflicts a strategy settled", async () => {
    const id = await manualOrder("res-twice");
    await resolveOk(id, { resolution: "client" });
    const again = await resolve(id, { resolution: "server" });
    expect(again.status).toBe(409);
    expect(errorOf(again.body)).toMatchObject({
      code: "conflict",
      message: expect.stringMatching(/already settled: resolved by admin-token with "client"/),
    });
    expect((await current("orders", "res-twice")).version).toBe(4);
    expect(await auditFor(id)).toHaveLength(1);

    const settled = await serverWinsOrder("res-settled");
    const res = await resolve(settled, { resolution: "client" });
    expect(res.status).toBe(409);
    expect(errorOf(res.body).message).toMatch(/already settled by server-wins as server-won; only pending conflicts can be resolved/);
    expect((await current("orders", "res-settled")).version).toBe(2);
  });

  it("lets exactly one of two simultaneous resolutions through", async () => {
    const id = await manualOrder("res-race");
    const [a, b] = await Promise.all([resolve(id, { resolution: "client" }), resolve(id, { resolution: "server" })]);
    expect([a.status, b.status].sort()).toEqual([200, 409]);
    expect(await auditFor(id)).toHaveLength(1);
  });

  const bad: [string, unknown, number, string][] = [
    ["custom without data", { resolution: "custom" }, 400, "data is required"],
    ["custom with an extra field", { resolution: "custom", data: { a: 1 }, comment: "x" }, 400, "comment"],
    ["server with data", { resolution: "server", data: { a: 1 } }, 400, "only allowed with resolution"],
    ["client with data", { resolution: "client", data: { a: 1 } }, 400, "only allowed with resolution"],
    ["an unknown resolution", { resolution: "mine" }, 400, "resolution must be"],
    ["no resolution", {}, 400, "resolution must be"],
    ["custom data that is an array", { resolution: "custom", data: [1] }, 400, "JSON object"],
    ["custom data that is null", { resolution: "custom", data: null }, 400, "JSON object"],
    ["a __proto__ key", '{"resolution":"custom","data":{"a":{"__proto__":{"x":1}}}}', 400, "__proto__"],
    ["malformed JSON", '{"resolution": ', 400, "not valid JSON"],
    ["an expectedVersion that is a string", { resolution: "server", expectedVersion: "3" }, 400, "expectedVersion"],
    ["custom data over 256 KiB", { resolution: "custom", data: { blob: "x".repeat(300 * 1024) } }, 413, "256 KiB"],
  ];
  it.each(bad)("refuses %s, changing nothing", async (_name, body, status, text) => {
    const id = await manualOrder(`res-bad-${Math.random().toString(36).slice(2, 8)}`);
    const [conflict] = await t.hub.db.select().from(conflicts).where(eq(conflicts.id, id));
    const res = await resolve(id, body);
    expect(res.status, JSON.stringify(res.body)).toBe(status);
    expect(errorOf(res.body).message).toContain(text);
    expect((await t.hub.db.select().from(conflicts).where(eq(conflicts.id, id)))[0]).toEqual(conflict);
    expect((await current("orders", conflict!.recordId)).version).toBe(3);
  });

  it("answers 404 for an unknown conflict and 400 for a bad id", async () => {
    expect((await resolve(987654321, { resolution: "server" })).status).toBe(404);
    const res = await call<{ id: string }>(resolveRoute.POST, { method: "POST", params: { id: "x1" }, body: { resolution: "server" } });
    expect(res.status).toBe(400);
  });

  it("answers 401 without the admin token on every conflict route, and changes nothing", async () => {
    const id = await manualOrder("res-anon");
    const calls = [
      call(conflictsRoute.GET, { token: null }),
      call<{ id: string }>(conflictRoute.GET, { params: { id: String(id) }, token: null }),
      resolve(id, { resolution: "client" }, null),
      resolve(id, { resolution: "client" }, "not-the-admin-token-at-all"),
    ];
    for (const res of await Promise.all(calls)) {
      expect(res.status).toBe(401);
      expect(errorOf(res.body).code).toBe("unauthenticated");
      expect(JSON.stringify(res.body)).not.toContain("orders");
    }
    expect(((await detail(id)).body as ConflictEntry).status).toBe("pending");
  });
});

describe("resolution of deletes and creations (a policy where every change waits for an operator)", () => {
  beforeAll(async () => {
    await activatePolicy(t.hub.db, { yaml: ticketsPolicy, actor: "test", source: "api" });
  });
  afterAll(async () => {
    await activatePolicy(t.hub.db, { yaml: example, actor: "test", source: "api" });
  });

  it("`client` with a client delete deletes the record, and readers see the tombstone", async () => {
    await pushOne(key("crm"), "tickets", { id: "tk-del", baseVersion: null, data: { title: "printer", state: "open" } });
    await pushOne(key("billing"), "tickets", { id: "tk-del", baseVersion: 1, patch: { state: "waiting" } });
    const pending = await pushOne(key("crm"), "tickets", { id: "tk-del", baseVersion: 1, deleted: true });
    expect(pending.status).toBe("pending");
    const { checkpoint } = await changes("webshop", "tickets");

    const res = await resolveOk(await conflictLogId(t.hub.db, "crm", pending), { resolution: "client" });
    expect(res.record).toEqual({ version: 3, digest: DELETED_DIGEST, deleted: true });
    expect(res.message).toMatch(/a deletion/);
    expect(await current("tickets", "tk-del")).toMatchObject({ version: 3, deleted: true, digest: DELETED_DIGEST });
    expect((await history("tickets", "tk-del")).at(-1)).toMatchObject({ origin: "resolution", deleted: true });
    const feed = await changes("webshop", "tickets", checkpoint);
    expect(feed.changes).toContainEqual({ id: "tk-del", version: 3, digest: DELETED_DIGEST, deleted: true });
  });

  it("`client` for a creation over an existing record keeps the server's other fields", async () => {
    await pushOne(key("crm"), "tickets", { id: "tk-new", baseVersion: null, data: { title: "a", state: "open" } });
    const pending = await pushOne(key("billing"), "tickets", { id: "tk-new", baseVersion: null, data: { title: "b" } });
    expect(pending.status).toBe("pending");
    const res = await resolveOk(await conflictLogId(t.hub.db, "billing", pending), { resolution: "client" });
    expect(res.record).toMatchObject({ version: 2, data: { title: "b", state: "open" } });
  });

  it("leaves other pending conflicts on the record pending; resolving them then asks to look again", async () => {
    await pushOne(key("crm"), "tickets", { id: "tk-two", baseVersion: null, data: { title: "a", state: "open" } });
    await pushOne(key("crm"), "tickets", { id: "tk-two", baseVersion: 1, patch: { state: "closed" } });
    const first = await pushOne(key("billing"), "tickets", { id: "tk-two", baseVersion: 1, patch: { title: "b" } });
    const second = await pushOne(key("warehouse"), "tickets", { id: "tk-two", baseVersion: 1, patch: { title: "c" } });
    expect([first.status, second.status]).toEqual(["pending", "pending"]);

    const firstId = await conflictLogId(t.hub.db, "billing", first);
    const secondId = await conflictLogId(t.hub.db, "warehouse", second);
    await resolveOk(firstId, { resolution: "client" });
    expect(((await detail(secondId)).body as ConflictEntry).status).toBe("pending");
    const res = await resolve(secondId, { resolution: "client" });
    expect(res.status).toBe(409);
    expect(errorOf(res.body).message).toMatch(/at version 3, written by operator:admin-token/);

    const ok = await resolveOk(secondId, { resolution: "client", expectedVersion: 3 });
    expect(ok.record).toMatchObject({ version: 4, data: { title: "c", state: "closed" } });
    const listed = await listOk({ collection: "tickets", system: "operator:admin-token" });
    expect(idsOf(listed)).toEqual([]); // both conflicts were raised against copies the systems wrote
  });
});

describe("the conflict log at 100,000 entries", () => {
  const N = 100_000;

  beforeAll(async () => {
    // Five collections, four busy systems and two rare ones, 1% pending and 1% resolved, one entry a second.
    await t.hub.db.execute(sql`
      insert into conflicts (collection, record_id, client_system, server_system, change_id, base_version,
                             server_version, client_change, strategy, outcome, created_at)
      select (array['bulk_a','bulk_b','bulk_c','bulk_d','bulk_e'])[1 + g % 5],
             'r' || (g % 5000),
             case when g % 10000 = 7 then 'rare_client' else (array['s0','s1','s2','s3'])[1 + g % 4] end,
             case when g % 10000 = 3 then 'rare_server' else (array['s1','s2','s3','s0'])[1 + g % 4] end,
             'bulk-' || g, 1, 2, '{}'::jsonb,
             (array['server-wins','manual','field-merge','priority'])[1 + g % 4],
             case when g % 100 = 1 then 'pending' when g % 100 = 2 then 'resolved'
                  else (array['server-won','client-won','merged'])[1 + g % 3] end,
             timestamptz '2020-01-01T00:00:00Z' + g * interval '1 second'
      from generate_series(1, ${N}) g`);
    await t.hub.db.execute(sql`analyze conflicts`);
  }, 300_000);

  async function timed(query: Parameters<typeof listConflicts>[1]): Promise<{ ms: number; page: ConflictPage }> {
    await listConflicts({ db: t.hub.db }, query); // warm
    let best = Infinity;
    let page: ConflictPage | undefined;
    for (let i = 0; i < 3; i++) {
      const start = performance.now();
      page = await listConflicts({ db: t.hub.db }, query);
      best = Math.min(best, performance.now() - start);
    }
    return { ms: best, page: page! };
  }

  const day = (iso: string) => new Date(iso);
  const queries: [string, Parameters<typeof listConflicts>[1], number][] = [
    ["no filter", {}, 50],
    ["pending", { status: "pending" }, 50],
    ["resolved, 500 per page", { status: "resolved", limit: 500 }, 500],
    ["settled", { status: "settled" }, 50],
    ["one collection", { collection: "bulk_c" }, 50],
    ["a busy system", { system: "s2" }, 50],
    ["a rare system (client side)", { system: "rare_client" }, 10],
    ["a rare system (server side)", { system: "rare_server" }, 10],
    ["a strategy", { strategy: "priority" }, 50],
    ["an old hour", { since: day("2020-01-01T10:00:00Z"), until: day("2020-01-01T11:00:00Z") }, 50],
    ["a cursor deep in the log", { before: 1000 }, 50],
    ["pending in one collection in a window", { status: "pending", collection: "bulk_b", since: day("2020-01-01T05:00:00Z"), until: day("2020-01-02T00:00:00Z") }, 50],
  ];

  it.each(queries)("answers %s quickly", async (_name, query, expected) => {
    const { ms, page } = await timed(query);
    expect(page.conflicts.length).toBe(expected);
    expect(ms, `${ms.toFixed(1)} ms`).toBeLessThan(100);
  });

  it("pages through all 1,000 pending entries without gaps or repeats", async () => {
    const seen: number[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await listConflicts({ db: t.hub.db }, { status: "pending", limit: 500, ...(before === undefined ? {} : { before }) });
      seen.push(...page.conflicts.map((c) => c.id));
      if (page.next === null) break;
      before = page.next;
    }
    expect(new Set(seen).size).toBe(seen.length);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!).toBeLessThan(seen[i - 1]!);
    expect(seen.length).toBeGreaterThanOrEqual(N / 100);
  });
});

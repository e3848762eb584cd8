import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { auditLog, conflicts } from "@/lib/db/schema";
import { countPendingConflicts, listConflictLog, parseConflictFilters, type ConflictFilters } from "@/lib/console/conflicts-list";
import { getConflictView, parseRecordJson, resolveFormSchema } from "@/lib/console/conflicts-view";
import { diffVersions, getRecordDetail, parseRecordPageQuery } from "@/lib/console/records-history";
import { FILTER_WINDOW, listRecords, parseRecordFilters } from "@/lib/console/records-list";
import { isServiceError } from "@/lib/errors";
import { resolveConflict } from "@/lib/sync/conflicts";
import { restoreRecordVersion } from "@/lib/sync/history";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { readRecord, writeRecords } from "@/tests/helpers/records";
import { conflictLogId, keysFor, pushOne } from "@/tests/helpers/sync";

let t: TestHub;
let keys: Record<string, string>;

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "crm", "billing", "warehouse", "webshop");
});
afterAll(async () => {
  await t.close();
});

const ctx = () => ({ db: t.hub.db });
const key = (system: string) => keys[system]!;
const order = { customer_id: "c1", items: ["A"], total: 40, status: "new", shipping_address: "Main St 1" };

/** The warehouse is `manual` on orders: its stale change waits for an operator (server at version 3). */
async function manualOrder(id: string): Promise<number> {
  await pushOne(key("webshop"), "orders", { id, baseVersion: null, data: order });
  await pushOne(key("billing"), "orders", { id, baseVersion: 1, patch: { status: "paid", paid_at: "2026-11-25" } });
  await pushOne(key("billing"), "orders", { id, baseVersion: 2, patch: { paid_at: "2026-11-26" } });
  const res = await pushOne(key("warehouse"), "orders", { id, baseVersion: 2, patch: { status: "packed", tracking: "TR-1" } });
  expect(res.status).toBe("pending");
  return conflictLogId(t.hub.db, "warehouse", res);
}

/** Billing loses to the web shop on orders (server-wins): settled at push time. */
async function serverWinsOrder(id: string): Promise<number> {
  await pushOne(key("webshop"), "orders", { id, baseVersion: null, data: order });
  await pushOne(key("webshop"), "orders", { id, baseVersion: 1, data: { ...order, items: ["A", "B"], total: 55 } });
  const res = await pushOne(key("billing"), "orders", { id, baseVersion: 1, patch: { status: "paid", paid_at: "2026-11-25" } });
  expect(res.status).toBe("rejected");
  return conflictLogId(t.hub.db, "billing", res);
}

/** The CRM edits one customer's phone twice from version 1: field-merge falls back to manual. */
async function customerPending(id: string): Promise<number> {
  const ann = { name: "Ann", email: "ann@example.com", phone: "555-0100", region: "north" };
  await pushOne(key("crm"), "customers", { id, baseVersion: null, data: ann });
  await pushOne(key("crm"), "customers", { id, baseVersion: 1, patch: { phone: "555-0101" } });
  const res = await pushOne(key("crm"), "customers", { id, baseVersion: 1, patch: { phone: "555-0102", name: "Ann B." } });
  expect(res.status).toBe("pending");
  return conflictLogId(t.hub.db, "crm", res);
}

const ids = (rows: { id: number }[]) => rows.map((r) => r.id);
const filters = (query: Record<string, string>) => parseConflictFilters(query).values;

describe("conflict log", () => {
  const c = { m1: 0, s1: 0, p1: 0, m2: 0 };

  beforeAll(async () => {
    c.m1 = await manualOrder("log-m1");
    c.s1 = await serverWinsOrder("log-s1");
    c.p1 = await customerPending("log-p1");
    c.m2 = await manualOrder("log-m2");
    // Spread the entries over days, so the time range has something to cut.
    for (const [id, day] of [[c.m1, "2026-01-01"], [c.s1, "2026-01-02"], [c.p1, "2026-01-03"], [c.m2, "2026-01-04"]] as const) {
      await t.hub.db.update(conflicts).set({ createdAt: new Date(`${day}T12:00:00Z`) }).where(eq(conflicts.id, id));
    }
  });

  it("filters by status, collection, system (either side), strategy and time range", async () => {
    const list = async (q: Record<string, string>) => ids((await listConflictLog(ctx(), filters(q))).rows);
    expect(await list({})).toEqual([c.m2, c.p1, c.s1, c.m1]);
    expect(await list({ status: "pending" })).toEqual([c.m2, c.p1, c.m1]);
    expect(await list({ status: "settled" })).toEqual([c.s1]);
    expect(await list({ status: "all" })).toEqual([c.m2, c.p1, c.s1, c.m1]);
    expect(await list({ collection: "customers" })).toEqual([c.p1]);
    expect(await list({ system: "warehouse" })).toEqual([c.m2, c.m1]); // client side
    expect(await list({ system: "webshop" })).toEqual([c.s1]); // server side
    expect(await list({ system: "crm" })).toEqual([c.p1]); // both sides, listed once
    expect(await list({ strategy: "manual" })).toEqual([c.m2, c.m1]);
    expect(await list({ strategy: "field-merge" })).toEqual([c.p1]);
    expect(await list({ from: "2026-01-02", to: "2026-01-04" })).toEqual([c.p1, c.s1]);
    expect(await list({ from: "2026-01-02T12:00", to: "2026-01-02T12:00:01Z" })).toEqual([c.s1]);
    expect(await list({ status: "pending", collection: "orders", from: "2026-01-01T13:00" })).toEqual([c.m2]);
    expect(await list({ system: "warehouse", from: "2026-01-01", to: "2026-01-05" })).toEqual([c.m2, c.m1]);
    const newer = await listConflictLog(ctx(), { ...filters({ system: "warehouse", from: "2026-01-01" }), after: c.m1 });
    expect(ids(newer.rows)).toEqual([c.m2]);
  });

  it("reports bad filter values in sentences and applies the good ones", async () => {
    const parsed = parseConflictFilters({ status: "open", collection: "Orders!", strategy: "coin-flip", from: "2026-02-30", to: "yesterday", system: "warehouse" });
    expect(parsed.values).toEqual({ system: "warehouse" });
    expect(parsed.errors).toHaveLength(5);
    expect(parsed.errors[0]).toMatch(/^Status "open" was ignored: choose pending, resolved, settled or all/);
    expect(parsed.errors.join(" ")).toContain('From "2026-02-30" was ignored: that date does not exist');
    expect(parsed.errors.join(" ")).toContain("Strategy");
    const reversed = parseConflictFilters({ from: "2026-01-05", to: "2026-01-01" });
    expect(reversed.values).toEqual({});
    expect(reversed.errors[0]).toContain("From must be earlier than To");
    expect(parseConflictFilters({ before: "0" }).errors[0]).toContain("Page cursor");
    // Arrays (?status=a&status=b) take the first value; empty values are absent.
    expect(parseConflictFilters({ status: ["pending", "x"], collection: "" }).values).toEqual({ status: "pending" });
  });

  it("pages older and newer with keyset cursors, without gaps or repeats", async () => {
    const all = [c.m2, c.p1, c.s1, c.m1];
    const first = await listConflictLog(ctx(), {}, 3);
    expect(ids(first.rows)).toEqual(all.slice(0, 3));
    expect(first.newer).toBeNull();
    expect(first.older).toBe(c.s1);
    const second = await listConflictLog(ctx(), { before: first.older! } as Partial<ConflictFilters>, 3);
    expect(ids(second.rows)).toEqual([c.m1]);
    expect(second.older).toBeNull();
    expect(second.newer).toBe(c.m1);
    const back = await listConflictLog(ctx(), { after: second.newer! } as Partial<ConflictFilters>, 3);
    expect(ids(back.rows)).toEqual(all.slice(0, 3));
    expect(back.newer).toBeNull();
    expect(back.older).toBe(c.s1);
    const mid = await listConflictLog(ctx(), { after: c.m1 } as Partial<ConflictFilters>, 2);
    expect(ids(mid.rows)).toEqual([c.p1, c.s1]);
    expect(mid.newer).toBe(c.p1);
    expect(mid.older).toBe(c.s1);
    // With a filter, cursors stay inside it.
    const pending = await listConflictLog(ctx(), { status: "pending", system: "warehouse", before: c.m2 }, 1);
    expect(ids(pending.rows)).toEqual([c.m1]);
    expect(pending.newer).toBe(c.m1);
  });

  it("counts pending conflicts", async () => {
    const before = await countPendingConflicts(ctx());
    expect(before).toBeGreaterThanOrEqual(3);
    const id = await manualOrder("log-count");
    expect(await countPendingConflicts(ctx())).toBe(before + 1);
    await resolveConflict({ db: t.hub.db, actor: "alice" }, { id, resolution: "server" });
    expect(await countPendingConflicts(ctx())).toBe(before);
  });
});

describe("conflict view and resolution", () => {
  it("shows the three sides with field-level differences and a merge proposal", async () => {
    const id = await customerPending("view-1");
    const view = await getConflictView(ctx(), id);
    expect(view.conflict).toMatchObject({ id, status: "pending", strategy: "field-merge", clientSystem: "crm", serverSystem: "crm" });
    expect(view.current).toMatchObject({ version: 2, deleted: false });
    expect(view.rows.map((r) => [r.path, r.base, r.server, r.client, r.conflicting])).toEqual([
      ["name", "Ann", "Ann", "Ann B.", false],
      ["phone", "555-0100", "555-0101", "555-0102", true],
    ]);
    expect(view.highlights.server).toEqual({ phone: "conflict" });
    expect(view.highlights.client).toEqual({ name: "changed", phone: "conflict" });
    expect(view.mergeProposal).toEqual({ name: "Ann B.", email: "ann@example.com", phone: "555-0102", region: "north" });
    await expect(getConflictView(ctx(), 987654)).rejects.toThrow(/There is no conflict 987654/);
  });

  it("resolves with the operator's merge, logged with the operator and audited", async () => {
    const id = await manualOrder("resolve-1");
    const form = resolveFormSchema.parse({ id: String(id), resolution: "custom", expectedVersion: "3", data: '{"status":"packed","total":40}' });
    const json = parseRecordJson(form.data!);
    expect(json.ok).toBe(true);
    const result = await resolveConflict({ db: t.hub.db, actor: "alice" }, { ...form, data: json.ok ? json.data : undefined });
    expect(result.record).toMatchObject({ version: 4, data: { status: "packed", total: 40 } });
    expect((await readRecord(t.hub.db, "orders", "resolve-1"))?.updatedBy).toBe("operator:alice");

    const listed = await listConflictLog(ctx(), { status: "resolved", collection: "orders" });
    expect(listed.rows.find((r) => r.id === id)).toMatchObject({ status: "resolved", resolution: "custom", resolvedBy: "alice", resultVersion: 4 });
    const audit = await t.hub.db.select().from(auditLog).where(and(eq(auditLog.action, "conflict.resolve"), eq(auditLog.target, `conflict:${id}`)));
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: "alice", details: { resolution: "custom", resultVersion: 4 } });

    // Resolving it again is refused with a sentence, not a crash.
    await expect(resolveConflict({ db: t.hub.db, actor: "alice" }, { id, resolution: "server", expectedVersion: 4 })).rejects.toThrow(
      /already settled: resolved by alice/,
    );
  });

  it("refuses a resolution decided on a version the record has left, and changes nothing", async () => {
    const id = await manualOrder("resolve-stale");
    const view = await getConflictView(ctx(), id);
    expect(view.current?.version).toBe(3);
    // Meanwhile billing changes the order again (version 4).
    await pushOne(key("billing"), "orders", { id: "resolve-stale", baseVersion: 3, patch: { paid_at: "2026-11-27" } });
    const error = await resolveConflict({ db: t.hub.db, actor: "alice" }, { id, resolution: "client", expectedVersion: view.current!.version }).catch((e: unknown) => e);
    expect(isServiceError(error) && error.code).toBe("conflict");
    expect((error as Error).message).toMatch(/has moved on: it is at version 4.*Nothing was changed/);
    expect((await readRecord(t.hub.db, "orders", "resolve-stale"))?.version).toBe(4);
    expect((await getConflictView(ctx(), id)).conflict.status).toBe("pending");
    // Looking again (version 4) and deciding works.
    const ok = await resolveConflict({ db: t.hub.db, actor: "alice" }, { id, resolution: "client", expectedVersion: 4 });
    expect(ok.record).toMatchObject({ version: 5, data: { status: "packed", tracking: "TR-1", paid_at: "2026-11-27" } });
  });

  it("validates the resolve form and the merged JSON", () => {
    expect(resolveFormSchema.safeParse({ id: "1", resolution: "both", expectedVersion: "3" }).success).toBe(false);
    expect(resolveFormSchema.safeParse({ id: "1", resolution: "server", expectedVersion: "x" }).success).toBe(false);
    expect(parseRecordJson("{ nope")).toMatchObject({ ok: false, message: expect.stringMatching(/not valid JSON.*Nothing was changed/) });
    expect(parseRecordJson("[1]")).toMatchObject({ ok: false, message: expect.stringMatching(/must be a JSON object/) });
  });
});

describe("records browser", () => {
  beforeAll(async () => {
    await writeRecords(t.hub.db, [
      { collection: "products", id: "p-001", by: "webshop", data: { sku: "A1", title: "Anvil", price: 10, dims: { w: 3 } } },
      { collection: "products", id: "p-002", by: "webshop", data: { sku: "B2", title: "Bell", price: 20, dims: { w: 4 } } },
      { collection: "products", id: "p-010", by: "webshop", data: { sku: "C3", title: "Cart", price: 10, dims: { w: 3 } } },
      { collection: "products", id: "q/1 é", by: "webshop", data: { sku: "D4", title: "Odd id", price: "10" } },
      { collection: "products", id: "p-002", by: "warehouse", data: { sku: "B2", title: "Bell", price: 20, stock: 5, dims: { w: 4 } } },
      { collection: "products", id: "p-010", by: "webshop", deleted: true },
    ]);
    // Enough rows that a field filter needs more than one window: 6,000 of "bulk", 1 in 1,000 blue.
    await t.hub.db.execute(sql`
      insert into records (collection, id, data, version, digest, deleted, seq, updated_by)
      select 'bulk', 'b' || lpad(g::text, 6, '0'),
             jsonb_build_object('n', g, 'color', case when g % 1000 = 0 then 'blue' else 'red' end, 'tags', jsonb_build_array('t' || (g % 3)),
                                'shade', case when g % 250 = 0 then 'dark' else 'light' end),
             1, 'x', false, nextval('change_seq'), 'seed'
      from generate_series(1, ${FILTER_WINDOW + 1000}) g`);
  });

  const list = async (q: Record<string, string>, limit?: number) => {
    const parsed = parseRecordFilters(q);
    expect(parsed.errors).toEqual([]);
    return listRecords(ctx(), { collection: "products", ...parsed.values }, limit);
  };

  it("lists a collection in id order with tombstones marked, and filters by id prefix", async () => {
    const all = await list({ collection: "products" });
    expect(all.rows.map((r) => [r.id, r.version, r.deleted])).toEqual([
      ["p-001", 1, false],
      ["p-002", 2, false],
      ["p-010", 2, true],
      ["q/1 é", 1, false],
    ]);
    expect(all.rows[1]).toMatchObject({ updatedBy: "warehouse" });
    expect(all.rows[0]!.preview).toContain('"sku": "A1"');
    expect((await list({ collection: "products", prefix: "p-00" })).rows.map((r) => r.id)).toEqual(["p-001", "p-002"]);
    expect((await list({ collection: "products", prefix: "q/" })).rows.map((r) => r.id)).toEqual(["q/1 é"]);
    expect((await list({ collection: "products", prefix: "%" })).rows).toEqual([]);
    expect((await list({ collection: "products", prefix: "p_" })).rows).toEqual([]);
  });

  it("filters by field = value, nested paths and typed values included", async () => {
    const ids = async (q: Record<string, string>) => (await list({ collection: "products", ...q })).rows.map((r) => r.id);
    expect(await ids({ field: "price", value: "10" })).toEqual(["p-001", "p-010"]); // the number 10 (tombstones keep data)
    expect(await ids({ field: "price", value: '"10"' })).toEqual(["q/1 é"]); // the string "10"
    expect(await ids({ field: "dims.w", value: "4" })).toEqual(["p-002"]);
    expect(await ids({ field: "title", value: "Bell" })).toEqual(["p-002"]);
    expect(await ids({ field: "title", value: "bell" })).toEqual([]);
    expect(await ids({ field: "price", value: "10", prefix: "p-01" })).toEqual(["p-010"]);
  });

  it("pages with a keyset cursor through a common value (window) and a rare one (GIN)", async () => {
    const walk = async (value: string, limit: number, field = "color") => {
      const seen: string[] = [];
      const plans = new Set<string>();
      let after: string | undefined;
      for (let i = 0; i < 200; i++) {
        const page = await listRecords(ctx(), { collection: "bulk", field, value, after }, limit);
        plans.add(page.plan);
        seen.push(...page.rows.map((r) => r.id));
        if (page.next === null) break;
        after = page.next;
      }
      return { seen, plans };
    };
    const red = await walk("red", 1000);
    expect(red.seen).toHaveLength(FILTER_WINDOW + 1000 - 6);
    expect(new Set(red.seen).size).toBe(red.seen.length);
    expect([...red.seen].sort()).toEqual(red.seen);
    expect(red.plans.has("window")).toBe(true);
    const blue = await walk("blue", 5);
    expect(blue.seen).toEqual(["b001000", "b002000", "b003000", "b004000", "b005000", "b006000"]);
    expect(blue.plans.has("gin")).toBe(true);
    // 1 in 250: too few for one window, enough to keep walking the primary key.
    const dark = await walk("dark", 30, "shade");
    expect(dark.seen).toHaveLength(24);
    expect(dark.plans).toEqual(new Set(["window"]));
    // An array field: containment finds an element.
    const tagged = await listRecords(ctx(), { collection: "bulk", field: "tags", value: '["t1"]' }, 3);
    expect(tagged.rows.map((r) => r.id)).toEqual(["b000001", "b000004", "b000007"]);
    const plain = await listRecords(ctx(), { collection: "bulk", prefix: "b0059" }, 50);
    expect(plain.rows).toHaveLength(50);
    expect(plain.next).toBe("b005949");
  });

  it("reports bad filters in sentences", () => {
    const bad = parseRecordFilters({ collection: "Bad Name", field: "a..b", value: "1", after: "" });
    expect(bad.values).toEqual({});
    expect(bad.errors[0]).toMatch(/^Collection "Bad Name" was ignored/);
    expect(bad.errors.join(" ")).toMatch(/Field "a..b" was ignored/);
    expect(parseRecordFilters({ field: "status" }).errors).toEqual(["Field filter ignored: give a value too (it matches field = value)."]);
  });
});

describe("record history, diff and restore", () => {
  beforeAll(async () => {
    await writeRecords(t.hub.db, [
      { collection: "customers", id: "h1", by: "crm", data: { name: "Ann", phone: "1", address: { city: "Oslo" } } },
      { collection: "customers", id: "h1", by: "crm", data: { name: "Ann", phone: "2", address: { city: "Bergen" } } },
      { collection: "customers", id: "h1", by: "billing", data: { name: "Ann", phone: "2", address: { city: "Bergen" }, vat_id: "NO1" } },
      { collection: "customers", id: "h1", by: "crm", deleted: true },
    ]);
  });

  it("shows the current state and the history, newest first", async () => {
    const detail = await getRecordDetail(ctx(), { collection: "customers", id: "h1" });
    expect(detail.record).toMatchObject({ version: 4, deleted: true, updatedBy: "crm" });
    expect(detail.history.versions.map((v) => [v.version, v.writtenBy, v.deleted])).toEqual([
      [4, "crm", true],
      [3, "billing", false],
      [2, "crm", false],
      [1, "crm", false],
    ]);
    await expect(getRecordDetail(ctx(), { collection: "customers", id: "nope" })).rejects.toThrow(/There is no record "nope"/);
  });

  it("diffs any two versions field by field, deletions included", async () => {
    const d = await diffVersions(ctx(), { collection: "customers", id: "h1", a: 1, b: 3 });
    expect(d.rows.map((r) => [r.path, r.kind, r.before, r.after])).toEqual([
      ["address.city", "changed", "Oslo", "Bergen"],
      ["phone", "changed", "1", "2"],
      ["vat_id", "added", undefined, "NO1"],
    ]);
    expect(d.b.writtenBy).toBe("billing");
    const gone = await diffVersions(ctx(), { collection: "customers", id: "h1", a: 3, b: 4 });
    expect(gone.b.deleted).toBe(true);
    expect(gone.rows.every((r) => r.kind === "removed")).toBe(true);
    expect((await diffVersions(ctx(), { collection: "customers", id: "h1", a: 2, b: 2 })).rows).toEqual([]);
    await expect(diffVersions(ctx(), { collection: "customers", id: "h1", a: 1, b: 9 })).rejects.toThrow(/has no version 9/);
    expect(parseRecordPageQuery({ a: "0", b: "2" }).errors[0]).toMatch(/^Version A "0" was ignored/);
  });

  it("restores a version as a new one, audited with the operator", async () => {
    const result = await restoreRecordVersion({ db: t.hub.db, actor: "alice" }, { collection: "customers", id: "h1", version: 2 });
    expect(result).toMatchObject({ written: true, record: { version: 5, deleted: false, data: { phone: "2", address: { city: "Bergen" } } } });
    const detail = await getRecordDetail(ctx(), { collection: "customers", id: "h1" });
    expect(detail.history.versions[0]).toMatchObject({ version: 5, origin: "restore", writtenBy: "operator:alice" });
    const audit = await t.hub.db.select().from(auditLog).where(and(eq(auditLog.action, "record.restore"), eq(auditLog.target, "record:customers/h1")));
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: "alice", details: { restoredFrom: 2, resultVersion: 5 } });
  });
});

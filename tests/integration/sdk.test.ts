import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { and, asc, eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { MemoryStore, NetworkError, SyncClient, type FetchLike, type LocalStore, type SyncReport } from "@/lib/client";
import { PgliteStore } from "@/lib/client/pglite-store";
import { conflicts, recordHistory, records } from "@/lib/db/schema";
import { activatePolicy } from "@/lib/policy/store";
import { resolveConflict } from "@/lib/sync/conflicts";
import type { PushChange } from "@/lib/sync/protocol";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { flakyFetch, HUB_URL, inProcessFetch, sentJson } from "@/tests/helpers/inprocess-fetch";
import { writeRecord } from "@/tests/helpers/records";
import { keysFor } from "@/tests/helpers/sync";

const example = readFileSync("policies/example.yaml", "utf8");

let t: TestHub;
let keys: Record<string, string>;
const clients: SyncClient[] = [];
const dirs: string[] = [];

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "crm", "billing", "warehouse", "webshop");
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop()));
});
afterAll(async () => {
  await t.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function client(system: string, options: { store?: LocalStore; fetch?: FetchLike } = {}): SyncClient {
  const c = new SyncClient({
    baseUrl: HUB_URL,
    apiKey: keys[system] as string,
    store: options.store ?? new MemoryStore(),
    fetch: options.fetch ?? inProcessFetch(),
    debounceMs: 50,
    backoff: { baseMs: 50, maxMs: 500 },
  });
  clients.push(c);
  return c;
}

async function server(collection: string, id: string) {
  const [row] = await t.hub.db
    .select()
    .from(records)
    .where(and(eq(records.collection, collection), eq(records.id, id)));
  return row;
}

async function history(collection: string, id: string) {
  return t.hub.db
    .select()
    .from(recordHistory)
    .where(and(eq(recordHistory.collection, collection), eq(recordHistory.id, id)))
    .orderBy(asc(recordHistory.version));
}

function report(partial: Partial<SyncReport>): SyncReport {
  return { pushed: 0, pulled: 0, removed: 0, conflicts: { merged: 0, rejected: 0, pending: 0 }, quarantined: 0, unchanged: 0, ...partial };
}

/** A fetch that records every pushed change body. */
function recording(inner: FetchLike, sent: PushChange[]): FetchLike {
  return async (input, init) => {
    if (init?.method === "POST" && init.body !== undefined) sent.push(...(sentJson(init) as { changes: PushChange[] }).changes);
    return inner(input, init);
  };
}

async function until(check: () => Promise<boolean> | boolean, ms = 5000): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return Date.now() - start;
}

const ann = { name: "Ann", email: "ann@example.com", phone: "555-0100", region: "north" };

describe("claim 4 with two CRM clients", () => {
  it("pushes a modified current record, pulls an unmodified behind one, and sends nothing when neither", async () => {
    const a = client("crm");
    const b = client("crm");
    await a.put("customers", "k4-1", ann);
    expect(await a.sync()).toEqual(report({ pushed: 1 }));
    expect((await server("customers", "k4-1"))?.version).toBe(1);

    expect(await b.sync()).toMatchObject({ pushed: 0, pulled: 1 });
    expect(await b.get("customers", "k4-1")).toEqual(ann);

    // Modified and current: a patch with only the changed field travels.
    const sent: PushChange[] = [];
    const a2 = client("crm", { fetch: recording(inProcessFetch(), sent) });
    await a2.sync();
    await a2.patch("customers", "k4-1", { phone: "555-0199" });
    expect(await a2.sync()).toMatchObject({ pushed: 1, pulled: 0 });
    expect(sent).toEqual([expect.objectContaining({ id: "k4-1", baseVersion: 1, patch: { phone: "555-0199" } })]);
    expect((await server("customers", "k4-1"))?.version).toBe(2);

    // Unmodified and behind: pulled. Neither: nothing pushed or pulled.
    expect(await b.sync()).toMatchObject({ pushed: 0, pulled: 1 });
    expect(await b.get("customers", "k4-1")).toEqual({ ...ann, phone: "555-0199" });
    expect(await b.sync()).toEqual(report({}));
    expect(await a.sync()).toMatchObject({ pushed: 0, pulled: 1 });
    expect(await a.sync()).toEqual(report({}));
  });

  it("an edit back to the base is not modified (digests decide)", async () => {
    const a = client("crm");
    await a.put("customers", "k4-2", ann);
    await a.sync();
    await a.put("customers", "k4-2", { ...ann, phone: "x" });
    await a.put("customers", "k4-2", { phone: "555-0100", region: "north", email: "ann@example.com", name: "Ann" });
    expect(await a.sync()).toEqual(report({}));
    expect(await history("customers", "k4-2")).toHaveLength(1);
  });

  it("modified and behind on customers: field-merge combines disjoint edits", async () => {
    const a = client("crm");
    const b = client("crm");
    await a.put("customers", "k4-3", ann);
    await a.sync();
    await b.sync();
    await a.patch("customers", "k4-3", { phone: "111" });
    await b.patch("customers", "k4-3", { email: "ann@b.example" });
    const conflictEvents: string[] = [];
    b.on("conflict", ({ result }) => conflictEvents.push(result.status));
    await a.sync();
    expect(await b.sync()).toMatchObject({ pushed: 1, conflicts: { merged: 1, rejected: 0, pending: 0 } });
    expect(conflictEvents).toEqual(["merged"]);
    const merged = { ...ann, phone: "111", email: "ann@b.example" };
    expect(await b.get("customers", "k4-3")).toEqual(merged);
    expect((await server("customers", "k4-3"))?.data).toEqual(merged);
    await a.sync();
    expect(await a.get("customers", "k4-3")).toEqual(merged);
    expect(await b.sync()).toEqual(report({}));
  });
});

describe("strategies reach the clients", () => {
  it("orders are server-wins: billing's stale change is rejected and its copy replaced", async () => {
    const shop = client("webshop");
    const billing = client("billing");
    await shop.put("orders", "o-1", { customer_id: "c1", items: ["A"], total: 40, status: "new", shipping_address: "Main St 1" });
    await shop.sync();
    await billing.sync();
    expect(await billing.get("orders", "o-1")).toEqual({ customer_id: "c1", total: 40, status: "new" });
    await shop.patch("orders", "o-1", { items: ["A", "B"], total: 55 });
    await shop.sync();
    await billing.patch("orders", "o-1", { status: "paid", paid_at: "2026-11-25" });
    expect(await billing.sync()).toMatchObject({ pushed: 1, conflicts: { rejected: 1 } });
    expect(await billing.get("orders", "o-1")).toEqual({ customer_id: "c1", total: 55, status: "new" });
    const logged = await t.hub.db.select().from(conflicts).where(eq(conflicts.recordId, "o-1"));
    expect(logged.map((c) => c.outcome)).toEqual(["server-won"]);
    // Now current: billing's retry applies.
    await billing.patch("orders", "o-1", { status: "paid", paid_at: "2026-11-26" });
    expect(await billing.sync()).toMatchObject({ pushed: 1, conflicts: { rejected: 0 } });
    expect((await server("orders", "o-1"))?.data).toMatchObject({ items: ["A", "B"], status: "paid", paid_at: "2026-11-26" });
  });

  it("the warehouse is manual: pending keeps the server's copy, and an operator's resolution arrives through /changes", async () => {
    const shop = client("webshop");
    const billing = client("billing");
    const warehouse = client("warehouse");
    await shop.put("orders", "o-2", { customer_id: "c2", items: ["X"], total: 10, status: "new", shipping_address: "Dock 4" });
    await shop.sync();
    await billing.sync();
    await billing.patch("orders", "o-2", { status: "paid" });
    await billing.sync();
    await warehouse.sync();
    expect(await warehouse.get("orders", "o-2")).toEqual({ items: ["X"], status: "paid", shipping_address: "Dock 4" });

    // Billing moves the order on; the warehouse, still on the old version, ships it.
    await billing.patch("orders", "o-2", { paid_at: "2026-11-27" });
    await billing.sync();
    await warehouse.patch("orders", "o-2", { status: "shipped", tracking: "TRK-1" });
    expect(await warehouse.sync()).toMatchObject({ pushed: 1, conflicts: { pending: 1 } });
    expect(await warehouse.get("orders", "o-2")).toEqual({ items: ["X"], status: "paid", shipping_address: "Dock 4" });
    expect(await warehouse.sync()).toEqual(report({}));

    const [pending] = await t.hub.db.select().from(conflicts).where(and(eq(conflicts.recordId, "o-2"), eq(conflicts.outcome, "pending")));
    expect(pending).toBeDefined();
    await resolveConflict({ db: t.hub.db, actor: "test-operator" }, { id: pending!.id, resolution: "client" });
    expect(await warehouse.sync()).toMatchObject({ pulled: 1 });
    expect(await warehouse.get("orders", "o-2")).toEqual({ items: ["X"], status: "shipped", shipping_address: "Dock 4", tracking: "TRK-1" });
  });
});

describe("three clients", () => {
  it("a reader that only pulls follows the catalogue as two writers change it", async () => {
    await writeRecord(t.hub.db, { collection: "products", id: "p-1", data: { sku: "P1", title: "Mug", price: 5, stock: 10 }, by: "seed" });
    const reader = client("crm");
    const shop = client("webshop");
    const warehouse = client("warehouse");
    expect(await reader.sync()).toMatchObject({ pushed: 0 });
    expect(await reader.get("products", "p-1")).toEqual({ sku: "P1", title: "Mug", price: 5, stock: 10 });
    await shop.sync();
    await warehouse.sync();
    await shop.patch("products", "p-1", { price: 6 });
    await warehouse.patch("products", "p-1", { stock: 8 });
    await shop.sync();
    // products are settled by priority: the web shop (5) outranks the warehouse (none), so its stale change loses.
    expect(await warehouse.sync()).toMatchObject({ pushed: 1, conflicts: { rejected: 1 } });
    expect(await warehouse.get("products", "p-1")).toEqual({ sku: "P1", title: "Mug", price: 6, stock: 10 });
    await warehouse.patch("products", "p-1", { stock: 8 });
    expect(await warehouse.sync()).toMatchObject({ pushed: 1, conflicts: { rejected: 0 } });
    expect(await reader.sync()).toMatchObject({ pushed: 0, pulled: 1 });
    expect(await reader.get("products", "p-1")).toEqual({ sku: "P1", title: "Mug", price: 6, stock: 8 });
    await shop.sync();
    expect(await shop.get("products", "p-1")).toEqual(await reader.get("products", "p-1"));
  });
});

describe("scope changes", () => {
  const shrunk = example.replace(
    `read: {where: "source == 'web'", fields: [name, email, address, source]}`,
    `read: {where: "source == 'web' and region == 'north'", fields: [name, email, address, source]}`,
  );

  it("a new X-Policy-Version makes the client re-read /config and drop what it may no longer read", async () => {
    expect(shrunk).not.toBe(example);
    const shop = client("webshop");
    const quarantined: string[] = [];
    shop.on("quarantine", ({ entry }) => quarantined.push(entry.id));
    try {
      await writeRecord(t.hub.db, { collection: "customers", id: "sc-north", data: { name: "N", email: "n@x", source: "web", region: "north" }, by: "seed" });
      await writeRecord(t.hub.db, { collection: "customers", id: "sc-south", data: { name: "S", email: "s@x", source: "web", region: "south" }, by: "seed" });
      await writeRecord(t.hub.db, { collection: "customers", id: "sc-south-2", data: { name: "S2", email: "s2@x", source: "web", region: "south" }, by: "seed" });
      await shop.sync();
      expect((await shop.list("customers")).map((r) => r.id)).toEqual(expect.arrayContaining(["sc-north", "sc-south", "sc-south-2"]));
      // A local edit of a record that is about to leave the web shop's read scope.
      await shop.patch("customers", "sc-south-2", { name: "S2 edited" });

      await activatePolicy(t.hub.db, { yaml: shrunk, actor: "test", source: "api" });
      const configs: number[] = [];
      shop.on("config", ({ config }) => configs.push(config.policyVersion));
      const r = await shop.sync();
      expect(configs.length).toBeGreaterThan(0);
      expect(r.removed).toBeGreaterThanOrEqual(1);
      expect(await shop.get("customers", "sc-south")).toBeUndefined();
      expect(await shop.get("customers", "sc-north")).toBeDefined();
      // sc-south-2's edit was pushed first, to a record the web shop may no longer read: the hub answers as it
      // would for a record that does not exist (it reveals nothing of it), so the edit is not applied; the SDK
      // keeps it in the quarantine with the hub's reason, and the server's copy is unchanged.
      expect((await server("customers", "sc-south-2"))?.data).toMatchObject({ name: "S2" });
      expect(quarantined).toEqual(["sc-south-2"]);
      const [held] = (await shop.quarantined()).filter((e) => e.id === "sc-south-2");
      expect(held?.quarantine).toMatchObject({ status: "invalid", reason: expect.stringMatching(/not one you can read/) });
      expect(held?.record).toMatchObject({ name: "S2 edited" });
    } finally {
      await activatePolicy(t.hub.db, { yaml: example, actor: "test", source: "api" });
    }
  });

  it("a started client gets the config event and reconciles by itself", async () => {
    const shop = client("webshop");
    await writeRecord(t.hub.db, { collection: "customers", id: "sc-live", data: { name: "L", email: "l@x", source: "web", region: "east" }, by: "seed" });
    await shop.sync();
    expect(await shop.get("customers", "sc-live")).toBeDefined();
    shop.start();
    await until(async () => (await shop.status()).connected);
    try {
      await activatePolicy(t.hub.db, { yaml: shrunk, actor: "test", source: "api" });
      await until(async () => (await shop.get("customers", "sc-live")) === undefined);
    } finally {
      await activatePolicy(t.hub.db, { yaml: example, actor: "test", source: "api" });
    }
    // Widening again brings it back (a record newly readable comes through the manifest and a full pull).
    await until(async () => (await shop.get("customers", "sc-live")) !== undefined);
  });
});

describe("offline and crashes", () => {
  it("queues writes while offline and sends them later with the same changeIds", async () => {
    let offline = false;
    const sent: PushChange[] = [];
    const store = new MemoryStore();
    const crm = client("crm", { store, fetch: flakyFetch(recording(inProcessFetch(), sent), () => offline) });
    await crm.sync();
    offline = true;
    await crm.put("customers", "off-1", { ...ann, name: "Off 1" });
    await crm.put("customers", "off-2", { ...ann, name: "Off 2" });
    await expect(crm.sync()).rejects.toBeInstanceOf(NetworkError);
    const queued = (await store.outbox()).map((e) => e.changeId);
    expect(queued).toHaveLength(2);
    // More edits offline: the frozen entries do not change; the edit waits for their answer.
    await crm.patch("customers", "off-1", { phone: "999" });
    await expect(crm.sync()).rejects.toThrow(/Local changes stay queued/);
    expect((await store.outbox()).map((e) => e.changeId)).toEqual(queued);
    expect((await crm.status()).pendingChanges).toBe(2);

    offline = false;
    expect(await crm.sync()).toMatchObject({ pushed: 2 });
    expect(sent.map((c) => c.changeId)).toEqual(queued);
    expect(await crm.sync()).toMatchObject({ pushed: 1 });
    expect((await server("customers", "off-1"))?.data).toEqual({ ...ann, name: "Off 1", phone: "999" });
    const h = await history("customers", "off-1");
    expect(h.map((v) => v.changeId)).toEqual([queued[0], sent[2]?.changeId]);
  });

  it("a client killed between push and saving the result re-sends after a restart, and the hub applies once", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "concord-sdk-"));
    dirs.push(dir);
    const real = inProcessFetch();
    const dying: FetchLike = async (input, init) => {
      const response = await real(input, init);
      if (init?.method === "POST") throw new TypeError("fetch failed", { cause: new Error("socket hang up") });
      return response;
    };
    const store1 = await PgliteStore.open(dir);
    const first = client("crm", { store: store1, fetch: dying });
    await first.put("customers", "kill-1", { ...ann, name: "Killed" });
    await expect(first.sync()).rejects.toBeInstanceOf(NetworkError);
    const [entry] = await store1.outbox();
    expect(entry).toBeDefined();
    expect(await history("customers", "kill-1")).toHaveLength(1); // the hub did apply it
    await first.stop();
    await store1.close();

    const store2 = await PgliteStore.open(dir);
    try {
      const sent: PushChange[] = [];
      const second = client("crm", { store: store2, fetch: recording(real, sent) });
      expect(await second.get("customers", "kill-1")).toEqual({ ...ann, name: "Killed" });
      expect(await second.sync()).toMatchObject({ pushed: 1, conflicts: { merged: 0, rejected: 0, pending: 0 } });
      expect(sent.map((c) => c.changeId)).toEqual([entry!.changeId]);
      const h = await history("customers", "kill-1");
      expect(h.map((v) => [v.version, v.changeId])).toEqual([[1, entry!.changeId]]);
      expect(await store2.outbox()).toEqual([]);
      expect(await second.sync()).toEqual(report({}));
      await second.stop();
    } finally {
      await store2.close();
    }
  });
});

describe("quarantine", () => {
  it("moves a forbidden change aside without blocking the others; retry and discard", async () => {
    const crm = client("crm");
    const seen: string[] = [];
    crm.on("quarantine", ({ entry }) => seen.push(`${entry.id}:${entry.quarantine?.status}`));
    await crm.put("customers", "q-ok", ann);
    await crm.put("customers", "q-south", { ...ann, region: "south" });
    expect(await crm.sync()).toMatchObject({ pushed: 2, quarantined: 1 });
    expect(seen).toEqual(["q-south:forbidden"]);
    expect((await server("customers", "q-ok"))?.version).toBe(1);
    const [held] = await crm.quarantined();
    expect(held?.quarantine?.reason).toMatch(/write range/);

    // Other changes keep flowing while it waits.
    await crm.patch("customers", "q-ok", { phone: "1" });
    expect(await crm.sync()).toMatchObject({ pushed: 1, quarantined: 0 });

    await crm.retryQuarantined(held!.changeId);
    expect(await crm.sync()).toMatchObject({ pushed: 1, quarantined: 1 });
    expect((await crm.quarantined()).map((e) => e.changeId)).toEqual([held!.changeId]);

    await crm.discardQuarantined(held!.changeId);
    expect(await crm.get("customers", "q-south")).toBeUndefined();
    expect(await crm.quarantined()).toEqual([]);

    // A forbidden field on a synced record: discard reverts the copy to its base.
    await crm.patch("customers", "q-ok", { credit_limit: 1000 });
    expect(await crm.sync()).toMatchObject({ quarantined: 1 });
    const [field] = await crm.quarantined();
    await crm.discardQuarantined(field!.changeId);
    expect(await crm.get("customers", "q-ok")).toEqual({ ...ann, phone: "1" });
    expect(await crm.sync()).toEqual(report({}));
  });
});

describe("real time", () => {
  it("a started client receives another client's push within a second", async () => {
    const watcher = client("crm");
    const writer = client("crm");
    await watcher.sync();
    const changes: string[] = [];
    watcher.on("change", ({ ids }) => changes.push(...ids));
    watcher.start();
    await until(async () => (await watcher.status()).connected);
    expect((await watcher.status()).state).toBe("waiting");

    await writer.put("customers", "rt-1", { ...ann, name: "Live" });
    const pushedAt = Date.now();
    await writer.sync();
    const waited = await until(async () => (await watcher.get("customers", "rt-1")) !== undefined, 1000);
    expect(Date.now() - pushedAt).toBeLessThan(1000);
    expect(waited).toBeLessThan(1000);
    expect(changes).toContain("rt-1");
    await watcher.stop();
    expect((await watcher.status()).state).toBe("stopped");
  });
});

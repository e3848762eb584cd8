import { randomUUID } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import * as changesRoute from "@/app/api/v1/collections/[collection]/changes/route";
import * as configRoute from "@/app/api/v1/config/route";
import * as consoleBundles from "@/app/api/console/systems/[system]/bundles/route";
import * as consoleBundleDownload from "@/app/api/console/systems/[system]/bundles/[bundleId]/route";
import { issueApiKey, revokeApiKey } from "@/lib/auth/api-keys";
import { AUDIT_ACTIONS, listAudit } from "@/lib/console/audit";
import { activityCharts, countChangesAfter, getOverview, LAG_CAP, listSystemStatus } from "@/lib/console/overview";
import { effectiveRights, getSystemDetail, listSystems, summarizeBundle } from "@/lib/console/systems";
import { activity, auditLog, systems } from "@/lib/db/schema";
import { log } from "@/lib/log";
import { getActivePolicy } from "@/lib/policy/store";
import { flushActivity } from "@/lib/sync/activity";
import { FORMAT, sealBundle, type ResponseBundle } from "@/lib/sync/bundle-format";
import { applyBundleForOperator, sha256Hex } from "@/lib/sync/bundles";
import type { ChangesResponse } from "@/lib/sync/protocol";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";
import { changeId, keysFor, pushOne, pushRaw } from "@/tests/helpers/sync";

let t: TestHub;
let keys: Record<string, string>;

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "crm", "webshop", "billing");
});
afterAll(async () => {
  await t.close();
});

async function pull(key: string, collection: string, since?: string) {
  const query = since ? `?since=${encodeURIComponent(since)}` : "";
  const res = await call(changesRoute.GET, {
    path: `/api/v1/collections/${collection}/changes${query}`,
    params: { collection },
    token: key,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as ChangesResponse;
}

/** Sum of the activity table's counts of a kind for a system. */
async function activityCount(system: string, kind: string): Promise<number> {
  await flushActivity(t.hub.db);
  const [row] = await t.hub.db
    .select({ n: sql<number | string>`coalesce(sum(${activity.count}), 0)` })
    .from(activity)
    .where(sql`${activity.system} = ${system} and ${activity.kind} = ${kind}`);
  return Number(row?.n ?? 0);
}

async function requestBundle(system: string, changes: Record<string, unknown[]>, checkpoints: Record<string, string | null>) {
  const unsealed = {
    format: FORMAT,
    bundleId: randomUUID(),
    system,
    createdAt: new Date().toISOString(),
    policyVersion: 1,
    checkpoints,
    changes,
  } as Parameters<typeof sealBundle>[0];
  return JSON.stringify(await sealBundle(unsealed, sha256Hex));
}

describe("activity counters (lib/sync/activity.ts)", () => {
  it("live on globalThis, so a second copy of the module (Next.js loads one per route graph) shares them", async () => {
    expect((globalThis as Record<symbol, unknown>)[Symbol.for("concord.sync.activity")]).toBeDefined();
    vi.resetModules();
    const second = (await import("@/lib/sync/activity")) as typeof import("@/lib/sync/activity");
    const before = await activityCount("crm", "test.shared");
    second.countActivity(t.hub.db, "crm", "test.shared", 3);
    // Flushed through the first copy: it sees the second copy's counts.
    expect(await activityCount("crm", "test.shared")).toBe(before + 3);
  });

  it("a bundle applied in a transaction counts its pushes and pulls on the hub's database, and no flush fails afterwards", async () => {
    const warn = vi.spyOn(log, "warn");
    try {
      const policy = await getActivePolicy(t.hub.db);
      const pushedBefore = await activityCount("webshop", "push.applied");
      const pullsBefore = await activityCount("webshop", "pull.requests");
      const text = await requestBundle(
        "webshop",
        { orders: [{ changeId: changeId("b"), id: "o-bundle-1", baseVersion: null, data: { status: "new", total: 3, customer_id: "c" } }] },
        { orders: null },
      );
      const response = await applyBundleForOperator({ db: t.hub.db, policy, bundle: text, actor: "alice" });
      expect(response.results.orders?.[0]?.status).toBe("applied");
      expect(await activityCount("webshop", "push.applied")).toBe(pushedBefore + 1);
      expect(await activityCount("webshop", "pull.requests")).toBeGreaterThan(pullsBefore);
      // The feed's cursor was noted for the system too.
      const [status] = await listSystemStatus(t.hub.db, policy, "webshop");
      expect(status?.lag.find((l) => l.collection === "orders")?.cursor).toBeGreaterThan(0);
      // The periodic flush (every 5 s) would retry a lost transaction's counts with a warning.
      await new Promise((r) => setTimeout(r, 5_600));
      expect(warn.mock.calls.filter(([m]) => String(m).includes("could not record sync activity"))).toEqual([]);
    } finally {
      warn.mockRestore();
    }
  }, 20_000);

  it("a bundle that fails counts nothing", async () => {
    const policy = await getActivePolicy(t.hub.db);
    const before = await activityCount("webshop", "push.applied");
    const text = await requestBundle(
      "webshop",
      { orders: [{ changeId: changeId("b"), id: "o-bundle-2", baseVersion: null, data: { status: "new", total: 1, customer_id: "c" } }] },
      { orders: "not-a-checkpoint" },
    );
    await expect(applyBundleForOperator({ db: t.hub.db, policy, bundle: text, actor: "alice" })).rejects.toThrow();
    expect(await activityCount("webshop", "push.applied")).toBe(before);
  });
});

describe("overview", () => {
  it("shows the last sync, lag per collection, activity and conflicts by outcome", async () => {
    await pushOne(keys.crm!, "customers", { id: "ov-1", baseVersion: null, data: { name: "Ann", region: "north" } });
    await pushOne(keys.crm!, "customers", { id: "ov-2", baseVersion: null, data: { name: "Bob", region: "north" } });
    const policy = await getActivePolicy(t.hub.db);

    let [crm] = await listSystemStatus(t.hub.db, policy, "crm");
    expect(crm?.lastPushAt).toBeInstanceOf(Date);
    const customersLag = crm?.lag.find((l) => l.collection === "customers");
    expect(customersLag?.cursor).toBeNull();
    expect(customersLag?.behind.count).toBeGreaterThanOrEqual(2);

    const page = await pull(keys.crm!, "customers");
    expect(page.hasMore).toBe(false);
    await flushActivity(t.hub.db);
    [crm] = await listSystemStatus(t.hub.db, policy, "crm");
    expect(crm?.lastPullAt).toBeInstanceOf(Date);
    expect(crm?.lag.find((l) => l.collection === "customers")?.behind).toEqual({ count: 0, capped: false });
    // Another system's change puts the CRM one behind.
    await pushOne(keys.billing!, "customers", { id: "ov-1", baseVersion: 1, patch: { credit_limit: 100 } });
    [crm] = await listSystemStatus(t.hub.db, policy, "crm");
    expect(crm?.lag.find((l) => l.collection === "customers")?.behind).toEqual({ count: 1, capped: false });

    // A conflict: the web shop and the CRM edit the same web customer's name (field-merge → last-writer-wins for webshop).
    await pushOne(keys.crm!, "customers", { id: "ov-1", baseVersion: 1, patch: { name: "Ann B." } });
    const conflictsBefore = (await activityCharts(t.hub.db)).totals.conflicts;
    const result = await pushOne(keys.billing!, "customers", { id: "ov-1", baseVersion: 1, patch: { credit_limit: 200 } });
    expect(result.conflict).toBeDefined();

    const overview = await getOverview(t.hub.db, policy);
    expect(overview.systems.map((s) => s.name)).toEqual(policy.compiled.systemNames());
    expect(overview.charts.day).toHaveLength(24);
    expect(overview.charts.hour).toHaveLength(60);
    expect(overview.charts.totals.pushes).toBeGreaterThanOrEqual(5);
    expect(overview.charts.totals.pulls).toBeGreaterThanOrEqual(1);
    expect(overview.charts.totals.conflicts).toBe(conflictsBefore + 1);
    const lastMinute = overview.charts.hour.at(-1)!;
    expect(lastMinute.pushes + (overview.charts.hour.at(-2)?.pushes ?? 0)).toBeGreaterThan(0);
    expect(overview.charts.day.at(-1)!.pushes).toBeGreaterThanOrEqual(5);
    expect(overview.pendingConflicts).toEqual({ count: 0, capped: false });
  });

  it("counts pending conflicts and caps lag counts at 10,000+", async () => {
    await t.hub.db.execute(sql`
      insert into records (collection, id, data, version, digest, deleted, seq, updated_by)
      select 'bulk', 'r' || g, '{}'::jsonb, 1, 'x', false, nextval('change_seq'), 'test'
      from generate_series(1, ${LAG_CAP + 5}) as g`);
    expect(await countChangesAfter(t.hub.db, "bulk", 0)).toEqual({ count: LAG_CAP, capped: true });
    const policy = await getActivePolicy(t.hub.db);
    // Two edits of the same field from two systems: customers' field-merge falls back to manual.
    await pushOne(keys.crm!, "customers", { id: "pend-1", baseVersion: null, data: { name: "P", region: "north" } });
    await pushOne(keys.crm!, "customers", { id: "pend-1", baseVersion: 1, patch: { name: "P2" } });
    const held = await pushOne(keys.crm!, "customers", { id: "pend-1", baseVersion: 1, patch: { name: "P3" } });
    expect(held.status).toBe("pending");
    const overview = await getOverview(t.hub.db, policy);
    expect(overview.pendingConflicts).toEqual({ count: 1, capped: false });
    expect(overview.charts.totals.conflicts).toBeGreaterThanOrEqual(1);
  });

  it("shows a system's error until a later call succeeds", async () => {
    const policy = await getActivePolicy(t.hub.db);
    const bad = await pushRaw(keys.webshop!, "nope", { changes: [] });
    expect(bad.status).toBe(404);
    let [webshop] = await listSystemStatus(t.hub.db, policy, "webshop");
    expect(webshop?.error?.message).toContain("unknown_collection");
    const ok = await call(configRoute.GET, { path: "/api/v1/config", token: keys.webshop! });
    expect(ok.status).toBe(200);
    [webshop] = await listSystemStatus(t.hub.db, policy, "webshop");
    expect(webshop?.error).toBeNull();
    expect(webshop?.lastErrorAt).toBeInstanceOf(Date);
    // A second error right away is shown again (not held back by the write throttle).
    await pushRaw(keys.webshop!, "nope", { changes: [] });
    [webshop] = await listSystemStatus(t.hub.db, policy, "webshop");
    expect(webshop?.error).not.toBeNull();
  });
});

describe("systems", () => {
  it("shows the effective rights the active policy gives, as /config broadcasts them, plus delete", async () => {
    const policy = await getActivePolicy(t.hub.db);
    const crm = effectiveRights(policy, "crm");
    const customers = crm.find((r) => r.collection === "customers");
    expect(customers).toMatchObject({
      read: { where: "all", fields: ["*"] },
      write: { where: "region in ['north', 'east']" },
      delete: null,
      strategy: "field-merge",
      fallback: "manual",
    });
    const config = await call(configRoute.GET, { path: "/api/v1/config", token: keys.crm! });
    const broadcast = (config.body as { collections: Record<string, { read: unknown; write: unknown }> }).collections;
    for (const r of crm) {
      expect(broadcast[r.collection]).toMatchObject({ read: r.read, write: r.write });
    }
    expect(Object.keys(broadcast).sort()).toEqual(crm.map((r) => r.collection).sort());
    const webshopOrders = effectiveRights(policy, "webshop").find((r) => r.collection === "orders");
    expect(webshopOrders?.delete).toEqual({ where: "status in ['new', 'cancelled']" });
  });

  it("lists systems with live key counts and gives a system's detail", async () => {
    const policy = await getActivePolicy(t.hub.db);
    const issued = await issueApiKey(t.hub.db, { system: "warehouse", actor: "alice" });
    let list = await listSystems(t.hub.db, policy);
    expect(list.find((s) => s.name === "warehouse")?.activeKeys).toBe(1);
    await revokeApiKey(t.hub.db, { system: "warehouse", prefix: issued.prefix, actor: "alice" });
    list = await listSystems(t.hub.db, policy);
    expect(list.find((s) => s.name === "warehouse")?.activeKeys).toBe(0);

    const detail = await getSystemDetail(t.hub.db, policy, "warehouse");
    expect(detail.keys.map((k) => k.prefix)).toContain(issued.prefix);
    expect(JSON.stringify(detail.keys)).not.toContain(issued.key);
    expect(detail.keys.find((k) => k.prefix === issued.prefix)?.revokedAt).toBeInstanceOf(Date);
    await expect(getSystemDetail(t.hub.db, policy, "nobody")).rejects.toMatchObject({ code: "not_found" });
  });

  it("applies an uploaded bundle through the console route, summarizes it and serves the response for download", async () => {
    const text = await requestBundle(
      "webshop",
      {
        orders: [
          { changeId: changeId("u"), id: "o-up-1", baseVersion: null, data: { status: "new", total: 7, customer_id: "c" } },
          { changeId: changeId("u"), id: "o-up-2", baseVersion: null, data: { status: "paid", total: 7, customer_id: "c" } },
        ],
      },
      { orders: null },
    );
    // The wrong system's page refuses it before anything is applied.
    const wrong = await call(consoleBundles.POST, { method: "POST", path: "/api/console/systems/crm/bundles", params: { system: "crm" }, body: text });
    expect(wrong.status).toBe(400);

    const res = await call(consoleBundles.POST, {
      method: "POST",
      path: "/api/console/systems/webshop/bundles",
      params: { system: "webshop" },
      body: text,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    const { summary } = res.body as { summary: ReturnType<typeof summarizeBundle> };
    expect(summary.system).toBe("webshop");
    expect(summary.changes).toBe(2);
    expect(summary.results.orders).toEqual({ applied: 1, forbidden: 1 });
    expect(summary.pulled.orders).toBeGreaterThanOrEqual(1);

    const download = await call(consoleBundleDownload.GET, {
      path: `/api/console/systems/webshop/bundles/${summary.bundleId}`,
      params: { system: "webshop", bundleId: summary.bundleId },
    });
    expect(download.status).toBe(200);
    expect(download.headers.get("content-disposition")).toContain("attachment");
    expect((download.body as ResponseBundle).bundleId).toBe(summary.bundleId);

    // Without a session or token: 401.
    const anonymous = await call(consoleBundles.POST, { method: "POST", params: { system: "webshop" }, body: text, token: null });
    expect(anonymous.status).toBe(401);

    const detail = await getSystemDetail(t.hub.db, await getActivePolicy(t.hub.db), "webshop");
    expect(detail.bundles.map((b) => b.bundleId)).toContain(summary.bundleId);
  });
});

describe("audit log", () => {
  it("names every action the code writes", async () => {
    const found = new Set<string>();
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if (entry.name.endsWith(".ts")) {
          const text = await readFile(full, "utf8");
          if (!text.includes("auditLog")) continue;
          for (const m of text.matchAll(/action: ([^,\n}]*)/g)) {
            // Leave out comparisons (`source === "rollback" ? …`) and column definitions (`text("action")`).
            const expr = (m[1] ?? "").replace(/===? "[^"]*"/g, "").replace(/\w+\("[^"]*"\)/g, "");
            for (const q of expr.matchAll(/"([a-z.-]+)"/g)) if (q[1]) found.add(q[1]);
          }
        }
      }
    };
    await walk(path.resolve("lib"));
    expect([...found].filter((a) => !(AUDIT_ACTIONS as readonly string[]).includes(a))).toEqual([]);
    expect(found.has("policy.rollback")).toBe(true);
  });

  it("filters by actor and action and pages by keyset", async () => {
    await t.hub.db.delete(auditLog).where(eq(auditLog.actor, "pager"));
    for (let i = 0; i < 7; i++) {
      await t.hub.db.insert(auditLog).values({ actor: "pager", action: i % 2 ? "key.issue" : "key.revoke", target: `n${i}` });
    }
    const first = await listAudit(t.hub.db, { actor: "pager" }, 3);
    expect(first.entries.map((e) => e.target)).toEqual(["n6", "n5", "n4"]);
    expect(first.newer).toBeNull();
    const second = await listAudit(t.hub.db, { actor: "pager", before: first.older! }, 3);
    expect(second.entries.map((e) => e.target)).toEqual(["n3", "n2", "n1"]);
    const third = await listAudit(t.hub.db, { actor: "pager", before: second.older! }, 3);
    expect(third.entries.map((e) => e.target)).toEqual(["n0"]);
    expect(third.older).toBeNull();
    const back = await listAudit(t.hub.db, { actor: "pager", after: third.newer! }, 3);
    expect(back.entries.map((e) => e.target)).toEqual(["n3", "n2", "n1"]);
    const backToStart = await listAudit(t.hub.db, { actor: "pager", after: back.newer! }, 3);
    expect(backToStart.entries.map((e) => e.target)).toEqual(["n6", "n5", "n4"]);
    expect(backToStart.newer).toBeNull();

    const issues = await listAudit(t.hub.db, { actor: "pager", action: "key.issue" });
    expect(issues.entries.map((e) => e.target)).toEqual(["n5", "n3", "n1"]);
    // Operators' key issue shows with the operator's name.
    const keyIssues = await listAudit(t.hub.db, { action: "key.issue", actor: "alice" });
    expect(keyIssues.entries[0]).toMatchObject({ actor: "alice", target: "system:warehouse" });
    // The bundle applied by an operator is there too.
    const bundles = await listAudit(t.hub.db, { action: "bundle.apply" });
    expect(bundles.entries.length).toBeGreaterThanOrEqual(2);
  });
});

// Keep the systems table import used for a direct check of the stored error text.
describe("systems table", () => {
  it("stores at most 500 characters of an error", async () => {
    const rows = await t.hub.db.select({ e: systems.lastError }).from(systems);
    for (const r of rows) expect((r.e ?? "").length).toBeLessThanOrEqual(500);
  });
});

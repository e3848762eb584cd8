import { and, count, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as bundlesRoute from "@/app/api/v1/bundles/route";
import {
  BundleError,
  exportBundle,
  importBundle,
  MemoryStore,
  sha256Hex,
  SyncClient,
  type FetchLike,
  type LocalStore,
} from "@/lib/client";
import { PgliteStore } from "@/lib/client/pglite-store";
import { recordHistory } from "@/lib/db/schema";
import { decodeBundle, sealBundle } from "@/lib/sync/bundle-format";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { HUB_URL, inProcessFetch } from "@/tests/helpers/inprocess-fetch";
import { keysFor } from "@/tests/helpers/sync";

let t: TestHub;
let keys: Record<string, string>;
const stores: LocalStore[] = [];

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "crm", "billing", "webshop");
});
afterAll(async () => {
  for (const s of stores) await s.close();
  await t.close();
});

/** The in-process hub plus POST /api/v1/bundles. */
function hubFetch(): FetchLike {
  const inner = inProcessFetch();
  return async (input, init) => {
    const url = new URL(input);
    if (url.pathname === "/api/v1/bundles") {
      return (bundlesRoute.POST as (r: Request, a: { params: Promise<Record<string, string>> }) => Promise<Response>)(new Request(input, init), {
        params: Promise.resolve({}),
      });
    }
    return inner(input, init);
  };
}

function client(system: string, store: LocalStore = new MemoryStore()): SyncClient {
  stores.push(store);
  return new SyncClient({ baseUrl: HUB_URL, apiKey: keys[system] as string, store, fetch: hubFetch() });
}

async function upload(system: string, text: string): Promise<{ status: number; text: string }> {
  const res = await hubFetch()(`${HUB_URL}/api/v1/bundles`, {
    method: "POST",
    headers: { authorization: `Bearer ${keys[system] as string}`, "content-type": "application/json" },
    body: text,
  });
  return { status: res.status, text: await res.text() };
}

async function snapshot(store: LocalStore) {
  const collections = await store.collections();
  return {
    outbox: await store.outbox(),
    records: await Promise.all(collections.map((c) => store.listRecords(c))),
    checkpoints: await Promise.all(collections.map((c) => store.checkpoint(c))),
    bundles: await store.getMeta("bundles"),
  };
}

async function hubHistory(collection: string, id: string) {
  return t.hub.db
    .select()
    .from(recordHistory)
    .where(and(eq(recordHistory.collection, collection), eq(recordHistory.id, id)));
}

const ann = { name: "Ann", email: "ann@example.com", phone: "555-0100", region: "north" };

describe("offline bundles through the SDK", () => {
  it("round trip: exports pending changes as a sync would, the hub applies them, import adopts results and pulls", async () => {
    const site = client("crm", await PgliteStore.open("memory://"));
    const online = client("crm");
    await site.put("customers", "b-1", ann);
    await site.sync(); // online once: learns its system, collections and checkpoints
    await online.sync();

    // While the site is offline: it edits the phone and creates a record; the online CRM edits the email.
    await site.patch("customers", "b-1", { phone: "555-0199" });
    await site.put("customers", "b-2", { ...ann, name: "Bob" });
    await online.patch("customers", "b-1", { email: "ann@new.example" });
    await online.put("customers", "b-3", { ...ann, name: "Cid" });
    await online.sync();

    const exported = await exportBundle(site);
    expect(exported.system).toBe("crm");
    expect(exported.changes).toEqual({ customers: 2 });
    // The bundle carries the outbox entries exactly: same changeIds and bodies a sync would push.
    const request = await decodeBundle(exported.text, "request", sha256Hex);
    if (!request.ok) throw new Error(request.problem.message);
    const outbox = await stores[0]!.outbox();
    expect(request.bundle.changes.customers).toEqual(outbox.map((e) => e.change));
    expect(request.bundle.changes.customers?.find((c) => c.id === "b-1")).toMatchObject({ baseVersion: 1, patch: { phone: "555-0199" } });
    expect(Object.keys(request.bundle.checkpoints).sort()).toEqual(["customers", "products"]);

    const answer = await upload("crm", exported.text);
    expect(answer.status).toBe(200);
    const imported = await importBundle(site, answer.text);
    // b-1: field-merge combines the disjoint edits (merged); b-2 applied; b-3 pulled.
    expect(imported.report).toMatchObject({ pushed: 2, conflicts: { merged: 1, rejected: 0, pending: 0 }, quarantined: 0 });
    expect(await site.get("customers", "b-1")).toEqual({ ...ann, email: "ann@new.example", phone: "555-0199" });
    expect(await site.get("customers", "b-3")).toMatchObject({ name: "Cid" });
    expect(await stores[0]!.outbox()).toEqual([]);
    expect((await site.status()).pendingChanges).toBe(0);

    // Online again: nothing left to push, nothing sent twice; the hub has one version per change.
    expect(await site.sync()).toMatchObject({ pushed: 0 });
    expect(await hubHistory("customers", "b-2")).toHaveLength(1);
    expect(await site.get("customers", "b-2")).toMatchObject({ name: "Bob" });

    // The same response again: refused, nothing changes.
    const before = await snapshot(stores[0]!);
    await expect(importBundle(site, answer.text)).rejects.toThrow(/already imported/);
    expect(await snapshot(stores[0]!)).toEqual(before);
  });

  it("refuses a tampered, truncated, other-system or unknown response, changing nothing", async () => {
    const store = new MemoryStore();
    const site = client("crm", store);
    await site.put("customers", "b-10", ann);
    await site.sync();
    await site.patch("customers", "b-10", { phone: "1" });
    const exported = await exportBundle(store); // a bare store works too (no network)
    const answer = await upload("crm", exported.text);
    expect(answer.status).toBe(200);
    const before = await snapshot(store);

    const tampered = answer.text.replace('"phone":"1"', '"phone":"2"');
    expect(tampered).not.toBe(answer.text);
    await expect(importBundle(site, tampered)).rejects.toThrow(/checksum does not match.*export it again/);
    await expect(importBundle(site, answer.text.slice(0, -20))).rejects.toThrow(/not valid JSON/);
    await expect(importBundle(site, exported.text)).rejects.toThrow(/This is a request bundle/);

    const parsed = JSON.parse(answer.text) as Record<string, unknown>;
    const other = JSON.stringify(await sealBundle({ ...parsed, system: "billing" }, sha256Hex));
    await expect(importBundle(site, other)).rejects.toThrow(/for system "billing", but this store belongs to "crm"/);
    const unknown = JSON.stringify(await sealBundle({ ...parsed, bundleId: crypto.randomUUID() }, sha256Hex));
    const error = await importBundle(site, unknown).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(BundleError);
    expect((error as BundleError).code).toBe("unknown_bundle");
    expect(await snapshot(store)).toEqual(before);

    // The genuine one still imports.
    expect((await importBundle(site, answer.text)).report).toMatchObject({ pushed: 1 });
    expect(await store.outbox()).toEqual([]);
  });

  it("a replayed request bundle gets 409 and changes nothing", async () => {
    const site = client("webshop");
    await site.sync();
    await site.put("customers", "b-web-1", { name: "Wendy", email: "w@example.com", source: "web" });
    const exported = await exportBundle(site);
    expect((await upload("webshop", exported.text)).status).toBe(200);
    const [before] = await t.hub.db.select({ n: count() }).from(recordHistory);

    const again = await upload("webshop", exported.text);
    expect(again.status).toBe(409);
    expect(again.text).toMatch(/already applied/);
    const [after] = await t.hub.db.select({ n: count() }).from(recordHistory);
    expect(after?.n).toBe(before?.n);
    expect(await hubHistory("customers", "b-web-1")).toHaveLength(1);
  });

  it("an online sync after export re-sends the same changeIds: the hub applies each change once", async () => {
    const site = client("crm");
    await site.sync();
    await site.put("customers", "b-20", ann);
    const exported = await exportBundle(site);
    expect((await upload("crm", exported.text)).status).toBe(200);
    // The response is lost; the site goes online and syncs instead.
    expect(await site.sync()).toMatchObject({ pushed: 1, unchanged: 0 });
    expect(await hubHistory("customers", "b-20")).toHaveLength(1);
  });

  it("tells a store that never synced what to do", async () => {
    await expect(exportBundle(new MemoryStore())).rejects.toThrow(/never synced.*sync once while online/);
  });
});

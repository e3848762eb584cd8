import { and, eq } from "drizzle-orm";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ConcordError, MemoryStore, NetworkError, SyncClient, type FetchLike, type LocalStore, type RecordBase } from "@/lib/client";
import { digestOf } from "@/lib/client/digest";
import { setDatabase } from "@/lib/db";
import { records } from "@/lib/db/schema";
import { ServiceError } from "@/lib/errors";
import { errorResponse } from "@/lib/http/respond";
import { MAX_JSON_DEPTH } from "@/lib/sync/json-safety";
import { MAX_RECORD_BYTES, type JsonObject } from "@/lib/sync/protocol";
import { openTestDatabase } from "@/tests/helpers/db";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { HUB_URL, inProcessFetch } from "@/tests/helpers/inprocess-fetch";
import { keysFor } from "@/tests/helpers/sync";

/**
 * The SDK never stalls on one bad record: it refuses at put() what the hub
 * would refuse, quarantines what the hub refuses (per change, or by bisecting
 * a batch the hub refuses whole), treats 503 as offline, and starts a
 * collection over from the manifest on 410 — against the real hub.
 */

let t: TestHub;
let keys: Record<string, string>;
const clients: SyncClient[] = [];

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "webshop");
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.stop()));
});
afterAll(async () => {
  await t.close();
});

function client(system: string, options: { store?: LocalStore; fetch?: FetchLike } = {}): SyncClient {
  const c = new SyncClient({
    baseUrl: HUB_URL,
    apiKey: keys[system] as string,
    store: options.store ?? new MemoryStore(),
    fetch: options.fetch ?? inProcessFetch(),
    backoff: { baseMs: 20, maxMs: 100 },
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

/** A local copy written past put()'s checks, as an older SDK or a damaged store might hold it. */
async function writeUnchecked(store: LocalStore, collection: string, id: string, data: JsonObject, base: RecordBase | null = null): Promise<void> {
  await store.write({ putRecords: [{ collection, id, data, digest: await digestOf(data), base, modifiedAt: new Date().toISOString() }] });
}

/** Counts the push requests a client sends. */
function countingFetch(inner: FetchLike): { fetch: FetchLike; pushes: () => number } {
  let pushes = 0;
  return {
    fetch: async (input, init) => {
      if (init?.method === "POST" && input.endsWith("/push")) pushes++;
      return inner(input, init);
    },
    pushes: () => pushes,
  };
}

// The web shop may write every field of a new order: the checks here are about content, not rights.
const ann = { status: "new", customer: "Ann" };
const nest = (depth: number): JsonObject => {
  let value: JsonObject = { leaf: 1 };
  for (let i = 1; i < depth; i++) value = { a: value };
  return value;
};

describe("put() refuses what the hub would refuse, naming the place", () => {
  it.each([
    ["U+0000 in a value", { ...ann, city: "Os\u0000lo" }, /data\.city contains U\+0000/],
    ["U+0000 in a key", { ...ann, ["ci\u0000ty"]: "Oslo" }, /key data\["ci\\u0000ty"\] contains U\+0000/],
    ["a lone surrogate", { ...ann, name: "\ud800" }, /data\.name contains a lone surrogate/],
    ["Infinity", { ...ann, total: Infinity }, /data\.total is Infinity/],
    ["NaN", { ...ann, total: NaN }, /data\.total is NaN/],
    ["nesting of 65 levels", { ...ann, deep: nest(MAX_JSON_DEPTH) }, /nests deeper than 64 levels/],
  ])("%s", async (_name, data, message) => {
    const shop = client("webshop");
    await expect(shop.put("orders", "bad-put", data)).rejects.toThrow(ConcordError);
    await expect(shop.put("orders", "bad-put", data)).rejects.toThrow(message);
    expect(await shop.get("orders", "bad-put")).toBeUndefined();
    expect(await shop.status()).toMatchObject({ pendingChanges: 0 });
  });

  it("accepts the limits themselves: 64 levels, 2^53, paired surrogates, and 2^60 as JSON writes it", async () => {
    const shop = client("webshop");
    await shop.put("orders", "limits", { ...ann, deep: nest(MAX_JSON_DEPTH - 1), n: 2 ** 53, big: 2 ** 60, smile: "😀" });
    expect(await shop.sync()).toMatchObject({ pushed: 1, quarantined: 0 });
    expect((await server("orders", "limits"))?.data).toMatchObject({ n: 2 ** 53, big: 2 ** 60, smile: "😀" });
  });
});

describe("a change the hub refuses is quarantined; the others sync", () => {
  it("per change (invalid): quarantined with the hub's reason, the rest of the batch applied", async () => {
    const store = new MemoryStore();
    const shop = client("webshop", { store });
    // A copy based on a version the hub never had (a store restored from another hub): the hub answers invalid.
    await writeUnchecked(store, "orders", "inv-1", { ...ann, n: 2 }, { version: 7, digest: await digestOf(ann), data: ann });
    await shop.put("orders", "inv-2", ann);
    const seen: string[] = [];
    shop.on("quarantine", ({ entry }) => seen.push(`${entry.id}:${entry.quarantine?.status}`));
    expect(await shop.sync()).toMatchObject({ pushed: 2, quarantined: 1 });
    expect(seen).toEqual(["inv-1:invalid"]);
    expect((await shop.quarantined())[0]?.quarantine?.reason).toMatch(/is not one you can read: it does not exist, or it is outside your read scope/);
    expect((await server("orders", "inv-2"))?.version).toBe(1);
    expect(await shop.sync()).toMatchObject({ pushed: 0, quarantined: 0 });
  });

  it("a batch refused whole (400, 413) is split until the bad changes stand alone; they are quarantined, the others sync", async () => {
    const store = new MemoryStore();
    const counted = countingFetch(inProcessFetch());
    const shop = client("webshop", { store, fetch: counted.fetch });
    for (let i = 0; i < 30; i++) await shop.put("orders", `bis-${String(i).padStart(2, "0")}`, { ...ann, n: i });
    // Past put()'s checks: a "__proto__" key refuses a push request with 400, an oversized record with 413.
    await writeUnchecked(store, "orders", "bis-07", JSON.parse('{"status": "new", "__proto__": {"x": 1}}') as JsonObject);
    await writeUnchecked(store, "orders", "bis-21", { ...ann, blob: "x".repeat(MAX_RECORD_BYTES) });

    const report = await shop.sync();
    expect(report).toMatchObject({ pushed: 30, quarantined: 2 });
    const held = await shop.quarantined();
    expect(held.map((e) => e.id).sort()).toEqual(["bis-07", "bis-21"]);
    expect(held.find((e) => e.id === "bis-07")?.quarantine).toMatchObject({ status: "invalid", reason: expect.stringMatching(/400.*__proto__/) });
    expect(held.find((e) => e.id === "bis-21")?.quarantine).toMatchObject({ status: "invalid", reason: expect.stringMatching(/413/) });
    for (let i = 0; i < 30; i++) {
      const id = `bis-${String(i).padStart(2, "0")}`;
      expect((await server("orders", id))?.version, id).toBe(id === "bis-07" || id === "bis-21" ? undefined : 1);
    }
    // Bisection, not one request per change: far fewer than 30.
    expect(counted.pushes()).toBeLessThanOrEqual(1 + 2 * 2 * Math.ceil(Math.log2(30)));

    // The next sync is clean, and new edits flow.
    await shop.patch("orders", "bis-00", { phone: "1" });
    expect(await shop.sync()).toMatchObject({ pushed: 1, quarantined: 0 });
    expect((await server("orders", "bis-00"))?.data).toMatchObject({ phone: "1" });
  });
});

describe("503 is offline", () => {
  it("while the hub cannot reach its database: NetworkError with Retry-After, nothing quarantined, nothing lost", async () => {
    const shop = client("webshop");
    await shop.sync();
    await shop.put("orders", "off-1", ann);
    await shop.put("orders", "off-2", ann);

    // The real hub on a database that went away: every route answers 503.
    const gone = await openTestDatabase();
    await gone.close();
    setDatabase(gone);
    let error: unknown;
    try {
      await shop.sync();
    } catch (caught) {
      error = caught;
    } finally {
      setDatabase(t.handle);
    }
    expect(error).toBeInstanceOf(NetworkError);
    expect((error as NetworkError).message).toMatch(/503.*cannot reach its database/);
    expect((error as NetworkError).retryAfterMs).toBe(5000);
    expect(await shop.status()).toMatchObject({ pendingChanges: 2, quarantined: 0 });

    expect(await shop.sync()).toMatchObject({ pushed: 2, quarantined: 0 });
    expect((await server("orders", "off-1"))?.version).toBe(1);
    expect((await server("orders", "off-2"))?.version).toBe(1);
  });
});

describe("410 resync_required", () => {
  it("drops the checkpoint, reconciles through the manifest, keeps local edits, and carries on", async () => {
    const writer = client("webshop");
    for (const id of ["rs-1", "rs-2", "rs-3"]) await writer.put("orders", id, { ...ann, n: 1 });
    await writer.sync();

    const store = new MemoryStore();
    let forgotten: string | null = null;
    const holder: { reader?: SyncClient } = {};
    let refusals = 0;
    // The hub this client talks to can no longer read the checkpoint it issued (as after a key rotation).
    const inner = inProcessFetch();
    const fetch: FetchLike = async (input, init) => {
      const since = new URL(input).searchParams.get("since");
      if (input.includes("/changes") && since !== null && since === forgotten) {
        refusals++;
        // The host program writes while the sync runs: that edit must survive the resync.
        await holder.reader?.put("orders", "rs-1", { ...ann, n: 1, note: "local" });
        return errorResponse(new ServiceError("resync_required", "This checkpoint can no longer be read; reconcile through the manifest and pull from the start."));
      }
      return inner(input, init);
    };
    const reader = client("webshop", { store, fetch });
    holder.reader = reader;
    await reader.sync();
    forgotten = await store.checkpoint("orders");
    expect(forgotten).not.toBeNull();

    // Meanwhile on the hub: rs-2 changes, rs-3 is deleted.
    await writer.put("orders", "rs-2", { ...ann, n: 2 });
    await writer.delete("orders", "rs-3");
    await writer.sync();

    const report = await reader.sync();
    expect(refusals).toBe(1);
    expect(report).toMatchObject({ removed: 1 });
    expect(await reader.get("orders", "rs-2")).toMatchObject({ n: 2 });
    expect(await reader.get("orders", "rs-3")).toBeUndefined();
    expect(await reader.get("orders", "rs-1")).toMatchObject({ note: "local" });
    const fresh = await store.checkpoint("orders");
    expect(fresh).not.toBeNull();
    expect(fresh).not.toBe(forgotten);

    // Carries on: the kept edit goes out with the next sync, and the new checkpoint works.
    expect(await reader.sync()).toMatchObject({ pushed: 1, quarantined: 0 });
    expect((await server("orders", "rs-1"))?.data).toMatchObject({ note: "local" });
    expect(refusals).toBe(1);
  });

  it("recovers by itself from the real hub's 410: a checkpoint of an older hub version (plain s<seq>)", async () => {
    const writer = client("webshop");
    await writer.put("orders", "up-1", { ...ann, n: 1 });
    await writer.sync();
    const store = new MemoryStore();
    const reader = client("webshop", { store });
    await reader.sync();
    expect(await reader.get("orders", "up-1")).toMatchObject({ n: 1 });
    // As left by a hub from before checkpoints were sealed.
    await store.write({ checkpoints: { orders: "s5" } });
    await writer.put("orders", "up-1", { ...ann, n: 2 });
    await writer.sync();

    await reader.sync();
    expect(await reader.get("orders", "up-1")).toMatchObject({ n: 2 });
    expect(await store.checkpoint("orders")).toMatch(/^c2[A-Za-z0-9_-]{103}$/);
    expect(await reader.status()).toMatchObject({ pendingChanges: 0, quarantined: 0 });
  });
});

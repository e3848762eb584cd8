import { createHash } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConcordError, digestOf, MemoryStore, SyncClient, type LocalRecord, type LocalStore, type StoreWrite } from "@/lib/client";
import { digestsOf, sha256HexMany } from "@/lib/client/digest";
import { PgliteStore } from "@/lib/client/pglite-store";
import { records } from "@/lib/db/schema";
import { canonicalJson } from "@/lib/sync/canonical";
import { DELETED_DIGEST, type JsonObject, type PushChange } from "@/lib/sync/protocol";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { HUB_URL, inProcessFetch, sentJson } from "@/tests/helpers/inprocess-fetch";
import { keysFor } from "@/tests/helpers/sync";

/** putMany / deleteMany (bulk host writes), batched digests and chunked PGlite writes, on both stores. */

let t: TestHub;
let keys: Record<string, string>;
const dirs: string[] = [];
const stores: LocalStore[] = [];

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "crm", "webshop");
});
afterAll(async () => {
  for (const store of stores) await store.close();
  await t.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** A store that counts its atomic writes. */
class CountingStore {
  writes: StoreWrite[] = [];
  constructor(readonly inner: LocalStore) {}
  wrap(): LocalStore {
    return new Proxy(this.inner, {
      get: (target, prop, receiver) => {
        if (prop === "write") {
          return (write: StoreWrite) => {
            this.writes.push(write);
            return target.write(write);
          };
        }
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }
}

async function openStore(kind: string): Promise<LocalStore> {
  if (kind === "memory") return new MemoryStore();
  const dir = mkdtempSync(path.join(tmpdir(), "concord-bulk-"));
  dirs.push(dir);
  const store = await PgliteStore.open(path.join(dir, "store"));
  stores.push(store);
  return store;
}

function recording(sent: PushChange[]) {
  const inner = inProcessFetch();
  return async (input: string, init?: RequestInit) => {
    if (init?.method === "POST" && init.body !== undefined) sent.push(...(sentJson(init) as { changes: PushChange[] }).changes);
    return inner(input, init);
  };
}

const order = (i: number): JsonObject => ({ customer_id: `c${i}`, total: 10 + i, status: "new" });
const customer = (i: number, extra: JsonObject = {}): JsonObject => ({ name: `Bulk ${i}`, email: `bulk${i}@example.com`, region: "north", ...extra });

async function server(id: string, collection = "customers") {
  const [row] = await t.hub.db
    .select()
    .from(records)
    .where(and(eq(records.collection, collection), eq(records.id, id)));
  return row;
}

describe("batched digests", () => {
  it("equal the hub's digest (SHA-256 of canonical JSON) and digestOf, in order, with tombstones", async () => {
    const data: (JsonObject | null)[] = [customer(1), null, { b: [1, "é", { z: 1, a: null }], a: 1.5 }, {}];
    const expected = data.map((d) => (d === null ? DELETED_DIGEST : createHash("sha256").update(canonicalJson(d)).digest("hex")));
    expect(await digestsOf(data)).toEqual(expected);
    expect(await Promise.all(data.map((d) => digestOf(d)))).toEqual(expected);
    expect(await sha256HexMany(["null"])).toEqual([DELETED_DIGEST]);
  });

  it("WebCrypto (the browser path) gives the same digests", async () => {
    const text = canonicalJson(customer(7, { note: "ünïcødé 🎉" }));
    const web = Buffer.from(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text))).toString("hex");
    expect(await sha256HexMany([text])).toEqual([web]);
  });
});

describe.each(["memory", "pglite"])("putMany and deleteMany on the %s store", (kind) => {
  const prefix = `bulk-${kind}`;

  it("putMany writes every record in one store write and sync pushes them all; a fresh client pulls them", async () => {
    const counting = new CountingStore(await openStore(kind));
    const a = new SyncClient({ baseUrl: HUB_URL, apiKey: keys.crm as string, store: counting.wrap(), fetch: inProcessFetch() });
    // More than one push request (1,000 changes) and more than one PGlite chunk.
    const batch = Array.from({ length: 2500 }, (_, i) => ({ id: `${prefix}-${i}`, data: customer(i) }));
    await a.putMany("customers", batch);
    expect(counting.writes).toHaveLength(1);
    expect(counting.writes[0]?.putRecords).toHaveLength(2500);
    expect(await a.get("customers", `${prefix}-1234`)).toEqual(customer(1234));
    expect((await a.status()).pendingChanges).toBe(2500);

    const report = await a.sync();
    expect(report).toMatchObject({ pushed: 2500, quarantined: 0 });
    expect((await a.status()).pendingChanges).toBe(0);
    const row = await server(`${prefix}-2499`);
    expect(row?.version).toBe(1);
    expect(row?.digest).toBe(await digestOf(customer(2499)));

    const b = new SyncClient({ baseUrl: HUB_URL, apiKey: keys.crm as string, store: await openStore(kind), fetch: inProcessFetch() });
    await b.sync();
    expect(await b.get("customers", `${prefix}-0`)).toEqual(customer(0));
    expect((await b.list("customers")).filter((r) => r.id.startsWith(`${prefix}-`))).toHaveLength(2500);
  });

  it("putMany keeps each record's base: edits of synced records travel as patches", async () => {
    const sent: PushChange[] = [];
    const a = new SyncClient({ baseUrl: HUB_URL, apiKey: keys.crm as string, store: await openStore(kind), fetch: recording(sent) });
    await a.putMany("customers", [
      { id: `${prefix}-p1`, data: customer(1) },
      { id: `${prefix}-p2`, data: customer(2) },
    ]);
    await a.sync();
    sent.length = 0;
    await a.putMany("customers", [
      { id: `${prefix}-p1`, data: customer(1, { phone: "555-1" }) },
      { id: `${prefix}-p2`, data: customer(2) }, // unchanged: not modified, nothing to send
      { id: `${prefix}-p3`, data: customer(3) },
    ]);
    expect(await a.sync()).toMatchObject({ pushed: 2 });
    expect(sent).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: `${prefix}-p1`, baseVersion: 1, patch: { phone: "555-1" } }),
        expect.objectContaining({ id: `${prefix}-p3`, baseVersion: null, data: customer(3) }),
      ]),
    );
    expect((await server(`${prefix}-p1`))?.version).toBe(2);
  });

  it("a bad record, a repeated id or a bad collection refuses the whole putMany: nothing is written", async () => {
    const counting = new CountingStore(await openStore(kind));
    const a = new SyncClient({ baseUrl: HUB_URL, apiKey: keys.crm as string, store: counting.wrap(), fetch: inProcessFetch() });
    const good = { id: `${prefix}-v1`, data: customer(1) };
    await expect(a.putMany("customers", [good, { id: `${prefix}-v2`, data: [1] as unknown as JsonObject }])).rejects.toThrow(
      /must be a JSON object .*\(record 1, id "bulk-.*-v2"\)/,
    );
    await expect(a.putMany("customers", [good, { id: "", data: customer(2) }])).rejects.toThrow(/A record id is 1 to 256 printable characters.*record 1/);
    await expect(a.putMany("customers", [good, { id: `${prefix}-v3`, data: { n: Number.NaN } }])).rejects.toThrow(/plain JSON/);
    await expect(a.putMany("customers", [good, good])).rejects.toThrow(/appears twice/);
    await expect(a.putMany("Customers", [good])).rejects.toBeInstanceOf(ConcordError);
    await expect(a.putMany("customers", [good, { id: `${prefix}-big`, data: { blob: "x".repeat(300 * 1024) } }])).rejects.toThrow(/at most 262144/);
    expect(counting.writes).toHaveLength(0);
    expect(await a.get("customers", good.id)).toBeUndefined();
    await a.putMany("customers", []);
    expect(counting.writes).toHaveLength(0);
  });

  it("deleteMany: synced records become deletions in one write, unsynced ones just go, unknown ids are skipped", async () => {
    const counting = new CountingStore(await openStore(kind));
    // The web shop may delete new orders (all fields, in its write range).
    const a = new SyncClient({ baseUrl: HUB_URL, apiKey: keys.webshop as string, store: counting.wrap(), fetch: inProcessFetch() });
    const synced = Array.from({ length: 30 }, (_, i) => ({ id: `${prefix}-d${i}`, data: order(i) }));
    await a.putMany("orders", synced);
    await a.sync();
    await a.put("orders", `${prefix}-local`, order(99));
    await expect(a.deleteMany("orders", [`${prefix}-d0`, "bad\u0000id"])).rejects.toThrow(/A record id/);

    counting.writes.length = 0;
    await a.deleteMany("orders", [...synced.map((r) => r.id), `${prefix}-local`, `${prefix}-nowhere`, `${prefix}-d0`]);
    expect(counting.writes).toHaveLength(1);
    expect(counting.writes[0]?.putRecords).toHaveLength(30);
    expect(counting.writes[0]?.deleteRecords).toEqual([{ collection: "orders", id: `${prefix}-local` }]);
    expect(await a.get("orders", `${prefix}-d3`)).toBeUndefined();
    expect((await a.status()).pendingChanges).toBe(30);

    expect(await a.sync()).toMatchObject({ pushed: 30, quarantined: 0 });
    expect((await server(`${prefix}-d3`, "orders"))?.deleted).toBe(true);
    expect((await server(`${prefix}-local`, "orders"))).toBeUndefined();
    expect((await a.list("orders")).filter((r) => r.id.startsWith(`${prefix}-d`))).toEqual([]);
  });
});

describe("PgliteStore writes in chunks", () => {
  it("keeps a large outbox in order and applies large record writes and deletes atomically", async () => {
    const store = await openStore("pglite");
    const n = 4500; // more than two chunks
    const entries = Array.from({ length: n }, (_, i) => ({
      changeId: `chunk-${i}`,
      collection: "customers",
      id: `c-${i}`,
      change: { changeId: `chunk-${i}`, id: `c-${i}`, baseVersion: null, data: customer(i) } satisfies PushChange,
      record: customer(i),
      quarantine: null,
    }));
    const rows = entries.map((e) => ({ collection: "customers", id: e.id, data: e.record, digest: "d", base: null, modifiedAt: null }));
    await store.write({ putRecords: rows, putOutbox: entries });
    expect((await store.outbox()).map((e) => e.changeId)).toEqual(entries.map((e) => e.changeId));
    expect(await store.modifiedRecords()).toHaveLength(n);

    await store.write({ deleteOutbox: entries.slice(0, 4000).map((e) => e.changeId), deleteRecords: rows.slice(0, 4100) });
    expect((await store.outbox()).map((e) => e.changeId)).toEqual(entries.slice(4000).map((e) => e.changeId));
    expect(await store.listRecords("customers")).toHaveLength(400);

    // A failing statement in a later chunk undoes the earlier chunks of the same write.
    const bad: LocalRecord[] = [...rows.slice(0, 3000), { ...(rows[0] as LocalRecord), collection: null as unknown as string }];
    await expect(store.write({ putRecords: bad })).rejects.toThrow();
    expect(await store.listRecords("customers")).toHaveLength(400);
  });
});

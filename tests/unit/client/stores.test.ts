import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryStore, type LocalRecord, type LocalStore, type OutboxEntry } from "@/lib/client";
import { PgliteStore } from "@/lib/client/pglite-store";

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const rec = (id: string, data: LocalRecord["data"], baseDigest: string | null): LocalRecord => ({
  collection: "customers",
  id,
  data,
  digest: `d-${id}-${JSON.stringify(data)}`,
  base: baseDigest === null ? null : { version: 2, digest: baseDigest, data: { old: true } },
  modifiedAt: null,
});

const entry = (changeId: string, id: string): OutboxEntry => ({
  changeId,
  collection: "customers",
  id,
  change: { changeId, id, baseVersion: null, data: { a: 1 } },
  record: { a: 1 },
  quarantine: null,
});

describe.each([
  ["MemoryStore", async () => new MemoryStore()],
  ["PgliteStore", async () => PgliteStore.open("memory://")],
] as const)("%s keeps the LocalStore contract", (_name, open) => {
  it("stores records, tracks modified ones, and reads them back by key, ids and collection", async () => {
    const store: LocalStore = await open();
    const clean = rec("b", { x: 1 }, "");
    clean.digest = "same";
    clean.base = { version: 1, digest: "same", data: { x: 1 } };
    await store.write({ putRecords: [rec("a", { x: "é" }, null), clean, rec("c", null, "base")] });
    expect(await store.getRecord("customers", "a")).toEqual(rec("a", { x: "é" }, null));
    expect((await store.getRecords("customers", ["a", "c", "zz"])).map((r) => r.id).sort()).toEqual(["a", "c"]);
    expect((await store.listRecords("customers")).map((r) => r.id)).toEqual(["a", "b", "c"]);
    expect((await store.modifiedRecords()).map((r) => r.id).sort()).toEqual(["a", "c"]);
    await store.write({ deleteRecords: [{ collection: "customers", id: "a" }], checkpoints: { customers: "s9" }, meta: { config: { v: 1 } } });
    expect(await store.getRecord("customers", "a")).toBeUndefined();
    expect(await store.checkpoint("customers")).toBe("s9");
    expect(await store.getMeta("config")).toEqual({ v: 1 });
    expect(await store.collections()).toEqual(["customers"]);
    await store.write({ checkpoints: { customers: null } });
    expect(await store.checkpoint("customers")).toBeNull();
    await store.close();
  });

  it("keeps the outbox in order; replacing an entry keeps its place", async () => {
    const store = await open();
    await store.write({ putOutbox: [entry("1", "a"), entry("2", "b")] });
    await store.write({ putOutbox: [entry("3", "c")] });
    await store.write({ putOutbox: [{ ...entry("1", "a"), quarantine: { status: "forbidden", reason: "no", at: "t" } }] });
    const all = await store.outbox();
    expect(all.map((e) => e.changeId)).toEqual(["1", "2", "3"]);
    expect(all[0]?.quarantine?.status).toBe("forbidden");
    await store.write({ deleteOutbox: ["2"] });
    expect((await store.outbox()).map((e) => e.changeId)).toEqual(["1", "3"]);
    await store.close();
  });
});

describe("PgliteStore on disk", () => {
  it("survives a restart, and a failed write changes nothing", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "concord-store-"));
    dirs.push(dir);
    const first = await PgliteStore.open(dir);
    await first.write({ putRecords: [rec("a", { x: 1 }, null)], putOutbox: [entry("1", "a")], checkpoints: { customers: "s1" } });
    const bad = { ...entry("2", "b"), change: undefined as unknown as OutboxEntry["change"] };
    await expect(first.write({ putRecords: [rec("z", { x: 2 }, null)], putOutbox: [bad] })).rejects.toThrow();
    await first.close();
    const second = await PgliteStore.open(dir);
    expect((await second.listRecords("customers")).map((r) => r.id)).toEqual(["a"]);
    expect((await second.outbox()).map((e) => e.changeId)).toEqual(["1"]);
    expect(await second.checkpoint("customers")).toBe("s1");
    await second.close();
  });
});

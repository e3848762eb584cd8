import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as changesRoute from "@/app/api/v1/collections/[collection]/changes/route";
import * as recordRoute from "@/app/api/admin/records/[collection]/[id]/route";
import * as historyRoute from "@/app/api/admin/records/[collection]/[id]/history/route";
import * as restoreRoute from "@/app/api/admin/records/[collection]/[id]/restore/route";
import { rowsOf } from "@/lib/db/client";
import { auditLog, recordHistory, records } from "@/lib/db/schema";
import { activatePolicy } from "@/lib/policy/store";
import { digestOf } from "@/lib/sync/digest";
import type { CurrentRecord, HistoryEntry, HistoryPage, RestoreResult } from "@/lib/sync/history";
import { DELETED_DIGEST, type ChangesResponse, type JsonObject } from "@/lib/sync/protocol";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";
import { changeId, keysFor, pushOne } from "@/tests/helpers/sync";

/** Notes merge disjoint edits and keep the server's copy when the same field collides. */
const policy = `version: 1
systems: {crm: {}, billing: {}, webshop: {}}
collections: {notes: {conflict: field-merge, fallback: server-wins}}
rules: [{who: "*", collection: notes, read: all, write: all}]
`;

let t: TestHub;
let keys: Record<string, string>;

beforeAll(async () => {
  t = await startTestHub();
  await activatePolicy(t.hub.db, { yaml: policy, actor: "test", source: "api" });
  keys = await keysFor(t.hub.db, "crm", "billing", "webshop");
});
afterAll(async () => {
  await t.close();
});

function key(system: string): string {
  const k = keys[system];
  if (!k) throw new Error(`no key for ${system}`);
  return k;
}

type Params = { collection: string; id: string };

function pathOf(collection: string, id: string, rest = ""): string {
  return `/api/admin/records/${collection}/${encodeURIComponent(id)}${rest}`;
}

async function historyOf(id: string, query: Record<string, string | number> = {}, collection = "notes") {
  const qs = new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)])).toString();
  return call<Params>(historyRoute.GET, { path: pathOf(collection, id, `/history${qs ? `?${qs}` : ""}`), params: { collection, id } });
}

async function historyOk(id: string, query: Record<string, string | number> = {}): Promise<HistoryPage> {
  const res = await historyOf(id, query);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as HistoryPage;
}

async function recordOf(id: string, collection = "notes") {
  return call<Params>(recordRoute.GET, { path: pathOf(collection, id), params: { collection, id } });
}

async function restore(id: string, body: unknown, collection = "notes", token?: string | null) {
  return call<Params>(restoreRoute.POST, {
    method: "POST",
    path: pathOf(collection, id, "/restore"),
    params: { collection, id },
    body: typeof body === "string" ? body : (body as object),
    token,
  });
}

async function restoreOk(id: string, version: number): Promise<RestoreResult> {
  const res = await restore(id, { version });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body as RestoreResult;
}

async function changes(since?: string): Promise<ChangesResponse> {
  const res = await call<{ collection: string }>(changesRoute.GET, {
    path: `/api/v1/collections/notes/changes${since ? `?since=${since}` : ""}`,
    params: { collection: "notes" },
    token: key("webshop"),
  });
  expect(res.status).toBe(200);
  return res.body as ChangesResponse;
}

async function versionCount(id: string): Promise<number> {
  const rows = await t.hub.db
    .select({ version: recordHistory.version })
    .from(recordHistory)
    .where(and(eq(recordHistory.collection, "notes"), eq(recordHistory.id, id)));
  return rows.length;
}

async function restoreAudits(id: string) {
  return t.hub.db
    .select()
    .from(auditLog)
    .where(and(eq(auditLog.action, "record.restore"), eq(auditLog.target, `record:notes/${id}`)));
}

function errorOf(body: unknown): { code: string; message: string } {
  return (body as { error: { code: string; message: string } }).error;
}

const v1 = { title: "Plan", body: "draft", tags: ["a"] };

/** A record with one version of each origin: push, push, merge, push (delete), restore. */
async function varied(id: string) {
  const ids = { c1: changeId(), c2: changeId(), c3: changeId(), c4: changeId() };
  await pushOne(key("crm"), "notes", { changeId: ids.c1, id, baseVersion: null, data: v1 });
  await pushOne(key("billing"), "notes", { changeId: ids.c2, id, baseVersion: 1, patch: { body: "final" } });
  const merged = await pushOne(key("crm"), "notes", { changeId: ids.c3, id, baseVersion: 1, patch: { title: "Plan B" } });
  expect(merged.status).toBe("merged");
  await pushOne(key("crm"), "notes", { changeId: ids.c4, id, baseVersion: 3, deleted: true });
  return ids;
}

// ---------------------------------------------------------------------------

describe("GET /api/admin/records/{c}/{id}/history", () => {
  it("returns every version newest first, with origin, change id, writer and times; tombstones carry no data", async () => {
    const ids = await varied("h-1");
    const restored = await restoreOk("h-1", 3);
    expect(restored).toMatchObject({ written: true, restoredFrom: 3, record: { version: 5, deleted: false } });

    const page = await historyOk("h-1");
    expect(page.next).toBeNull();
    const merged = { title: "Plan B", body: "final", tags: ["a"] };
    const summary = page.versions.map((v) => [v.version, v.origin, v.changeId, v.writtenBy, v.deleted, v.data ?? null]);
    expect(summary).toEqual([
      [5, "restore", null, "operator:admin-token", false, merged],
      [4, "push", ids.c4, "crm", true, null],
      [3, "merge", ids.c3, "crm", false, merged],
      [2, "push", ids.c2, "billing", false, { ...v1, body: "final" }],
      [1, "push", ids.c1, "crm", false, v1],
    ]);
    const tombstone = page.versions[1] as HistoryEntry;
    expect(tombstone).not.toHaveProperty("data");
    expect(tombstone.digest).toBe(DELETED_DIGEST);
    expect(page.versions[0]?.digest).toBe(digestOf(merged));
    for (const v of page.versions) {
      expect(Object.keys(v).sort()).toEqual(
        ["changeId", "deleted", "digest", "modifiedAt", "origin", "seq", "version", "writtenAt", "writtenBy", ...(v.deleted ? [] : ["data"])].sort(),
      );
      expect(v.writtenAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(v.modifiedAt).toMatch(/Z$/);
    }
    const seqs = page.versions.map((v) => v.seq);
    expect([...seqs].sort((a, b) => b - a)).toEqual(seqs);
  });

  it("pages with `before` and `limit`", async () => {
    await varied("h-2");
    const first = await historyOk("h-2", { limit: 2 });
    expect(first.versions.map((v) => v.version)).toEqual([4, 3]);
    expect(first.next).toBe(3);
    const second = await historyOk("h-2", { limit: 2, before: 3 });
    expect(second.versions.map((v) => v.version)).toEqual([2, 1]);
    expect(second.next).toBeNull();
    const last = await historyOk("h-2", { limit: 2, before: 1 });
    expect(last).toEqual({ versions: [], next: null });
  });

  it("answers 404 for a record that was never written, 400 for bad parameters", async () => {
    const missing = await historyOf("never-written");
    expect(missing.status).toBe(404);
    expect(errorOf(missing.body)).toMatchObject({ code: "not_found", message: expect.stringMatching(/"never-written".*has no history/) });
    expect((await historyOf("never-written", { before: 5 })).status).toBe(404);
    expect((await historyOf("h-1", {}, "other")).status).toBe(404);

    await pushOne(key("crm"), "notes", { id: "h-3", baseVersion: null, data: v1 });
    const bad: [string, Record<string, string | number>, string?][] = [
      ["limit 0", { limit: 0 }],
      ["limit 501", { limit: 501 }],
      ["before 0", { before: 0 }],
      ["before abc", { before: "abc" }],
      ["an unknown parameter", { after: 1 }],
    ];
    for (const [name, query] of bad) {
      const res = await historyOf("h-3", query);
      expect(res.status, name).toBe(400);
      expect(errorOf(res.body).code).toBe("invalid_request");
    }
    const badCollection = await historyOf("h-3", {}, "Notes");
    expect(badCollection.status).toBe(400);
    expect(errorOf(badCollection.body).message).toMatch(/collection name in the path is invalid/);
    for (const id of ["a\u0007b", "x".repeat(257), ""]) {
      const res = await historyOf(id);
      expect(res.status, JSON.stringify(id)).toBe(400);
      expect(errorOf(res.body).message).toMatch(/record id in the path is invalid/);
    }
  });
});

describe("a record with 10,000 versions", () => {
  const N = 10_000;

  beforeAll(async () => {
    // Seeded directly: version g holds {"n": g}, with its real digest and a seq that grows with the version.
    await t.hub.db.execute(sql`
      insert into record_history (collection, id, version, data, digest, deleted, seq, origin, change_id, written_by)
      select 'notes', 'big', g, jsonb_build_object('n', g),
             encode(sha256(convert_to('{"n":' || g || '}', 'UTF8')), 'hex'),
             false, nextval('change_seq'), 'push', 'bulk-' || g, 'crm'
      from generate_series(1, ${N}) g`);
    await t.hub.db.execute(sql`
      insert into records (collection, id, data, version, digest, deleted, seq, updated_by)
      select collection, id, data, version, digest, deleted, seq, written_by
      from record_history where collection = 'notes' and id = 'big' and version = ${N}`);
    await t.hub.db.execute(sql`analyze record_history`);
  }, 120_000);

  it("pages through every version, newest first, contiguous, in pages of 500", async () => {
    const seen: number[] = [];
    let before: number | undefined;
    for (let pages = 0; ; pages++) {
      expect(pages).toBeLessThan(N / 500 + 1);
      const page = await historyOk("big", { limit: 500, ...(before === undefined ? {} : { before }) });
      if (page.versions.length > 0) expect(page.versions[0]?.version).toBe(before === undefined ? N : before - 1);
      seen.push(...page.versions.map((v) => v.version));
      if (page.next === null) break;
      before = page.next;
    }
    expect(seen).toEqual(Array.from({ length: N }, (_, i) => N - i));
    const page = await historyOk("big", { before: 5001, limit: 1 });
    expect(page.versions[0]).toMatchObject({ version: 5000, data: { n: 5000 }, digest: digestOf({ n: 5000 }) });
  });

  it("serves a page in well under 100 ms, from the primary key", async () => {
    const queries: Record<string, number>[] = [{}, { before: 5000 }, { before: 101, limit: 500 }];
    for (const query of queries) {
      await historyOk("big", query); // warm
      let best = Infinity;
      for (let i = 0; i < 3; i++) {
        const start = performance.now();
        await historyOk("big", query);
        best = Math.min(best, performance.now() - start);
      }
      expect(best, `${JSON.stringify(query)}: ${best.toFixed(1)} ms`).toBeLessThan(100);
    }
    const plan = rowsOf<Record<string, string>>(
      await t.hub.db.execute(sql`
        explain select * from record_history
        where collection = 'notes' and id = 'big' and version < 5000 order by version desc limit 101`),
    )
      .map((r) => Object.values(r).join(" "))
      .join("\n");
    expect(plan).toMatch(/Index Scan Backward using record_history_collection_id_version_pk/);
    expect(plan).not.toMatch(/Seq Scan|Sort/);
  });
});

describe("GET /api/admin/records/{c}/{id}", () => {
  it("returns the current row; a tombstone has no data", async () => {
    await pushOne(key("crm"), "notes", { id: "r-1", baseVersion: null, data: v1 });
    const res = await recordOf("r-1");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      collection: "notes",
      id: "r-1",
      version: 1,
      digest: digestOf(v1),
      deleted: false,
      data: v1,
      seq: expect.any(Number),
      updatedBy: "crm",
      updatedAt: expect.stringMatching(/Z$/),
      modifiedAt: expect.stringMatching(/Z$/),
    });
    await pushOne(key("crm"), "notes", { id: "r-1", baseVersion: 1, deleted: true });
    const deleted = (await recordOf("r-1")).body as CurrentRecord;
    expect(deleted).toMatchObject({ version: 2, deleted: true, digest: DELETED_DIGEST });
    expect(deleted).not.toHaveProperty("data");
    const missing = await recordOf("r-missing");
    expect(missing.status).toBe(404);
    expect(errorOf(missing.body).message).toMatch(/no record "r-missing" in collection "notes"/);
  });
});

describe("POST /api/admin/records/{c}/{id}/restore", () => {
  it("writes an old version's data as a new version that readers receive, and audits it", async () => {
    await pushOne(key("crm"), "notes", { id: "s-1", baseVersion: null, data: v1 });
    await pushOne(key("crm"), "notes", { id: "s-1", baseVersion: 1, data: { ...v1, body: "oops" } });
    const { checkpoint } = await changes();

    const res = await restoreOk("s-1", 1);
    expect(res).toEqual({
      record: { version: 3, digest: digestOf(v1), deleted: false, data: v1 },
      restoredFrom: 1,
      written: true,
      message: expect.stringMatching(/Version 1 of record notes\/s-1 was restored as version 3/),
    });
    const [row] = await t.hub.db
      .select()
      .from(records)
      .where(and(eq(records.collection, "notes"), eq(records.id, "s-1")));
    expect(row).toMatchObject({ version: 3, data: v1, deleted: false, updatedBy: "operator:admin-token" });
    const [latest] = (await historyOk("s-1", { limit: 1 })).versions;
    expect(latest).toMatchObject({ version: 3, origin: "restore", changeId: null, writtenBy: "operator:admin-token", data: v1 });

    const feed = await changes(checkpoint);
    expect(feed.changes).toEqual([{ id: "s-1", version: 3, digest: digestOf(v1), data: v1 }]);

    const audits = await restoreAudits("s-1");
    expect(audits).toHaveLength(1);
    expect(audits[0]).toMatchObject({
      actor: "admin-token",
      details: { collection: "notes", record: "s-1", restoredFrom: 1, previousVersion: 2, resultVersion: 3, deleted: false },
    });
  });

  it("restoring a tombstone deletes the record; restoring a live version brings it back", async () => {
    await pushOne(key("crm"), "notes", { id: "s-2", baseVersion: null, data: v1 });
    await pushOne(key("crm"), "notes", { id: "s-2", baseVersion: 1, deleted: true });
    await pushOne(key("crm"), "notes", { id: "s-2", baseVersion: null, data: { ...v1, title: "again" } });
    const { checkpoint } = await changes();

    const res = await restoreOk("s-2", 2);
    expect(res.record).toEqual({ version: 4, digest: DELETED_DIGEST, deleted: true });
    expect(res.message).toMatch(/was deleted, as it was at version 2/);
    expect(((await recordOf("s-2")).body as CurrentRecord).deleted).toBe(true);
    expect((await changes(checkpoint)).changes).toEqual([{ id: "s-2", version: 4, digest: DELETED_DIGEST, deleted: true }]);

    const back = await restoreOk("s-2", 1);
    expect(back.record).toEqual({ version: 5, digest: digestOf(v1), deleted: false, data: v1 });
  });

  it("writes nothing when the record already holds that data", async () => {
    await pushOne(key("crm"), "notes", { id: "s-3", baseVersion: null, data: v1 });
    await pushOne(key("crm"), "notes", { id: "s-3", baseVersion: 1, data: { ...v1, body: "x" } });
    await pushOne(key("crm"), "notes", { id: "s-3", baseVersion: 2, data: v1 });
    for (const version of [1, 3]) {
      const res = await restoreOk("s-3", version);
      expect(res).toMatchObject({ written: false, record: { version: 3, data: v1 }, restoredFrom: version });
      expect(res.message).toMatch(/already holds the data of version \d \(it is at version 3\), so no version was written/);
    }
    expect(await versionCount("s-3")).toBe(3);
    expect(await restoreAudits("s-3")).toHaveLength(0);

    await pushOne(key("crm"), "notes", { id: "s-3", baseVersion: 3, deleted: true });
    await pushOne(key("crm"), "notes", { id: "s-3", baseVersion: 4, deleted: true }); // unchanged
    expect(await restoreOk("s-3", 4)).toMatchObject({ written: false, record: { version: 4, deleted: true } });
  });

  it("refuses unknown versions and records with 404, bad bodies with 400, changing nothing", async () => {
    await pushOne(key("crm"), "notes", { id: "s-4", baseVersion: null, data: v1 });
    const unknown = await restore("s-4", { version: 2 });
    expect(unknown.status).toBe(404);
    expect(errorOf(unknown.body)).toMatchObject({ code: "not_found", message: expect.stringMatching(/has no version 2; its versions run from 1 to 1/) });
    const missing = await restore("s-missing", { version: 1 });
    expect(missing.status).toBe(404);
    expect(errorOf(missing.body).message).toMatch(/no record "s-missing"/);

    const bad: [string, unknown][] = [
      ["version 0", { version: 0 }],
      ["a negative version", { version: -1 }],
      ["a fractional version", { version: 1.5 }],
      ["a version as a string", { version: "1" }],
      ["no version", {}],
      ["an extra field", { version: 1, comment: "x" }],
      ["an array", [1]],
      ["malformed JSON", "{version: 1}"],
    ];
    for (const [name, body] of bad) {
      const res = await restore("s-4", body);
      expect(res.status, name).toBe(400);
      expect(errorOf(res.body).code).toBe("invalid_request");
    }
    expect(await versionCount("s-4")).toBe(1);
    expect(await restoreAudits("s-4")).toHaveLength(0);
  });

  it("answers 401 without the admin token on every record route", async () => {
    for (const res of [
      await call<Params>(historyRoute.GET, { params: { collection: "notes", id: "s-4" }, token: null }),
      await call<Params>(recordRoute.GET, { params: { collection: "notes", id: "s-4" }, token: "wrong-token-wrong-token" }),
      await restore("s-4", { version: 1 }, "notes", null),
    ]) {
      expect(res.status).toBe(401);
      expect(errorOf(res.body).code).toBe("unauthenticated");
    }
  });
});

describe("record ids with special characters", () => {
  // Next.js decodes each path segment before it reaches the handler: %2F arrives as "/", %20 as " ".
  const ids = ["with space", "a/b/c", "ünïcødé ✓ 日本", "100%", "%2F-literal", "emoji 🎉", "dot.", "x".repeat(256)];

  const cases = ids.map((id) => [id.length > 40 ? `an id of ${id.length} characters` : JSON.stringify(id), id] as const);

  it.each(cases)("history, record and restore work for %s", async (_name, id) => {
    const data: JsonObject = { title: id };
    await pushOne(key("crm"), "notes", { id, baseVersion: null, data });
    await pushOne(key("crm"), "notes", { id, baseVersion: 1, data: { title: "changed" } });

    const page = await historyOk(id);
    expect(page.versions.map((v) => v.version)).toEqual([2, 1]);
    const record = (await recordOf(id)).body as CurrentRecord;
    expect(record).toMatchObject({ id, version: 2 });

    const restored = await restoreOk(id, 1);
    expect(restored.record).toMatchObject({ version: 3, data });
    const [audit] = await restoreAudits(id);
    expect(audit?.details).toMatchObject({ record: id });
  });

  it("keeps ids that differ only by encoding apart", async () => {
    await pushOne(key("crm"), "notes", { id: "p/q", baseVersion: null, data: { n: 1 } });
    await pushOne(key("crm"), "notes", { id: "p%2Fq", baseVersion: null, data: { n: 2 } });
    expect(((await recordOf("p/q")).body as CurrentRecord).data).toEqual({ n: 1 });
    expect(((await recordOf("p%2Fq")).body as CurrentRecord).data).toEqual({ n: 2 });
  });
});

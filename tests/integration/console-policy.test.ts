import { readFileSync } from "node:fs";
import { desc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { activateDraft, compileDraft } from "@/lib/console/policy-draft";
import { accessImpact, loadRecordData, simulateRecord } from "@/lib/console/policy-simulate";
import { getVersionDetail, listVersionsPage } from "@/lib/console/policy-versions";
import { auditLog, policyVersions, type JsonObject } from "@/lib/db/schema";
import { activatePolicy, getActivePolicy, listPolicyVersions, rollbackPolicy } from "@/lib/policy/store";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { writeRecord, writeRecords } from "@/tests/helpers/records";

const example = readFileSync("policies/example.yaml", "utf8");
// The web shop also reads store customers; the CRM reads only north and east.
const draft = example
  .replace(`read: {where: "source == 'web'", fields: [name, email, address, source]}`, `read: {where: "source in ['web', 'store']", fields: [name, email, address, source]}`)
  .replace("    collection: customers\n    read: all\n", "    collection: customers\n    read: \"region in ['north', 'east']\"\n");

let t: TestHub;
beforeAll(async () => {
  t = await startTestHub();
});
afterAll(async () => {
  await t.close();
});

async function versionCount(): Promise<number> {
  return (await listPolicyVersions(t.hub.db)).length;
}

describe("activating a draft from the console", () => {
  it("refuses a draft equal to the active text, a blank comment, and a stale base version, changing nothing", async () => {
    const before = await versionCount();
    await expect(activateDraft(t.hub.db, { yaml: example, baseVersion: 1, comment: "same", actor: "alice" })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("same as the active version 1") as string,
    });
    await expect(activateDraft(t.hub.db, { yaml: draft, baseVersion: 1, comment: "  ", actor: "alice" })).rejects.toMatchObject({
      code: "invalid_request",
    });
    await expect(activateDraft(t.hub.db, { yaml: draft, baseVersion: 7, comment: "x", actor: "alice" })).rejects.toMatchObject({
      code: "conflict",
      message: expect.stringContaining("based on version 7, but version 1 is active") as string,
    });
    await expect(activateDraft(t.hub.db, { yaml: "version: 1\nsystems: {}\n", baseVersion: 1, comment: "x", actor: "alice" })).rejects.toMatchObject({
      code: "policy_invalid",
    });
    expect(await versionCount()).toBe(before);
  });

  it("activates a changed, valid draft as the next version, audited with the operator as actor", async () => {
    const result = await activateDraft(t.hub.db, { yaml: draft, baseVersion: 1, comment: "web shop reads store customers", actor: "alice" });
    expect(result.version).toBe(2);
    const active = await getActivePolicy(t.hub.db);
    expect([active.version, active.yaml, active.activatedBy]).toEqual([2, draft, "alice"]);
    const [row] = await t.hub.db.select().from(policyVersions).where(eq(policyVersions.version, 2));
    expect([row?.source, row?.comment]).toEqual(["console", "web shop reads store customers"]);
    const [audit] = await t.hub.db.select().from(auditLog).where(eq(auditLog.target, "policy:2"));
    expect(audit).toMatchObject({ actor: "alice", action: "policy.activate", details: { source: "console", comment: "web shop reads store customers" } });
  });

  it("checks the expected version inside the activation transaction (a concurrent activation wins, the late one changes nothing)", async () => {
    const before = await versionCount();
    const results = await Promise.allSettled([
      activatePolicy(t.hub.db, { yaml: example, actor: "alice", source: "console", comment: "a", expectedVersion: 2 }),
      activatePolicy(t.hub.db, { yaml: draft + "# b\n", actor: "bob", source: "console", comment: "b", expectedVersion: 2 }),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const rejected = results.find((r) => r.status === "rejected");
    expect(rejected?.reason).toMatchObject({ code: "conflict", message: expect.stringContaining("against version 2, but version 3 is active") as string });
    expect(await versionCount()).toBe(before + 1);
  });

  it("rolls back to an earlier version with a comment, audited as policy.rollback by the operator", async () => {
    const active = await getActivePolicy(t.hub.db);
    await expect(rollbackPolicy(t.hub.db, { toVersion: 1, actor: "alice", comment: "x", expectedVersion: active.version - 1 })).rejects.toMatchObject({
      code: "conflict",
    });
    const result = await rollbackPolicy(t.hub.db, { toVersion: 1, actor: "alice", comment: "back to the default", expectedVersion: active.version });
    expect(result.version).toBe(active.version + 1);
    expect((await getActivePolicy(t.hub.db)).yaml).toBe(example);
    const [audit] = await t.hub.db.select().from(auditLog).orderBy(desc(auditLog.id)).limit(1);
    expect(audit).toMatchObject({ actor: "alice", action: "policy.rollback", details: { rolledBackFrom: 1, comment: "back to the default" } });
  });
});

describe("versions pages", () => {
  it("pages newest first by version, with cursors both ways", async () => {
    const total = await versionCount();
    expect(total).toBe(4);
    const first = await listVersionsPage(t.hub.db, { pageSize: 3 });
    expect(first.rows.map((r) => r.version)).toEqual([4, 3, 2]);
    expect([first.activeVersion, first.newerAfter, first.olderBefore]).toEqual([4, null, 2]);
    const second = await listVersionsPage(t.hub.db, { before: 2, pageSize: 3 });
    expect(second.rows.map((r) => r.version)).toEqual([1]);
    expect([second.newerAfter, second.olderBefore]).toEqual([1, null]);
    const back = await listVersionsPage(t.hub.db, { after: 1, pageSize: 3 });
    expect(back.rows.map((r) => r.version)).toEqual([4, 3, 2]);
    expect(back.rows[0]).not.toHaveProperty("yaml");
  });

  it("gives a version's text with the diff against the previous one", async () => {
    const detail = await getVersionDetail(t.hub.db, 2);
    expect(detail?.previous).toBe(1);
    expect(detail?.activeVersion).toBe(4);
    expect(detail?.diff.lines.filter((l) => l.kind === "added").map((l) => l.text.trim())).toEqual([
      `read: "region in ['north', 'east']"`,
      `read: {where: "source in ['web', 'store']", fields: [name, email, address, source]}`,
    ]);
    expect((await getVersionDetail(t.hub.db, 1))?.diff.removed).toBe(0);
    expect(await getVersionDetail(t.hub.db, 99)).toBeNull();
  });
});

describe("simulator and access impact", () => {
  const customers: [string, JsonObject][] = [
    ["c1", { name: "Ann", region: "north", source: "web" }],
    ["c2", { name: "Bo", region: "south", source: "store" }],
    ["c3", { name: "Cy", region: "east", source: "store" }],
    ["c4", { name: "Di", region: "west", source: "phone" }],
    ["c5", { name: "Ed", region: "south", source: "store" }],
  ];

  beforeAll(async () => {
    await writeRecords(
      t.hub.db,
      customers.map(([id, data]) => ({ collection: "customers", id, data, by: "crm" })),
    );
    await writeRecord(t.hub.db, { collection: "customers", id: "gone", data: { region: "south", source: "store" }, by: "crm" });
    await writeRecord(t.hub.db, { collection: "customers", id: "gone", deleted: true, by: "crm" });
  });

  it("simulates a stored record by id and refuses unknown and deleted ones", async () => {
    const record = await loadRecordData(t.hub.db, "customers", "c2");
    const active = await getActivePolicy(t.hub.db);
    const sim = simulateRecord(active.compiled, { system: "webshop", collection: "customers", record });
    expect([sim.read.allowed, sim.write.allowed]).toEqual([false, false]);
    const underDraft = simulateRecord(await compileDraft(draft), { system: "webshop", collection: "customers", record });
    expect(underDraft.read.allowed).toBe(true);
    expect(underDraft.visibleFields).toEqual(["address", "email", "name", "source"]);
    await expect(loadRecordData(t.hub.db, "customers", "nope")).rejects.toMatchObject({ code: "not_found" });
    await expect(loadRecordData(t.hub.db, "customers", "gone")).rejects.toThrow(/is deleted/);
  });

  it("counts per system and collection the live records a draft gains and loses, agreeing with Casbin", async () => {
    const active = await getActivePolicy(t.hub.db);
    const next = await compileDraft(draft);
    const rows = await accessImpact(t.hub.db, active.compiled, next);
    const get = (system: string, collection: string) => rows.find((r) => r.system === system && r.collection === collection);
    // webshop gains c2, c3, c5 (store); crm loses c2, c4, c5 (not north/east); the deleted record counts for nobody.
    expect(get("webshop", "customers")).toEqual({ system: "webshop", collection: "customers", gained: 3, lost: 0 });
    expect(get("crm", "customers")).toEqual({ system: "crm", collection: "customers", gained: 0, lost: 3 });
    expect(get("billing", "customers")).toEqual({ system: "billing", collection: "customers", gained: 0, lost: 0 });
    expect(rows).toHaveLength(4 * 3);
    for (const r of rows.filter((x) => x.collection === "customers")) {
      const gained = customers.filter(([, d]) => next.decide(r.system, "customers", "read", d) && !active.compiled.decide(r.system, "customers", "read", d));
      const lost = customers.filter(([, d]) => !next.decide(r.system, "customers", "read", d) && active.compiled.decide(r.system, "customers", "read", d));
      expect([r.gained, r.lost], `${r.system}`).toEqual([gained.length, lost.length]);
    }
  });

  it("covers systems and collections present in only one of the policies", async () => {
    const active = await getActivePolicy(t.hub.db);
    const other = await compileDraft(`version: 1
systems: {crm: {}, erp: {}}
collections: {customers: {}, items: {}}
rules:
  - {who: "*", collection: customers, read: "region == 'south'"}
  - {who: erp, collection: items, read: all}
`);
    const rows = await accessImpact(t.hub.db, active.compiled, other);
    const get = (system: string, collection: string) => rows.find((r) => r.system === system && r.collection === collection);
    expect(get("erp", "customers")).toMatchObject({ gained: 2, lost: 0 });
    expect(get("crm", "customers")).toMatchObject({ gained: 0, lost: 3 });
    expect(get("webshop", "customers")).toMatchObject({ gained: 0, lost: 1 });
    expect(get("erp", "items")).toMatchObject({ gained: 0, lost: 0 });
  });
});

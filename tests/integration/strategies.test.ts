import { and, asc, eq } from "drizzle-orm";
import mergePatch from "json-merge-patch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as changesRoute from "@/app/api/v1/collections/[collection]/changes/route";
import { conflicts, recordHistory, records, type ConflictRow } from "@/lib/db/schema";
import { activatePolicy } from "@/lib/policy/store";
import { digestOf } from "@/lib/sync/digest";
import { DELETED_DIGEST, type ChangesResponse, type JsonObject, type PushResult } from "@/lib/sync/protocol";
import { lockRecords, writeVersions } from "@/lib/sync/versions";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";
import { changeId, conflictLogged, keysFor, push, pushOne } from "@/tests/helpers/sync";

/**
 * Every conflict strategy through the HTTP API, with two client flows: A and
 * B pull the same record, A changes it and pushes first, B changes its copy of
 * the same version and pushes second, then both pull. For each case the test
 * checks what a user would: B's push result, the record afterwards as the
 * clients see it on /changes, the conflict-log row, and that B's change, if it
 * lost, is still readable there.
 */

const POLICY = `version: 1
systems:
  alpha: {priority: 10}
  beta: {priority: 20}
  gamma: {priority: 20}
  viewer_sw: {}
  viewer_cw: {}
  viewer_fm: {}
  viewer_man: {}
groups:
  clients: [alpha, beta, gamma]
  viewers: [viewer_sw, viewer_cw, viewer_fm, viewer_man]
collections:
  server_wins: {conflict: server-wins}
  client_wins: {conflict: client-wins}
  lww: {conflict: last-writer-wins}
  priority: {conflict: priority}
  manual: {conflict: manual}
  fm_manual: {conflict: field-merge, fallback: manual}
  fm_server: {conflict: field-merge, fallback: server-wins}
  fm_client: {conflict: field-merge, fallback: client-wins}
  fm_priority: {conflict: field-merge, fallback: priority}
  fm_lww: {conflict: field-merge, fallback: last-writer-wins}
  guarded: {conflict: field-merge, fallback: server-wins}
  limited: {conflict: field-merge, fallback: manual}
rules:
${["server_wins", "client_wins", "lww", "priority", "manual", "fm_manual", "fm_server", "fm_client", "fm_priority", "fm_lww"]
  .map((c) => `  - {who: "group:clients", collection: ${c}, read: all, write: all}`)
  .join("\n")}
  - {who: "group:clients", collection: guarded, read: all, write: "not (a == 2 and b == 2)"}
  - {who: alpha, collection: limited, read: all, write: all}
  - {who: "group:viewers", collection: limited, read: {fields: [name, phone, region]}, write: {fields: [name, phone]}}
  - {who: viewer_sw, collection: limited, conflict: server-wins}
  - {who: viewer_cw, collection: limited, conflict: client-wins}
  - {who: viewer_man, collection: limited, conflict: manual}
`;

let t: TestHub;
let keys: Record<string, string>;

beforeAll(async () => {
  t = await startTestHub();
  await activatePolicy(t.hub.db, { yaml: POLICY, actor: "test", source: "api" });
  keys = await keysFor(t.hub.db, "alpha", "beta", "gamma", "viewer_sw", "viewer_cw", "viewer_fm", "viewer_man");
});
afterAll(async () => {
  await t.close();
});

// ---------------------------------------------------------------------------
// A client flow: a local copy per record, pulled from /changes and updated from push results as protocol.md says.

interface Copy {
  version: number;
  digest: string;
  /** null: deleted. */
  data: JsonObject | null;
}
type Edit = { data: JsonObject } | { patch: JsonObject } | { deleted: true };

class Client {
  readonly copies = new Map<string, Copy>();
  private checkpoint: string | undefined;

  constructor(
    readonly system: string,
    readonly collection: string,
  ) {}

  copy(id: string): Copy {
    const c = this.copies.get(id);
    if (!c) throw new Error(`${this.system} holds no copy of ${id}`);
    return c;
  }

  /** Pulls /changes until hasMore is false, applying every entry. */
  async pull(): Promise<void> {
    for (;;) {
      const since = this.checkpoint === undefined ? "" : `?since=${encodeURIComponent(this.checkpoint)}`;
      const res = await call(changesRoute.GET, {
        path: `/api/v1/collections/${this.collection}/changes${since}`,
        params: { collection: this.collection },
        token: keys[this.system] as string,
      });
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      const body = res.body as ChangesResponse;
      for (const e of body.changes) {
        if ("removed" in e) this.copies.delete(e.id);
        else if ("deleted" in e) this.copies.set(e.id, { version: e.version, digest: e.digest, data: null });
        else this.copies.set(e.id, { version: e.version, digest: e.digest, data: e.data });
      }
      this.checkpoint = body.checkpoint;
      if (!body.hasMore) return;
    }
  }

  /** Pushes an edit of its copy (or a new record) and takes in the result. */
  async push(id: string, edit: Edit, modifiedAt?: string): Promise<{ result: PushResult; changeId: string; meant: JsonObject | null }> {
    const base = this.copies.get(id);
    const sent = changeId(this.system);
    const result = await pushOne(keys[this.system] as string, this.collection, {
      changeId: sent,
      id,
      baseVersion: base?.version ?? null,
      ...edit,
      ...(modifiedAt === undefined ? {} : { modifiedAt }),
    });
    const meant =
      "deleted" in edit ? null : "data" in edit ? edit.data : (mergePatch.apply(structuredClone(base?.data ?? {}), edit.patch) as JsonObject);
    if (result.status === "applied") {
      this.copies.set(id, { version: result.version as number, digest: result.digest as string, data: meant });
    } else if (result.status === "merged" || result.status === "rejected" || result.status === "pending") {
      this.copies.set(id, { version: result.version as number, digest: result.digest as string, data: result.deleted ? null : (result.data ?? null) });
    }
    return { result, changeId: sent, meant };
  }
}

// ---------------------------------------------------------------------------
// The race: A and B edit the same record from the same base; A's push arrives first.

interface RaceInput {
  base: JsonObject;
  a: Edit;
  b: Edit;
  aSystem?: string;
  bSystem?: string;
  /** modifiedAt sent with A's and B's changes (ISO strings); B's may be computed just before its push. */
  aAt?: string;
  bAt?: string | (() => Promise<string>);
}

interface Race {
  id: string;
  A: Client;
  B: Client;
  /** B's result. */
  result: PushResult;
  /** The conflict-log row of B's change. */
  log: ConflictRow;
  /** The record after both pulled, as B sees it (null: deleted). */
  server: Copy;
  /** The history row written by B's settlement, if any. */
  written: typeof recordHistory.$inferSelect | undefined;
}

let counter = 0;

async function race(collection: string, input: RaceInput): Promise<Race> {
  const id = `r${++counter}`;
  const aSystem = input.aSystem ?? "alpha";
  const bSystem = input.bSystem ?? "beta";
  const A = new Client(aSystem, collection);
  const B = new Client(bSystem, collection);
  const created = await A.push(id, { data: input.base });
  expect(created.result).toMatchObject({ status: "applied", version: 1 });
  await A.pull();
  await B.pull();
  expect(B.copy(id)).toMatchObject({ version: 1 });

  const first = await A.push(id, input.a, input.aAt);
  expect(first.result, "A's change is applied without conflict").toMatchObject({ status: "applied", version: 2 });
  expect(first.result.conflict).toBeUndefined();

  const bAt = typeof input.bAt === "function" ? await input.bAt() : input.bAt;
  const second = await B.push(id, input.b, bAt);
  const { result } = second;
  expect(result.conflict, `B's change is a conflict: ${JSON.stringify(result)}`).toMatchObject({ id: expect.any(Number) });
  expect(result.reason).toEqual(expect.any(String));
  const afterPush = structuredClone(B.copy(id));

  await A.pull();
  await B.pull();
  const server = B.copy(id);
  // The push result alone brings B in line with the server: pulling changes nothing.
  expect(afterPush, "B's copy from the push result equals the server's").toEqual(server);
  // Both clients converge (both read every field here).
  if (collection !== "limited") expect(A.copy(id)).toEqual(server);
  expect(server.digest).toBe(digestOf(server.data));

  const log = await conflictLogged(t.hub.db, bSystem, result);
  if (!log) throw new Error("no conflict-log row");
  // The log has both sides, the base, and B's change exactly as sent and as meant: nothing B sent is lost.
  expect(log).toMatchObject({
    collection,
    recordId: id,
    clientSystem: bSystem,
    serverSystem: aSystem,
    changeId: second.changeId,
    baseVersion: 1,
    baseData: input.base,
    serverVersion: 2,
    serverDeleted: "deleted" in input.a,
    serverData: "deleted" in input.a ? null : (first.meant ?? null),
    strategy: result.conflict?.strategy,
    createdAt: expect.any(Date),
    resultVersion: result.status === "applied" || result.status === "merged" ? 3 : null,
  });
  expect(log.clientChange).toMatchObject({ changeId: second.changeId, id, baseVersion: 1, ...input.b, ...(bAt ? { modifiedAt: bAt } : {}) });
  if (collection !== "limited") expect(log.clientData).toEqual(second.meant);

  const [written] = await t.hub.db
    .select()
    .from(recordHistory)
    .where(and(eq(recordHistory.collection, collection), eq(recordHistory.id, id), eq(recordHistory.version, 3)));
  if (written) {
    expect(written).toMatchObject({ changeId: second.changeId, writtenBy: bSystem, origin: log.outcome === "merged" ? "merge" : "push" });
  }
  // Versions have no gaps: 1, 2 and (if B's change wrote) 3.
  const versions = await t.hub.db
    .select({ version: recordHistory.version })
    .from(recordHistory)
    .where(and(eq(recordHistory.collection, collection), eq(recordHistory.id, id)))
    .orderBy(asc(recordHistory.version));
  expect(versions.map((v) => v.version)).toEqual(written ? [1, 2, 3] : [1, 2]);
  return { id, A, B, result, log, server, written };
}

const base = { name: "Ann", phone: "100", city: "Oslo" };
/** A changes the phone. */
const aPhone = { data: { ...base, phone: "200" } };
/** B changes the city: disjoint from A's change. */
const bCity = { data: { ...base, city: "Bergen" } };
/** B changes the phone too: collides with A's change. */
const bPhone = { data: { ...base, phone: "300" } };
const del = { deleted: true as const };
const ago = (ms: number) => new Date(Date.now() - ms).toISOString();

function expectRejected(r: Race, strategy: string, server: JsonObject | null) {
  expect(r.result).toMatchObject({ status: "rejected", version: 2, conflict: { strategy } });
  expect(r.result.reason).toMatch(/lost a conflict with version 2/);
  if (server === null) {
    expect(r.result).toMatchObject({ deleted: true, digest: DELETED_DIGEST });
    expect(r.result.data).toBeUndefined();
  } else {
    expect(r.result).toMatchObject({ data: server, digest: digestOf(server) });
  }
  expect(r.server).toEqual({ version: 2, digest: digestOf(server), data: server });
  expect(r.log).toMatchObject({ outcome: "server-won", resultVersion: null });
  expect(r.written).toBeUndefined();
}

function expectApplied(r: Race, strategy: string, data: JsonObject | null) {
  expect(r.result).toEqual({
    changeId: expect.any(String),
    id: r.id,
    status: "applied",
    version: 3,
    digest: digestOf(data),
    conflict: { id: r.log.clientRef, strategy },
    reason: expect.stringMatching(/won a conflict with version 2|were merged/),
  });
  expect(r.server).toEqual({ version: 3, digest: digestOf(data), data });
}

function expectMerged(r: Race, strategy: string, data: JsonObject) {
  expect(r.result).toMatchObject({ status: "merged", version: 3, data, digest: digestOf(data), conflict: { strategy } });
  expect(r.server).toEqual({ version: 3, digest: digestOf(data), data });
}

function expectPending(r: Race, strategy: string, server: JsonObject | null) {
  expect(r.result).toMatchObject({ status: "pending", version: 2, digest: digestOf(server), conflict: { strategy } });
  expect(r.result.reason).toMatch(/held for an operator/);
  if (server === null) expect(r.result).toMatchObject({ deleted: true });
  else expect(r.result.data).toEqual(server);
  // The server's copy is unchanged; B keeps it as its copy and waits for the resolution.
  expect(r.server).toEqual({ version: 2, digest: digestOf(server), data: server });
  expect(r.log).toMatchObject({ outcome: "pending", resultVersion: null });
  expect(r.written).toBeUndefined();
}

// ---------------------------------------------------------------------------

describe("server-wins", () => {
  it("keeps A's copy; B is rejected with it, and B's change stays in the log", async () => {
    const r = await race("server_wins", { base, a: aPhone, b: bCity });
    expectRejected(r, "server-wins", aPhone.data);
    expect(r.log.clientData).toEqual(bCity.data);
  });

  it("A deleted, B updated: B is rejected with the tombstone", async () => {
    const r = await race("server_wins", { base, a: del, b: bCity });
    expectRejected(r, "server-wins", null);
  });

  it("A updated, B deleted: the record stays, with A's data", async () => {
    const r = await race("server_wins", { base, a: aPhone, b: del });
    expectRejected(r, "server-wins", aPhone.data);
    expect(r.log).toMatchObject({ clientData: null, clientChange: { deleted: true } });
  });
});

describe("client-wins", () => {
  it("B's changed fields over A's copy: merged when A changed other fields", async () => {
    const r = await race("client_wins", { base, a: aPhone, b: bCity });
    expectMerged(r, "client-wins", { ...base, phone: "200", city: "Bergen" });
    expect(r.log).toMatchObject({ outcome: "client-won", resultVersion: 3 });
  });

  it("B's value replaces A's on the same field: applied", async () => {
    const r = await race("client_wins", { base, a: aPhone, b: bPhone });
    expectApplied(r, "client-wins", bPhone.data);
    expect(r.log).toMatchObject({ outcome: "client-won" });
  });

  it("A deleted, B updated: B's record lives again", async () => {
    const r = await race("client_wins", { base, a: del, b: bCity });
    expectApplied(r, "client-wins", bCity.data);
    expect(r.log).toMatchObject({ outcome: "client-won", serverDeleted: true });
  });

  it("A updated, B deleted: the record is deleted", async () => {
    const r = await race("client_wins", { base, a: aPhone, b: del });
    expectApplied(r, "client-wins", null);
    expect(r.log).toMatchObject({ outcome: "client-won" });
  });
});

describe("last-writer-wins", () => {
  it("B modified earlier: A's copy stays, and the times compared are logged", async () => {
    const aAt = ago(10_000);
    const bAt = ago(20_000);
    const r = await race("lww", { base, a: aPhone, b: bPhone, aAt, bAt });
    expectRejected(r, "last-writer-wins", aPhone.data);
    expect(r.log.details).toMatchObject({ clientModifiedAt: bAt, serverModifiedAt: aAt });
  });

  it("B modified later: B's change is applied over A's copy (merged with A's other fields)", async () => {
    const r = await race("lww", { base, a: aPhone, b: bPhone, aAt: ago(20_000), bAt: ago(10_000) });
    expectApplied(r, "last-writer-wins", bPhone.data);
    expect(r.log).toMatchObject({ outcome: "client-won" });

    const disjoint = await race("lww", { base, a: aPhone, b: bCity, aAt: ago(20_000), bAt: ago(10_000) });
    expectMerged(disjoint, "last-writer-wins", { ...base, phone: "200", city: "Bergen" });
  });

  it("equal times: a tie keeps the server's copy", async () => {
    const at = ago(15_000);
    const r = await race("lww", { base, a: aPhone, b: bPhone, aAt: at, bAt: at });
    expectRejected(r, "last-writer-wins", aPhone.data);
    expect(r.log.details).toMatchObject({ clientModifiedAt: at, serverModifiedAt: at });
  });

  it("A's clock runs ahead: its time is capped at arrival, so B's later honest edit still wins", async () => {
    const before = Date.now();
    let bAt = "";
    const r = await race("lww", {
      base,
      a: aPhone,
      b: bPhone,
      aAt: "2100-01-01T00:00:00.000Z",
      bAt: async () => {
        // B edits a few milliseconds after A's change arrived.
        await new Promise((resolve) => setTimeout(resolve, 5));
        bAt = new Date().toISOString();
        return bAt;
      },
    });
    expectApplied(r, "last-writer-wins", bPhone.data);
    const serverAt = Date.parse(String(r.log.details?.serverModifiedAt));
    expect(serverAt).toBeGreaterThanOrEqual(before);
    expect(serverAt).toBeLessThan(Date.parse(bAt));
    const [v2] = await t.hub.db
      .select({ modifiedAt: recordHistory.modifiedAt })
      .from(recordHistory)
      .where(and(eq(recordHistory.collection, "lww"), eq(recordHistory.id, r.id), eq(recordHistory.version, 2)));
    expect(v2?.modifiedAt.getTime(), "A's version is stored as modified at its arrival, not in 2100").toBe(serverAt);
  });

  it("B's clock runs ahead: it wins against an earlier copy, logged with its arrival time", async () => {
    const before = Date.now();
    const r = await race("lww", { base, a: aPhone, b: bPhone, aAt: ago(60_000), bAt: "2100-01-01T00:00:00Z" });
    expectApplied(r, "last-writer-wins", bPhone.data);
    const clientAt = Date.parse(String(r.log.details?.clientModifiedAt));
    expect(clientAt).toBeGreaterThanOrEqual(before);
    expect(clientAt).toBeLessThanOrEqual(Date.now());
    expect(r.written?.modifiedAt.getTime()).toBe(clientAt);
  });

  it("B sends no modifiedAt: it counts as modified when it arrived, so it beats an earlier edit", async () => {
    const before = Date.now();
    const r = await race("lww", { base, a: aPhone, b: bPhone, aAt: ago(60_000) });
    expectApplied(r, "last-writer-wins", bPhone.data);
    expect(Date.parse(String(r.log.details?.clientModifiedAt))).toBeGreaterThanOrEqual(before);
  });

  it("A deleted earlier, B updated later: the record lives again", async () => {
    const r = await race("lww", { base, a: del, b: bCity, aAt: ago(20_000), bAt: ago(10_000) });
    expectApplied(r, "last-writer-wins", bCity.data);
  });

  it("A deleted later, B updated earlier: the tombstone stays", async () => {
    const r = await race("lww", { base, a: del, b: bCity, aAt: ago(10_000), bAt: ago(20_000) });
    expectRejected(r, "last-writer-wins", null);
  });

  it("A updated later, B deleted earlier: the record stays", async () => {
    const r = await race("lww", { base, a: aPhone, b: del, aAt: ago(10_000), bAt: ago(20_000) });
    expectRejected(r, "last-writer-wins", aPhone.data);
  });

  it("A updated earlier, B deleted later: the record is deleted", async () => {
    const r = await race("lww", { base, a: aPhone, b: del, aAt: ago(20_000), bAt: ago(10_000) });
    expectApplied(r, "last-writer-wins", null);
  });
});

describe("priority", () => {
  it("the higher priority (beta 20) pushing second beats alpha (10)", async () => {
    const r = await race("priority", { base, a: aPhone, b: bPhone, aSystem: "alpha", bSystem: "beta" });
    expectApplied(r, "priority", bPhone.data);
    expect(r.log).toMatchObject({ outcome: "client-won", details: { clientPriority: 20, serverPriority: 10 } });
  });

  it("the lower priority pushing second loses", async () => {
    const r = await race("priority", { base, a: aPhone, b: bCity, aSystem: "beta", bSystem: "alpha" });
    expectRejected(r, "priority", aPhone.data);
    expect(r.log.details).toMatchObject({ clientPriority: 10, serverPriority: 20 });
  });

  it("equal priorities (beta and gamma, 20): the server's copy stays", async () => {
    const r = await race("priority", { base, a: aPhone, b: bPhone, aSystem: "beta", bSystem: "gamma" });
    expectRejected(r, "priority", aPhone.data);
    expect(r.log.details).toMatchObject({ clientPriority: 20, serverPriority: 20 });
  });

  it("higher priority deletes against an update, and an update against a delete", async () => {
    expectApplied(await race("priority", { base, a: aPhone, b: del, aSystem: "alpha", bSystem: "beta" }), "priority", null);
    expectApplied(await race("priority", { base, a: del, b: bCity, aSystem: "alpha", bSystem: "beta" }), "priority", bCity.data);
  });

  it("lower priority deletes against an update, and updates against a delete: the server's copy stays", async () => {
    expectRejected(await race("priority", { base, a: aPhone, b: del, aSystem: "beta", bSystem: "alpha" }), "priority", aPhone.data);
    expectRejected(await race("priority", { base, a: del, b: bCity, aSystem: "beta", bSystem: "alpha" }), "priority", null);
  });

  it("a copy an operator wrote is never overridden by priority", async () => {
    const B = new Client("beta", "priority");
    const A = new Client("alpha", "priority");
    await A.push("op-1", { data: base });
    await B.pull();
    // An operator's resolution writes version 2 (as lib/sync/history does: writtenBy "operator:<actor>").
    const operatorData = { ...base, phone: "999" };
    await t.hub.db.transaction(async (tx) => {
      await lockRecords(tx, "priority", ["op-1"]);
      await writeVersions(tx, "priority", [
        {
          id: "op-1",
          version: 2,
          data: operatorData,
          deleted: false,
          digest: digestOf(operatorData),
          origin: "resolution",
          changeId: null,
          writtenBy: "operator:admin-token",
          modifiedAt: new Date(),
        },
      ]);
    });
    const { result } = await B.push("op-1", bPhone);
    expect(result).toMatchObject({ status: "rejected", version: 2, data: operatorData, conflict: { strategy: "priority" } });
    const log = await conflictLogged(t.hub.db, "beta", result);
    expect(log).toMatchObject({
      serverSystem: "operator:admin-token",
      clientSystem: "beta",
      outcome: "server-won",
      clientData: bPhone.data,
      details: { clientPriority: 20, serverPriority: null },
    });
  });
});

describe("manual", () => {
  it("holds B's change as pending; the server's copy stays, even for disjoint edits", async () => {
    const r = await race("manual", { base, a: aPhone, b: bCity });
    expectPending(r, "manual", aPhone.data);
    expect(r.log.clientData).toEqual(bCity.data);
    // B's copy is the server's now; its own edit waits in the log.
    expect(r.B.copy(r.id).data).toEqual(aPhone.data);
  });

  it("A deleted, B updated: pending, the tombstone stays", async () => {
    expectPending(await race("manual", { base, a: del, b: bCity }), "manual", null);
  });

  it("A updated, B deleted: pending, the record stays", async () => {
    const r = await race("manual", { base, a: aPhone, b: del });
    expectPending(r, "manual", aPhone.data);
    expect(r.log).toMatchObject({ clientData: null, clientChange: { deleted: true } });
  });
});

describe("field-merge", () => {
  it("disjoint edits combine: merged, and both clients converge after pulling", async () => {
    const r = await race("fm_manual", { base, a: aPhone, b: bCity });
    const both = { ...base, phone: "200", city: "Bergen" };
    expectMerged(r, "field-merge", both);
    expect(r.A.copy(r.id)).toEqual(r.B.copy(r.id));
    expect(r.log).toMatchObject({ outcome: "merged", resultVersion: 3, details: { collisions: [] } });
    expect(r.written).toMatchObject({ origin: "merge", data: both });
  });

  it("disjoint edits sent as merge patches combine too", async () => {
    const r = await race("fm_manual", { base, a: { patch: { phone: "200" } }, b: { patch: { city: null, zip: "0150" } } });
    const { city: _city, ...rest } = base;
    expectMerged(r, "field-merge", { ...rest, phone: "200", zip: "0150" });
  });

  it("the same edit on both sides is no collision", async () => {
    const r = await race("fm_manual", { base, a: aPhone, b: { data: { ...base, phone: "200", city: "Bergen" } } });
    expectApplied(r, "field-merge", { ...base, phone: "200", city: "Bergen" });
    expect(r.log).toMatchObject({ outcome: "merged", details: { collisions: [] } });
  });

  it("nested objects merge per key", async () => {
    const nested = { name: "Ann", address: { city: "Oslo", zip: "0150", geo: { lat: 59, lon: 10 } } };
    const r = await race("fm_manual", {
      base: nested,
      a: { data: { ...nested, address: { ...nested.address, city: "Bergen", geo: { lat: 60, lon: 10 } } } },
      b: { data: { ...nested, address: { ...nested.address, zip: "5003", geo: { lat: 59, lon: 5 } } } },
    });
    expectMerged(r, "field-merge", { name: "Ann", address: { city: "Bergen", zip: "5003", geo: { lat: 60, lon: 5 } } });
  });

  it("a colliding nested field goes to the fallback by its path; the other nested edits combine", async () => {
    const nested = { name: "Ann", address: { city: "Oslo", zip: "0150" } };
    const r = await race("fm_server", {
      base: nested,
      a: { data: { ...nested, address: { city: "Bergen", zip: "0150" } } },
      b: { data: { name: "Anna", address: { city: "Trondheim", zip: "7010" } } },
    });
    expectMerged(r, "field-merge", { name: "Anna", address: { city: "Bergen", zip: "7010" } });
    expect(r.log.details).toMatchObject({ collisions: ["address.city"], collisionsWonBy: "server", fallback: "server-wins" });
  });

  it("arrays are values: two different edits collide, and are not combined element by element", async () => {
    const listed = { name: "Ann", tags: ["a", "b"] };
    const r = await race("fm_manual", {
      base: listed,
      a: { data: { ...listed, tags: ["a", "b", "x"] } },
      b: { data: { ...listed, tags: ["a", "b", "y"] } },
    });
    expectPending(r, "field-merge", { ...listed, tags: ["a", "b", "x"] });
    expect(r.log.details).toMatchObject({ collisions: ["tags"], fallback: "manual" });
  });

  it("arrays are values: the same edit on both sides agrees, and B's other change combines", async () => {
    const listed = { name: "Ann", tags: ["a", "b"] };
    const r = await race("fm_manual", {
      base: listed,
      a: { data: { ...listed, tags: ["b"] } },
      b: { data: { name: "Anna", tags: ["b"] } },
    });
    expectApplied(r, "field-merge", { name: "Anna", tags: ["b"] });
  });

  it("added and removed fields combine", async () => {
    const r = await race("fm_manual", {
      base,
      a: { data: { ...base, email: "ann@example.com" } },
      b: { data: { name: "Ann", phone: "100" } },
    });
    expectMerged(r, "field-merge", { name: "Ann", phone: "100", email: "ann@example.com" });
  });

  describe("colliding edits go to the fallback, which picks the side for the colliding fields only", () => {
    // A changes the phone and the name; B changes the phone and the city.
    const a = { data: { ...base, name: "Anna", phone: "200" } };
    const b = { data: { ...base, phone: "300", city: "Bergen" } };
    const aSide = { name: "Anna", phone: "200", city: "Bergen" };
    const bSide = { name: "Anna", phone: "300", city: "Bergen" };

    it("fallback manual: pending, the server's copy unchanged", async () => {
      const r = await race("fm_manual", { base, a, b });
      expectPending(r, "field-merge", a.data);
      expect(r.log.details).toMatchObject({ collisions: ["phone"], fallback: "manual" });
      expect(r.log.clientData).toEqual(b.data);
    });

    it("fallback server-wins: A's phone, both other edits", async () => {
      const r = await race("fm_server", { base, a, b });
      expectMerged(r, "field-merge", aSide);
      expect(r.log).toMatchObject({ outcome: "merged", details: { collisions: ["phone"], collisionsWonBy: "server" } });
    });

    it("fallback server-wins with nothing else to combine: rejected, and logged as server-won", async () => {
      const r = await race("fm_server", { base, a: aPhone, b: bPhone });
      expectRejected(r, "field-merge", aPhone.data);
      expect(r.log.details).toMatchObject({ collisions: ["phone"], fallback: "server-wins" });
    });

    it("fallback client-wins: B's phone, both other edits", async () => {
      const r = await race("fm_client", { base, a, b });
      expectMerged(r, "field-merge", bSide);
      expect(r.log).toMatchObject({ outcome: "merged", details: { collisions: ["phone"], collisionsWonBy: "client" } });
    });

    it("fallback priority: the higher priority's phone; on a tie the server's", async () => {
      const higher = await race("fm_priority", { base, a, b, aSystem: "alpha", bSystem: "beta" });
      expectMerged(higher, "field-merge", bSide);
      expect(higher.log.details).toMatchObject({ collisionsWonBy: "client", clientPriority: 20, serverPriority: 10 });
      const lower = await race("fm_priority", { base, a, b, aSystem: "beta", bSystem: "alpha" });
      expectMerged(lower, "field-merge", aSide);
      const tie = await race("fm_priority", { base, a, b, aSystem: "beta", bSystem: "gamma" });
      expectMerged(tie, "field-merge", aSide);
      expect(tie.log.details).toMatchObject({ collisionsWonBy: "server", clientPriority: 20, serverPriority: 20 });
    });

    it("fallback last-writer-wins: the later phone; on a tie the server's", async () => {
      const later = await race("fm_lww", { base, a, b, aAt: ago(20_000), bAt: ago(10_000) });
      expectMerged(later, "field-merge", bSide);
      const earlier = await race("fm_lww", { base, a, b, aAt: ago(10_000), bAt: ago(20_000) });
      expectMerged(earlier, "field-merge", aSide);
      const at = ago(15_000);
      const tie = await race("fm_lww", { base, a, b, aAt: at, bAt: at });
      expectMerged(tie, "field-merge", aSide);
      expect(tie.log.details).toMatchObject({ collisionsWonBy: "server", fallback: "last-writer-wins" });
    });
  });

  describe("delete against update goes to the fallback as a whole, in both directions", () => {
    interface Case {
      collection: string;
      systems?: { aSystem: string; bSystem: string };
      times?: { aAt: string; bAt: string };
      /** How B's update against A's delete, and B's delete against A's update, end. */
      expect: "pending" | "rejected" | "applied";
    }
    const cases: [string, Case][] = [
      ["manual", { collection: "fm_manual", expect: "pending" }],
      ["server-wins", { collection: "fm_server", expect: "rejected" }],
      ["client-wins", { collection: "fm_client", expect: "applied" }],
      ["priority, B higher", { collection: "fm_priority", systems: { aSystem: "alpha", bSystem: "beta" }, expect: "applied" }],
      ["priority, B lower", { collection: "fm_priority", systems: { aSystem: "beta", bSystem: "alpha" }, expect: "rejected" }],
      ["priority, tie", { collection: "fm_priority", systems: { aSystem: "gamma", bSystem: "beta" }, expect: "rejected" }],
      ["last-writer-wins, B later", { collection: "fm_lww", times: { aAt: ago(20_000), bAt: ago(10_000) }, expect: "applied" }],
      ["last-writer-wins, B earlier", { collection: "fm_lww", times: { aAt: ago(10_000), bAt: ago(20_000) }, expect: "rejected" }],
    ];
    it.each(cases)("fallback %s", async (fallbackName, c) => {
      const fallback = fallbackName.split(",")[0];
      // B updates what A deleted; B deletes what A updated. B updates a disjoint field, which does not matter.
      for (const [a, b] of [
        [del, bCity],
        [aPhone, del],
      ] as const) {
        const r = await race(c.collection, { base, a, b, ...c.systems, ...c.times });
        const server = "deleted" in a ? null : a.data;
        const mine = "deleted" in b ? null : b.data;
        if (c.expect === "pending") expectPending(r, "field-merge", server);
        else if (c.expect === "rejected") expectRejected(r, "field-merge", server);
        else expectApplied(r, "field-merge", mine);
        expect(r.log.details).toMatchObject({ reason: "delete-versus-update", fallback });
        expect(r.log.outcome).toBe({ pending: "pending", rejected: "server-won", applied: "client-won" }[c.expect]);
      }
    });
  });

  it("a merge that would leave the pusher's write range keeps the server's copy (logged as server-won)", async () => {
    // Write range: not (a == 2 and b == 2). A sets a=2; B sets a=3 and b=2; the merge keeps A's a=2, so a == 2 and b == 2.
    const r = await race("guarded", { base: { a: 1, b: 1 }, a: { data: { a: 2, b: 1 } }, b: { data: { a: 3, b: 2 } } });
    expectRejected(r, "field-merge", { a: 2, b: 1 });
    expect(r.result.reason).toMatch(/would leave its write range/);
    expect(r.log.details).toMatchObject({ collisions: ["a"], refused: expect.stringMatching(/write range/) });
  });
});

describe("conflict results never leak fields outside the pusher's read scope", () => {
  // alpha reads and writes everything; the viewers read name, phone, region and write name, phone.
  const full = { name: "Ann", phone: "100", region: "north", secret: "s1", notes: { internal: true } };
  const readable = ["name", "phone", "region"];
  const viewOf = (data: JsonObject): JsonObject => Object.fromEntries(Object.entries(data).filter(([k]) => readable.includes(k))) as JsonObject;
  // alpha changes the secret and the name; the viewer changes the phone.
  const a = { data: { ...full, name: "Anna", secret: "s2-hidden", notes: { internal: false, hint: "n2-hidden" } } };
  const b = { data: { ...viewOf(full), phone: "300" } };

  function expectNoLeak(r: Race) {
    // The changeId is the client's own random text (it may contain "s1"): look at everything else.
    const text = JSON.stringify({ ...r.result, changeId: undefined });
    for (const hidden of ["secret", "s1", "s2-hidden", "notes", "n2-hidden", "internal"]) expect(text).not.toContain(hidden);
    if (r.result.data) {
      expect(Object.keys(r.result.data).every((k) => readable.includes(k))).toBe(true);
      expect(r.result.digest).toBe(digestOf(r.result.data));
    }
    expect(Object.keys(r.server.data ?? {}).every((k) => readable.includes(k))).toBe(true);
    // The log keeps everything for the operator, the hidden fields included.
    expect(r.log.serverData).toMatchObject({ secret: "s2-hidden" });
    expect(r.log.clientData).toMatchObject({ secret: "s1", phone: "300" });
  }

  it("server-wins: rejected with the projected server copy", async () => {
    const r = await race("limited", { base: full, a, b, bSystem: "viewer_sw" });
    expect(r.result).toMatchObject({ status: "rejected", data: viewOf(a.data), conflict: { strategy: "server-wins" } });
    expectNoLeak(r);
  });

  it("client-wins: merged, projected, and alpha's hidden changes survive", async () => {
    const r = await race("limited", { base: full, a, b, bSystem: "viewer_cw" });
    expect(r.result).toMatchObject({ status: "merged", version: 3, data: { name: "Anna", phone: "300", region: "north" } });
    expectNoLeak(r);
    expect(r.A.copy(r.id).data).toEqual({ ...a.data, phone: "300" });
  });

  it("field-merge: disjoint edits merged and projected; colliding ones pending and projected", async () => {
    const merged = await race("limited", { base: full, a, b, bSystem: "viewer_fm" });
    expect(merged.result).toMatchObject({ status: "merged", data: { name: "Anna", phone: "300", region: "north" } });
    expectNoLeak(merged);
    expect(merged.A.copy(merged.id).data).toEqual({ ...a.data, phone: "300" });

    const colliding = await race("limited", { base: full, a: { data: { ...a.data, phone: "200" } }, b, bSystem: "viewer_fm" });
    expect(colliding.result).toMatchObject({ status: "pending", data: { name: "Anna", phone: "200", region: "north" } });
    expectNoLeak(colliding);
  });

  it("manual: pending with the projected server copy", async () => {
    const r = await race("limited", { base: full, a, b, bSystem: "viewer_man" });
    expect(r.result).toMatchObject({ status: "pending", data: viewOf(a.data), conflict: { strategy: "manual" } });
    expectNoLeak(r);
  });
});

describe("conflicts detected and settled inside one request", () => {
  // An offline client queues two edits of one record, both based on the version it last synced, and sends them together.
  it.each([
    ["server_wins", "rejected", 2, { a: 2, b: 1 }, "server-won"],
    ["fm_manual", "merged", 3, { a: 2, b: 2 }, "merged"],
  ] as const)("%s: the second change is a conflict with the first, settled by the strategy", async (collection, status, version, data, outcome) => {
    const id = `batch-${collection}`;
    const A = new Client("alpha", collection);
    await A.push(id, { data: { a: 1, b: 1 } });
    const [first, second] = await push(keys.alpha as string, collection, [
      { id, baseVersion: 1, data: { a: 2, b: 1 } },
      { id, baseVersion: 1, data: { a: 1, b: 2 } },
    ]);
    expect(first).toMatchObject({ status: "applied", version: 2 });
    expect(second).toMatchObject({ status, version, data, conflict: { strategy: collection === "fm_manual" ? "field-merge" : "server-wins" } });
    const log = await conflictLogged(t.hub.db, "alpha", second);
    expect(log).toMatchObject({ baseVersion: 1, baseData: { a: 1, b: 1 }, serverVersion: 2, serverData: { a: 2, b: 1 }, clientData: { a: 1, b: 2 }, outcome });
  });
});

describe("a stale change that changes nothing", () => {
  it("is unchanged, writes nothing, and is not logged as a conflict", async () => {
    const A = new Client("alpha", "manual");
    const B = new Client("beta", "manual");
    await A.push("same-1", { data: base });
    await B.pull();
    await A.push("same-1", aPhone);
    // B makes the very same edit from version 1.
    const { result } = await B.push("same-1", aPhone);
    expect(result).toEqual({ changeId: expect.any(String), id: "same-1", status: "unchanged", version: 2, digest: digestOf(aPhone.data) });
    expect(await t.hub.db.select().from(conflicts).where(and(eq(conflicts.collection, "manual"), eq(conflicts.recordId, "same-1")))).toEqual([]);
  });
});

// ---------------------------------------------------------------------------
// Many writers on few records under manual and field-merge with fallback
// manual. tests/integration/sync-concurrency.test.ts checks gapless versions
// and that no change is lost for every strategy; this adds what is particular
// to pending changes: they write nothing, and wait in the log.

describe.each(["manual", "fm_manual"])("concurrent writers on %s", (collection) => {
  it("leave gapless versions; every pending change wrote nothing and waits in the log", async () => {
    const ids = ["k1", "k2", "k3"].map((k) => `${collection}-${k}`);
    const writers = ["alpha", "beta", "gamma"].flatMap((system) => [0, 1].map((n) => ({ system, n })));
    const sent: { changeId: string; result: PushResult }[] = [];
    await Promise.all(
      writers.map(async ({ system, n }) => {
        const known = new Map<string, number | null>();
        for (let step = 0; step < 8; step++) {
          const id = ids[(step + n) % ids.length] as string;
          const cid = changeId(`${system}${n}`);
          // Each writer owns one field, and every other step also sets a shared one: disjoint edits merge, shared ones collide.
          const result = await pushOne(keys[system] as string, collection, {
            changeId: cid,
            id,
            baseVersion: known.get(id) ?? null,
            patch: { [`own_${system}_${n}`]: step, ...(step % 2 === 0 ? { shared: `${system}${n}-${step}` } : {}) },
          });
          sent.push({ changeId: cid, result });
          if (result.version !== undefined) known.set(id, result.version);
        }
      }),
    );
    expect(sent.filter((s) => s.result.status === "pending").length, "writers collided").toBeGreaterThan(0);

    const history = await t.hub.db.select().from(recordHistory).where(eq(recordHistory.collection, collection));
    const current = (await t.hub.db.select().from(records).where(eq(records.collection, collection))).filter((r) => ids.includes(r.id));
    expect(current.map((r) => r.id).sort()).toEqual([...ids].sort());
    for (const row of current) {
      const versions = history
        .filter((h) => h.id === row.id)
        .map((h) => h.version)
        .sort((x, y) => x - y);
      expect(versions, `versions of ${row.id}`).toEqual(Array.from({ length: row.version }, (_, i) => i + 1));
    }
    const logged = await t.hub.db.select().from(conflicts).where(eq(conflicts.collection, collection));
    const inHistory = new Set(history.map((h) => h.changeId));
    const inLog = new Map(logged.map((c) => [c.changeId, c]));
    for (const { changeId: cid, result } of sent) {
      expect(["applied", "unchanged", "merged", "rejected", "pending"]).toContain(result.status);
      if (result.status === "unchanged") continue;
      expect(inHistory.has(cid) || inLog.has(cid), `change ${cid} (${result.status}) is kept`).toBe(true);
      if (result.status === "pending") {
        // A pending change wrote nothing; the server's copy stayed and the change waits in the log.
        expect(inHistory.has(cid)).toBe(false);
        expect(inLog.get(cid)).toMatchObject({ outcome: "pending", resultVersion: null, clientChange: { changeId: cid } });
      }
    }
    if (collection === "manual") {
      // Under manual no conflict ever writes.
      expect(logged.every((c) => c.outcome === "pending")).toBe(true);
    } else {
      // Under field-merge disjoint edits still combine while colliding ones wait.
      expect(logged.some((c) => c.outcome === "merged")).toBe(true);
    }
  });
});

import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as changesRoute from "@/app/api/v1/collections/[collection]/changes/route";
import { activatePolicy } from "@/lib/policy/store";
import { digestOf } from "@/lib/sync/digest";
import type { ChangesResponse, PushResult } from "@/lib/sync/protocol";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";
import { readHistory, readRecord, writeRecord } from "@/tests/helpers/records";
import { changeId, keysFor, push, pushOne, pushRaw } from "@/tests/helpers/sync";

/**
 * Named regressions for "no answer reveals what the policy hides"
 * (protocol.md, "Information flow"), each a case a hostile client with a
 * valid key tried. The property test (noninterference.test.ts) covers the
 * class; these pin the cases down by name. Policy: policies/example.yaml.
 *
 * Billing reads customers' name, email, region, credit_limit and vat_id and
 * writes credit_limit and vat_id; the web shop reads and writes customers
 * whose source is 'web', and only name, email, address and source.
 */

const example = readFileSync("policies/example.yaml", "utf8");
let t: TestHub;
let keys: Record<string, string>;

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "crm", "billing", "warehouse", "webshop");
});
afterAll(async () => {
  await t.close();
});

/** A result without the values the client chose itself (changeId), for comparing answers. */
const withoutChangeId = ({ changeId: _c, ...rest }: PushResult) => rest;

async function pull(system: string, collection: string, since?: string): Promise<ChangesResponse> {
  const res = await call<{ collection: string }>(changesRoute.GET, {
    path: `/api/v1/collections/${collection}/changes${since ? `?since=${encodeURIComponent(since)}` : ""}`,
    params: { collection },
    token: keys[system],
  });
  expect(res.status).toBe(200);
  return res.body as ChangesResponse;
}

describe("guessing values a system may not read", () => {
  it("1,000 guesses of a hidden field in one push all get the same answer, and nothing is written", async () => {
    const secret = { name: "Guess", email: "g@example.com", region: "north", credit_limit: 100, phone: "555-0437" };
    await writeRecord(t.hub.db, { collection: "customers", id: "guess-1", data: secret, by: "crm" });
    const visible = { name: "Guess", email: "g@example.com", region: "north", credit_limit: 100 };
    const guesses = Array.from({ length: 1000 }, (_, i) => ({
      id: "guess-1",
      baseVersion: 1,
      data: { ...visible, phone: `555-0${String(i).padStart(3, "0")}` },
    }));
    const results = await push(keys.billing!, "customers", guesses);
    const answers = new Set(results.map((r) => JSON.stringify(withoutChangeId(r))));
    expect(answers.size, [...answers].join("\n")).toBe(1);
    // The one right guess is answered like the 999 wrong ones: billing may not write (or learn) phone.
    expect(results[437]).toMatchObject({ status: "forbidden", reason: expect.stringMatching(/may not write field "phone"/) });
    expect(await readHistory(t.hub.db, "customers", "guess-1")).toHaveLength(1);
  });

  it("sending back the record with a hidden field guessed right is not `unchanged`", async () => {
    const record = { name: "Ulla", email: "u@example.com", region: "east", credit_limit: 5, vat_id: "SE1", segment: "gold" };
    await writeRecord(t.hub.db, { collection: "customers", id: "guess-2", data: record, by: "crm" });
    const right = await pushOne(keys.billing!, "customers", { id: "guess-2", baseVersion: 1, data: { ...record } });
    const wrong = await pushOne(keys.billing!, "customers", { id: "guess-2", baseVersion: 1, data: { ...record, segment: "silver" } });
    expect(withoutChangeId(right)).toEqual(withoutChangeId(wrong));
    expect(right.status).toBe("forbidden");
    // Without the guess, the same record is unchanged: what billing can see is what it sent.
    const { segment: _s, ...visible } = record;
    expect(await pushOne(keys.billing!, "customers", { id: "guess-2", baseVersion: 1, data: visible })).toMatchObject({
      status: "unchanged",
      version: 1,
      digest: digestOf(visible),
    });
  });
});

describe("records outside the read scope answer as missing ones", () => {
  const shopCustomer = { name: "Store only", email: "s@example.com", source: "store", phone: "555-0001" };

  it("a change based on a version, a delete, or a guess of the whole record: the same answer as for an id that does not exist", async () => {
    await writeRecord(t.hub.db, { collection: "customers", id: "hidden-1", data: shopCustomer, by: "crm" });
    await writeRecord(t.hub.db, { collection: "customers", id: "hidden-1", data: { ...shopCustomer, name: "v2" }, by: "crm" });
    for (const [label, change] of [
      ["based on version 1", { baseVersion: 1, data: { name: "x", source: "web" } }],
      ["based on version 2 (the current one)", { baseVersion: 2, patch: { name: "x" } }],
      ["based on version 3 (above it)", { baseVersion: 3, data: { name: "x", source: "web" } }],
      ["a delete from version 2", { baseVersion: 2, deleted: true as const }],
      ["a delete with no base", { baseVersion: null, deleted: true as const }],
      ["the hidden record itself, from its version", { baseVersion: 2, data: { ...shopCustomer, name: "v2" } }],
    ] as const) {
      const hidden = await pushOne(keys.webshop!, "customers", { id: "hidden-1", ...change });
      const missing = await pushOne(keys.webshop!, "customers", { id: "hidden-1-missing", ...change });
      const answer = (r: PushResult, id: string) => JSON.stringify(withoutChangeId(r)).replaceAll(id, "…");
      expect(answer(hidden, "hidden-1"), label).toBe(answer(missing, "hidden-1-missing"));
      expect(hidden.status, label).toBe("invalid");
      expect(Object.keys(hidden).sort(), label).toEqual(["changeId", "id", "reason", "status"]);
    }
    expect(await readHistory(t.hub.db, "customers", "hidden-1")).toHaveLength(2);
  });

  it("creating a record with a taken id is refused without revealing anything but that the id is in use", async () => {
    await writeRecord(t.hub.db, { collection: "customers", id: "hidden-2", data: shopCustomer, by: "crm" });
    const web = { name: "Web", email: "w@example.com", source: "web" };
    const taken = await pushOne(keys.webshop!, "customers", { id: "hidden-2", baseVersion: null, data: web });
    expect(taken).toEqual({
      changeId: expect.any(String),
      id: "hidden-2",
      status: "forbidden",
      reason: 'Record id "hidden-2" is taken by a record outside your read scope, so it cannot be created; choose another id.',
    });
    // Whatever the hidden record holds and however many versions it has, the answer is the same.
    await writeRecord(t.hub.db, { collection: "customers", id: "hidden-2", data: { other: true }, by: "crm" });
    await writeRecord(t.hub.db, { collection: "customers", id: "hidden-2", deleted: true, by: "crm" });
    expect(withoutChangeId(await pushOne(keys.webshop!, "customers", { id: "hidden-2", baseVersion: null, data: web }))).toEqual(
      withoutChangeId(taken),
    );
    expect((await readRecord(t.hub.db, "customers", "hidden-2"))?.version).toBe(3);
  });

  it("gives digests of the projection only: never of a whole record the system may not see", async () => {
    const full = { name: "Proj", email: "p@example.com", source: "web", phone: "555-0002", credit_limit: 9 };
    await writeRecord(t.hub.db, { collection: "customers", id: "proj-1", data: full, by: "crm" });
    const seen = { name: "Proj", email: "p@example.com", source: "web" };
    const same = await pushOne(keys.webshop!, "customers", { id: "proj-1", baseVersion: 1, data: seen });
    expect(same).toMatchObject({ status: "unchanged", version: 1, digest: digestOf(seen) });
    const edited = await pushOne(keys.webshop!, "customers", { id: "proj-1", baseVersion: 1, data: { ...seen, name: "Proj 2" } });
    expect(edited).toMatchObject({ status: "applied", version: 2, digest: digestOf({ ...seen, name: "Proj 2" }) });
    // The hidden fields were kept, not dropped.
    expect((await readRecord(t.hub.db, "customers", "proj-1"))?.data).toEqual({ ...full, name: "Proj 2" });
    for (const r of [same, edited]) expect(r.digest).not.toBe(digestOf({ ...full, name: "Proj 2" }));
  });
});

describe("re-sent changes", () => {
  it("a re-sent change after a policy change is answered under today's policy", async () => {
    const narrowed = example.replace(
      `read: {where: "source == 'web'", fields: [name, email, address, source]}`,
      `read: {where: "source == 'web'", fields: [name, address, source]}`,
    );
    expect(narrowed).not.toBe(example);
    const base = { name: "Re", email: "re@example.com", source: "web", address: "A 1" };
    await writeRecord(t.hub.db, { collection: "customers", id: "resend-1", data: base, by: "crm" });
    await writeRecord(t.hub.db, { collection: "customers", id: "resend-1", data: { ...base, address: "B 2" }, by: "crm" });
    // The web shop's change from version 1 loses to the CRM's later one (last-writer-wins): rejected, with the server's copy.
    const change = { changeId: changeId("resend"), id: "resend-1", baseVersion: 1, data: { ...base, name: "Re 2" }, modifiedAt: "2020-01-01T00:00:00Z" };
    const first = await pushOne(keys.webshop!, "customers", change);
    expect(first).toMatchObject({ status: "rejected", version: 2, data: { ...base, address: "B 2" } });
    try {
      await activatePolicy(t.hub.db, { yaml: narrowed, actor: "test", source: "api" });
      const again = await pushOne(keys.webshop!, "customers", change);
      const now = { name: "Re", source: "web", address: "B 2" };
      expect(again).toEqual({ ...first, data: now, digest: digestOf(now) });
      expect(JSON.stringify(again)).not.toContain("re@example.com");
    } finally {
      await activatePolicy(t.hub.db, { yaml: example, actor: "test", source: "api" });
    }
  });

  it("one changeId sent to two collections at once: each is its own change, both written", async () => {
    const shared = changeId("twice");
    const [customers, orders] = await Promise.all([
      pushOne(keys.webshop!, "customers", { changeId: shared, id: "twice-c", baseVersion: null, data: { name: "T", source: "web" } }),
      pushOne(keys.webshop!, "orders", { changeId: shared, id: "twice-o", baseVersion: null, data: { status: "new", total: 3 } }),
    ]);
    expect([customers.status, orders.status]).toEqual(["applied", "applied"]);
    expect(await readRecord(t.hub.db, "customers", "twice-c")).toMatchObject({ version: 1 });
    expect(await readRecord(t.hub.db, "orders", "twice-o")).toMatchObject({ version: 1 });
  });

  it("a changeId reused for another change is refused, not answered with the first change's result", async () => {
    const id = changeId("reuse");
    const first = await pushOne(keys.webshop!, "orders", { changeId: id, id: "reuse-1", baseVersion: null, data: { status: "new", total: 1 } });
    expect(first.status).toBe("applied");
    const other = await pushOne(keys.webshop!, "orders", { changeId: id, id: "reuse-1", baseVersion: 1, data: { status: "new", total: 2 } });
    expect(other).toMatchObject({ status: "invalid", reason: expect.stringMatching(/already used for another change/) });
    const elsewhere = await pushOne(keys.webshop!, "orders", { changeId: id, id: "reuse-2", baseVersion: null, data: { status: "new", total: 2 } });
    expect(elsewhere).toMatchObject({ status: "invalid", reason: expect.stringMatching(/to record "reuse-1"/) });
    expect(await readRecord(t.hub.db, "orders", "reuse-2")).toBeUndefined();
    // The true re-send still gets the first answer.
    expect(await pushOne(keys.webshop!, "orders", { changeId: id, id: "reuse-1", baseVersion: null, data: { status: "new", total: 1 } })).toEqual(first);
  });
});

describe("checkpoints and conflict numbers", () => {
  it("a checkpoint tells nothing of the changes in between, and a plain sequence number is not accepted", async () => {
    const before = await pull("webshop", "customers");
    for (let i = 0; i < 5; i++) {
      await writeRecord(t.hub.db, { collection: "customers", id: `cp-hidden-${i}`, data: { source: "store" }, by: "crm" });
    }
    const after = await pull("webshop", "customers", before.checkpoint);
    for (const cp of [before.checkpoint, after.checkpoint]) expect(cp).toMatch(/^c2[A-Za-z0-9_-]{103}$/);
    expect(after.changes).toEqual([]);
    const plain = await call<{ collection: string }>(changesRoute.GET, {
      path: "/api/v1/collections/customers/changes?since=s1",
      params: { collection: "customers" },
      token: keys.webshop,
    });
    expect(plain.status).toBe(410);
    expect(plain.body).toMatchObject({ error: { code: "resync_required" } });
  });

  it("conflict.id counts the system's own conflicts, not every system's", async () => {
    const order = { status: "new", total: 5, customer_id: "c" };
    const ids: number[] = [];
    for (let i = 0; i < 2; i++) {
      const id = `ref-${i}`;
      await pushOne(keys.webshop!, "orders", { id, baseVersion: null, data: order });
      await pushOne(keys.webshop!, "orders", { id, baseVersion: 1, data: { ...order, total: 6 } });
      const lost = await pushOne(keys.billing!, "orders", { id, baseVersion: 1, patch: { status: "paid" } });
      expect(lost.status).toBe("rejected");
      ids.push(lost.conflict!.id);
      // Conflicts of another system in between do not move billing's numbering.
      await pushOne(keys.crm!, "customers", { id: `ref-c-${i}`, baseVersion: null, data: { name: "a", region: "north" } });
      await pushOne(keys.crm!, "customers", { id: `ref-c-${i}`, baseVersion: null, data: { name: "b", region: "north" } });
    }
    expect(ids[1]).toBe((ids[0] as number) + 1);
  });
});

describe("a hostile push body", () => {
  it("a changeId repeated in one request for another change is refused for that change, which writes nothing", async () => {
    const id = changeId("dup");
    const results = await push(keys.webshop!, "orders", [
      { changeId: id, id: "dup-1", baseVersion: null, data: { status: "new", total: 1 } },
      { changeId: id, id: "dup-2", baseVersion: null, data: { status: "new", total: 2 } },
    ]);
    expect(results.map((r) => r.status)).toEqual(["applied", "invalid"]);
    expect(await readRecord(t.hub.db, "orders", "dup-2")).toBeUndefined();
    const raw = await pushRaw(keys.webshop!, "orders", { changes: [{ changeId: id, id: "dup-1", baseVersion: null, data: { status: "new", total: 1 } }] });
    expect(raw.status).toBe(200);
  });
});

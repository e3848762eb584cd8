import { createHash, randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as resolveRoute from "@/app/api/admin/conflicts/[id]/resolve/route";
import * as restoreRoute from "@/app/api/admin/records/[collection]/[id]/restore/route";
import * as consoleBundlesRoute from "@/app/api/console/systems/[system]/bundles/route";
import * as bundlesRoute from "@/app/api/v1/bundles/route";
import * as changesRoute from "@/app/api/v1/collections/[collection]/changes/route";
import { FORMAT, sealBundle } from "@/lib/sync/bundle-format";
import { MAX_JSON_DEPTH } from "@/lib/sync/json-safety";
import type { ChangesResponse, JsonObject, PushResult } from "@/lib/sync/protocol";
import { fingerprint } from "@/tests/helpers/fingerprint";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";
import { readRecord } from "@/tests/helpers/records";
import { changeId, keysFor, pushOne, pushRaw } from "@/tests/helpers/sync";

/**
 * Named regressions for issue 11: one record the hub cannot store faithfully
 * must never wedge anyone. Each case is sent as raw JSON text (so duplicate
 * keys and number literals arrive as written) to push, bundles (API and
 * console upload), conflict resolution and restore. Values the hub cannot
 * store (U+0000, lone surrogates, nesting past 64 levels) are refused per
 * change by push (`invalid`, the rest of the batch applies) and as 400 by the
 * others; problems of the text itself (duplicate keys, number literals a
 * double cannot hold, nesting past the document limit) are 400 everywhere.
 * Never 5xx, nothing stored, and the same system syncs normally afterwards.
 */

let t: TestHub;
let keys: Record<string, string>;

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "webshop", "billing", "warehouse");
});
afterAll(async () => {
  await t.close();
});

const key = (system: string) => keys[system] as string;

/** `{"a": … {"leaf": 1} …}`: `levels` objects, the outermost included. */
const nest = (levels: number) => '{"a":'.repeat(levels - 1) + '{"leaf":1}' + "}".repeat(levels - 1);

interface Case {
  name: string;
  /** One member of a record, as JSON text. */
  member: string;
  /** `value`: the text is fine, the value cannot be stored. `text`: the JSON text itself is refused. */
  kind: "value" | "text";
  /** Matches the path the refusal names, below the record (`data` for a record). */
  path: RegExp;
}

const CASES: Case[] = [
  { name: "U+0000 in a value", member: '"city": "Os\\u0000lo"', kind: "value", path: /data\.city contains U\+0000/ },
  { name: "U+0000 in a key", member: '"ci\\u0000ty": "Oslo"', kind: "value", path: /data\["ci\\u0000ty"\] contains U\+0000/ },
  { name: "a lone surrogate", member: '"name": "A\\ud800"', kind: "value", path: /data\.name contains a lone surrogate/ },
  { name: "1e400", member: '"total": 1e400', kind: "text", path: /data\.total: it holds the number 1e400, beyond the range/ },
  { name: "1e-400", member: '"total": 1e-400', kind: "text", path: /data\.total: it holds the number 1e-400, too small/ },
  {
    name: "9007199254740993",
    member: '"total": 9007199254740993',
    kind: "text",
    path: /data\.total: it holds the integer 9007199254740993, .*become 9007199254740992/,
  },
  { name: "duplicate keys", member: '"total": 1, "total": 2', kind: "text", path: /data\.total: it is a key given twice/ },
  {
    name: "nesting of 65 levels",
    member: `"deep": ${nest(MAX_JSON_DEPTH)}`,
    kind: "value",
    path: new RegExp(`data\\.deep(\\.a){${MAX_JSON_DEPTH - 1}} nests deeper than ${MAX_JSON_DEPTH} levels`),
  },
  { name: "nesting of 100,000 levels", member: `"deep": ${nest(100_000)}`, kind: "text", path: /data\.deep(\.a)+: it nests deeper than/ },
];

const recordText = (c: Case) => `{"status": "new", "customer": "Ann", ${c.member}}`;
const good = (id: string): JsonObject => ({ status: "new", customer: "Ann", total: 10, id_note: id });

function expectEnvelope(res: { status: number; headers: Headers; body: unknown }, status: number, code: string, message: RegExp) {
  expect(res.status, JSON.stringify(res.body)?.slice(0, 500)).toBe(status);
  expect(res.body).toEqual({
    error: { code, message: expect.stringMatching(message), details: expect.anything(), requestId: res.headers.get("x-request-id") },
  });
}

/** The same system still pushes and pulls normally. */
async function stillSyncs(system: string): Promise<void> {
  const id = `after-${randomUUID()}`;
  expect(await pushOne(key(system), "orders", { id, baseVersion: null, data: good(id) })).toMatchObject({ status: "applied" });
  const pulled = await call(changesRoute.GET, { path: "/api/v1/collections/orders/changes", params: { collection: "orders" }, token: key(system) });
  expect(pulled.status).toBe(200);
  expect((pulled.body as ChangesResponse).changes.some((c) => c.id === id)).toBe(true);
}

describe.each(CASES)("$name", (c) => {
  it(`push: ${c.kind === "value" ? "that change is invalid, naming the path; the rest of the batch applies" : "400 naming the path; nothing written"}`, async () => {
    const bad = `bad-push-${randomUUID()}`;
    const ok = `ok-push-${randomUUID()}`;
    const body =
      `{"changes": [{"changeId": "${changeId()}", "id": "${bad}", "baseVersion": null, "data": ${recordText(c)}},` +
      ` {"changeId": "${changeId()}", "id": "${ok}", "baseVersion": null, "data": ${JSON.stringify(good(ok))}}]}`;
    const before = await fingerprint(t.hub.db);
    const res = await pushRaw(key("webshop"), "orders", body);
    if (c.kind === "value") {
      expect(res.status, JSON.stringify(res.body)?.slice(0, 500)).toBe(200);
      const [refused, applied] = (res.body as { results: PushResult[] }).results;
      expect(refused).toMatchObject({ id: bad, status: "invalid", reason: expect.stringMatching(c.path) });
      expect(applied).toMatchObject({ id: ok, status: "applied", version: 1 });
    } else {
      expectEnvelope(res, 400, "invalid_request", new RegExp(`changes\\.0\\.${c.path.source}`));
      expect(await fingerprint(t.hub.db)).toEqual(before);
    }
    expect(await readRecord(t.hub.db, "orders", bad)).toBeUndefined();
    await stillSyncs("webshop");
  });

  it("bundles (API and console upload): 400 naming the path; nothing applied", async () => {
    for (const route of ["api", "console"] as const) {
      const id = `bad-bundle-${randomUUID()}`;
      const text = await bundleText(c, id);
      const before = await fingerprint(t.hub.db);
      const res =
        route === "api"
          ? await call(bundlesRoute.POST, { method: "POST", path: "/api/v1/bundles", token: key("webshop"), body: text })
          : await call(consoleBundlesRoute.POST, {
              method: "POST",
              path: "/api/console/systems/webshop/bundles",
              params: { system: "webshop" },
              body: text,
            });
      expectEnvelope(res, 400, "invalid_request", new RegExp(`changes\\.orders\\.0\\.${c.path.source}`));
      expect(await fingerprint(t.hub.db)).toEqual(before);
    }
    await stillSyncs("webshop");
  });

  it("conflict resolution with custom data: 400 naming the path; the conflict stays pending", async () => {
    const { conflictId } = await pendingConflict();
    const before = await fingerprint(t.hub.db);
    const res = await call(resolveRoute.POST, {
      method: "POST",
      path: `/api/admin/conflicts/${conflictId}/resolve`,
      params: { id: String(conflictId) },
      body: `{"resolution": "custom", "data": ${recordText(c)}}`,
    });
    expectEnvelope(res, 400, "invalid_request", c.path);
    expect(await fingerprint(t.hub.db)).toEqual(before);
    // The operator's next, valid answer goes through.
    const fixed = await call(resolveRoute.POST, {
      method: "POST",
      path: `/api/admin/conflicts/${conflictId}/resolve`,
      params: { id: String(conflictId) },
      body: { resolution: "custom", data: { ...good("fixed"), status: "paid" } },
    });
    expect(fixed.status, JSON.stringify(fixed.body)).toBe(200);
  });

  it("restore: 400 naming the path; the record is not restored", async () => {
    const id = `restore-${randomUUID()}`;
    await pushOne(key("webshop"), "orders", { id, baseVersion: null, data: good(id) });
    await pushOne(key("webshop"), "orders", { id, baseVersion: 1, data: { ...good(id), total: 20 } });
    const before = await fingerprint(t.hub.db);
    // The case's member beside the version: a reader that kept the wrong one of two "version"s would restore the wrong version.
    const body = `{"version": 1, ${c.member.replace(/"(total|city|name|deep)"/g, '"version"')}}`;
    const res = await call(restoreRoute.POST, {
      method: "POST",
      path: `/api/admin/records/orders/${id}/restore`,
      params: { collection: "orders", id },
      body,
    });
    // A restore body is at most 16 KiB: a longer one is refused for its size before it is read.
    const [status, code] = body.length > 16 * 1024 ? [413, "payload_too_large"] : [400, "invalid_request"];
    expect(res.status, JSON.stringify(res.body)?.slice(0, 500)).toBe(status);
    expect(res.body).toMatchObject({ error: { code, requestId: res.headers.get("x-request-id") } });
    expect(await fingerprint(t.hub.db)).toEqual(before);
    expect((await readRecord(t.hub.db, "orders", id))?.version).toBe(2);
    const fixed = await call(restoreRoute.POST, {
      method: "POST",
      path: `/api/admin/records/orders/${id}/restore`,
      params: { collection: "orders", id },
      body: { version: 1 },
    });
    expect(fixed.body).toMatchObject({ written: true, record: { version: 3 } });
  });
});

/** A request bundle of the web shop holding the case's record; sealed, so only the bad record can refuse it. */
async function bundleText(c: Case, id: string): Promise<string> {
  const placeholder = "__RECORD__";
  // A record that cannot be canonicalised (a lone surrogate) cannot be sealed either: it goes in after sealing, like text.
  const sealable = c.kind === "value" && !c.member.includes("\\ud800");
  const data = sealable ? (JSON.parse(recordText(c)) as JsonObject) : { placeholder };
  const sealed = await sealBundle(
    {
      format: FORMAT,
      bundleId: randomUUID(),
      system: "webshop",
      createdAt: new Date().toISOString(),
      policyVersion: 1,
      checkpoints: {},
      changes: { orders: [{ changeId: changeId(), id, baseVersion: null, data }] },
    },
    (text) => createHash("sha256").update(text, "utf8").digest("hex"),
  );
  const text = JSON.stringify(sealed);
  return sealable ? text : text.replace(`{"placeholder":"${placeholder}"}`, recordText(c));
}

/** The warehouse's strategy on orders is manual: its change on a version billing moved past is held for an operator. */
async function pendingConflict(): Promise<{ conflictId: number }> {
  const id = `conflict-${randomUUID()}`;
  const order = { customer_id: "c1", items: ["A"], total: 40, status: "new", shipping_address: "Main St 1" };
  await pushOne(key("webshop"), "orders", { id, baseVersion: null, data: order });
  await pushOne(key("billing"), "orders", { id, baseVersion: 1, patch: { status: "paid", paid_at: "2026-11-25" } });
  await pushOne(key("billing"), "orders", { id, baseVersion: 2, patch: { paid_at: "2026-11-26" } });
  const res = await pushOne(key("warehouse"), "orders", { id, baseVersion: 2, patch: { status: "packed", tracking: "TR-1" } });
  expect(res, JSON.stringify(res)).toMatchObject({ status: "pending" });
  return { conflictId: (res.conflict as { id: number }).id };
}

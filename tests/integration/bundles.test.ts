import { randomUUID } from "node:crypto";
import { and, count, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as bundlesRoute from "@/app/api/v1/bundles/route";
import { auditLog, bundleReceipts, recordHistory } from "@/lib/db/schema";
import { getActivePolicy } from "@/lib/policy/store";
import {
  decodeBundle,
  FORMAT,
  MAX_BUNDLE_BYTES,
  sealBundle,
  type ResponseBundle,
  type UnsealedRequestBundle,
} from "@/lib/sync/bundle-format";
import { applyBundleForOperator, getBundleResponse, sha256Hex } from "@/lib/sync/bundles";
import { digestOf } from "@/lib/sync/digest";
import { DELETED_DIGEST, POLICY_VERSION_HEADER, type ChangeEntry, type PushChange } from "@/lib/sync/protocol";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";
import { changeId, keysFor, pushOne } from "@/tests/helpers/sync";

let t: TestHub;
let keys: Record<string, string>;

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "crm", "webshop", "warehouse");
});
afterAll(async () => {
  await t.close();
});

type Change = Omit<PushChange, "changeId"> & { changeId?: string };

function unsealed(
  system: string,
  changes: Record<string, Change[]>,
  checkpoints: Record<string, string | null> = {},
): UnsealedRequestBundle {
  return {
    format: FORMAT,
    bundleId: randomUUID(),
    system,
    createdAt: new Date().toISOString(),
    policyVersion: 1,
    checkpoints,
    changes: Object.fromEntries(
      Object.entries(changes).map(([c, list]) => [c, list.map((ch) => ({ ...ch, changeId: ch.changeId ?? changeId("b") }))]),
    ),
  };
}

async function bundleText(system: string, changes: Record<string, Change[]>, checkpoints: Record<string, string | null> = {}) {
  return JSON.stringify(await sealBundle(unsealed(system, changes, checkpoints), sha256Hex));
}

async function post(key: string, body: string) {
  return call(bundlesRoute.POST, { method: "POST", path: "/api/v1/bundles", token: key, body });
}

async function fetchResponse(key: string, bundleId: string) {
  return call(bundlesRoute.GET, { path: `/api/v1/bundles?bundleId=${encodeURIComponent(bundleId)}`, token: key });
}

/** Posts a bundle that must be applied, and checks the response bundle's own checksum. */
async function apply(key: string, body: string): Promise<ResponseBundle> {
  const res = await post(key, body);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  const decoded = await decodeBundle(JSON.stringify(res.body), "response", sha256Hex);
  if (!decoded.ok) throw new Error(decoded.problem.message);
  return decoded.bundle;
}

async function counts() {
  const [h] = await t.hub.db.select({ n: count() }).from(recordHistory);
  const [r] = await t.hub.db.select({ n: count() }).from(bundleReceipts);
  return { history: h?.n, receipts: r?.n };
}

const byId = (entries: ChangeEntry[] | undefined) => new Map((entries ?? []).map((e) => [e.id, e]));
const order = (status: string, total = 10) => ({ status, total, items: ["A"], customer_id: "c-1" });

describe("a bundle round trip through POST /api/v1/bundles", () => {
  let first: ResponseBundle;

  it("pushes creations, updates and deletes and returns the changes since each checkpoint", async () => {
    const existing = await pushOne(keys.webshop!, "orders", { id: "o-upd", baseVersion: null, data: order("new") });
    await pushOne(keys.webshop!, "orders", { id: "o-del", baseVersion: null, data: order("new") });
    await pushOne(keys.crm!, "customers", { id: "c-north", baseVersion: null, data: { name: "Nora", region: "north" } });
    expect(existing.version).toBe(1);

    const request = unsealed(
      "webshop",
      {
        orders: [
          { id: "o-new", baseVersion: null, data: order("new", 25) },
          { id: "o-upd", baseVersion: 1, patch: { status: "cancelled" } },
          { id: "o-del", baseVersion: 1, deleted: true },
        ],
        customers: [{ id: "w-1", baseVersion: null, data: { name: "Web Wendy", source: "web" } }],
      },
      { orders: null, customers: null },
    );
    const res = await post(keys.webshop!, JSON.stringify(await sealBundle(request, sha256Hex)));
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.headers.get(POLICY_VERSION_HEADER)).toBe("1");
    const decoded = await decodeBundle(JSON.stringify(res.body), "response", sha256Hex);
    if (!decoded.ok) throw new Error(decoded.problem.message);
    first = decoded.bundle;

    expect(first).toMatchObject({ format: "concord-bundle-response/1", bundleId: request.bundleId, system: "webshop", policyVersion: 1 });
    expect(first.results.orders?.map((r) => [r.id, r.status, r.version])).toEqual([
      ["o-new", "applied", 1],
      ["o-upd", "applied", 2],
      ["o-del", "applied", 2],
    ]);
    expect(first.results.orders?.[2]?.digest).toBe(DELETED_DIGEST);
    expect(first.results.customers?.map((r) => r.status)).toEqual(["applied"]);

    // From the beginning: live records in scope, the site's own changes included; no tombstones.
    const orders = byId(first.changes.orders);
    expect(orders.get("o-new")).toEqual({ id: "o-new", version: 1, digest: digestOf(order("new", 25)), data: order("new", 25) });
    expect(orders.get("o-upd")).toMatchObject({ version: 2, data: order("cancelled") });
    expect(orders.has("o-del")).toBe(false);
    // The web shop sees web customers only, projected to its fields.
    expect(first.changes.customers).toEqual([
      { id: "w-1", version: 1, digest: digestOf({ name: "Web Wendy", source: "web" }), data: { name: "Web Wendy", source: "web" } },
    ]);
    expect(Object.keys(first.checkpoints).sort()).toEqual(["customers", "orders"]);
  });

  it("with the response's checkpoints, the next bundle returns only newer changes", async () => {
    await pushOne(keys.webshop!, "orders", { id: "o-later", baseVersion: null, data: order("new", 5) });
    const second = await apply(
      keys.webshop!,
      await bundleText("webshop", { orders: [{ id: "o-new", baseVersion: 1, patch: { total: 30 } }] }, first.checkpoints),
    );
    expect(second.results.orders?.map((r) => [r.id, r.status, r.version])).toEqual([["o-new", "applied", 2]]);
    expect(second.changes.orders?.map((e) => e.id).sort()).toEqual(["o-later", "o-new"]);
    expect(second.changes.customers).toEqual([]);
    expect(second.checkpoints.orders).not.toBe(first.checkpoints.orders);

    const third = await apply(keys.webshop!, await bundleText("webshop", {}, second.checkpoints));
    expect(third.changes).toEqual({ customers: [], orders: [] });
    expect(third.results).toEqual({});
  });

  it("stores the response, which the system can download again, checksum intact", async () => {
    const again = await fetchResponse(keys.webshop!, first.bundleId);
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first);
    expect((await decodeBundle(JSON.stringify(again.body), "response", sha256Hex)).ok).toBe(true);
    expect(await getBundleResponse({ db: t.hub.db, system: "webshop", bundleId: first.bundleId, policy: await getActivePolicy(t.hub.db) })).toEqual(first);

    // Another system cannot read it; an unknown id or a malformed one says so.
    expect((await fetchResponse(keys.crm!, first.bundleId)).status).toBe(404);
    expect((await fetchResponse(keys.webshop!, randomUUID())).body).toMatchObject({ error: { code: "not_found" } });
    expect((await fetchResponse(keys.webshop!, "nope")).status).toBe(400);
  });

  it("refuses a replay with 409 and changes nothing", async () => {
    const original = JSON.stringify(
      await sealBundle({ ...unsealed("webshop", { orders: [{ id: "o-replay", baseVersion: null, data: order("new") }] }) }, sha256Hex),
    );
    await apply(keys.webshop!, original);
    const before = await counts();
    const res = await post(keys.webshop!, original);
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({
      error: { code: "conflict", details: { sameContent: true }, message: expect.stringMatching(/already applied at .*import the response bundle you got then.*export a new bundle/) },
    });
    expect(await counts()).toEqual(before);
  });

  it("applies a bundle once when two copies arrive at once", async () => {
    const text = await bundleText("webshop", { orders: [{ id: "o-twice", baseVersion: null, data: order("new") }] });
    const answers = await Promise.all([post(keys.webshop!, text), post(keys.webshop!, text)]);
    expect(answers.map((a) => a.status).sort()).toEqual([200, 409]);
    const rows = await t.hub.db.select().from(recordHistory).where(and(eq(recordHistory.collection, "orders"), eq(recordHistory.id, "o-twice")));
    expect(rows).toHaveLength(1);
  });

  it("pushes more than 1,000 changes of a collection in batches", async () => {
    const many = Array.from({ length: 1_205 }, (_, i) => ({ id: `bulk-${i}`, baseVersion: null, data: order("new", i + 1) }));
    const response = await apply(keys.webshop!, await bundleText("webshop", { orders: many }));
    expect(response.results.orders).toHaveLength(1_205);
    expect(response.results.orders?.every((r) => r.status === "applied")).toBe(true);
    expect(response.results.orders?.[1_204]?.id).toBe("bulk-1204");
  });
});

describe("refused bundles change nothing", () => {
  const good = () => bundleText("webshop", { orders: [{ id: "o-refused", baseVersion: null, data: order("new") }] }, { orders: null });

  const cases: { name: string; key: () => string; body: () => Promise<string>; status: number; code: string; message?: RegExp; path?: string }[] = [
    {
      name: "tampered (one byte of data changed)",
      key: () => keys.webshop!,
      body: async () => (await good()).replace('"total":10', '"total":90'),
      status: 400,
      code: "invalid_request",
      message: /checksum does not match: the file was changed or cut short; export it again/,
    },
    {
      name: "truncated (JSON cut short)",
      key: () => keys.webshop!,
      body: async () => (await good()).slice(0, -40),
      status: 400,
      code: "invalid_request",
      message: /cut short; export it again/,
    },
    {
      name: "wrong checksum",
      key: () => keys.webshop!,
      body: async () => JSON.stringify({ ...(JSON.parse(await good()) as object), checksum: "0".repeat(64) }),
      status: 400,
      code: "invalid_request",
      message: /checksum does not match/,
    },
    {
      name: "a response bundle uploaded instead",
      key: () => keys.webshop!,
      body: async () => JSON.stringify((await fetchResponse(keys.webshop!, (await firstReceipt()).bundleId)).body),
      status: 400,
      code: "invalid_request",
      message: /response bundle/,
    },
    {
      name: "another system's bundle",
      key: () => keys.crm!,
      body: good,
      status: 403,
      code: "forbidden",
      message: /exported by system "webshop", but the API key belongs to "crm"/,
    },
    {
      name: "an unknown collection",
      key: () => keys.webshop!,
      body: () => bundleText("webshop", { orders: [{ id: "o-x", baseVersion: null, data: order("new") }], invoices: [] }),
      status: 404,
      code: "unknown_collection",
      path: "changes.invoices",
    },
    {
      name: "a collection the system may neither read nor write",
      key: () => keys.crm!,
      body: () => bundleText("crm", { customers: [{ id: "c-x", baseVersion: null, data: { name: "X", region: "north" } }] }, { orders: null }),
      status: 403,
      code: "forbidden",
      path: "checkpoints.orders",
    },
    {
      name: "a checkpoint this server did not issue",
      key: () => keys.webshop!,
      body: () => bundleText("webshop", { orders: [{ id: "o-x", baseVersion: null, data: order("new") }] }, { orders: "yesterday" }),
      status: 400,
      code: "invalid_request",
      path: "checkpoints.orders",
    },
    {
      name: "a record over 256 KiB after valid ones",
      key: () => keys.webshop!,
      body: () =>
        bundleText("webshop", {
          orders: [
            { id: "o-x", baseVersion: null, data: order("new") },
            ...Array.from({ length: 1_000 }, (_, i) => ({ id: `o-pad-${i}`, baseVersion: null, data: order("new") })),
            { id: "o-big", baseVersion: null, data: { ...order("new"), note: "x".repeat(300 * 1024) } },
          ],
        }),
      status: 413,
      code: "payload_too_large",
      path: "changes.orders.1001.data",
    },
    {
      name: "an unknown field (checksum correct)",
      key: () => keys.webshop!,
      body: async () => JSON.stringify(await sealBundle({ ...unsealed("webshop", {}), note: "hi" }, sha256Hex)),
      status: 400,
      code: "invalid_request",
      path: "",
    },
    {
      name: "an unknown field in a change (checksum correct)",
      key: () => keys.webshop!,
      body: () => bundleText("webshop", { orders: [{ id: "o-x", baseVersion: null, data: order("new"), colour: "red" } as Change] }),
      status: 400,
      code: "invalid_request",
      path: "changes.orders.0",
    },
    {
      name: "a malformed bundleId",
      key: () => keys.webshop!,
      body: async () => JSON.stringify(await sealBundle({ ...unsealed("webshop", {}), bundleId: "42" }, sha256Hex)),
      status: 400,
      code: "invalid_request",
      path: "bundleId",
    },
  ];

  it.each(cases)("$name → $status $code", async ({ key, body, status, code, message, path }) => {
    const text = await body();
    const before = await counts();
    const res = await post(key(), text);
    expect(res.status, JSON.stringify(res.body).slice(0, 500)).toBe(status);
    const error = (res.body as { error: { code: string; message: string; details?: { path: string }[] } }).error;
    expect(error.code).toBe(code);
    if (message) expect(error.message).toMatch(message);
    if (path !== undefined) expect(error.details?.map((d) => d.path)).toContain(path);
    expect(await counts()).toEqual(before);
  });

  it("refuses a bundle over 64 MiB with 413 before reading it whole", async () => {
    const before = await counts();
    const huge = `{"format":"concord-bundle/1","pad":"${"x".repeat(MAX_BUNDLE_BYTES)}"}`;
    const res = await post(keys.webshop!, huge);
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ error: { code: "payload_too_large" } });
    expect(await counts()).toEqual(before);
  });

  it("answers 401 without a key", async () => {
    const res = await call(bundlesRoute.POST, { method: "POST", path: "/api/v1/bundles", token: null, body: await good() });
    expect(res.status).toBe(401);
  });
});

async function firstReceipt() {
  const [row] = await t.hub.db.select().from(bundleReceipts).where(eq(bundleReceipts.system, "webshop")).limit(1);
  if (!row) throw new Error("no receipt yet");
  return row;
}

describe("an operator applies a bundle on a site's behalf", () => {
  it("applies it as the site's changes, writes an audit row, and refuses the site's own replay", async () => {
    const text = await bundleText("webshop", { orders: [{ id: "o-op", baseVersion: null, data: order("new") }] }, { orders: null });
    const bundleId = (JSON.parse(text) as { bundleId: string }).bundleId;
    const policy = await getActivePolicy(t.hub.db);
    const response = await applyBundleForOperator({ db: t.hub.db, policy, bundle: text, actor: "alice" });
    expect(response.results.orders?.map((r) => r.status)).toEqual(["applied"]);
    expect((await decodeBundle(JSON.stringify(response), "response", sha256Hex)).ok).toBe(true);

    const [version] = await t.hub.db
      .select()
      .from(recordHistory)
      .where(and(eq(recordHistory.collection, "orders"), eq(recordHistory.id, "o-op")));
    expect(version?.writtenBy).toBe("webshop");

    const audit = await t.hub.db
      .select()
      .from(auditLog)
      .where(and(eq(auditLog.action, "bundle.apply"), eq(auditLog.target, `bundle:webshop/${bundleId}`)));
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: "alice", details: { system: "webshop", bundleId, changes: { orders: 1 } } });

    const [receipt] = await t.hub.db
      .select()
      .from(bundleReceipts)
      .where(and(eq(bundleReceipts.system, "webshop"), eq(bundleReceipts.bundleId, bundleId)));
    expect(receipt).toMatchObject({ appliedBy: "operator:alice", responseChecksum: response.checksum });

    expect((await post(keys.webshop!, text)).status).toBe(409);
    await expect(applyBundleForOperator({ db: t.hub.db, policy, bundle: text, actor: "alice" })).rejects.toMatchObject({ code: "conflict" });
    expect((await fetchResponse(keys.webshop!, bundleId)).body).toEqual(response);
  });

  it("runs the same checks: a tampered bundle or an undeclared system is refused without an audit row", async () => {
    const policy = await getActivePolicy(t.hub.db);
    const text = await bundleText("webshop", { orders: [{ id: "o-op2", baseVersion: null, data: order("new") }] });
    await expect(
      applyBundleForOperator({ db: t.hub.db, policy, bundle: text.replace('"total":10', '"total":11'), actor: "alice" }),
    ).rejects.toMatchObject({ code: "invalid_request" });
    const ghost = await bundleText("ghost", {});
    await expect(applyBundleForOperator({ db: t.hub.db, policy, bundle: ghost, actor: "alice" })).rejects.toMatchObject({
      code: "forbidden",
    });
    const audit = await t.hub.db.select().from(auditLog).where(eq(auditLog.action, "bundle.apply"));
    expect(audit).toHaveLength(1);
  });
});

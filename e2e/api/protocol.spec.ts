import { readFileSync } from "node:fs";
import { expect, test, type APIRequestContext } from "@playwright/test";
import { E2E_ADMIN_TOKEN } from "../support/env";

/**
 * protocol.md's flows against the running production server, over real HTTP:
 * keys, configuration, push of every kind of change, delta pull with field
 * projection, manifest, the SSE stream, and a policy change announced to
 * clients. Runs with the example policy the server activates on first start.
 */
const admin = { authorization: `Bearer ${E2E_ADMIN_TOKEN}` };

async function issueKey(request: APIRequestContext, system: string): Promise<string> {
  const res = await request.post(`/api/admin/systems/${system}/keys`, { headers: admin });
  expect(res.status()).toBe(201);
  return ((await res.json()) as { key: string }).key;
}

/** Reads SSE blocks from a streaming response until `want` matches one. */
async function readUntil(reader: ReadableStreamDefaultReader<Uint8Array>, want: RegExp, seen: string[]): Promise<string> {
  const decoder = new TextDecoder();
  let buffer = "";
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      seen.push(block);
      if (want.test(block)) return block;
    }
  }
  throw new Error(`no event matching ${want} in:\n${seen.join("\n---\n")}`);
}

test("a client system syncs through the protocol as written", async ({ request, baseURL }) => {
  const crm = await issueKey(request, "crm");
  const billing = await issueKey(request, "billing");
  const as = (key: string) => ({ authorization: `Bearer ${key}` });

  // Configuration broadcast (claim 2).
  const config = await request.get("/api/v1/config", { headers: as(crm) });
  expect(config.status()).toBe(200);
  const policyVersion = Number(config.headers()["x-policy-version"]);
  expect(await config.json()).toMatchObject({
    system: "crm",
    policyVersion,
    collections: {
      customers: {
        read: { where: "all", fields: ["*"] },
        write: { where: "region in ['north', 'east']" },
        conflict: { strategy: "field-merge", fallback: "manual" },
      },
    },
    sync: { intervalSeconds: 60, realtime: true },
  });

  // Real time: the CRM listens while billing writes.
  const abort = new AbortController();
  const stream = await fetch(`${baseURL}/api/v1/events`, { headers: as(crm), signal: abort.signal });
  expect(stream.headers.get("content-type")).toMatch(/^text\/event-stream/);
  const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
  const seen: string[] = [];
  await readUntil(reader, /^: connected/m, seen);

  // First submissions and later changes (claims 3 and 4).
  const push = async (key: string, changes: unknown[]) => {
    const res = await request.post("/api/v1/collections/customers/push", { headers: as(key), data: { changes } });
    expect(res.status(), await res.text()).toBe(200);
    expect(res.headers()["x-policy-version"]).toBe(String(policyVersion));
    return ((await res.json()) as { results: Record<string, unknown>[] }).results;
  };
  const created = await push(crm, [
    { changeId: "e2e-1", id: "c1", baseVersion: null, data: { name: "Ann", region: "north", phone: "1" } },
    { changeId: "e2e-2", id: "c7", baseVersion: null, data: { name: "New", region: "east" } },
    { changeId: "e2e-3", id: "c2", baseVersion: null, data: { name: "Bo", region: "north" } },
  ]);
  expect(created.map((r) => [r.id, r.status, r.version])).toEqual([
    ["c1", "applied", 1],
    ["c7", "applied", 1],
    ["c2", "applied", 1],
  ]);
  const later = await push(crm, [
    { changeId: "e2e-4", id: "c1", baseVersion: 1, data: { name: "Ann B.", region: "north", phone: "1" } },
    { changeId: "e2e-5", id: "c2", baseVersion: 1, patch: { phone: "555" } },
  ]);
  expect(later.map((r) => [r.status, r.version])).toEqual([
    ["applied", 2],
    ["applied", 2],
  ]);
  const again = await push(crm, [{ changeId: "e2e-4", id: "c1", baseVersion: 1, data: { name: "Ann B.", region: "north", phone: "1" } }]);
  expect(again[0]).toEqual(later[0]);

  const billed = await push(billing, [{ changeId: "e2e-6", id: "c1", baseVersion: 2, patch: { credit_limit: 900 } }]);
  expect(billed[0]).toMatchObject({ status: "applied", version: 3 });
  const event = await readUntil(reader, /^event: change/m, seen);
  expect(event).toMatch(/"collection":"customers"/);
  expect(event).not.toMatch(/Ann|credit/);

  // Delta pull with projection: billing sees only its fields.
  const changes = await request.get("/api/v1/collections/customers/changes?limit=2", { headers: as(billing) });
  const page = (await changes.json()) as { changes: { id: string; data?: Record<string, unknown> }[]; checkpoint: string; hasMore: boolean };
  expect(page.hasMore).toBe(true);
  const rest = await request.get(`/api/v1/collections/customers/changes?since=${encodeURIComponent(page.checkpoint)}`, { headers: as(billing) });
  const all = [...page.changes, ...((await rest.json()) as { changes: typeof page.changes }).changes];
  expect(all.map((c) => c.id).sort()).toEqual(["c1", "c2", "c7"]);
  for (const change of all) expect(Object.keys(change.data ?? {}).every((f) => ["name", "email", "region", "credit_limit", "vat_id"].includes(f))).toBe(true);
  expect(all.find((c) => c.id === "c1")?.data).toEqual({ name: "Ann B.", region: "north", credit_limit: 900 });

  // Delete (a tombstone with a version) — crm may not delete customers: it may write only some fields.
  const refused = await push(crm, [{ changeId: "e2e-7", id: "c2", baseVersion: 2, deleted: true }]);
  expect(refused[0]).toMatchObject({ status: "forbidden", reason: expect.stringMatching(/every field/) });

  // Manifest.
  const manifest = await request.get("/api/v1/collections/customers/manifest", { headers: as(crm) });
  expect(await manifest.json()).toMatchObject({
    entries: [
      { id: "c1", version: 3 },
      { id: "c2", version: 2 },
      { id: "c7", version: 1 },
    ],
    next: null,
    count: 3,
  });

  // A policy change reaches the open stream and every later response's header.
  const activated = await request.put("/api/admin/policy?comment=e2e", {
    headers: admin,
    data: readFileSync("policies/example.yaml", "utf8"),
  });
  const { version } = (await activated.json()) as { version: number };
  await readUntil(reader, new RegExp(`^event: config\\ndata: \\{"policyVersion":${version}\\}`, "m"), seen);
  const after = await request.get("/api/v1/config", { headers: as(crm) });
  expect(after.headers()["x-policy-version"]).toBe(String(version));
  abort.abort();

  // Errors have the documented envelope.
  const unknown = await request.get("/api/v1/collections/invoices/changes", { headers: as(crm) });
  expect(unknown.status()).toBe(404);
  expect(await unknown.json()).toMatchObject({ error: { code: "unknown_collection", message: expect.any(String) } });
  const anonymous = await request.get("/api/v1/config");
  expect(anonymous.status()).toBe(401);
});

import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as healthRoute from "@/app/api/health/route";
import * as policyRoute from "@/app/api/admin/policy/route";
import * as rollbackRoute from "@/app/api/admin/policy/rollback/route";
import * as versionRoute from "@/app/api/admin/policy/versions/[version]/route";
import * as versionsRoute from "@/app/api/admin/policy/versions/route";
import * as keyRoute from "@/app/api/admin/systems/[system]/keys/[prefix]/route";
import * as keysRoute from "@/app/api/admin/systems/[system]/keys/route";
import { authenticateApiKey } from "@/lib/auth/api-keys";
import { auditLog, apiKeys } from "@/lib/db/schema";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";

const example = readFileSync("policies/example.yaml", "utf8");
const small = `version: 1
systems: {crm: {name: CRM}, billing: {}}
collections: {customers: {conflict: client-wins}}
rules:
  - {who: crm, collection: customers, read: all, write: all}
  - {who: billing, collection: customers, read: {fields: [name]}}
`;

let t: TestHub;
beforeAll(async () => {
  t = await startTestHub();
});
afterAll(async () => {
  await t.close();
});

async function activeVersion(): Promise<number> {
  const res = await call(policyRoute.GET);
  return (res.body as { version: number }).version;
}

describe("GET /api/health", () => {
  it("answers without authentication and names the engine", async () => {
    const res = await call(healthRoute.GET, { token: null });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok", database: t.handle.kind });
  });
});

describe("admin authentication", () => {
  const guarded = [
    ["GET /api/admin/policy", () => call(policyRoute.GET, { token: null })],
    ["PUT /api/admin/policy", () => call(policyRoute.PUT, { method: "PUT", body: small, token: null })],
    ["GET versions", () => call(versionsRoute.GET, { token: "wrong-token-wrong-token" })],
    ["POST keys", () => call(keysRoute.POST, { method: "POST", params: { system: "crm" }, token: "Bearer" })],
  ] as const;

  it.each(guarded)("%s without a valid token is 401 and reveals nothing", async (_name, run) => {
    const res = await run();
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
    expect(res.body).toEqual({ error: { code: "unauthenticated", message: expect.stringMatching(/admin token/), requestId: res.headers.get("x-request-id") } });
    expect(JSON.stringify(res.body)).not.toMatch(/crm|customers|version/);
  });
});

describe("policy administration", () => {
  it("starts with the example policy active as version 1", async () => {
    const res = await call(policyRoute.GET);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ version: 1, yaml: example, activatedBy: "concord" });
  });

  it("PUT of the example policy returns its version", async () => {
    const before = await activeVersion();
    const res = await call(policyRoute.PUT, { method: "PUT", path: "/api/admin/policy?comment=again", body: example });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ version: before + 1, warnings: [] });
    expect(await activeVersion()).toBe(before + 1);
  });

  it("a broken policy returns 422 with line-numbered errors and changes nothing", async () => {
    const before = await activeVersion();
    const broken = small.replace("who: billing", "who: biling").replace("read: all", "read: region = 'x'");
    const res = await call(policyRoute.PUT, { method: "PUT", body: broken });
    expect(res.status).toBe(422);
    const body = res.body as { error: { code: string; message: string; details: { line: number; column: number; message: string }[] } };
    expect(body.error.code).toBe("policy_invalid");
    expect(body.error.message).toMatch(/nothing was changed/);
    expect(body.error.details).toEqual([
      { line: 5, column: 52, message: expect.stringMatching(/does not parse at character 8: unknown operator .=. \(did you mean .==.\?\)/) },
      { line: 6, column: 11, message: expect.stringMatching(/unknown system "biling".*did you mean "billing"/) },
    ]);
    expect(await activeVersion()).toBe(before);
  });

  it("?dryRun=1 validates without activating", async () => {
    const before = await activeVersion();
    const ok = await call(policyRoute.PUT, { method: "PUT", path: "/api/admin/policy?dryRun=1", body: small });
    expect(ok.status).toBe(200);
    expect(ok.body).toEqual({ valid: true, version: null, warnings: [] });
    const bad = await call(policyRoute.PUT, { method: "PUT", path: "/api/admin/policy?dryRun=1", body: "version: 1\n" });
    expect(bad.status).toBe(422);
    expect(await activeVersion()).toBe(before);
  });

  const hostile: [string, string][] = [
    ["an oversized file", `version: 1\n# ${"x".repeat(300 * 1024)}`],
    ["an alias bomb", `a: &a [x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c]\n`],
    ["deep nesting", `version: 1\nsystems: ${"{a: ".repeat(5000)}1${"}".repeat(5000)}`],
    ["SQL in a who", small.replace("who: billing", `who: "billing'; drop table records; --"`)],
    ["unknown keys", `${small}extra: true\n`],
    ["not YAML at all", "\u0000\u0001{{{"],
  ];

  it.each(hostile)("refuses %s with a clear error and keeps the active policy", async (_name, body) => {
    const before = await call(policyRoute.GET);
    const res = await call(policyRoute.PUT, { method: "PUT", body });
    expect([413, 422]).toContain(res.status);
    const error = (res.body as { error: { code: string; message: string } }).error;
    expect(["policy_invalid", "payload_too_large"]).toContain(error.code);
    expect(error.message.length).toBeGreaterThan(10);
    // Status and body: the headers differ by their X-Request-Id, which is new for every response.
    const after = await call(policyRoute.GET);
    expect({ status: after.status, body: after.body }).toEqual({ status: before.status, body: before.body });
  });

  it("lists versions and rolls back to an earlier one as a new version", async () => {
    const activated = await call(policyRoute.PUT, { method: "PUT", body: small });
    const smallVersion = (activated.body as { version: number }).version;
    const back = await call(rollbackRoute.POST, { method: "POST", body: { version: 1, comment: "undo" } });
    expect(back.status).toBe(200);
    expect(back.body).toEqual({ version: smallVersion + 1, rolledBackFrom: 1, warnings: [] });
    const active = await call(policyRoute.GET);
    expect((active.body as { yaml: string }).yaml).toBe(example);

    const list = await call(versionsRoute.GET);
    const versions = (list.body as { versions: { version: number; source: string; rolledBackFrom: number | null }[] }).versions;
    expect(versions[0]).toMatchObject({ version: smallVersion + 1, source: "rollback", rolledBackFrom: 1 });
    expect(versions.map((v) => v.version)).toEqual([...versions.map((v) => v.version)].sort((a, b) => b - a));

    const one = await call(versionRoute.GET, { params: { version: String(smallVersion) } });
    expect(one.body).toMatchObject({ version: smallVersion, yaml: small, source: "api" });
    const missing = await call(versionRoute.GET, { params: { version: "999" } });
    expect(missing.status).toBe(404);
    const bad = await call(versionRoute.GET, { params: { version: "1; drop" } });
    expect(bad.status).toBe(400);
    const noSuch = await call(rollbackRoute.POST, { method: "POST", body: { version: 999 } });
    expect(noSuch.status).toBe(404);
    const wrong = await call(rollbackRoute.POST, { method: "POST", body: { version: "1", extra: 1 } });
    expect(wrong.status).toBe(400);
    expect((wrong.body as { error: { code: string } }).error.code).toBe("invalid_request");
  });

  it("writes every activation to the audit log", async () => {
    const rows = await t.hub.db.select().from(auditLog);
    const actions = rows.map((r) => r.action);
    expect(actions).toContain("policy.activate");
    expect(actions).toContain("policy.rollback");
  });
});

describe("system API keys", () => {
  it("issues a key shown once, stores only its hash, and revokes it", async () => {
    const res = await call(keysRoute.POST, { method: "POST", params: { system: "crm" } });
    expect(res.status).toBe(201);
    const { key, prefix } = res.body as { key: string; prefix: string };
    expect(key).toMatch(/^cnc_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    expect(key.startsWith(`cnc_${prefix}_`)).toBe(true);

    const stored = await t.hub.db.select().from(apiKeys);
    expect(JSON.stringify(stored)).not.toContain(key.slice(18));
    expect(await authenticateApiKey(t.hub.db, key)).toEqual({ system: "crm", prefix, policyVersion: expect.any(Number) });
    expect(await authenticateApiKey(t.hub.db, `${key.slice(0, -1)}x`)).toBeNull();

    const list = await call(keysRoute.GET, { params: { system: "crm" } });
    expect(JSON.stringify(list.body)).not.toContain(key);
    expect((list.body as { keys: { prefix: string }[] }).keys.map((k) => k.prefix)).toContain(prefix);

    const revoked = await call(keyRoute.DELETE, { method: "DELETE", params: { system: "crm", prefix } });
    expect(revoked.status).toBe(200);
    expect(await authenticateApiKey(t.hub.db, key)).toBeNull();
    const again = await call(keyRoute.DELETE, { method: "DELETE", params: { system: "crm", prefix } });
    expect(again.status).toBe(404);
  });

  it.each([
    ["an undeclared system", { system: "erp" }, 404, "not_found"],
    ["a malformed system name", { system: "CRM;--" }, 400, "invalid_request"],
  ] as const)("refuses a key for %s", async (_name, params, status, code) => {
    const res = await call(keysRoute.POST, { method: "POST", params });
    expect(res.status).toBe(status);
    expect((res.body as { error: { code: string } }).error.code).toBe(code);
  });

  it("refuses to revoke with a malformed prefix", async () => {
    const res = await call(keyRoute.DELETE, { method: "DELETE", params: { system: "crm", prefix: "../../etc" } });
    expect(res.status).toBe(400);
  });
});

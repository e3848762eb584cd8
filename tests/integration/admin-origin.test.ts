import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import * as keysRoute from "@/app/api/admin/systems/[system]/keys/route";
import { listApiKeys } from "@/lib/auth/api-keys";
import { createOperator, signIn } from "@/lib/auth/operators";
import { resetEnvCache } from "@/lib/env";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";

let t: TestHub;
let admin: string;
beforeAll(async () => {
  t = await startTestHub();
  await createOperator(t.hub.db, { username: "olga", password: "olga-password-1", role: "admin" }, "test");
  const session = await signIn(t.hub.db, { username: "olga", password: "olga-password-1" });
  if (!session.ok) throw new Error(session.message);
  admin = `concord_session=${session.token}`;
});
afterEach(() => {
  delete process.env.CONCORD_PUBLIC_URL;
  delete process.env.CONCORD_TRUST_PROXY;
  resetEnvCache();
});
afterAll(async () => {
  await t.close();
});

/** Issues a crm key with the admin's console session and the given headers (the route's path is http://localhost/...). */
function issue(headers: Record<string, string>) {
  return call(keysRoute.POST, { method: "POST", path: "/api/admin/systems/crm/keys", params: { system: "crm" }, token: null, headers: { cookie: admin, ...headers } });
}

async function keyCount(): Promise<number> {
  return (await listApiKeys(t.hub.db, "crm")).length;
}

describe("cookie-authenticated admin writes need the console's Origin", () => {
  it.each([
    ["no Origin", {}, /no Origin header/],
    ["only a same-site Referer", { referer: "http://localhost/systems/crm" }, /no Origin header/],
    ["Origin: null", { origin: "null" }, /opaque origin/],
    ["another site", { origin: "https://evil.example" }, /came from https:\/\/evil\.example, but the console is at http:\/\/localhost/],
    ["the right host with another scheme", { origin: "https://localhost" }, /came from https:\/\/localhost/],
    ["the right host with another port", { origin: "http://localhost:8080" }, /came from http:\/\/localhost:8080/],
    ["a forged X-Forwarded-Host without a trusted proxy", { origin: "https://evil.example", "x-forwarded-host": "evil.example", "x-forwarded-proto": "https" }, /came from https:\/\/evil\.example/],
  ])("refuses %s with 403 and changes nothing", async (_label, headers, message) => {
    const before = await keyCount();
    const res = await issue(headers);
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ error: { code: "forbidden", message: expect.stringMatching(message) } });
    expect(await keyCount()).toBe(before);
  });

  it("accepts the request's own origin, by its Host header", async () => {
    expect((await issue({ origin: "http://localhost" })).status).toBe(201);
    expect((await issue({ host: "hub.example:3000", origin: "http://hub.example:3000" })).status).toBe(201);
  });

  it("accepts only CONCORD_PUBLIC_URL when it is set", async () => {
    process.env.CONCORD_PUBLIC_URL = "https://concord.example";
    resetEnvCache();
    expect((await issue({ origin: "https://concord.example" })).status).toBe(201);
    expect((await issue({ origin: "http://localhost" })).status).toBe(403);
  });

  it("believes X-Forwarded-Proto and X-Forwarded-Host behind a trusted proxy", async () => {
    process.env.CONCORD_TRUST_PROXY = "1";
    resetEnvCache();
    const proxied = { "x-forwarded-proto": "https", "x-forwarded-host": "concord.example" };
    expect((await issue({ ...proxied, origin: "https://concord.example" })).status).toBe(201);
    expect((await issue({ ...proxied, origin: "http://concord.example" })).status).toBe(403);
  });

  it("does not apply to the admin token, which automation sends without an Origin", async () => {
    const res = await call(keysRoute.POST, { method: "POST", params: { system: "crm" } });
    expect(res.status).toBe(201);
  });

  it("does not apply to reads", async () => {
    const res = await call(keysRoute.GET, { params: { system: "crm" }, token: null, headers: { cookie: admin } });
    expect(res.status).toBe(200);
  });
});

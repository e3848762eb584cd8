import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import * as policyRoute from "@/app/api/admin/policy/route";
import { GET as config } from "@/app/api/v1/config/route";
import { resetEnvCache } from "@/lib/env";
import { AUTH_FAILURE_RATE } from "@/lib/http/rate-limit";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";
import { keysFor } from "@/tests/helpers/sync";

let t: TestHub;
let key: string;
const BURST = 2 * AUTH_FAILURE_RATE;

beforeAll(async () => {
  // Behind one trusted proxy the client address is the last X-Forwarded-For entry: each test picks its own.
  process.env.CONCORD_TRUST_PROXY = "1";
  t = await startTestHub();
  key = (await keysFor(t.hub.db, "crm")).crm!;
  // The buckets' clock stands still unless a test moves it: a slow machine refills nothing by accident.
  vi.useFakeTimers({ toFake: ["performance"] });
});
afterAll(async () => {
  vi.useRealTimers();
  delete process.env.CONCORD_TRUST_PROXY;
  resetEnvCache();
  await t.close();
});

const from = (address: string) => ({ "x-forwarded-for": `198.51.100.1, ${address}` });
const WRONG = "cnc_000000000000_not-a-real-key-at-all";

describe("requests with invalid API keys are rate limited per client address", () => {
  it("answers 401 for a burst of failures, then 429 with Retry-After; a valid key from that address still works", async () => {
    const address = "192.0.2.10";
    const statuses: number[] = [];
    for (let i = 0; i < BURST; i++) statuses.push((await call(config, { token: WRONG, headers: from(address) })).status);
    expect(statuses).toEqual(Array.from({ length: BURST }, () => 401));

    const refused = await call(config, { token: WRONG, headers: from(address) });
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ error: { code: "rate_limited", message: expect.stringMatching(/missing, wrong or revoked key/) } });
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    // Missing keys count too. A valid key is never refused for its address's failures: another client
    // behind the same address (a NAT, a proxy) must not be able to stall it.
    expect((await call(config, { token: null, headers: from(address) })).status).toBe(429);
    expect((await call(config, { token: key, headers: from(address) })).status).toBe(200);
    expect((await call(config, { token: WRONG, headers: from(address) })).status).toBe(429);

    // Another address is not affected.
    expect((await call(config, { token: WRONG, headers: from("192.0.2.11") })).status).toBe(401);
    expect((await call(config, { token: key, headers: from("192.0.2.11") })).status).toBe(200);

    // The budget refills at AUTH_FAILURE_RATE per second.
    vi.advanceTimersByTime(Math.ceil(1000 / AUTH_FAILURE_RATE));
    expect((await call(config, { token: WRONG, headers: from(address) })).status).toBe(401);
  });

  it("never charges a valid key", async () => {
    const address = "192.0.2.20";
    for (let i = 0; i < 3 * BURST; i++) expect((await call(config, { token: key, headers: from(address) })).status).toBe(200);
    for (let i = 0; i < BURST; i++) expect((await call(config, { token: WRONG, headers: from(address) })).status).toBe(401);
  });

  it("counts an IPv6 client by its /64", async () => {
    for (let i = 0; i < BURST; i++) {
      expect((await call(config, { token: WRONG, headers: from(`2001:db8:5:6::${(i + 1).toString(16)}`) })).status).toBe(401);
    }
    expect((await call(config, { token: WRONG, headers: from("2001:db8:5:6:ffff::1") })).status).toBe(429);
  });

  it("limits wrong admin tokens from the same budget", async () => {
    const address = "192.0.2.30";
    for (let i = 0; i < BURST; i++) expect((await call(policyRoute.GET, { token: "not-the-admin-token-at-all", headers: from(address) })).status).toBe(401);
    const refused = await call(policyRoute.GET, { token: "not-the-admin-token-at-all", headers: from(address) });
    expect(refused.status).toBe(429);
    expect(refused.headers.get("retry-after")).not.toBeNull();
    expect((await call(policyRoute.GET, { headers: from("192.0.2.31") })).status).toBe(200);
  });

  it("keeps the per-key limit (CONCORD_RATE_LIMIT) as it was", async () => {
    process.env.CONCORD_RATE_LIMIT = "1";
    resetEnvCache();
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 4; i++) statuses.push((await call(config, { token: key, headers: from("192.0.2.40") })).status);
      expect(statuses).toEqual([200, 200, 429, 429]);
    } finally {
      delete process.env.CONCORD_RATE_LIMIT;
      resetEnvCache();
    }
  });
});

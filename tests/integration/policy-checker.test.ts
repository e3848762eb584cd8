import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as healthRoute from "@/app/api/health/route";
import * as policyRoute from "@/app/api/admin/policy/route";
import { PolicyChecker } from "@/lib/policy/checker";
import { MAX_POLICY_BYTES, validatePolicy } from "@/lib/policy/validate";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";
import { policyAtTheBounds } from "@/tests/helpers/large-policy";

let t: TestHub;
beforeAll(async () => {
  t = await startTestHub();
});
afterAll(async () => {
  await t.close();
});

const SMALL = "version: 1\nsystems: {a: {}}\ncollections: {c: {}}\nrules:\n  - {who: a, collection: c, read: all}\n";

async function health(): Promise<number> {
  const started = performance.now();
  const res = await healthRoute.GET(new Request("http://localhost/api/health"));
  expect(res.status).toBe(200);
  await res.text();
  return performance.now() - started;
}

describe("policy checks run off the event loop", () => {
  it("keeps /api/health answering within 50 ms while a draft at the size bounds is validated", async () => {
    const draft = policyAtTheBounds();
    // Warm up: the checker's worker is started and the health route's code loaded.
    await call(policyRoute.PUT, { method: "PUT", path: "/api/admin/policy?dryRun=1", body: SMALL });
    await health();

    let done = false;
    const started = performance.now();
    const check = call(policyRoute.PUT, { method: "PUT", path: "/api/admin/policy?dryRun=1", body: draft }).finally(() => {
      done = true;
    });
    const latencies: number[] = [];
    while (!done) {
      latencies.push(await health());
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const checked = await check;
    const tookMs = performance.now() - started;
    expect(checked.status, JSON.stringify(checked.body)).toBe(200);
    expect(checked.body).toMatchObject({ valid: true, version: null });
    // The check really overlapped the health calls (on the main thread it blocks for all of tookMs) ...
    expect(latencies.length, `the check took ${Math.round(tookMs)} ms`).toBeGreaterThanOrEqual(5);
    // ... and none of them waited for it.
    expect(Math.max(...latencies), `latencies: ${latencies.map(Math.round).join(", ")}`).toBeLessThan(50);
  });

  it("answers a draft over the size limit with 413 and one over a complexity limit with 422, each with a sentence", async () => {
    const big = await call(policyRoute.PUT, { method: "PUT", path: "/api/admin/policy?dryRun=1", body: `# ${"x".repeat(MAX_POLICY_BYTES)}\n${SMALL}` });
    expect(big.status).toBe(413);
    expect(big.body).toMatchObject({ error: { code: "payload_too_large", message: expect.stringMatching(/larger than 256 KiB, the most a policy file may be/) } });

    const complex = await call(policyRoute.PUT, { method: "PUT", path: "/api/admin/policy", body: policyAtTheBounds({ extraSystems: 1 }) });
    expect(complex.status).toBe(422);
    expect(complex.body).toMatchObject({
      error: { code: "policy_invalid", details: [{ line: 3, column: 3, message: expect.stringMatching(/too many systems: 101, at most 100/) }] },
    });
    // Nothing was activated.
    const active = await call(policyRoute.GET);
    expect(active.body).toMatchObject({ version: 1 });
  });
});

describe("the policy checker", () => {
  it("stops a check that runs past its timeout with policy_invalid, and the next check runs on a fresh worker", async () => {
    // A timeout well under what the bound draft takes to check on this machine.
    const draft = policyAtTheBounds();
    const started = performance.now();
    validatePolicy(draft);
    const timeoutMs = Math.max(10, Math.floor((performance.now() - started) / 4));
    const checker = new PolicyChecker({ timeoutMs, maxWaiting: 4 });
    try {
      // Started and loaded: the clock of the next job is the check's own.
      expect(await checker.check(SMALL)).toMatchObject({ ok: true, systems: ["a"], collections: ["c"] });
      await expect(checker.check(draft)).rejects.toMatchObject({
        code: "policy_invalid",
        message: expect.stringMatching(/could not be checked in time \([\d.]+ s\) and was not changed/),
        details: [{ line: 1, column: 1, message: expect.stringMatching(/took longer than/) }],
      });
      expect(await checker.check(SMALL)).toMatchObject({ ok: true });
    } finally {
      await checker.close();
    }
  });

  it("refuses new checks with rate_limited while too many wait, and answers the others in order", async () => {
    const checker = new PolicyChecker({ timeoutMs: 10_000, maxWaiting: 2 });
    try {
      const accepted = [checker.check(SMALL), checker.check(SMALL.replace("a:", "b:")), checker.check(SMALL)];
      await expect(checker.check(SMALL)).rejects.toMatchObject({ code: "rate_limited", message: expect.stringMatching(/busy/) });
      const results = await Promise.all(accepted);
      expect(results.map((r) => r.ok)).toEqual([true, false, true]);
    } finally {
      await checker.close();
    }
  });

  it("hands back the normalised policy for loading", async () => {
    const checker = new PolicyChecker();
    try {
      const loaded = await checker.load(SMALL);
      expect(loaded.ok && loaded.policy.rules[0]).toMatchObject({ who: "a", collection: "c", read: { where: null, fields: "*" } });
    } finally {
      await checker.close();
    }
  });
});

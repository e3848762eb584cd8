import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { GET as config } from "@/app/api/v1/config/route";
import { resetEnvCache } from "@/lib/env";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";
import { keysFor, pushRaw, changeId } from "@/tests/helpers/sync";
import { readRecord } from "@/tests/helpers/records";

let t: TestHub;
let keys: Record<string, string>;

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "crm", "billing");
});
afterEach(() => {
  delete process.env.CONCORD_RATE_LIMIT;
  resetEnvCache();
});
afterAll(async () => {
  await t.close();
});

function limitTo(rate: number): void {
  process.env.CONCORD_RATE_LIMIT = String(rate);
  resetEnvCache();
}

describe("429 rate_limited on the sync API", () => {
  it("refuses a key past its burst with the protocol's error, Retry-After and the policy version", async () => {
    limitTo(2); // bursts of 4
    const statuses: number[] = [];
    let refused: Awaited<ReturnType<typeof call>> | undefined;
    for (let i = 0; i < 6; i++) {
      const answer = await call(config, { token: keys.crm! });
      statuses.push(answer.status);
      if (answer.status === 429) refused ??= answer;
    }
    expect(statuses.slice(0, 4)).toEqual([200, 200, 200, 200]);
    expect(statuses.slice(4)).toEqual([429, 429]);
    expect(refused!.body).toMatchObject({ error: { code: "rate_limited", message: expect.stringMatching(/Retry-After/) } });
    expect(Number(refused!.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
    expect(refused!.headers.get("x-policy-version")).toBe("1");

    // Another system's key has its own budget.
    expect((await call(config, { token: keys.billing! })).status).toBe(200);
  });

  it("a refused push changes nothing", async () => {
    limitTo(1); // bursts of 2
    await call(config, { token: keys.billing! });
    await call(config, { token: keys.billing! });
    const answer = await pushRaw(keys.billing!, "customers", {
      changes: [{ changeId: changeId(), op: "upsert", id: "rl-1", baseVersion: null, data: { name: "X", region: "north" } }],
    });
    expect(answer.status).toBe(429);
    expect(await readRecord(t.hub.db, "customers", "rl-1")).toBeUndefined();
  });

  it("0 turns the limit off", async () => {
    limitTo(0);
    for (let i = 0; i < 30; i++) expect((await call(config, { token: keys.crm! })).status).toBe(200);
  });
});

import { afterEach, describe, expect, it } from "vitest";
import postgres from "postgres";
import * as policyRoute from "@/app/api/admin/policy/route";
import * as configRoute from "@/app/api/v1/config/route";
import * as healthRoute from "@/app/api/health/route";
import { setDatabase } from "@/lib/db";
import { isDatabaseUnavailable } from "@/lib/db/unavailable";
import { stopEventBus } from "@/lib/sync/events-bus";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";
import { changeId, keysFor, pushRaw } from "@/tests/helpers/sync";

/**
 * The database goes away under a running hub: every route answers 503
 * `unavailable` with Retry-After and the error envelope (never 500), and the
 * hub serves again once the database is back.
 */

let t: TestHub | undefined;

afterEach(async () => {
  if (!t) return;
  await stopEventBus(t.handle).catch(() => undefined);
  setDatabase(undefined);
  // The handle may be closed already (that is the point of these tests).
  await t.handle.close().catch(() => undefined);
  t = undefined;
});

function expectUnavailable(res: { status: number; headers: Headers; body: unknown }) {
  expect(res.status).toBe(503);
  expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
  const requestId = res.headers.get("x-request-id");
  expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
  expect(res.body).toEqual({
    error: { code: "unavailable", message: expect.stringMatching(/cannot reach its database.*Retry-After/), requestId },
  });
}

describe("a database that cannot be reached", () => {
  it("closed under the hub: health, sync and admin routes answer 503 with Retry-After", async () => {
    t = await startTestHub();
    const keys = await keysFor(t.hub.db, "crm");
    expect((await call(healthRoute.GET, { token: null })).status).toBe(200);

    await t.handle.close();

    expectUnavailable(await call(healthRoute.GET, { token: null }));
    expectUnavailable(await call(configRoute.GET, { token: keys.crm as string }));
    expectUnavailable(await call(policyRoute.GET));
    expectUnavailable(
      await pushRaw(keys.crm as string, "customers", {
        changes: [{ changeId: changeId(), id: "down-1", baseVersion: null, data: { name: "Ann", region: "north" } }],
      }),
    );
  });

  it("goes away under running requests: each answers its result or 503, never 500, and nothing half-written stays", async () => {
    t = await startTestHub();
    const keys = await keysFor(t.hub.db, "crm");
    const body = (id: string) => ({ changes: [{ changeId: changeId(), id, baseVersion: null, data: { name: "Ann", region: "north" } }] });
    if (t.handle.kind === "postgres") {
      // PostgreSQL: the server terminates the hub's sessions while a push waits inside its transaction.
      const admin = postgres(t.handle.url as string, { max: 1, onnotice: () => undefined });
      try {
        // Hold the records table first, so the push's transaction waits inside the handler.
        const holder = await admin.reserve();
        await holder`begin`;
        await holder`lock table records in access exclusive mode`;
        const killed = body("killed-1");
        const pushing = pushRaw(keys.crm as string, "customers", killed);
        await waitFor(async () => {
          // Statistics are a snapshot per transaction: take a fresh one each time.
          await holder`select pg_stat_clear_snapshot()`;
          const [row] = await holder<{ n: number }[]>`
            select count(*)::int as n from pg_stat_activity
            where datname = current_database() and application_name = 'concord' and state = 'active' and wait_event_type = 'Lock'`;
          return (row?.n ?? 0) > 0;
        });
        await holder`
          select pg_terminate_backend(pid) from pg_stat_activity
          where datname = current_database() and application_name = 'concord' and pid <> pg_backend_pid()`;
        expectUnavailable(await pushing);
        await holder`rollback`;
        holder.release();
        const [row] = await admin<{ n: number }[]>`select count(*)::int as n from records where id = 'killed-1'`;
        expect(row?.n).toBe(0);

        // postgres.js opens new connections: the same push, sent again, is applied once.
        const again = await pushRaw(keys.crm as string, "customers", killed);
        expect(again.status).toBe(200);
        expect(again.body).toMatchObject({ results: [{ status: "applied", version: 1 }] });
      } finally {
        await admin.end({ timeout: 5 });
      }
    } else {
      // PGlite: the embedded database is closed while requests are queued on it.
      const inFlight = Array.from({ length: 6 }, (_, i) =>
        i % 2 === 0 ? pushRaw(keys.crm as string, "customers", body(`queued-${i}`)) : call(configRoute.GET, { token: keys.crm as string }),
      );
      const closing = t.handle.close();
      const answers = await Promise.all(inFlight);
      await closing;
      for (const res of answers) {
        if (res.status === 200) continue;
        expectUnavailable(res);
      }
      expectUnavailable(await pushRaw(keys.crm as string, "customers", body("after-close")));
    }
  });

  it("is recognised through the causes drivers wrap it in", () => {
    const terminated = Object.assign(new Error("terminating connection due to administrator command"), { code: "57P01" });
    expect(isDatabaseUnavailable(new Error("Failed query: select 1", { cause: terminated }))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error("write CONNECTION_CLOSED"), { code: "CONNECTION_CLOSED" }))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" }))).toBe(true);
    expect(isDatabaseUnavailable(new Error("PGlite is closed"))).toBe(true);
    expect(isDatabaseUnavailable(Object.assign(new Error("duplicate key"), { code: "23505" }))).toBe(false);
    expect(isDatabaseUnavailable(Object.assign(new Error("unsupported Unicode escape sequence"), { code: "22P05" }))).toBe(false);
  });
});

async function waitFor(check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error("timed out waiting for the push to wait on the lock");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

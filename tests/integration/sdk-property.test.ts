import { and, eq, inArray } from "drizzle-orm";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryStore, SyncClient, type FetchLike } from "@/lib/client";
import { conflicts, recordHistory, records } from "@/lib/db/schema";
import type { PushResult } from "@/lib/sync/protocol";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { HUB_URL, inProcessFetch } from "@/tests/helpers/inprocess-fetch";
import { keysFor } from "@/tests/helpers/sync";

let t: TestHub;
let key: string;

beforeAll(async () => {
  t = await startTestHub();
  key = (await keysFor(t.hub.db, "crm")).crm as string;
});
afterAll(async () => {
  await t.close();
});

/** Keeps every push result the hub answered. */
function recording(results: PushResult[]): FetchLike {
  const inner = inProcessFetch();
  return async (input, init) => {
    const response = await inner(input, init);
    if (init?.method === "POST" && response.ok) results.push(...((await response.clone().json()) as { results: PushResult[] }).results);
    return response;
  };
}

const FIELDS = ["name", "email", "phone", "segment"] as const;
type Command =
  | { kind: "edit"; client: 0 | 1; record: number; field: (typeof FIELDS)[number]; value: string }
  | { kind: "sync"; client: 0 | 1 };

const command: fc.Arbitrary<Command> = fc.oneof(
  fc.record({
    kind: fc.constant("edit" as const),
    client: fc.constantFrom(0 as const, 1 as const),
    record: fc.integer({ min: 0, max: 2 }),
    field: fc.constantFrom(...FIELDS),
    value: fc.constantFrom("a", "b", "c"),
  }),
  fc.record({ kind: fc.constant("sync" as const), client: fc.constantFrom(0 as const, 1 as const) }),
);

let run = 0;

describe("two CRM clients editing the same customers in any interleaving", () => {
  it("converge to the hub's copy once both have synced, and lose nothing they pushed", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 14 }), async (commands) => {
        run += 1;
        const ids = [0, 1, 2].map((i) => `prop-${run}-${i}`);
        const results: PushResult[] = [];
        const clients = [0, 1].map(
          () => new SyncClient({ baseUrl: HUB_URL, apiKey: key, store: new MemoryStore(), fetch: recording(results) }),
        ) as [SyncClient, SyncClient];
        for (const id of ids) await clients[0].put("customers", id, { name: "start", region: "north" });
        await clients[0].sync();
        await clients[1].sync();

        for (const c of commands) {
          const client = clients[c.client];
          if (c.kind === "sync") await client.sync();
          else await client.patch("customers", ids[c.record] as string, { [c.field]: c.value });
        }
        for (let round = 0; round < 2; round++) for (const client of clients) await client.sync();

        const rows = await t.hub.db
          .select()
          .from(records)
          .where(and(eq(records.collection, "customers"), inArray(records.id, ids)));
        for (const row of rows) {
          for (const client of clients) expect(await client.get("customers", row.id)).toEqual(row.data);
        }
        for (const client of clients) expect(await client.status()).toMatchObject({ pendingChanges: 0, quarantined: 0 });

        // Nothing pushed is lost: every change that was not a no-op is a version or a conflict-log entry.
        const counted = results.filter((r) => r.status !== "unchanged").map((r) => r.changeId);
        expect(results.filter((r) => r.status === "forbidden" || r.status === "invalid")).toEqual([]);
        if (counted.length > 0) {
          const inHistory = await t.hub.db
            .select({ changeId: recordHistory.changeId })
            .from(recordHistory)
            .where(inArray(recordHistory.changeId, counted));
          const inLog = await t.hub.db.select({ changeId: conflicts.changeId }).from(conflicts).where(inArray(conflicts.changeId, counted));
          const kept = new Set([...inHistory, ...inLog].map((r) => r.changeId));
          expect(counted.filter((id) => !kept.has(id))).toEqual([]);
        }
      }),
      { numRuns: Number(process.env.SDK_PROPERTY_RUNS ?? 25) },
    );
  });
});

import { asc, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type DatabaseHandle } from "@/lib/db/client";
import { conflicts, recordHistory, records } from "@/lib/db/schema";
import type { FallbackStrategy, Strategy } from "@/lib/policy/document";
import { activatePolicy, getActivePolicy } from "@/lib/policy/store";
import type { PushResult } from "@/lib/sync/protocol";
import { pushChanges } from "@/lib/sync/push";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { changeId, keysFor, push } from "@/tests/helpers/sync";

/**
 * Many writers on few records, through the route handler and (on Postgres) a
 * second instance with its own connection pool. Afterwards every record's
 * versions run 1..n with no gap or duplicate, and every change that was not
 * refused is either in history or in the conflict log.
 */
let t: TestHub;
let keys: Record<string, string>;
let second: DatabaseHandle | undefined;

const SYSTEMS = ["a", "b", "c", "d"];
/** Collection, strategy, fallback. */
const COLLECTIONS: [string, Strategy, FallbackStrategy][] = [
  ["server_wins", "server-wins", "server-wins"],
  ["client_wins", "client-wins", "server-wins"],
  ["last_writer_wins", "last-writer-wins", "server-wins"],
  ["priority", "priority", "server-wins"],
  ["field_merge", "field-merge", "server-wins"],
  ["manual", "manual", "server-wins"],
  ["field_merge_manual", "field-merge", "manual"],
];
const RECORDS = ["r1", "r2", "r3", "r4", "r5"];

beforeAll(async () => {
  t = await startTestHub();
  // One collection per strategy, so the runs are independent.
  const yaml = `version: 1
systems: {a: {priority: 1}, b: {priority: 2}, c: {priority: 3}, d: {priority: 4}}
collections: {${COLLECTIONS.map(([name, s, fallback]) => `${name}: {conflict: ${s}, fallback: ${fallback}}`).join(", ")}}
rules: [${COLLECTIONS.map(([name]) => `{who: "*", collection: ${name}, read: all, write: all}`).join(", ")}]
`;
  await activatePolicy(t.hub.db, { yaml, actor: "test", source: "api" });
  keys = await keysFor(t.hub.db, ...SYSTEMS);
  if (t.handle.kind === "postgres" && t.handle.url) {
    second = await openDatabase({ databaseUrl: t.handle.url, maxConnections: 4 });
  }
});
afterAll(async () => {
  await second?.close();
  await t.close();
});

interface Sent {
  changeId: string;
  result: PushResult;
}

async function worker(collection: string, system: string, index: number, sent: Sent[]): Promise<void> {
  const known = new Map<string, number | null>();
  for (let step = 0; step < 12; step++) {
    const batch = RECORDS.filter(() => Math.random() < 0.4).slice(0, 3);
    if (batch.length === 0) batch.push(RECORDS[step % RECORDS.length] as string);
    const changes = batch.map((id) => ({
      changeId: changeId(`${system}${index}`),
      id,
      baseVersion: known.get(id) ?? null,
      data: { [`f${index % 3}`]: `${system}${index}-${step}`, shared: Math.floor(Math.random() * 3) },
      modifiedAt: new Date(Date.now() - Math.floor(Math.random() * 1000)).toISOString(),
    }));
    let results: PushResult[];
    if (second && index % 2 === 1) {
      // The other instance: same database, its own pool and policy cache.
      const active = await getActivePolicy(second.db);
      results = (await pushChanges({ ctx: { db: second.db, system, policy: active }, input: { collection, changes } })).results;
    } else {
      results = await push(keys[system] as string, collection, changes);
    }
    results.forEach((r, i) => {
      sent.push({ changeId: changes[i]!.changeId, result: r });
      if (r.version !== undefined) known.set(r.id, r.version);
    });
  }
}

describe.each(COLLECTIONS.map(([name]) => name))(
  "concurrent writers on collection %s",
  (collection) => {
    it("leave gapless versions and lose no change", async () => {
      const sent: Sent[] = [];
      await Promise.all(SYSTEMS.flatMap((system, s) => [0, 1].map((i) => worker(collection, system, s * 2 + i, sent))));
      expect(sent.some((s) => s.result.conflict), "writers collided").toBe(true);

      const history = await t.hub.db
        .select()
        .from(recordHistory)
        .where(eq(recordHistory.collection, collection))
        .orderBy(asc(recordHistory.id), asc(recordHistory.version));
      const current = await t.hub.db.select().from(records).where(eq(records.collection, collection));
      for (const row of current) {
        const versions = history.filter((h) => h.id === row.id).map((h) => h.version);
        expect(versions, `versions of ${row.id}`).toEqual(Array.from({ length: row.version }, (_, i) => i + 1));
        const seqs = history.filter((h) => h.id === row.id).map((h) => h.seq);
        expect(seqs, `seq grows with version for ${row.id}`).toEqual([...seqs].sort((x, y) => x - y));
      }

      const logged = await t.hub.db.select({ changeId: conflicts.changeId }).from(conflicts).where(eq(conflicts.collection, collection));
      const inHistory = new Set(history.map((h) => h.changeId));
      const inLog = new Set(logged.map((c) => c.changeId));
      for (const { changeId: id, result } of sent) {
        expect(["applied", "unchanged", "merged", "rejected", "pending"], `${id}: ${result.reason}`).toContain(result.status);
        if (result.status === "unchanged") continue;
        expect(inHistory.has(id) || inLog.has(id), `change ${id} (${result.status}) is kept`).toBe(true);
        if (result.conflict) expect(inLog.has(id)).toBe(true);
      }
      // Each accepted version is one change, never two copies of one.
      const ids = history.map((h) => h.changeId);
      expect(new Set(ids).size).toBe(ids.length);
    });
  },
);

import { asc, eq, sql } from "drizzle-orm";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, rowsOf, type Database, type DatabaseHandle } from "@/lib/db/client";
import { recordHistory, records } from "@/lib/db/schema";
import { activatePolicy, getActivePolicy } from "@/lib/policy/store";
import { pullChanges } from "@/lib/sync/changes";
import { comparePositions, type Position } from "@/lib/sync/checkpoint";
import type { ChangeEntry, PushChange } from "@/lib/sync/protocol";
import { pushChanges } from "@/lib/sync/push";
import { positionOf } from "@/tests/helpers/checkpoints";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";

/**
 * The delta feed under concurrent writers of one collection (README
 * "Concurrency"). Writers take no collection lock, so they commit out of
 * sequence order; the feed must still hand every reader every committed
 * change exactly once in its latest form, whatever the interleaving:
 *
 * - no duplicate: a reader never receives a record at a version it already
 *   had (versions it receives for a record strictly grow);
 * - no miss: once a pull ends a run (`hasMore: false`) with a checkpoint at
 *   position P, the reader holds every record at (at least) its latest
 *   version below P, checked against history after the pull, so a change
 *   that commits below P later is caught too; and at the end, when the
 *   writers are done, every reader's copy equals the server's records;
 * - versions are gapless per record, and a record's feed positions grow
 *   with its versions.
 *
 * On Postgres, writers and readers are spread over two instances (two
 * connection pools), so transactions really overlap; on PGlite (one
 * connection) the same property holds trivially and runs as a check.
 */
// FEED_RUNS=n runs more (or fewer) generated scenarios.
const NUM_RUNS = Number(process.env.FEED_RUNS ?? 12);
const COLLECTIONS = Array.from({ length: NUM_RUNS + 2 }, (_, i) => `feed_${i}`);

let t: TestHub;
let second: DatabaseHandle | undefined;
let runs = 0;

beforeAll(async () => {
  t = await startTestHub();
  const yaml = `version: 1
systems: {w0: {}, w1: {}, w2: {}, w3: {}, w4: {}, w5: {}, w6: {}, w7: {}, reader: {}}
collections: {${COLLECTIONS.map((c) => `${c}: {conflict: last-writer-wins}`).join(", ")}}
rules: [${COLLECTIONS.map((c) => `{who: "*", collection: ${c}, read: all, write: all}`).join(", ")}]
`;
  await activatePolicy(t.hub.db, { yaml, actor: "test", source: "api" });
  if (t.handle.kind === "postgres" && t.handle.url) second = await openDatabase({ databaseUrl: t.handle.url, maxConnections: 6 });
});
afterAll(async () => {
  await second?.close();
  await t.close();
});

/** Alternates instances on Postgres: the test hub's pool and a second one. */
function dbFor(i: number): Database {
  return second && i % 2 === 1 ? second.db : t.hub.db;
}

interface Scenario {
  /** Per writer: its pushes, each a list of (record index, delete?). */
  writers: { id: number; del: boolean }[][][];
  /** Page size of each reader. */
  readers: number[];
  pool: number;
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.integer({ min: 2, max: 10 }).chain((pool) =>
  fc.record({
    pool: fc.constant(pool),
    writers: fc.array(
      fc.array(fc.array(fc.record({ id: fc.integer({ min: 0, max: pool - 1 }), del: fc.integer({ min: 0, max: 5 }).map((n) => n === 0) }), { minLength: 1, maxLength: 3 }), {
        minLength: 2,
        maxLength: 8,
      }),
      { minLength: 2, maxLength: 8 },
    ),
    readers: fc.array(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 4 }),
  }),
);

/** Each record's latest version below a feed position, from history (what an end-of-run checkpoint promises). */
async function versionsBelow(collection: string, at: Position): Promise<Map<string, number>> {
  const rows = rowsOf<{ id: string; version: number }>(
    await t.hub.db.execute(sql`
      select id, max(version) as version from record_history
      where collection = ${collection} and (xid, seq) < (${at.xid.toString()}::xid8, ${at.seq}::bigint)
      group by id`),
  );
  return new Map(rows.map((r) => [r.id, Number(r.version)]));
}

async function runScenario(scenario: Scenario): Promise<void> {
  const collection = COLLECTIONS[runs++ % COLLECTIONS.length] as string;
  const policy = await getActivePolicy(t.hub.db);
  let writing = true;

  const pull = (i: number, since: string | undefined, limit: number) =>
    pullChanges({ ctx: { db: dbFor(i), system: "reader", policy }, input: { collection, since, limit } });

  // Every reader starts at the (empty) collection's checkpoint, so tombstones reach it too.
  const starts = await Promise.all(scenario.readers.map((_, i) => pull(i, undefined, 10)));

  async function writer(w: number, pushes: Scenario["writers"][number]): Promise<void> {
    const system = `w${w}`;
    const known = new Map<string, number>();
    for (const [p, batch] of pushes.entries()) {
      const changes: PushChange[] = [...new Map(batch.map((c) => [c.id, c])).values()].map((c, k) => {
        const id = `r${c.id}`;
        const base = known.get(id) ?? null;
        const change = { changeId: `${collection}-${system}-${p}-${k}`, id, baseVersion: base };
        return c.del && base !== null ? { ...change, deleted: true as const } : { ...change, data: { by: system, p, k } };
      });
      const { results } = await pushChanges({ ctx: { db: dbFor(w), system, policy }, input: { collection, changes } });
      for (const r of results) {
        expect(["applied", "unchanged", "merged", "rejected", "invalid"], `${r.id}: ${r.reason}`).toContain(r.status);
        if (r.version !== undefined) known.set(r.id, r.version);
      }
    }
  }

  async function reader(i: number, limit: number, since: string): Promise<Map<string, ChangeEntry>> {
    const copy = new Map<string, ChangeEntry>();
    for (let draining = false; ; ) {
      const done = !writing;
      const page = await pull(i, since, limit);
      for (const entry of page.changes) {
        expect("removed" in entry, "a reader of everything is never told to remove").toBe(false);
        const had = copy.get(entry.id);
        if (had && "version" in had && "version" in entry) {
          expect(entry.version, `reader ${i} got ${entry.id} at version ${entry.version} after version ${had.version}`).toBeGreaterThan(had.version);
        }
        copy.set(entry.id, entry);
      }
      since = page.checkpoint;
      if (!page.hasMore) {
        // Every version below the checkpoint is in the copy (or a later one is).
        const { at } = await positionOf(t.hub.db, "reader", collection, since);
        for (const [id, version] of await versionsBelow(collection, at)) {
          const held = copy.get(id);
          expect(held && "version" in held ? held.version : 0, `reader ${i} missed ${id}@${version}`).toBeGreaterThanOrEqual(version);
        }
        if (draining) return copy;
        if (done) draining = true;
      }
    }
  }

  const readers = scenario.readers.map((limit, i) => reader(i, limit, (starts[i] as { checkpoint: string }).checkpoint));
  await Promise.all(scenario.writers.map((pushes, w) => writer(w, pushes)));
  writing = false;
  const copies = await Promise.all(readers);

  const current = await t.hub.db.select().from(records).where(eq(records.collection, collection));
  const server = new Map(current.map((r) => [r.id, r.version]));
  for (const copy of copies) {
    expect(new Map([...copy].map(([id, e]) => [id, "version" in e ? e.version : -1]))).toEqual(server);
  }
  const history = await t.hub.db
    .select()
    .from(recordHistory)
    .where(eq(recordHistory.collection, collection))
    .orderBy(asc(recordHistory.id), asc(recordHistory.version));
  for (const row of current) {
    const versions = history.filter((h) => h.id === row.id);
    expect(
      versions.map((h) => h.version),
      `versions of ${row.id}`,
    ).toEqual(Array.from({ length: row.version }, (_, k) => k + 1));
    const positions = versions.map((h) => ({ xid: BigInt(h.xid), seq: h.seq }));
    for (let k = 1; k < positions.length; k++) {
      expect(comparePositions(positions[k - 1]!, positions[k]!), `positions of ${row.id} grow with its versions`).toBe(-1);
    }
  }
}

describe("the delta feed under concurrent writers of one collection", () => {
  it("gives every reader every committed change once, and versions stay gapless", { timeout: 600_000 }, async () => {
    await fc.assert(fc.asyncProperty(scenarioArb, runScenario), { numRuns: NUM_RUNS, endOnFailure: true });
  });
});

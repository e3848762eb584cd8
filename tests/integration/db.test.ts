import { sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rowsOf, type DatabaseHandle } from "@/lib/db/client";
import { records } from "@/lib/db/schema";
import { openTestDatabase } from "@/tests/helpers/db";

describe("database", () => {
  let handle: DatabaseHandle;
  beforeAll(async () => {
    handle = await openTestDatabase();
  });
  afterAll(async () => {
    await handle.close();
  });

  it("is migrated and stores a record with its jsonb data", async () => {
    await handle.db.insert(records).values({
      collection: "customers",
      id: "c1",
      data: { name: "Ann", nested: { n: 1 } },
      version: 1,
      digest: "d",
      seq: 1,
      updatedBy: "crm",
    });
    const rows = await handle.db.select().from(records);
    expect(rows).toHaveLength(1);
    expect(rows[0]?.data).toEqual({ name: "Ann", nested: { n: 1 } });
    expect(rows[0]?.seq).toBe(1);
  });

  it("runs sessions without parallel plans or JIT, planning for indexes in memory (worker start-up, compilation and disk sorts dwarf the hub's short queries)", async () => {
    const rows = rowsOf<{ v: string; jit: string; cost: string }>(
      await handle.db.execute(
        sql`select current_setting('max_parallel_workers_per_gather') as v, current_setting('jit') as jit, current_setting('random_page_cost') as cost`,
      ),
    );
    // PGlite is one process in this one, built without JIT: it has no workers to start and nothing to compile.
    if (handle.kind === "postgres") expect(rows[0]).toEqual({ v: "0", jit: "off", cost: "1.1" });
    // Both engines plan as if their indexes were in memory (a feed page reads an index in order instead of sorting on disk).
    expect(rows[0]?.cost).toBe("1.1");
  });

  it("hands out the global change sequence", async () => {
    const a = rowsOf<{ v: string | number }>(await handle.db.execute(sql`select nextval('change_seq') as v`));
    const b = rowsOf<{ v: string | number }>(await handle.db.execute(sql`select nextval('change_seq') as v`));
    expect(Number(b[0]?.v)).toBe(Number(a[0]?.v) + 1);
  });

  it("delivers NOTIFY to a listener", async () => {
    const got: string[] = [];
    const stop = await handle.listen("concord_test", (payload) => got.push(payload));
    await handle.db.execute(sql`select pg_notify('concord_test', 'hello')`);
    for (let i = 0; i < 50 && got.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    await stop();
    expect(got).toEqual(["hello"]);
  });
});

import fc from "fast-check";
import { and, eq, sql } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { DatabaseHandle } from "@/lib/db/client";
import { records, type JsonObject } from "@/lib/db/schema";
import { covers, fieldsFor, scopeSql, type CompiledPolicy } from "@/lib/policy/compile";
import { openTestDatabase } from "@/tests/helpers/db";
import { compileFile } from "@/tests/helpers/policy";

/**
 * The three meanings of the example policy agree on generated records: Casbin's
 * enforce() (the reference), the compiled in-process scope, and the compiled
 * SQL scope run on the real database.
 */
let handle: DatabaseHandle;
let policy: CompiledPolicy;
beforeAll(async () => {
  handle = await openTestDatabase();
  policy = await compileFile("policies/example.yaml");
});
afterAll(async () => {
  await handle.close();
});

const scalar = fc.oneof(
  fc.constantFrom("north", "east", "south", "web", "store", "new", "paid", "packed", "shipped", "cancelled", ""),
  fc.integer({ min: -5, max: 50 }),
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -100, max: 100 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant([]),
  fc.constant({ nested: "north" }),
);
const fieldNames = ["region", "source", "status", "total", "sku", "name", "credit_limit", "stock", "price"];
const record = fc.dictionary(fc.constantFrom(...fieldNames), scalar, { maxKeys: 6, noNullPrototype: true }) as fc.Arbitrary<JsonObject>;

describe("example policy: Casbin, compiled predicate and SQL agree", () => {
  it("on every system, collection and action for generated records", async () => {
    const systems = policy.systemNames();
    const collections = policy.collectionNames();
    await fc.assert(
      fc.asyncProperty(fc.array(record, { minLength: 1, maxLength: 30 }), async (batch) => {
        await handle.db.delete(records).where(sql`true`);
        const rows = collections.flatMap((collection) =>
          batch.map((data, i) => ({
            collection,
            id: `r${i}`,
            data,
            version: 1,
            digest: "-",
            seq: i + 1,
            updatedBy: "test",
          })),
        );
        await handle.db.insert(records).values(rows);
        for (const system of systems) {
          for (const collection of collections) {
            for (const action of ["read", "write"] as const) {
              const scope = policy.scope(system, collection, action);
              const selected = await handle.db
                .select({ id: records.id })
                .from(records)
                .where(and(eq(records.collection, collection), scopeSql(scope, sql`${records.data}`)));
              const bySql = new Set(selected.map((r) => r.id));
              batch.forEach((data, i) => {
                const reference = policy.decide(system, collection, action, data);
                const label = `${system} ${action} ${collection} ${JSON.stringify(data)}`;
                expect(covers(scope, data), `compiled: ${label}`).toBe(reference);
                expect(bySql.has(`r${i}`), `SQL: ${label}`).toBe(reference);
                const fields = fieldsFor(scope, data);
                for (const field of fieldNames) {
                  const compiled = fields === "*" || (fields?.has(field) ?? false);
                  expect(compiled, `field ${field}: ${label}`).toBe(
                    policy.decide(system, collection, action, data, field),
                  );
                }
              });
            }
          }
        }
      }),
      { numRuns: 25 },
    );
  });
});

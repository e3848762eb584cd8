/**
 * Policy engine rates on 100,000 generated records: Casbin's enforce() (the
 * reference), the compiled in-process predicate, and the compiled SQL scope run
 * on the database. Usage: npm run bench:policy [-- --records N]
 * Writes bench/results/policy-<engine>.json and prints a table.
 */
import { mkdir, writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { and, eq, sql } from "drizzle-orm";
import { openDatabase, rowsOf } from "@/lib/db/client";
import { records, type JsonObject } from "@/lib/db/schema";
import { covers, scopeSql } from "@/lib/policy/compile";
import { readFile } from "node:fs/promises";
import { compilePolicy } from "@/lib/policy";

const { values } = parseArgs({ options: { records: { type: "string", default: "100000" } } });
const N = Number(values.records);
if (!Number.isInteger(N) || N < 1) throw new Error("--records must be a positive whole number");

const regions = ["north", "east", "south", "west"];
const statuses = ["new", "paid", "packed", "shipped", "cancelled"];
function generate(i: number): JsonObject {
  return {
    name: `Customer ${i}`,
    region: regions[i % regions.length] as string,
    source: i % 3 === 0 ? "web" : "store",
    status: statuses[i % statuses.length] as string,
    total: (i % 200) - 10,
    credit_limit: i % 5000,
    email: `c${i}@example.com`,
  };
}

async function main(): Promise<void> {
  const policy = await compilePolicy(await readFile("policies/example.yaml", "utf8"));
  const data = Array.from({ length: N }, (_, i) => generate(i));
  // warehouse reads orders under "status in [...] and total > 0": the example's richest condition.
  const scope = policy.scope("warehouse", "orders", "read");

  const enforceN = N;
  let t = performance.now();
  let allowed = 0;
  for (let i = 0; i < enforceN; i++) if (policy.decide("warehouse", "orders", "read", data[i] as JsonObject)) allowed++;
  const enforceRate = enforceN / ((performance.now() - t) / 1000);

  t = performance.now();
  let compiledAllowed = 0;
  for (const d of data) if (covers(scope, d)) compiledAllowed++;
  const compiledRate = N / ((performance.now() - t) / 1000);

  const engine = process.env.DATABASE_URL ? "postgres" : "pglite";
  const handle = await openDatabase({ databaseUrl: process.env.DATABASE_URL, pgliteDir: "memory://" });
  const collection = `bench_${Date.now()}`;
  for (let i = 0; i < N; i += 1000) {
    await handle.db.insert(records).values(
      data.slice(i, i + 1000).map((d, j) => ({
        collection,
        id: `r${i + j}`,
        data: d,
        version: 1,
        digest: "-",
        seq: i + j + 1,
        updatedBy: "bench",
      })),
    );
  }
  t = performance.now();
  const counted = rowsOf<{ n: string | number }>(
    await handle.db.execute(
      sql`select count(*) as n from ${records} where ${and(eq(records.collection, collection), scopeSql(scope, sql`${records.data}`))}`,
    ),
  );
  const sqlMs = performance.now() - t;
  const sqlAllowed = Number(counted[0]?.n);
  await handle.db.delete(records).where(eq(records.collection, collection));
  await handle.close();

  if (sqlAllowed !== compiledAllowed) throw new Error(`SQL scope selected ${sqlAllowed}, compiled ${compiledAllowed}`);
  const expectedSample = data.slice(0, enforceN).filter((d) => covers(scope, d)).length;
  if (allowed !== expectedSample) throw new Error(`Casbin allowed ${allowed}, compiled ${expectedSample}`);

  const results = {
    engine,
    records: N,
    casbinEnforcePerSecond: Math.round(enforceRate),
    casbinSample: enforceN,
    compiledPredicatePerSecond: Math.round(compiledRate),
    sqlScopeMs: Math.round(sqlMs),
    sqlScopeRecordsPerSecond: Math.round(N / (sqlMs / 1000)),
    selected: sqlAllowed,
    measuredAt: new Date().toISOString(),
  };
  await mkdir("bench/results", { recursive: true });
  await writeFile(`bench/results/policy-${engine}.json`, `${JSON.stringify(results, null, 2)}\n`);
  console.table({
    "Casbin enforce()": `${results.casbinEnforcePerSecond.toLocaleString("en")} records/s (sample of ${enforceN.toLocaleString("en")})`,
    "compiled predicate": `${results.compiledPredicatePerSecond.toLocaleString("en")} records/s`,
    [`compiled SQL (${engine})`]: `${results.sqlScopeRecordsPerSecond.toLocaleString("en")} records/s (${results.sqlScopeMs} ms for ${N.toLocaleString("en")})`,
  });
  console.log(`written to bench/results/policy-${engine}.json; ${sqlAllowed} of ${N} records in scope`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

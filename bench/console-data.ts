/**
 * Console data pages at scale (issue 6, parts 5 and 6): the queries behind
 * /conflicts and /records on PostgreSQL with 1,000,000 records and 100,000
 * conflicts, in a throwaway database (created, seeded with generate_series,
 * dropped at the end).
 *
 *   npx tsx bench/console-data.ts            (BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test)
 *
 * Prints, per query, the best of 5 runs after a warm-up and the plan that
 * auto_explain reports for it (EXPLAIN ANALYZE of every statement it ran).
 */
import { sql } from "drizzle-orm";
import { drizzle } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { countPendingConflicts, listConflictLog, type ConflictFilters } from "../lib/console/conflicts-list";
import { listRecords } from "../lib/console/records-list";
import { openDatabase, type Database } from "../lib/db/client";
import * as schema from "../lib/db/schema";
import { createDatabase } from "../scripts/fresh-database";

const SERVER = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const RECORDS = Number(process.env.BENCH_RECORDS ?? 1_000_000);
const CONFLICTS = Number(process.env.BENCH_CONFLICTS ?? 100_000);

async function main() {
  const fresh = await createDatabase(SERVER, "concord_bench_console_data_");
  const handle = await openDatabase({ databaseUrl: fresh.url, maxConnections: 2 });
  const notices: string[] = [];
  const explainClient = postgres(fresh.url, {
    max: 1,
    onnotice: (n) => notices.push(String(n.message)),
    connection: { max_parallel_workers_per_gather: "0" },
  });
  try {
    const db = handle.db;
    let t = performance.now();
    await db.execute(
      sql.raw(`
      insert into records (collection, id, data, version, digest, deleted, seq, updated_by)
      select 'customers', 'c' || lpad(g::text, 7, '0'),
             jsonb_build_object(
               'name', 'Customer ' || g,
               'email', 'user-' || g || '@example.com',
               'status', (array['active','active','active','inactive','blocked'])[1 + g % 5],
               'segment', 's-' || (g % 100),
               'region', (array['north','east','south','west'])[1 + g % 4],
               'address', jsonb_build_object('city', 'city-' || (g % 1000), 'zip', lpad((g % 9999)::text, 4, '0')),
               'n', g),
             1, md5(g::text), g % 997 = 0, nextval('change_seq'), (array['crm','billing','webshop'])[1 + g % 3]
      from generate_series(1, ${RECORDS}) g`),
    );
    console.log(`seeded ${RECORDS} records in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
    await db.execute(
      sql.raw(`
      insert into conflicts (collection, record_id, client_system, server_system, change_id, base_version,
                             server_version, client_change, strategy, outcome, created_at)
      select (array['customers','orders','products','tickets','bulk_e'])[1 + g % 5],
             'c' || lpad((g % 50000)::text, 7, '0'),
             case when g % 10000 = 7 then 'rare_client' else (array['crm','billing','warehouse','webshop'])[1 + g % 4] end,
             case when g % 10000 = 3 then 'rare_server' else (array['billing','warehouse','webshop','crm'])[1 + g % 4] end,
             'bulk-' || g, 1, 2, '{}'::jsonb,
             (array['server-wins','manual','field-merge','priority'])[1 + g % 4],
             case when g % 100 = 1 then 'pending' when g % 100 = 2 then 'resolved'
                  else (array['server-won','client-won','merged'])[1 + g % 3] end,
             timestamptz '2026-01-01T00:00:00Z' + g * interval '1 minute'
      from generate_series(1, ${CONFLICTS}) g`),
    );
    console.log(`seeded ${CONFLICTS} conflicts in ${((performance.now() - t) / 1000).toFixed(1)} s`);
    t = performance.now();
    await db.execute(sql.raw("vacuum analyze records"));
    await db.execute(sql.raw("vacuum analyze conflicts"));
    console.log(`vacuum analyze in ${((performance.now() - t) / 1000).toFixed(1)} s`);

    for (const s of [
      "load 'auto_explain'",
      "set auto_explain.log_min_duration = 0",
      "set auto_explain.log_analyze = on",
      "set auto_explain.log_buffers = on",
      "set auto_explain.log_nested_statements = on",
      "set auto_explain.log_level = 'notice'",
      "set client_min_messages = 'notice'",
    ]) {
      await explainClient.unsafe(s);
    }
    const explainDb = drizzle({ client: explainClient, schema }) as unknown as Database;

    const results: { name: string; ms: number; rows: number; plan: string; how?: string }[] = [];
    async function measure(name: string, run: (db: Database) => Promise<{ rows: number; how?: string }>) {
      await run(db); // warm
      let best = Infinity;
      let out = { rows: 0 } as { rows: number; how?: string };
      for (let i = 0; i < 5; i++) {
        const start = performance.now();
        out = await run(db);
        best = Math.min(best, performance.now() - start);
      }
      notices.length = 0;
      await run(explainDb);
      results.push({ name, ms: best, rows: out.rows, how: out.how, plan: notices.join("\n") });
    }

    const day = (iso: string) => new Date(iso);
    const conflictQueries: [string, Partial<ConflictFilters>][] = [
      ["conflicts: no filter", {}],
      ["conflicts: pending", { status: "pending" }],
      ["conflicts: resolved", { status: "resolved" }],
      ["conflicts: settled", { status: "settled" }],
      ["conflicts: one collection", { collection: "tickets" }],
      ["conflicts: a busy system (either side)", { system: "warehouse" }],
      ["conflicts: a rare system (client side)", { system: "rare_client" }],
      ["conflicts: a rare system (server side)", { system: "rare_server" }],
      ["conflicts: a strategy", { strategy: "priority" }],
      ["conflicts: one day", { from: day("2026-02-01T00:00:00Z"), to: day("2026-02-02T00:00:00Z") }],
      ["conflicts: one recent day", { from: day("2026-03-10T00:00:00Z"), to: day("2026-03-11T00:00:00Z") }],
      ["conflicts: 3 weeks far back (30,000 entries)", { from: day("2026-01-01T00:00:00Z"), to: day("2026-01-22T00:00:00Z") }],
      ["conflicts: since a date (open range)", { from: day("2026-02-15T00:00:00Z") }],
      ["conflicts: older page deep in the log", { before: 1000 }],
      ["conflicts: newer page deep in the log", { after: 1000 }],
      ["conflicts: pending + collection + week", { status: "pending", collection: "orders", from: day("2026-01-10T00:00:00Z"), to: day("2026-01-17T00:00:00Z") }],
      ["conflicts: pending + system + strategy", { status: "pending", system: "crm", strategy: "field-merge" }],
    ];
    for (const [name, f] of conflictQueries) {
      await measure(name, async (d) => ({ rows: (await listConflictLog({ db: d }, f)).rows.length }));
    }
    await measure("conflicts: count pending", async (d) => ({ rows: await countPendingConflicts({ db: d }) }));

    const recordQueries: [string, Parameters<typeof listRecords>[1]][] = [
      ["records: first page", { collection: "customers" }],
      ["records: page deep in the collection", { collection: "customers", after: "c0900000" }],
      ["records: id prefix", { collection: "customers", prefix: "c00123" }],
      ["records: status = active (60%)", { collection: "customers", field: "status", value: "active" }],
      ["records: status = blocked, deep page", { collection: "customers", field: "status", value: "blocked", after: "c0950000" }],
      ["records: segment = s-5 (1%)", { collection: "customers", field: "segment", value: "s-5" }],
      ["records: address.city = city-17 (0.1%)", { collection: "customers", field: "address.city", value: "city-17" }],
      ["records: email = one customer", { collection: "customers", field: "email", value: "user-777777@example.com" }],
      ["records: status = nope (no match)", { collection: "customers", field: "status", value: "nope" }],
      ["records: n = 123456 (number)", { collection: "customers", field: "n", value: "123456" }],
      ["records: prefix + city", { collection: "customers", prefix: "c01", field: "address.city", value: "city-17" }],
    ];
    for (const [name, input] of recordQueries) {
      await measure(name, async (d) => {
        const page = await listRecords({ db: d }, input);
        return { rows: page.rows.length, how: page.plan };
      });
    }

    console.log("\n| query | rows | ms (best of 5) | answered by |\n| --- | ---: | ---: | --- |");
    for (const r of results) console.log(`| ${r.name} | ${r.rows} | ${r.ms.toFixed(1)} | ${r.how ?? ""} |`);
    console.log("\nPlans (auto_explain, EXPLAIN ANALYZE):");
    for (const r of results) console.log(`\n### ${r.name}\n${r.plan}`);
  } finally {
    await explainClient.end({ timeout: 5 });
    await handle.close();
    await fresh.drop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

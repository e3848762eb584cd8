/**
 * Console query benchmark (issue 6): the Overview, Systems and Audit log
 * queries on PostgreSQL with 1,000,000 records, 100,000 conflicts (1 in 10
 * pending), a day of per-minute activity for every system and 100,000 audit
 * rows, in a throwaway database that is dropped afterwards.
 *
 *   npx tsx bench/console.ts                  1,000,000 records
 *   npx tsx bench/console.ts --records 100000
 *
 * BENCH_POSTGRES_URL names the server (default postgres://postgres@127.0.0.1:5432/test).
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import postgres from "postgres";
import { listAudit } from "../lib/console/audit";
import { activityCharts, countPendingConflicts, getOverview, listSystemStatus } from "../lib/console/overview";
import { getSystemDetail, listSystems } from "../lib/console/systems";
import { openDatabase } from "../lib/db/client";
import { activatePolicy, getActivePolicy } from "../lib/policy/store";
import { createDatabase } from "../scripts/fresh-database";

const { values } = parseArgs({
  options: {
    records: { type: "string", default: "1000000" },
    conflicts: { type: "string", default: "100000" },
    rounds: { type: "string", default: "10" },
  },
});
const RECORDS = Number(values.records);
const CONFLICTS = Number(values.conflicts);
const ROUNDS = Number(values.rounds);
const SERVER_URL = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
async function main() {
  const fresh = await createDatabase(SERVER_URL, "concord_bench_console_");
  const handle = await openDatabase({ databaseUrl: fresh.url, maxConnections: 4 });
  const raw = postgres(fresh.url, { max: 1, onnotice: () => undefined });
  try {
    const { db } = handle;
    await activatePolicy(db, { yaml: await readFile("policies/example.yaml", "utf8"), actor: "bench", source: "api" });
    const t0 = performance.now();
    // Records spread over the three collections, in seq order.
    await raw.unsafe(`
      insert into records (collection, id, data, version, digest, deleted, seq, updated_by)
      select (array['customers','orders','products'])[1 + g % 3], 'r' || g,
             jsonb_build_object('name', 'Customer ' || g, 'region', (array['north','east','south','west'])[1 + g % 4], 'source', 'web', 'status', 'new', 'sku', 's' || g),
             1, md5(g::text), false, nextval('change_seq'), 'crm'
      from generate_series(1, ${RECORDS}) as g`);
    await raw.unsafe(`
      insert into conflicts (collection, record_id, client_system, server_system, change_id, server_version, client_change, strategy, outcome, created_at)
      select 'customers', 'r' || (g * 3), 'billing', 'crm', 'ch' || g, 1, '{}'::jsonb, 'field-merge',
             (array['merged','server-won','client-won','merged','server-won','client-won','merged','server-won','client-won','pending'])[1 + g % 10],
             now() - (g % 1440) * interval '1 minute'
      from generate_series(1, ${CONFLICTS}) as g`);
    // A busy day: every system, every minute, eight kinds.
    await raw.unsafe(`
      insert into activity (bucket, system, kind, count)
      select date_trunc('minute', now()) - m * interval '1 minute', s, k, 1 + (m % 17)
      from generate_series(0, 1439) as m,
           unnest(array['crm','billing','warehouse','webshop']) as s,
           unnest(array['push.applied','push.unchanged','push.merged','pull.requests','pull.records','conflict.merged','conflict.server-won','error']) as k`);
    await raw.unsafe(`
      insert into audit_log (actor, action, target, at)
      select (array['alice','bob','admin-token','victor'])[1 + g % 4],
             (array['sign-in','key.issue','key.revoke','policy.activate','conflict.resolve'])[1 + g % 5], 'system:crm',
             now() - g * interval '1 second'
      from generate_series(1, 100000) as g`);
    // Cursors: the CRM is fully caught up, billing is far behind, the others never pulled.
    await raw.unsafe(`
      insert into system_cursors (system, collection, seq, at)
      select 'crm', c, (select max(seq) from records), now() from unnest(array['customers','orders','products']) as c
      union all
      select 'billing', c, ${Math.floor(RECORDS / 2)}, now() from unnest(array['customers','orders','products']) as c`);
    await raw.unsafe("vacuum analyze");
    console.log(`seeded ${RECORDS.toLocaleString("en-US")} records, ${CONFLICTS.toLocaleString("en-US")} conflicts in ${Math.round(performance.now() - t0)} ms`);

    const policy = await getActivePolicy(db);
    const firstAudit = await listAudit(db, {});
    const deep = await listAudit(db, { before: 500 });
    const cases: [string, () => Promise<unknown>][] = [
      ["overview (getOverview)", () => getOverview(db, policy)],
      ["  of which: systems, last sync, lag", () => listSystemStatus(db, policy)],
      ["  of which: activity charts (24 h, 1 h)", () => activityCharts(db)],
      ["  of which: pending conflicts count", () => countPendingConflicts(db)],
      ["systems list (listSystems)", () => listSystems(db, policy)],
      ["system page, billing (getSystemDetail)", () => getSystemDetail(db, policy, "billing")],
      ["system page, warehouse never pulled", () => getSystemDetail(db, policy, "warehouse")],
      ["audit, first page", () => listAudit(db, {})],
      ["audit, page near the end", () => listAudit(db, { before: deep.entries[0]?.id ?? 500 })],
      ["audit, action=key.issue", () => listAudit(db, { action: "key.issue", before: firstAudit.older ?? undefined })],
      ["audit, actor=bob action=policy.activate", () => listAudit(db, { actor: "bob", action: "policy.activate" })],
    ];
    const results: Record<string, { medianMs: number; maxMs: number }> = {};
    for (const [name, run] of cases) {
      await run();
      const times: number[] = [];
      for (let i = 0; i < ROUNDS; i++) {
        const start = performance.now();
        await run();
        times.push(performance.now() - start);
      }
      times.sort((a, b) => a - b);
      results[name] = { medianMs: round(times[Math.floor(times.length / 2)] ?? 0), maxMs: round(times.at(-1) ?? 0) };
      console.log(`${name.padEnd(45)} median ${results[name].medianMs} ms, max ${results[name].maxMs} ms`);
    }
  } finally {
    await raw.end({ timeout: 5 });
    await handle.close();
    await fresh.drop();
  }
}

const round = (n: number) => Math.round(n * 10) / 10;

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

/**
 * Connector benchmark (issue 13): `concord connect` on a business system's
 * table of `--rows` rows (default 100,000), against a real hub that this
 * script starts (scripts/hub-process.ts, PostgreSQL), for the system's
 * database on PostgreSQL and on SQLite (`--db postgres|sqlite|both`):
 *
 *  1. initial sync: every row pushed to the hub (rows/s);
 *  2. scan: 100 rows changed in the table, one cycle finds and pushes them (ms);
 *  3. trigger: capture triggers installed, the connector running; 100 rows
 *     changed in one transaction; the time from its commit until the hub has
 *     answered the push of all 100 (ms, median of `--repeats`).
 *
 *   npm run bench:connect
 *   npm run bench:connect -- --db sqlite --rows 20000
 *
 * Writes bench/connect-results.json and prints a table.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import type { FetchLike } from "../lib/client/transport";
import { parseConnectConfig } from "../lib/connect/config";
import { openConnector, openDriver } from "../lib/connect/connector";
import { startHubProcess } from "../scripts/hub-process";
import { createDatabase } from "../scripts/fresh-database";
import { BENCH_POLICY, positive } from "./support";

const { values } = parseArgs({
  options: {
    db: { type: "string", default: "both" },
    rows: { type: "string", default: "100000" },
    repeats: { type: "string", default: "5" },
    port: { type: "string", default: "3219" },
  },
});
const DBS = values.db === "both" ? ["postgres", "sqlite"] : [values.db ?? ""];
for (const d of DBS) if (d !== "postgres" && d !== "sqlite") throw new Error("--db must be postgres, sqlite or both");
const ROWS = positive(values.rows, "--rows");
const REPEATS = positive(values.repeats, "--repeats");
const SERVER_URL = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const ADMIN = "bench-admin-token-0123456789";

const DDL = {
  postgres: `create table items (id integer primary key, name text not null, email text, region text, credit numeric(12,2), active boolean, joined date)`,
  sqlite: `create table items (id integer primary key, name text not null, email text, region text, credit numeric, active boolean, joined date)`,
};

interface Result {
  db: string;
  rows: number;
  initialRowsPerSecond: number;
  scanCycleMs: number;
  triggerCommitToHubMs: number;
  triggerSamplesMs: number[];
}

async function main() {
  const hub = await startHubProcess({ port: positive(values.port, "--port"), engine: "postgres", serverUrl: SERVER_URL, adminToken: ADMIN, databasePrefix: "concord_bench_connect_" });
  const results: Result[] = [];
  try {
    const admin = (method: string, url: string) => fetch(`${hub.base}${url}`, { method, headers: { authorization: `Bearer ${ADMIN}` } });
    const activated = await fetch(`${hub.base}/api/admin/policy`, { method: "PUT", headers: { authorization: `Bearer ${ADMIN}` }, body: BENCH_POLICY });
    if (!activated.ok) throw new Error(`policy: ${activated.status} ${await activated.text()}`);
    for (const db of DBS) {
      const key = ((await (await admin("POST", "/api/admin/systems/writer/keys")).json()) as { key: string }).key;
      results.push(await run(db as "postgres" | "sqlite", hub.base, key));
    }
  } finally {
    await hub.stop();
  }
  await writeFile(path.join("bench", "connect-results.json"), `${JSON.stringify({ at: new Date().toISOString(), results }, null, 2)}\n`);
  console.log(`\nConcord connector benchmark: a table of ${ROWS.toLocaleString("en")} rows, hub on PostgreSQL (same machine)\n`);
  console.table(
    Object.fromEntries(
      results.map((r) => [
        r.db,
        {
          "initial sync (rows/s)": Math.round(r.initialRowsPerSecond).toLocaleString("en"),
          "scan: 100 changes, one cycle (ms)": r.scanCycleMs.toFixed(0),
          "trigger: commit → hub, 100 changes (ms, median)": r.triggerCommitToHubMs.toFixed(1),
        },
      ]),
    ),
  );
  console.log("written to bench/connect-results.json");
}

async function run(db: "postgres" | "sqlite", hubBase: string, key: string): Promise<Result> {
  const dir = await mkdtemp(path.join(tmpdir(), "concord-bench-connect-"));
  let drop = async () => undefined as void;
  let database: string;
  if (db === "postgres") {
    const fresh = await createDatabase(SERVER_URL, "concord_bench_system_");
    database = fresh.url;
    drop = fresh.drop;
  } else {
    const file = path.join(dir, "system.db");
    const Database = (await import("better-sqlite3")).default;
    new Database(file).close();
    database = `sqlite:${file}`;
  }
  const file = path.join(dir, "connect.yaml");
  const text = `hub: ${hubBase}\nkey: ${key}\ndatabase: ${database}\ncollections: {items: {table: items}}\n`;
  let config = parseConnectConfig(text, file);
  const sql = await openDriver(config);
  try {
    console.log(`\n== ${db}: ${ROWS.toLocaleString("en")} rows`);
    await sql.all(DDL[db]);
    for (let i = 0; i < ROWS; i += 500) {
      const n = Math.min(500, ROWS - i);
      const params: unknown[] = [];
      for (let j = i; j < i + n; j++) {
        params.push(j, `Customer ${j}`, `c${j}@example.com`, ["north", "east", "south", "west"][j % 4], (j % 50) * 100 + 0.5, db === "sqlite" ? j % 2 : j % 2 === 1, "2026-01-15");
      }
      const insert = `insert into items (id, name, email, region, credit, active, joined) values ${Array.from({ length: n }, () => "(?, ?, ?, ?, ?, ?, ?)").join(", ")}`;
      await sql.transaction(async (tx) => void (await tx.all(insert, params)));
    }

    // 1. Initial sync.
    let connector = await openConnector(config);
    let started = performance.now();
    const first = await connector.once();
    const initialMs = performance.now() - started;
    if (first.report.pushed !== ROWS) throw new Error(`initial sync pushed ${first.report.pushed} of ${ROWS}`);
    console.log(`   initial sync: ${ROWS} rows in ${(initialMs / 1000).toFixed(1)} s`);

    // 2. Scan: 100 changed rows, one cycle.
    // One statement, its own transaction, as the business system would write (not through the connector's transactions, whose writes the triggers skip).
    const touch = async (round: number) =>
      sql.all(`update items set region = ? where id % ${Math.max(1, Math.floor(ROWS / 100))} = 0 and id < ?`, [`r${round}`, Math.floor(ROWS / 100) * 100]);
    await touch(0);
    started = performance.now();
    const scan = await connector.once();
    const scanMs = performance.now() - started;
    if (scan.report.pushed !== 100) throw new Error(`the scan cycle pushed ${scan.report.pushed}, not 100`);
    console.log(`   scan: 100 changes found and pushed in ${scanMs.toFixed(0)} ms`);
    await connector.close();

    // 3. Trigger: time from commit until the hub answered the push of the 100 changes.
    const tables = [{ collection: "items", schema: null, table: "items", idColumn: "id" }];
    await sql.installCapture(tables);
    config = { ...config, capture: "trigger" };
    let answered: (() => void) | null = null;
    const watching: FetchLike = async (input, init) => {
      const response = await fetch(input, init);
      if (String(input).endsWith("/push") && response.ok) answered?.();
      return response;
    };
    connector = await openConnector(config, { fetch: watching });
    await connector.once(); // the first full look
    connector.client.start();
    const stop = await connector.watchTables(() => connector.client.syncSoon());
    await new Promise((r) => setTimeout(r, 1000));
    const samples: number[] = [];
    for (let round = 1; round <= REPEATS; round++) {
      const done = new Promise<void>((resolve) => (answered = resolve));
      await touch(round);
      const committed = performance.now();
      await done;
      samples.push(performance.now() - committed);
      await new Promise((r) => setTimeout(r, 300));
    }
    await stop();
    await connector.close();
    samples.sort((a, b) => a - b);
    const median = samples[Math.floor(samples.length / 2)] as number;
    console.log(`   trigger: commit → hub ${samples.map((s) => s.toFixed(1)).join(", ")} ms (median ${median.toFixed(1)})`);
    return { db, rows: ROWS, initialRowsPerSecond: ROWS / (initialMs / 1000), scanCycleMs: scanMs, triggerCommitToHubMs: median, triggerSamplesMs: samples };
  } finally {
    await sql.close();
    await drop();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();

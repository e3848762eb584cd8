/**
 * SDK benchmark (issue 5): the client SDK's push and pull rates against a real
 * hub that this script starts (`next start`; Postgres when DATABASE_URL is
 * set, else PGlite), for MemoryStore and PgliteStore (durable, in a temporary
 * folder).
 *
 *   push: the host program writes N new records (putMany, or put() one by one
 *         with --writes each), then sync() until all are pushed
 *   pull: a fresh client of the same system syncs the N records down
 *
 *   npm run bench:sdk                                 100,000 records, both stores
 *   npm run bench:sdk -- --records 20000 --stores pglite --writes each
 *
 * Writes bench/sdk-results.json and prints a table. Records are about 200 bytes.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { MemoryStore, SyncClient, type LocalStore } from "../lib/client";
import { PgliteStore } from "../lib/client/pglite-store";
import { canonicalJson } from "../lib/sync/canonical";
import type { JsonObject } from "../lib/sync/protocol";
import { startHubProcess, type HubProcess } from "../scripts/hub-process";
import { waitForAutovacuum } from "./support";

const { values } = parseArgs({
  options: {
    records: { type: "string", default: "100000" },
    stores: { type: "string", default: "memory,pglite" },
    writes: { type: "string", default: "many" },
    port: { type: "string", default: "3219" },
    "reuse-build": { type: "boolean", default: false },
    out: { type: "string", default: "bench/sdk-results.json" },
  },
});
const N = Number(values.records);
if (!Number.isInteger(N) || N < 1) throw new Error("--records must be a positive whole number");
const STORES = (values.stores ?? "").split(",").filter(Boolean);
for (const s of STORES) if (s !== "memory" && s !== "pglite") throw new Error("--stores is a list of memory and pglite");
if (values.writes !== "many" && values.writes !== "each") throw new Error("--writes must be many (putMany) or each (put one by one)");
const PORT = Number(values.port);

const POLICY = `version: 1
systems: {bench_memory: {name: Memory store}, bench_pglite: {name: PGlite store}}
collections: {items_memory: {conflict: server-wins}, items_pglite: {conflict: server-wins}}
rules:
  - {who: bench_memory, collection: items_memory, read: all, write: all}
  - {who: bench_pglite, collection: items_pglite, read: all, write: all}
sync:
  default: {interval: 60s, realtime: false}
`;

function item(i: number): JsonObject {
  // About 200 bytes as canonical JSON (the same records as bench/sync.ts).
  return {
    name: `Customer ${String(i).padStart(7, "0")}`,
    email: `customer${i}@example.com`,
    region: ["north", "east", "south", "west"][i % 4] as string,
    segment: i % 3 === 0 ? "enterprise" : "smb",
    credit_limit: (i % 50) * 1000,
    rev: 0,
    address: { street: `${i % 997} Main Street`, city: "Springfield", zip: String(10000 + (i % 89999)) },
  };
}

async function admin<T>(hub: HubProcess, method: string, route: string, body?: string): Promise<T> {
  const res = await fetch(`${hub.base}/api/admin${route}`, { method, headers: { authorization: `Bearer ${hub.adminToken}` }, body });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} /api/admin${route} answered ${res.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text) as T;
}

interface Opened {
  store: LocalStore;
  cleanup(): Promise<void>;
}

async function openStore(kind: string): Promise<Opened> {
  if (kind === "memory") return { store: new MemoryStore(), cleanup: async () => undefined };
  const dir = await mkdtemp(path.join(tmpdir(), "concord-bench-sdk-"));
  const store = await PgliteStore.open(path.join(dir, "store"));
  return {
    store,
    async cleanup() {
      await store.close().catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

const seconds = (ms: number) => +(ms / 1000).toFixed(2);
const rate = (ms: number) => Math.round(N / (ms / 1000));

async function benchStore(hub: HubProcess, kind: string) {
  const system = `bench_${kind}`;
  const collection = `items_${kind}`;
  const { key } = await admin<{ key: string }>(hub, "POST", `/systems/${system}/keys`);
  await waitForAutovacuum(hub.databaseUrl);

  console.log(`\n== ${kind}: push ${N.toLocaleString("en")} records (${values.writes === "many" ? "putMany" : "put one by one"}, then sync)`);
  const writer = await openStore(kind);
  let writeMs: number;
  let syncMs: number;
  try {
    const client = new SyncClient({ baseUrl: hub.base, apiKey: key, store: writer.store });
    await client.init();
    const records = Array.from({ length: N }, (_, i) => ({ id: `item-${String(i).padStart(8, "0")}`, data: item(i) }));
    let t = performance.now();
    if (values.writes === "many") await client.putMany(collection, records);
    else for (const r of records) await client.put(collection, r.id, r.data);
    writeMs = performance.now() - t;
    t = performance.now();
    let pushed = 0;
    // sync() pushes everything in one go; loop only in case a pass was interrupted.
    while (pushed < N) {
      const report = await client.sync();
      if (report.pushed === 0) throw new Error(`sync pushed nothing with ${N - pushed} records left`);
      if (report.quarantined > 0) throw new Error(`${report.quarantined} changes quarantined`);
      pushed += report.pushed;
    }
    syncMs = performance.now() - t;
    const status = await client.status();
    if (status.pendingChanges !== 0) throw new Error(`${status.pendingChanges} changes still pending`);
  } finally {
    await writer.cleanup();
  }
  console.log(`   host writes ${seconds(writeMs)} s, sync ${seconds(syncMs)} s`);

  await waitForAutovacuum(hub.databaseUrl);
  console.log(`== ${kind}: pull ${N.toLocaleString("en")} records into a fresh client`);
  const reader = await openStore(kind);
  let pullMs: number;
  try {
    const client = new SyncClient({ baseUrl: hub.base, apiKey: key, store: reader.store });
    const t = performance.now();
    const report = await client.sync();
    pullMs = performance.now() - t;
    if (report.pulled !== N) throw new Error(`pulled ${report.pulled} records, expected ${N}`);
    const sample = await client.get(collection, "item-00000042");
    if (canonicalJson(sample) !== canonicalJson(item(42))) throw new Error("a pulled record differs from what was pushed");
  } finally {
    await reader.cleanup();
  }
  console.log(`   ${seconds(pullMs)} s`);

  return {
    store: kind,
    records: N,
    writes: values.writes === "many" ? "putMany" : "put",
    push: { recordsPerSecond: rate(writeMs + syncMs), seconds: seconds(writeMs + syncMs), hostWriteSeconds: seconds(writeMs), syncSeconds: seconds(syncMs) },
    pull: { recordsPerSecond: rate(pullMs), seconds: seconds(pullMs) },
  };
}

async function main() {
  const hub = await startHubProcess({ port: PORT, reuseBuild: values["reuse-build"] });
  console.log(`hub on ${hub.base} (${hub.engine})`);
  const results = [];
  try {
    await admin(hub, "PUT", "/policy", POLICY);
    for (const kind of STORES) results.push(await benchStore(hub, kind));
  } finally {
    await hub.stop();
  }
  const out = { measuredAt: new Date().toISOString(), machine: "2 cores", hub: hub.engine, records: N, recordBytes: 200, results };
  await writeFile(values.out ?? "bench/sdk-results.json", `${JSON.stringify(out, null, 2)}\n`);
  console.log(`\nConcord SDK benchmark: ${N.toLocaleString("en")} records of ~200 bytes, hub on ${hub.engine}\n`);
  const rows: Record<string, Record<string, string>> = {};
  for (const r of results) {
    rows[r.store] = {
      "push (rec/s)": r.push.recordsPerSecond.toLocaleString("en"),
      "push (s)": `${r.push.seconds} (writes ${r.push.hostWriteSeconds} + sync ${r.push.syncSeconds})`,
      "pull (rec/s)": r.pull.recordsPerSecond.toLocaleString("en"),
      "pull (s)": String(r.pull.seconds),
    };
  }
  console.table(rows);
  console.log(`written to ${values.out}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

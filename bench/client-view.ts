/**
 * What one fetch client sees of a no-op pull and of a 100-edit round (issue
 * 12's question: "a no-op pull takes ~15 ms p50 from outside, bench/sync.ts
 * says ~5 ms; a round through a byte-counting proxy takes ~80 ms, the bench
 * says 27-36 ms"). Starts a fresh hub like bench/sync.ts (scripts/hub-process.ts)
 * with 1,000 records and measures, with Node's fetch (keep-alive):
 *
 *  1. the first 50 no-op pulls of the fresh hub from a new client process (the
 *     outside client's view), 50 more from another new process;
 *  2. no-op pulls from this process as the hub warms up (calls 1-1000);
 *  3. warm: default limit against bench/sync.ts's limit=10000, and /api/health;
 *  4. 100-edit rounds (push, then another system pulls them) and no-op pulls
 *     direct, through a byte-counting TCP proxy written the plain node:net
 *     way, and through the same proxy with setNoDelay(true) — rotated in
 *     blocks of 10 so that machine noise hits all three alike;
 *
 * and how busy the machine was meanwhile (Linux /proc/stat): the hub, the
 * client and PGlite share 2 cores, so anything else running shows in every
 * figure.
 *
 *   npx tsx bench/client-view.ts                  PGlite
 *   npx tsx bench/client-view.ts --engine postgres
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import net from "node:net";
import { parseArgs } from "node:util";
import { startHubProcess, type Engine } from "../scripts/hub-process";
import { benchItem, BENCH_POLICY } from "./support";

const { values } = parseArgs({
  options: {
    engine: { type: "string", default: "pglite" },
    port: { type: "string", default: "3247" },
  },
});
if (values.engine !== "pglite" && values.engine !== "postgres") throw new Error("--engine must be pglite or postgres");
const ENGINE: Engine = values.engine;
const PORT = Number(values.port);
const SERVER_URL = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const ADMIN = "bench-client-view-token-0123456789";

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
}

function show(label: string, xs: number[]): void {
  console.log(`${label.padEnd(56)} n=${String(xs.length).padStart(4)}  p50 ${percentile(xs, 50).toFixed(1).padStart(6)} ms  p90 ${percentile(xs, 90).toFixed(1).padStart(6)} ms`);
}

/** Busy share of the machine since `since` (/proc/stat), or null off Linux. */
function busySince(since: number[] | null): { now: number[] | null; percent: number | null } {
  try {
    const now = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
    if (!since) return { now, percent: null };
    const total = now.reduce((a, b) => a + b, 0) - since.reduce((a, b) => a + b, 0);
    const idle = now[3]! + now[4]! - since[3]! - since[4]!;
    return { now, percent: Math.round((100 * (total - idle)) / Math.max(1, total)) };
  } catch {
    return { now: null, percent: null };
  }
}


/** A byte-counting TCP proxy as one writes it with node:net; `noDelay` turns Nagle's algorithm off on both of its sockets. */
function proxy(target: number, noDelay: boolean): Promise<{ base: string; bytes: () => number; close: () => void }> {
  let bytes = 0;
  const server = net.createServer((client) => {
    const upstream = net.connect(target, "127.0.0.1");
    if (noDelay) {
      client.setNoDelay(true);
      upstream.setNoDelay(true);
    }
    client.on("data", (d: Buffer) => {
      bytes += d.length;
      upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => {
      bytes += d.length;
      client.write(d);
    });
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    client.on("error", () => undefined);
    upstream.on("error", () => undefined);
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ base: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, bytes: () => bytes, close: () => server.close() })),
  );
}

/** 50 keep-alive no-op pulls from a new Node process: cold undici, cold JIT, like a client started for the measurement. */
const FRESH_CLIENT = `const [u, k] = process.argv.slice(1); const xs = [];
for (let i = 0; i < 50; i++) { const t = performance.now(); const r = await fetch(u, { headers: { authorization: "Bearer " + k } }); await r.text(); xs.push(performance.now() - t); }
console.log(JSON.stringify(xs));`;

async function main() {
  let stat = busySince(null).now;
  const hub = await startHubProcess({ port: PORT, engine: ENGINE, serverUrl: SERVER_URL, adminToken: ADMIN, databasePrefix: "concord_bench_view_" });
  try {
    const admin = { authorization: `Bearer ${ADMIN}` };
    const put = await fetch(`${hub.base}/api/admin/policy`, { method: "PUT", headers: admin, body: BENCH_POLICY });
    if (!put.ok) throw new Error(`policy: ${await put.text()}`);
    const key = async (s: string) => ((await (await fetch(`${hub.base}/api/admin/systems/${s}/keys`, { method: "POST", headers: admin })).json()) as { key: string }).key;
    const writer = await key("writer");
    const reader = await key("reader");
    const versions = new Map<number, number>();
    const seed = await fetch(`${hub.base}/api/v1/collections/items/push`, {
      method: "POST",
      headers: { authorization: `Bearer ${writer}`, "content-type": "application/json" },
      body: JSON.stringify({ changes: Array.from({ length: 1000 }, (_, i) => ({ changeId: `s${i}`, id: `item-${i}`, baseVersion: null, data: benchItem(i, 0) })) }),
    });
    ((await seed.json()) as { results: { version: number }[] }).results.forEach((r, i) => versions.set(i, r.version));
    const first = await fetch(`${hub.base}/api/v1/collections/items/changes?limit=10000`, { headers: { authorization: `Bearer ${reader}` } });
    let checkpoint = ((await first.json()) as { checkpoint: string }).checkpoint;

    const noop = async (base: string, extra = "") => {
      const t = performance.now();
      const r = await fetch(`${base}/api/v1/collections/items/changes?since=${encodeURIComponent(checkpoint)}${extra}`, { headers: { authorization: `Bearer ${reader}` } });
      await r.text();
      return performance.now() - t;
    };
    const health = async () => {
      const t = performance.now();
      await (await fetch(`${hub.base}/api/health`)).text();
      return performance.now() - t;
    };
    const freshClient = () =>
      JSON.parse(execFileSync("node", ["--input-type=module", "-e", FRESH_CLIENT, `${hub.base}/api/v1/collections/items/changes?since=${encodeURIComponent(checkpoint)}`, reader]).toString()) as number[];

    console.log(`\n== ${ENGINE}: a fresh hub with 1,000 records`);
    show("no-op pull, new client process, calls 1-50", freshClient());
    show("no-op pull, another new client process, calls 51-100", freshClient());
    for (let block = 0; block < 18; block++) {
      const xs: number[] = [];
      for (let i = 0; i < 50; i++) xs.push(await noop(hub.base));
      if ([0, 2, 6, 17].includes(block)) show(`no-op pull, this process, calls ${101 + block * 50}-${150 + block * 50}`, xs);
    }
    const plain: number[] = [];
    const benchLike: number[] = [];
    const healthy: number[] = [];
    for (let i = 0; i < 200; i++) {
      plain.push(await noop(hub.base));
      benchLike.push(await noop(hub.base, "&limit=10000"));
      healthy.push(await health());
    }
    show("warm no-op pull, default limit", plain);
    show("warm no-op pull, limit=10000 (as bench/sync.ts)", benchLike);
    show("warm GET /api/health", healthy);
    show("warm hub, new client process", freshClient());
    let busy = busySince(stat);
    console.log(`   machine ${busy.percent ?? "?"}% busy meanwhile (hub, client and everything else)`);
    stat = busy.now;

    const nagle = await proxy(PORT, false);
    const noDelay = await proxy(PORT, true);
    const modes: [string, string][] = [
      ["direct", hub.base],
      ["byte-counting proxy", nagle.base],
      ["same proxy, setNoDelay(true)", noDelay.base],
    ];
    let round = 0;
    const doRound = async (base: string) => {
      round++;
      const t = performance.now();
      const changes: { changeId: string; id: string; baseVersion: number | null; data: Record<string, unknown> }[] = [];
      const used = new Set<number>();
      while (changes.length < 100) {
        const i = Math.floor(Math.random() * 1000);
        if (used.has(i)) continue;
        used.add(i);
        changes.push({ changeId: `r${round}-${i}`, id: `item-${i}`, baseVersion: versions.get(i) ?? null, data: benchItem(i, round) });
      }
      const pushed = await fetch(`${base}/api/v1/collections/items/push`, {
        method: "POST",
        headers: { authorization: `Bearer ${writer}`, "content-type": "application/json" },
        body: JSON.stringify({ changes }),
      });
      ((await pushed.json()) as { results: { version: number }[] }).results.forEach((r, k) => versions.set(Number(changes[k]!.id.slice(5)), r.version));
      const pushMs = performance.now() - t;
      const pulled = await fetch(`${base}/api/v1/collections/items/changes?since=${encodeURIComponent(checkpoint)}&limit=10000`, { headers: { authorization: `Bearer ${reader}` } });
      const body = (await pulled.json()) as { checkpoint: string; changes: unknown[] };
      if (body.changes.length !== 100) throw new Error(`pulled ${body.changes.length} changes, expected 100`);
      checkpoint = body.checkpoint;
      return { all: performance.now() - t, push: pushMs, pull: performance.now() - t - pushMs };
    };
    for (let i = 0; i < 10; i++) await doRound(hub.base); // warm-up, as bench/sync.ts
    const results = new Map(modes.map(([label]) => [label, { all: [] as number[], push: [] as number[], pull: [] as number[], noop: [] as number[] }]));
    for (let cycle = 0; cycle < 4; cycle++) {
      for (const [label, base] of modes) {
        const r = results.get(label)!;
        for (let i = 0; i < 10; i++) {
          const one = await doRound(base);
          r.all.push(one.all);
          r.push.push(one.push);
          r.pull.push(one.pull);
        }
        for (let i = 0; i < 10; i++) r.noop.push(await noop(base));
      }
    }
    console.log(`\n== ${ENGINE}: 100-edit rounds (one system pushes 100 changes, another pulls them), 40 per path`);
    for (const [label, r] of results) {
      show(`round, ${label}`, r.all);
      show(`   its push`, r.push);
      show(`   its pull`, r.pull);
    }
    for (const [label, r] of results) show(`no-op pull, ${label}`, r.noop);
    console.log(`   the proxy counted ${Math.round(nagle.bytes() / 40).toLocaleString("en")} bytes per round and no-op pull (both directions, headers included)`);
    busy = busySince(stat);
    console.log(`   machine ${busy.percent ?? "?"}% busy meanwhile`);
    nagle.close();
    noDelay.close();
  } finally {
    await hub.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

/**
 * Sync benchmark (issue 3): drives the HTTP API of a real hub that this script
 * starts (scripts/hub-process.ts: a fresh database, `next build` when stale,
 * `next start`), on PostgreSQL and on PGlite.
 *
 *   npm run bench                       both engines, 100,000 and 1,000,000 records
 *   npm run bench -- --engine postgres  one engine
 *   npm run bench -- --records 20000 --large 100000   smaller sizes
 *   npm run bench -- --encoding br      answers compressed (default identity; see bench/compression.ts)
 *
 * Writes bench/results.json and prints a table. Records are about 200 bytes.
 */
import { writeFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { startHubProcess, type Engine } from "../scripts/hub-process";
import { benchItem, BENCH_POLICY, positive, waitForAutovacuum } from "./support";

const { values } = parseArgs({
  options: {
    engine: { type: "string", default: "both" },
    records: { type: "string", default: "100000" },
    large: { type: "string", default: "1000000" },
    rounds: { type: "string", default: "20" },
    port: { type: "string", default: "3217" },
    // What the client asks for (Accept-Encoding); identity keeps the figures comparable with earlier runs.
    // bench/compression.ts compares the codings.
    encoding: { type: "string", default: "identity" },
  },
});
const ENCODING = values.encoding ?? "identity";
const ENGINES = values.engine === "both" ? ["postgres", "pglite"] : [values.engine ?? ""];
for (const e of ENGINES) if (e !== "postgres" && e !== "pglite") throw new Error("--engine must be postgres, pglite or both");
const N = positive(values.records, "--records");
const LARGE = positive(values.large, "--large");
const ROUNDS = positive(values.rounds, "--rounds");
const PORT = positive(values.port, "--port");
const SERVER_URL = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const ADMIN = "bench-admin-token-0123456789";
const BATCH = 1000;
const PAGE = 10_000;




interface Wire {
  bytes: number;
  ms: number;
  body: unknown;
  status: number;
}

/** One HTTP exchange, counting bytes of request and response (bodies and headers). */
async function http(method: string, url: string, token: string, body?: unknown): Promise<Wire> {
  const payload = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
  const headers: Record<string, string> = { authorization: `Bearer ${token}`, "accept-encoding": ENCODING };
  if (payload !== undefined) headers["content-type"] = "application/json";
  const started = performance.now();
  const res = await fetch(url, { method, headers, body: payload });
  const text = await res.text();
  const ms = performance.now() - started;
  let headerBytes = `${method} ${new URL(url).pathname}${new URL(url).search} HTTP/1.1\r\n`.length;
  for (const [k, v] of Object.entries(headers)) headerBytes += k.length + v.length + 4;
  res.headers.forEach((v, k) => {
    headerBytes += k.length + v.length + 4;
  });
  // fetch hands over the decoded body; a compressed answer's bytes on the wire are its Content-Length.
  const answerBytes = res.headers.has("content-encoding") ? Number(res.headers.get("content-length")) : Buffer.byteLength(text);
  const bytes = headerBytes + Buffer.byteLength(payload ?? "") + answerBytes;
  if (!res.ok) throw new Error(`${method} ${url} answered ${res.status}: ${text.slice(0, 300)}`);
  return { bytes, ms, body: text ? JSON.parse(text) : null, status: res.status };
}



async function pushRange(base: string, key: string, from: number, to: number, rev: number, versions: Map<number, number>) {
  for (let i = from; i < to; i += BATCH) {
    const changes = [];
    for (let j = i; j < Math.min(i + BATCH, to); j++) {
      changes.push({ changeId: `r${rev}-${j}`, id: `item-${String(j).padStart(8, "0")}`, baseVersion: versions.get(j) ?? null, data: benchItem(j, rev) });
    }
    const res = await http("POST", `${base}/api/v1/collections/items/push`, key, { changes });
    const results = (res.body as { results: { status: string; version: number }[] }).results;
    results.forEach((r, k) => {
      if (r.status !== "applied") throw new Error(`push result ${r.status}`);
      versions.set(i + k, r.version);
    });
  }
}

async function pullAll(base: string, key: string, since?: string): Promise<{ count: number; checkpoint: string; bytes: number; ms: number }> {
  let checkpoint = since;
  let count = 0;
  let bytes = 0;
  let ms = 0;
  for (;;) {
    const q = new URLSearchParams({ limit: String(PAGE) });
    if (checkpoint) q.set("since", checkpoint);
    const res = await http("GET", `${base}/api/v1/collections/items/changes?${q}`, key);
    const body = res.body as { changes: unknown[]; checkpoint: string; hasMore: boolean };
    count += body.changes.length;
    bytes += res.bytes;
    ms += res.ms;
    checkpoint = body.checkpoint;
    if (!body.hasMore) return { count, checkpoint, bytes, ms };
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function incrementalRound(base: string, keys: { writer: string; reader: string }, versions: Map<number, number>, stored: number, checkpoint: string) {
  const timings: number[] = [];
  const pushTimings: number[] = [];
  const pullTimings: number[] = [];
  const bytes: number[] = [];
  let cp = checkpoint;
  // The first rounds after a bulk load touch cold pages; measure the steady state.
  const WARMUP = 10;
  for (let round = 0; round < WARMUP + ROUNDS; round++) {
    const started = performance.now();
    const changes: { idx: number; changeId: string; id: string; baseVersion: number | null; data: Record<string, unknown> }[] = [];
    for (let k = 0; k < 100; k++) {
      const i = Math.floor(Math.random() * stored);
      if (changes.some((c) => c.idx === i)) continue;
      changes.push({ idx: i, changeId: `inc-${stored}-${round}-${k}`, id: `item-${String(i).padStart(8, "0")}`, baseVersion: versions.get(i) ?? null, data: benchItem(i, stored * 1000 + round) });
    }
    const pushed = await http("POST", `${base}/api/v1/collections/items/push`, keys.writer, { changes: changes.map(({ idx: _idx, ...c }) => c) });
    (pushed.body as { results: { version: number }[] }).results.forEach((r, k) => versions.set(changes[k]!.idx, r.version));
    const pulled = await pullAll(base, keys.reader, cp);
    if (pulled.count !== changes.length) throw new Error(`reader pulled ${pulled.count} changes, expected ${changes.length}`);
    cp = pulled.checkpoint;
    if (round < WARMUP) continue;
    timings.push(performance.now() - started);
    pushTimings.push(pushed.ms);
    pullTimings.push(pulled.ms);
    bytes.push(pushed.bytes + pulled.bytes);
  }
  return { ms: median(timings), pushMs: median(pushTimings), pullMs: median(pullTimings), bytes: median(bytes), checkpoint: cp };
}

async function benchEngine(engine: string) {
  console.log(`\n== ${engine}: starting a hub on port ${PORT}`);
  const hub = await startHubProcess({
    port: PORT,
    engine: engine as Engine,
    serverUrl: SERVER_URL,
    adminToken: ADMIN,
    databasePrefix: "concord_bench_",
  });
  try {
    const put = await fetch(`${hub.base}/api/admin/policy`, { method: "PUT", headers: { authorization: `Bearer ${ADMIN}` }, body: BENCH_POLICY });
    if (!put.ok) throw new Error(`policy: ${await put.text()}`);
    const key = async (system: string) =>
      ((await http("POST", `${hub.base}/api/admin/systems/${system}/keys`, ADMIN)).body as { key: string }).key;
    const keys = { writer: await key("writer"), reader: await key("reader") };
    const versions = new Map<number, number>();

    console.log(`   pushing ${N.toLocaleString("en")} new records in batches of ${BATCH}`);
    let t = performance.now();
    await pushRange(hub.base, keys.writer, 0, N, 0, versions);
    const pushRate = N / ((performance.now() - t) / 1000);

    console.log(`   pulling them all (pages of ${PAGE})`);
    t = performance.now();
    const full = await pullAll(hub.base, keys.reader);
    const pullRate = full.count / ((performance.now() - t) / 1000);
    if (full.count !== N) throw new Error(`full pull returned ${full.count} records, expected ${N}`);

    t = performance.now();
    let after: string | null = null;
    let manifestCount = 0;
    do {
      const q = new URLSearchParams({ limit: String(PAGE) });
      if (after) q.set("after", after);
      const res = await http("GET", `${hub.base}/api/v1/collections/items/manifest?${q}`, keys.reader);
      const body = res.body as { entries: unknown[]; next: string | null };
      manifestCount += body.entries.length;
      after = body.next;
    } while (after);
    const manifestMs = performance.now() - t;

    const noops: Wire[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      noops.push(await http("GET", `${hub.base}/api/v1/collections/items/changes?since=${encodeURIComponent(full.checkpoint)}&limit=${PAGE}`, keys.reader));
    }

    console.log(`   incremental rounds with ${N.toLocaleString("en")} stored`);
    const small = await incrementalRound(hub.base, keys, versions, N, full.checkpoint);

    console.log(`   growing to ${LARGE.toLocaleString("en")} stored records`);
    await pushRange(hub.base, keys.writer, N, LARGE, 0, versions);
    const caught = await pullAll(hub.base, keys.reader, small.checkpoint);
    // Measure the steady state: after 900,000 inserts Postgres's autovacuum
    // works through the new rows for a while and competes for the 2 cores.
    await waitForAutovacuum(hub.databaseUrl);
    console.log(`   incremental rounds with ${LARGE.toLocaleString("en")} stored`);
    const large = await incrementalRound(hub.base, keys, versions, LARGE, caught.checkpoint);

    return {
      engine,
      records: N,
      pushRecordsPerSecond: Math.round(pushRate),
      pullRecordsPerSecond: Math.round(pullRate),
      manifestMs: Math.round(manifestMs),
      manifestEntries: manifestCount,
      noopMs: +median(noops.map((n) => n.ms)).toFixed(2),
      noopBytes: median(noops.map((n) => n.bytes)),
      incremental: {
        [N]: { ms: +small.ms.toFixed(1), pushMs: +small.pushMs.toFixed(1), pullMs: +small.pullMs.toFixed(1), bytes: small.bytes },
        [LARGE]: { ms: +large.ms.toFixed(1), pushMs: +large.pushMs.toFixed(1), pullMs: +large.pullMs.toFixed(1), bytes: large.bytes },
        ratio: +(large.ms / small.ms).toFixed(2),
      },
    };
  } finally {
    await hub.stop();
  }
}

async function main() {
  const results = [];
  for (const engine of ENGINES) {
    const result = await benchEngine(engine);
    console.log(`   ${JSON.stringify(result)}`);
    results.push(result);
  }
  const out = { measuredAt: new Date().toISOString(), machine: "2 cores", records: N, large: LARGE, rounds: ROUNDS, results };
  await writeFile("bench/results.json", `${JSON.stringify(out, null, 2)}\n`);
  console.log("\nConcord sync benchmark (records of ~200 bytes, HTTP API of a local hub)\n");
  const rows: Record<string, Record<string, string>> = {};
  for (const r of results) {
    rows[r.engine] = {
      [`push ${r.records.toLocaleString("en")} (rec/s)`]: r.pushRecordsPerSecond.toLocaleString("en"),
      [`pull ${r.records.toLocaleString("en")} (rec/s)`]: r.pullRecordsPerSecond.toLocaleString("en"),
      [`round @${N.toLocaleString("en")} (ms, bytes)`]: `${r.incremental[N]?.ms} ms, ${r.incremental[N]?.bytes} B`,
      [`round @${LARGE.toLocaleString("en")} (ms, bytes)`]: `${r.incremental[LARGE]?.ms} ms, ${r.incremental[LARGE]?.bytes} B`,
      "round ratio": String(r.incremental.ratio),
      "no-op (ms, bytes)": `${r.noopMs} ms, ${r.noopBytes} B`,
      [`manifest ${r.records.toLocaleString("en")} (ms)`]: String(r.manifestMs),
    };
  }
  console.table(rows);
  console.log("written to bench/results.json");
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

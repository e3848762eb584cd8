/**
 * Compression benchmark (issue 12, "Fewer bytes"): bytes on the wire, time and
 * the hub's CPU for a full pull, a 100-edit round and a no-op sync, with
 * answers uncompressed, gzip and brotli. Drives the HTTP API of a real hub
 * this script starts (scripts/hub-process.ts: `next start` on a fresh
 * database) over node:http, counting the bytes each exchange moved on its
 * socket (request and answer, headers included) and the CPU time of the hub's
 * process group (/proc, Linux).
 *
 *   npx tsx bench/compression.ts                      PostgreSQL (BENCH_POSTGRES_URL or the local test server), 100,000 records
 *   npx tsx bench/compression.ts --engine pglite --records 20000
 *
 * Modes: `identity` (no Accept-Encoding, push bodies as they are), `gzip`
 * and `br` (Accept-Encoding: gzip or br; push bodies gzip-compressed at the
 * default level, as the SDK sends them). Writes bench/compression-results.json.
 */
import { execSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import http from "node:http";
import { parseArgs } from "node:util";
import zlib from "node:zlib";
import { startHubProcess, type Engine } from "../scripts/hub-process";
import { benchItem, BENCH_POLICY, positive, waitForAutovacuum } from "./support";

const { values } = parseArgs({
  options: {
    engine: { type: "string", default: "postgres" },
    records: { type: "string", default: "100000" },
    pulls: { type: "string", default: "3" },
    rounds: { type: "string", default: "20" },
    port: { type: "string", default: "3219" },
  },
});
const ENGINE = values.engine as Engine;
if (ENGINE !== "postgres" && ENGINE !== "pglite") throw new Error("--engine must be postgres or pglite");
const N = positive(values.records, "--records");
const PULLS = positive(values.pulls, "--pulls");
const ROUNDS = positive(values.rounds, "--rounds");
const PORT = positive(values.port, "--port");
const SERVER_URL = process.env.BENCH_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const ADMIN = "bench-admin-token-0123456789";
const PAGE = 10_000;
const MODES = ["identity", "gzip", "br"] as const;
type Mode = (typeof MODES)[number];




// ---------------------------------------------------------------------------
// The hub's CPU time: every process in its group (next start and its server), from /proc.

const TICKS_PER_SECOND = Number(execSync("getconf CLK_TCK").toString().trim()) || 100;

function groupCpuMs(group: number): number {
  let ticks = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, "utf8");
    } catch {
      continue; // gone meanwhile
    }
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // After the name: state, ppid, pgrp, ..., utime (14th field of the line), stime (15th).
    if (Number(fields[2]) !== group) continue;
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return (ticks * 1000) / TICKS_PER_SECOND;
}

// ---------------------------------------------------------------------------
// One exchange over a keep-alive socket, counting what the socket moved.

const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

interface Exchange {
  status: number;
  body: unknown;
  /** Bytes read and written on the socket for this exchange (headers and bodies). */
  wire: number;
  sent: number;
  received: number;
  coding: string | null;
  ms: number;
  /** Client CPU to decode the answer. */
  decodeMs: number;
}

function exchange(method: string, url: string, token: string, mode: Mode, payload?: unknown): Promise<Exchange> {
  const headers: Record<string, string> = { authorization: `Bearer ${token}` };
  if (mode !== "identity") headers["accept-encoding"] = mode;
  let body: Buffer | undefined;
  if (payload !== undefined) {
    const text = Buffer.from(typeof payload === "string" ? payload : JSON.stringify(payload));
    headers["content-type"] = "application/json";
    // As the SDK: gzip at the default level for bodies of 1 KiB or more, once the hub reads them.
    body = mode !== "identity" && text.byteLength >= 1024 ? zlib.gzipSync(text) : text;
    if (body !== text) headers["content-encoding"] = "gzip";
    headers["content-length"] = String(body.byteLength);
  }
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent });
    let readBefore = 0;
    let writtenBefore = 0;
    req.on("socket", (socket) => {
      // As undici does: no Nagle delay between the head and the body of a request.
      socket.setNoDelay(true);
      readBefore = socket.bytesRead;
      writtenBefore = socket.bytesWritten;
    });
    req.on("error", reject);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        try {
          finish();
        } catch (error) {
          reject(error as Error);
        }
      });
      const finish = () => {
        const socket = req.socket;
        const received = (socket?.bytesRead ?? 0) - readBefore;
        const sent = (socket?.bytesWritten ?? 0) - writtenBefore;
        const raw = Buffer.concat(chunks);
        const coding = res.headers["content-encoding"] ?? null;
        const t = process.cpuUsage();
        const plain = coding === "gzip" ? zlib.gunzipSync(raw) : coding === "br" ? zlib.brotliDecompressSync(raw) : raw;
        const used = process.cpuUsage(t);
        const text = plain.toString("utf8");
        const status = res.statusCode ?? 0;
        if (status >= 400) return reject(new Error(`${method} ${url} answered ${status}: ${text.slice(0, 300)}`));
        resolve({
          status,
          body: text ? JSON.parse(text) : null,
          wire: received + sent,
          sent,
          received,
          coding,
          ms: performance.now() - started,
          decodeMs: (used.user + used.system) / 1000,
        });
      };
    });
    req.end(body);
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function main() {
  console.log(`== ${ENGINE}: starting a hub on port ${PORT}`);
  const hub = await startHubProcess({ port: PORT, engine: ENGINE, serverUrl: SERVER_URL, adminToken: ADMIN, databasePrefix: "concord_bench_" });
  const group = hub.processGroup;
  if (group === undefined) throw new Error("no process group for the hub");
  try {
    const put = await fetch(`${hub.base}/api/admin/policy`, { method: "PUT", headers: { authorization: `Bearer ${ADMIN}` }, body: BENCH_POLICY });
    if (!put.ok) throw new Error(`policy: ${await put.text()}`);
    const key = async (system: string) => ((await exchange("POST", `${hub.base}/api/admin/systems/${system}/keys`, ADMIN, "identity")).body as { key: string }).key;
    const keys = { writer: await key("writer"), reader: await key("reader") };
    const versions = new Map<number, number>();
    const push = async (mode: Mode, changes: { changeId: string; id: string; baseVersion: number | null; data: unknown }[], idx: number[]) => {
      const res = await exchange("POST", `${hub.base}/api/v1/collections/items/push`, keys.writer, mode, { changes });
      (res.body as { results: { status: string; version: number }[] }).results.forEach((r, k) => {
        if (r.status !== "applied") throw new Error(`push result ${r.status}`);
        versions.set(idx[k] as number, r.version);
      });
      return res;
    };

    console.log(`   pushing ${N.toLocaleString("en")} records`);
    for (let i = 0; i < N; i += 1000) {
      const idx = Array.from({ length: Math.min(1000, N - i) }, (_, k) => i + k);
      await push("identity", idx.map((j) => ({ changeId: `load-${j}`, id: `item-${String(j).padStart(8, "0")}`, baseVersion: null, data: benchItem(j) })), idx);
    }
    await waitForAutovacuum(hub.databaseUrl);

    const pullAll = async (mode: Mode, since?: string) => {
      let checkpoint = since;
      const total = { count: 0, wire: 0, received: 0, ms: 0, decodeMs: 0, checkpoint: "" };
      const started = performance.now();
      for (;;) {
        const q = new URLSearchParams({ limit: String(PAGE) });
        if (checkpoint) q.set("since", checkpoint);
        const res = await exchange("GET", `${hub.base}/api/v1/collections/items/changes?${q}`, keys.reader, mode);
        const body = res.body as { changes: unknown[]; checkpoint: string; hasMore: boolean };
        total.count += body.changes.length;
        total.wire += res.wire;
        total.received += res.received;
        total.decodeMs += res.decodeMs;
        checkpoint = body.checkpoint;
        if (!body.hasMore) break;
      }
      total.ms = performance.now() - started;
      total.checkpoint = checkpoint ?? "";
      return total;
    };

    // The modes take turns (pull by pull, round by round), so that a warmer cache or a
    // busier moment on the shared machine does not favour one of them.
    type Pull = Awaited<ReturnType<typeof pullAll>> & { hubCpuMs: number };
    type Round = { ms: number; pushMs: number; pullMs: number; wire: number; push: number; pushResult: number; pull: number; cpu: number };
    const pulls = new Map<Mode, Pull[]>(MODES.map((m) => [m, []]));
    const rounds = new Map<Mode, Round[]>(MODES.map((m) => [m, []]));
    const noops = new Map<Mode, Exchange[]>(MODES.map((m) => [m, []]));
    console.log(`   full pulls, ${PULLS} per mode`);
    for (const mode of MODES) await pullAll(mode); // warm-up
    let checkpoint = "";
    for (let r = 0; r < PULLS; r++) {
      for (const mode of MODES) {
        const cpu = groupCpuMs(group);
        const pulled = await pullAll(mode);
        if (pulled.count !== N) throw new Error(`pulled ${pulled.count}, expected ${N}`);
        pulls.get(mode)?.push({ ...pulled, hubCpuMs: groupCpuMs(group) - cpu });
        checkpoint = pulled.checkpoint;
      }
    }
    for (let r = 0; r < 20; r++) {
      for (const mode of MODES) noops.get(mode)?.push(await exchange("GET", `${hub.base}/api/v1/collections/items/changes?since=${encodeURIComponent(checkpoint)}&limit=${PAGE}`, keys.reader, mode));
    }
    console.log(`   100-edit rounds, ${ROUNDS} per mode after 5 warm-up rounds`);
    let cp = checkpoint;
    for (let round = 0; round < 5 + ROUNDS; round++) {
      for (const mode of MODES) {
        const cpu = groupCpuMs(group);
        const started = performance.now();
        const idx = [...new Set(Array.from({ length: 100 }, () => Math.floor(Math.random() * N)))];
        const changes = idx.map((i, k) => ({ changeId: `${mode}-${round}-${k}`, id: `item-${String(i).padStart(8, "0")}`, baseVersion: versions.get(i) ?? null, data: benchItem(i, (MODES.indexOf(mode) + 1) * 1000 + round) }));
        const pushed = await push(mode, changes, idx);
        const pulled = await pullAll(mode, cp);
        if (pulled.count !== idx.length) throw new Error(`round pulled ${pulled.count}, expected ${idx.length}`);
        cp = pulled.checkpoint;
        if (round < 5) continue;
        rounds.get(mode)?.push({ ms: performance.now() - started, pushMs: pushed.ms, pullMs: pulled.ms, wire: pushed.wire + pulled.wire, push: pushed.sent, pushResult: pushed.received, pull: pulled.wire, cpu: groupCpuMs(group) - cpu });
      }
    }

    // CPU time comes in ticks of 10 ms: means over all runs, not medians.
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const results: Record<string, unknown> = {};
    for (const mode of MODES) {
      const p = pulls.get(mode) ?? [];
      const r = rounds.get(mode) ?? [];
      const n = noops.get(mode) ?? [];
      results[mode] = {
        fullPull: {
          records: N,
          ms: Math.round(median(p.map((x) => x.ms))),
          recordsPerSecond: Math.round(N / (median(p.map((x) => x.ms)) / 1000)),
          wireBytes: median(p.map((x) => x.wire)),
          hubCpuMs: Math.round(mean(p.map((x) => x.hubCpuMs))),
          clientDecodeMs: +median(p.map((x) => x.decodeMs)).toFixed(1),
        },
        round: {
          ms: +median(r.map((x) => x.ms)).toFixed(1),
          pushMs: +median(r.map((x) => x.pushMs)).toFixed(1),
          pullMs: +median(r.map((x) => x.pullMs)).toFixed(1),
          wireBytes: median(r.map((x) => x.wire)),
          pushRequestBytes: median(r.map((x) => x.push)),
          pushAnswerBytes: median(r.map((x) => x.pushResult)),
          pullBytes: median(r.map((x) => x.pull)),
          hubCpuMs: +mean(r.map((x) => x.cpu)).toFixed(1),
        },
        noop: { ms: +median(n.map((x) => x.ms)).toFixed(2), wireBytes: median(n.map((x) => x.wire)), coding: n[0]?.coding ?? null },
      };
      console.log(`   ${mode}: ${JSON.stringify(results[mode])}`);
    }
    const out = { measuredAt: new Date().toISOString(), machine: "2 cores", node: process.version, engine: ENGINE, records: N, pulls: PULLS, rounds: ROUNDS, results };
    await writeFile("bench/compression-results.json", `${JSON.stringify(out, null, 2)}\n`);

    const table: Record<string, Record<string, string>> = {};
    for (const mode of MODES) {
      const r = results[mode] as {
        fullPull: { ms: number; recordsPerSecond: number; wireBytes: number; hubCpuMs: number; clientDecodeMs: number };
        round: { ms: number; wireBytes: number; hubCpuMs: number };
        noop: { ms: number; wireBytes: number };
      };
      const at = (mbit: number) => `${((r.fullPull.ms + (r.fullPull.wireBytes * 8) / (mbit * 1000)) / 1000).toFixed(1)} s`;
      table[mode] = {
        [`pull ${N.toLocaleString("en")}`]: `${r.fullPull.ms} ms (${r.fullPull.recordsPerSecond.toLocaleString("en")}/s)`,
        "pull bytes": r.fullPull.wireBytes.toLocaleString("en"),
        "hub CPU": `${r.fullPull.hubCpuMs} ms`,
        "decode": `${r.fullPull.clientDecodeMs} ms`,
        "at 100 Mbit/s": at(100),
        "at 10 Mbit/s": at(10),
        "round": `${r.round.ms} ms, ${r.round.wireBytes.toLocaleString("en")} B, CPU ${r.round.hubCpuMs} ms`,
        "no-op": `${r.noop.ms} ms, ${r.noop.wireBytes} B`,
      };
    }
    console.log(`\nConcord compression benchmark (${ENGINE}, ${N.toLocaleString("en")} records of ~200 bytes; "at x Mbit/s" = time measured here + the bytes at that rate)\n`);
    console.table(table);
    console.log("written to bench/compression-results.json");
  } finally {
    agent.destroy();
    await hub.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});

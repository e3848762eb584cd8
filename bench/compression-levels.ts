/**
 * Which compression level pays on a sync answer (issue 12): compresses the
 * hub's typical JSON answers — a full-pull page of 10,000 records of ~200
 * bytes, a manifest page of 10,000 entries, the pull and the push result of a
 * 100-edit round — with gzip levels 1-9 and brotli qualities 1-11 (zstd too
 * when this Node has it), and prints size, CPU time to compress and to
 * decompress, and the link speed below which compressing is faster than
 * sending the bytes saved ("break-even": bytes saved / CPU time).
 *
 *   npx tsx bench/compression-levels.ts [--runs 7] [--gzip 1,6] [--br 1,4]
 *
 * CPU time is measured with the synchronous zlib calls on this thread (the
 * hub uses the asynchronous ones, which do the same work on libuv's pool).
 */
import { createHash, randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import zlib from "node:zlib";
import { canonicalJson } from "../lib/sync/canonical";
import { benchItem } from "./support";

const { values } = parseArgs({
  options: {
    runs: { type: "string", default: "7" },
    gzip: { type: "string", default: "1,2,3,4,5,6,9" },
    br: { type: "string", default: "1,2,3,4,5,6,7,9,11" },
  },
});
const RUNS = Math.max(1, Number(values.runs));
const levels = (list: string | undefined) => (list ?? "").split(",").filter(Boolean).map(Number);


const digest = (data: unknown) => createHash("sha256").update(canonicalJson(data as never), "utf8").digest("hex");
const id = (i: number) => `item-${String(i).padStart(8, "0")}`;
// A sealed checkpoint is ~90 characters of base64url.
const checkpoint = () => `c1${randomBytes(66).toString("base64url")}`;
// Random record numbers, as in bench/sync.ts's rounds (consecutive ids would compress better than real traffic).
const picks = (n: number, of: number) => Array.from({ length: n }, () => Math.floor(Math.random() * of));

const bodies: Record<string, string> = {
  "pull page (10,000 records)": JSON.stringify({
    changes: Array.from({ length: 10_000 }, (_, i) => {
      const data = benchItem(i);
      return { id: id(i), version: 1, digest: digest(data), data };
    }),
    checkpoint: checkpoint(),
    hasMore: true,
  }),
  "manifest page (10,000)": JSON.stringify({
    entries: Array.from({ length: 10_000 }, (_, i) => ({ id: id(i), version: 1 + (i % 3), digest: digest(benchItem(i)) })),
    next: id(9_999),
    count: 10_000,
  }),
  "round: pull of 100 edits": JSON.stringify({
    changes: picks(100, 100_000).map((i) => {
      const data = benchItem(i, 100_000_007);
      return { id: id(i), version: 2 + (i % 5), digest: digest(data), data };
    }),
    checkpoint: checkpoint(),
    hasMore: false,
  }),
  "round: push request (100)": JSON.stringify({
    changes: picks(100, 100_000).map((i, k) => ({ changeId: `inc-100000-3-${k}`, id: id(i), baseVersion: 1 + (i % 5), data: benchItem(i, 100_000_003) })),
  }),
  "round: push result (100)": JSON.stringify({
    results: picks(100, 100_000).map((i, k) => ({ changeId: `inc-100000-3-${k}`, id: id(i), status: "applied", version: 2 + (i % 5), digest: digest(benchItem(i, 3)) })),
  }),
};

interface Codec {
  name: string;
  compress(input: Buffer): Buffer;
  decompress(input: Buffer): Buffer;
}

const codecs: Codec[] = [];
for (const level of levels(values.gzip)) {
  codecs.push({ name: `gzip ${level}`, compress: (b) => zlib.gzipSync(b, { level }), decompress: (b) => zlib.gunzipSync(b) });
}
for (const quality of levels(values.br)) {
  codecs.push({
    name: `br ${quality}`,
    compress: (b) =>
      zlib.brotliCompressSync(b, {
        params: { [zlib.constants.BROTLI_PARAM_QUALITY]: quality, [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: b.length },
      }),
    decompress: (b) => zlib.brotliDecompressSync(b),
  });
}
const z = zlib as unknown as { zstdCompressSync?: (b: Buffer, o?: unknown) => Buffer; zstdDecompressSync?: (b: Buffer) => Buffer };
if (typeof z.zstdCompressSync === "function" && typeof z.zstdDecompressSync === "function") {
  const compress = z.zstdCompressSync;
  const decompress = z.zstdDecompressSync;
  for (const level of [1, 3, 6]) {
    codecs.push({ name: `zstd ${level}`, compress: (b) => compress(b, { params: { [100]: level } }), decompress: (b) => decompress(b) });
  }
}

/** Median CPU milliseconds (user + system) of `fn` over RUNS runs, after one warm-up. */
function cpuMs(fn: () => void): number {
  fn();
  const times: number[] = [];
  for (let r = 0; r < RUNS; r++) {
    const before = process.cpuUsage();
    fn();
    const used = process.cpuUsage(before);
    times.push((used.user + used.system) / 1000);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] ?? NaN;
}

console.log(`Node ${process.version}, zstd ${codecs.some((c) => c.name.startsWith("zstd")) ? "available" : "not available"}; median of ${RUNS} runs\n`);
for (const [name, text] of Object.entries(bodies)) {
  const input = Buffer.from(text);
  console.log(`${name}: ${input.length.toLocaleString("en")} bytes`);
  const rows: Record<string, Record<string, string>> = {};
  for (const codec of codecs) {
    let out = codec.compress(input);
    const ms = cpuMs(() => {
      out = codec.compress(input);
    });
    const back = cpuMs(() => codec.decompress(out));
    const saved = input.length - out.length;
    rows[codec.name] = {
      bytes: out.length.toLocaleString("en"),
      ratio: (input.length / out.length).toFixed(2),
      "compress ms": ms.toFixed(2),
      "MB/s": (input.length / 1e6 / (ms / 1000)).toFixed(0),
      "decompress ms": back.toFixed(2),
      "break-even Mbit/s": ((saved * 8) / 1e6 / ((ms + back) / 1000)).toFixed(0),
    };
  }
  console.table(rows);
}

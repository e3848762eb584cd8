/**
 * What the strict JSON reader costs on the push path: a push body of 1,000
 * changes with ~200-byte records, read by JSON.parse alone, by
 * parseStrictJson (what readJson uses), and by parseStrictJson plus the
 * per-record check of unstorableReason. Usage: npx tsx bench/strict-json.ts
 * [-- --changes N --rounds N]. Prints milliseconds per body and per 200 KB.
 */
import { parseArgs } from "node:util";
import { unstorableReason } from "@/lib/sync/json-safety";
import type { JsonObject } from "@/lib/sync/protocol";
import { parseStrictJson } from "@/lib/sync/strict-json";

const { values } = parseArgs({ options: { changes: { type: "string", default: "1000" }, rounds: { type: "string", default: "300" } } });
const changes = Number(values.changes);
const rounds = Number(values.rounds);

const regions = ["north", "east", "south", "west"];
const body = JSON.stringify({
  changes: Array.from({ length: changes }, (_, i) => ({
    changeId: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
    id: `customer-${i}`,
    baseVersion: i % 3 === 0 ? null : i,
    data: {
      name: `Customer number ${i}`,
      region: regions[i % regions.length],
      email: `customer${i}@example.com`,
      phone: `+47 555 ${String(i).padStart(5, "0")}`,
      note: "prefers e-mail",
      address: { city: "Oslo", zip: String(1000 + (i % 9000)) },
      total: Math.round(i * 12.5) / 100,
      active: i % 2 === 0,
      tags: ["a", "b"],
    },
    modifiedAt: new Date(1_700_000_000_000 + i * 1000).toISOString(),
  })),
});
const bytes = Buffer.byteLength(body);
const recordBytes = Buffer.byteLength(JSON.stringify((JSON.parse(body) as { changes: { data: JsonObject }[] }).changes[0]?.data));

function measure(name: string, work: () => unknown): number {
  for (let i = 0; i < 50; i++) work();
  const start = process.hrtime.bigint();
  for (let i = 0; i < rounds; i++) work();
  const ms = Number(process.hrtime.bigint() - start) / 1e6 / rounds;
  console.log(`${name.padEnd(44)} ${ms.toFixed(3).padStart(7)} ms per body  ${((ms * 200 * 1024) / bytes).toFixed(3).padStart(7)} ms per 200 KB`);
  return ms;
}

console.log(`push body: ${changes} changes, ${(bytes / 1024).toFixed(0)} KB (records of ~${recordBytes} bytes), ${rounds} rounds\n`);
const base = measure("JSON.parse", () => JSON.parse(body));
const strict = measure("parseStrictJson", () => {
  if (!parseStrictJson(body).ok) throw new Error("refused");
});
const checked = measure("parseStrictJson + unstorableReason per record", () => {
  const parsed = parseStrictJson(body);
  if (!parsed.ok) throw new Error("refused");
  for (const change of (parsed.value as { changes: { data: JsonObject }[] }).changes) {
    if (unstorableReason(change.data, "data")) throw new Error("unstorable");
  }
});
const per200 = (ms: number) => ((ms - base) * 200 * 1024) / bytes;
console.log(`\nextra over JSON.parse per 200 KB: strict ${per200(strict).toFixed(3)} ms, with per-record checks ${per200(checked).toFixed(3)} ms`);

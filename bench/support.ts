import postgres from "postgres";

/**
 * Waits (up to 3 minutes) until no autovacuum worker runs on the database:
 * after 100,000 inserts it works through the new rows for a while and competes
 * with the hub for the 2 cores, which makes the next phase's figures vary.
 */
export async function waitForAutovacuum(url: string | undefined): Promise<void> {
  if (!url) return; // PGlite: no autovacuum workers
  const sql = postgres(url, { max: 1, onnotice: () => undefined });
  try {
    const deadline = Date.now() + 180_000;
    while (Date.now() < deadline) {
      const [row] = await sql<{ n: number }[]>`select count(*)::int as n from pg_stat_activity
        where backend_type = 'autovacuum worker' and datname = current_database()`;
      if (!row || row.n === 0) return;
      await new Promise((r) => setTimeout(r, 1000));
    }
  } finally {
    await sql.end();
  }
}

/** A command-line value that must be a positive whole number. */
export function positive(v: string | undefined, name: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${name} must be a positive whole number`);
  return n;
}

/** The policy of the sync benchmarks: a writer and a reader of one collection, `items`. */
export const BENCH_POLICY = `version: 1
systems: {writer: {name: Writer}, reader: {name: Reader}}
collections: {items: {conflict: server-wins}}
rules:
  - {who: "*", collection: items, read: all, write: all}
sync:
  default: {interval: 60s, realtime: true}
`;

/** Record i of the sync benchmarks (about 200 bytes as canonical JSON); `rev` makes a new version of it. */
export function benchItem(i: number, rev = 0): Record<string, unknown> {
  return {
    name: `Customer ${String(i).padStart(7, "0")}`,
    email: `customer${i}@example.com`,
    region: ["north", "east", "south", "west"][i % 4],
    segment: i % 3 === 0 ? "enterprise" : "smb",
    credit_limit: (i % 50) * 1000,
    rev,
    address: { street: `${i % 997} Main Street`, city: "Springfield", zip: String(10000 + (i % 89999)) },
  };
}

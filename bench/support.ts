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

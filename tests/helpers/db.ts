import { openDatabase, type DatabaseHandle } from "@/lib/db/client";
import { createDatabase } from "@/scripts/fresh-database";

/**
 * A fresh, migrated database for one test file: PGlite in memory by default,
 * or a new database on the Postgres server of DATABASE_URL (dropped on close).
 * Tests never share state with each other or with a developer's data.
 */
export async function openTestDatabase(): Promise<DatabaseHandle> {
  const serverUrl = process.env.DATABASE_URL;
  if (!serverUrl) return openDatabase({ pgliteDir: "memory://" });

  const fresh = await createDatabase(serverUrl, "concord_test_");
  const handle = await openDatabase({ databaseUrl: fresh.url, maxConnections: 8 });
  return {
    ...handle,
    async close() {
      await handle.close();
      await fresh.drop();
    },
  };
}

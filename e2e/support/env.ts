/**
 * Settings shared by playwright.config.ts and the specs. The server under test
 * gets a fixed admin token, so tests can call the admin API without setup.
 */
export const E2E_ADMIN_TOKEN = "e2e-admin-token-0123456789";

/** The database kind the server under test reports: it follows DATABASE_URL. */
export function expectedDatabaseKind(): "pglite" | "postgres" {
  return process.env.DATABASE_URL ? "postgres" : "pglite";
}

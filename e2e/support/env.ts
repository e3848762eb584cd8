/**
 * Settings shared by playwright.config.ts and the specs. The server under test
 * gets a fixed admin token, so tests can call the admin API without setup.
 */
export const E2E_ADMIN_TOKEN = "e2e-admin-token-0123456789";

/** The database kind the server under test reports: it follows DATABASE_URL. */
export function expectedDatabaseKind(): "pglite" | "postgres" {
  return process.env.DATABASE_URL ? "postgres" : "pglite";
}

/** Console operators the setup project creates (e2e/console/auth.setup.ts). */
export const E2E_ADMIN = { username: "alice", password: "alice-password-123" } as const;
export const E2E_VIEWER = { username: "victor", password: "victor-password-123" } as const;
export const ADMIN_STATE = "test-results/.auth/admin.json";
export const VIEWER_STATE = "test-results/.auth/viewer.json";

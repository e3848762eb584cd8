import { execFileSync } from "node:child_process";
import { readdirSync, rmSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { defineConfig } from "@playwright/test";
import { ADMIN_STATE, E2E_ADMIN_TOKEN } from "./e2e/support/env";

const root = path.dirname(fileURLToPath(import.meta.url));

// The production server (`node scripts/start.mjs`, which builds when needed)
// runs on its own port with its own database, so e2e never shares state with a
// developer's `npm run dev` or `npm start`.
const port = Number(process.env.E2E_PORT ?? 3100);
const baseURL = `http://127.0.0.1:${port}`;

// This file is evaluated again in every worker: keep the folder chosen by the
// main process (workers inherit its environment).
if (!process.env.E2E_PGLITE_DIR) {
  removeOldPgliteFolders();
  process.env.E2E_PGLITE_DIR = `.data/e2e-${Date.now()}`;
}
const pgliteDir = process.env.E2E_PGLITE_DIR;

// With DATABASE_URL the server runs on that Postgres server, in a fresh
// database created for this run (chosen once, like the PGlite folder).
const serverDatabaseUrl = process.env.DATABASE_URL?.trim() || undefined;
if (serverDatabaseUrl && !process.env.E2E_DATABASE_URL) {
  refuseRemoteDatabase(serverDatabaseUrl);
  process.env.E2E_DATABASE_URL = execFileSync(
    process.execPath,
    [path.join(root, "e2e", "support", "fresh-database.mjs"), serverDatabaseUrl],
    { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] },
  ).trim();
}
const databaseUrl = process.env.E2E_DATABASE_URL;

const serverEnv: Record<string, string> = {
  PORT: String(port),
  HOST: "127.0.0.1",
  ADMIN_TOKEN: E2E_ADMIN_TOKEN,
  PGLITE_DIR: pgliteDir,
  NODE_ENV: "production",
};
if (databaseUrl) serverEnv.DATABASE_URL = databaseUrl;

const chromium = {
  browserName: "chromium" as const,
  viewport: { width: 1280, height: 800 },
  launchOptions: {
    // Debian's Chromium; Playwright's own browser download is never used.
    executablePath: "/usr/bin/chromium",
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
    ],
  },
};

export default defineConfig({
  testDir: "./e2e",
  // Artifacts (traces, failure screenshots) in a subfolder: Playwright empties
  // its outputDir on start, and test-results/ also holds vitest's report.
  outputDir: "test-results/playwright",
  fullyParallel: false,
  workers: 1,
  retries: 0,
  forbidOnly: !!process.env.CI,
  timeout: 30_000,
  expect: { timeout: 5_000 },
  reporter: [["list"], ["json", { outputFile: "test-results/e2e.json" }]],
  use: {
    baseURL,
    trace: "retain-on-failure",
    screenshot: "only-on-failure",
  },
  projects: [
    {
      name: "api",
      testDir: "./e2e/api",
    },
    {
      // Creates the first admin through the setup page and a viewer through
      // the operators page, and saves their sessions for the console tests.
      name: "console-setup",
      testDir: "./e2e/console",
      testMatch: /auth\.setup\.ts$/,
      use: { ...chromium },
    },
    {
      name: "console",
      testDir: "./e2e/console",
      dependencies: ["console-setup"],
      use: { ...chromium, storageState: ADMIN_STATE },
    },
  ],
  webServer: {
    command: "node scripts/start.mjs",
    url: `${baseURL}/api/health`,
    env: serverEnv,
    reuseExistingServer: false,
    // Includes a production build when the sources changed since the last one.
    timeout: 120_000,
    stdout: "pipe",
    stderr: "pipe",
    gracefulShutdown: { signal: "SIGTERM", timeout: 5_000 },
  },
});

/**
 * Each run gets a fresh PGlite folder. Folders of the last half hour stay (to
 * debug a failure, or for a run in progress on another port); older ones go.
 */
function removeOldPgliteFolders(): void {
  const dataDir = path.join(root, ".data");
  let names: string[];
  try {
    names = readdirSync(dataDir);
  } catch {
    return;
  }
  const cutoff = Date.now() - 30 * 60_000;
  for (const name of names) {
    const match = /^e2e-(\d+)$/.exec(name);
    if (match && Number(match[1]) < cutoff) rmSync(path.join(dataDir, name), { recursive: true, force: true });
  }
}

/** Tests write policies, keys and records: refuse anything but a local server. */
function refuseRemoteDatabase(url: string): void {
  if (process.env.E2E_ALLOW_REMOTE_DATABASE) return;
  const host = new URL(url).hostname;
  if (!["localhost", "127.0.0.1", "::1", "[::1]"].includes(host)) {
    throw new Error(
      `e2e refuses to run against the database at ${host}: point DATABASE_URL at a local server ` +
        "(or set E2E_ALLOW_REMOTE_DATABASE=1 if you really mean it).",
    );
  }
}

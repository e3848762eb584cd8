/**
 * Starts a real hub (`next start`) as a child process on a fresh database, for
 * tests, benchmarks and the demo: PGlite in a temporary folder, or a new
 * database on a Postgres server (dropped on stop). The production build is
 * made first when the sources changed, once: a lock file makes parallel test
 * files wait for one `next build` instead of running several.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:net";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createDatabase } from "./fresh-database";

const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

export type Engine = "pglite" | "postgres";

export interface HubProcessOptions {
  port: number;
  /** Default: postgres when `serverUrl` (or DATABASE_URL) is set, else pglite. */
  engine?: Engine;
  /** A Postgres server on which a fresh database is created (default DATABASE_URL). */
  serverUrl?: string;
  /** Default: a random token. */
  adminToken?: string;
  /** Prefix of the fresh database's name (default concord_hub_). */
  databasePrefix?: string;
  /** Extra environment for the hub. */
  env?: Record<string, string | undefined>;
  /** Default 5 minutes (a cold `next build` on a busy 2-core machine). */
  startTimeoutMs?: number;
  /**
   * Start the existing build even when the sources changed since it was made
   * (SDK benchmarks: the hub does not include lib/client). Default false.
   */
  reuseBuild?: boolean;
}

export interface HubProcess {
  base: string;
  adminToken: string;
  engine: Engine;
  /** The fresh Postgres database (engine postgres). */
  databaseUrl?: string;
  /** The process group of `next start` and the server it runs (benchmarks read its CPU time). */
  processGroup?: number;
  /** What the hub printed so far. */
  log(): string;
  stop(): Promise<void>;
}

/**
 * `next build` when the sources changed since the last build (one process at a
 * time per checkout: scripts/build-if-needed.mjs holds the lock). Run as a
 * child process to keep its output for the error message.
 */
async function ensureBuild(): Promise<void> {
  const { code, output } = await new Promise<{ code: number; output: string }>((resolve, reject) => {
    const child = spawn("node", ["scripts/build-if-needed.mjs"], { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1" } });
    let text = "";
    child.stdout.on("data", (d: Buffer) => (text += d.toString()));
    child.stderr.on("data", (d: Buffer) => (text += d.toString()));
    child.on("error", reject);
    child.on("close", (c) => resolve({ code: c ?? 1, output: text }));
  });
  if (code !== 0) throw new Error(`next build failed:\n${output.slice(-3000)}`);
}


/** Throws when something already listens on 127.0.0.1:port. */
async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        error.code === "EADDRINUSE"
          ? new Error(`port ${port} is already in use (a hub left running by an earlier run?); stop it or choose another port`)
          : error,
      ),
    );
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve()));
  });
}

export async function startHubProcess(options: HubProcessOptions): Promise<HubProcess> {
  const serverUrl = options.serverUrl ?? process.env.DATABASE_URL ?? undefined;
  const engine: Engine = options.engine ?? (serverUrl ? "postgres" : "pglite");
  if (engine === "postgres" && !serverUrl) throw new Error("engine postgres needs a server URL (DATABASE_URL)");
  const adminToken = options.adminToken ?? `hub-${randomBytes(16).toString("hex")}`;
  if (!options.reuseBuild) await ensureBuild();
  // A hub left running on this port (a killed benchmark's) would answer the health check below in place of the new one.
  await assertPortFree(options.port);

  let cleanup: () => Promise<void>;
  const env: NodeJS.ProcessEnv = { ...process.env, ADMIN_TOKEN: adminToken, NEXT_TELEMETRY_DISABLED: "1", ...options.env };
  delete env.CONCORD_DEFAULT_POLICY;
  delete env.PORT;
  let databaseUrl: string | undefined;
  if (engine === "pglite") {
    const dir = await mkdtemp(path.join(tmpdir(), "concord-hub-"));
    cleanup = () => rm(dir, { recursive: true, force: true });
    env.PGLITE_DIR = path.join(dir, "pglite");
    delete env.DATABASE_URL;
  } else {
    const db = await createDatabase(serverUrl as string, options.databasePrefix);
    cleanup = () => db.drop();
    databaseUrl = db.url;
    env.DATABASE_URL = db.url;
    delete env.PGLITE_DIR;
  }

  // `next start` directly (ensureBuild did scripts/start.mjs's part), in its own process group:
  // killing the group reaches next-server too.
  const child: ChildProcess = spawn(path.join(PROJECT_ROOT, "node_modules", ".bin", "next"), ["start", "-p", String(options.port), "-H", "127.0.0.1"], {
    cwd: PROJECT_ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let log = "";
  child.stdout?.on("data", (d: Buffer) => (log += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (log += d.toString()));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const base = `http://127.0.0.1:${options.port}`;

  const stop = async () => {
    if (child.pid && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // already gone
      }
      const timer = new Promise((r) => setTimeout(r, 5000));
      await Promise.race([exited, timer]);
      if (child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }
    }
    await cleanup().catch(() => undefined);
  };

  const deadline = Date.now() + (options.startTimeoutMs ?? 300_000);
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`the hub exited while starting (is port ${options.port} free?):\n${log.slice(-3000)}`);
    }
    try {
      if ((await fetch(`${base}/api/health`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`the hub did not start in time:\n${log.slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { base, adminToken, engine, databaseUrl, processGroup: child.pid, log: () => log, stop };
}

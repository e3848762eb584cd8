/**
 * Starts a real hub (`next start`) as a child process on a fresh database, for
 * tests, benchmarks and the demo: PGlite in a temporary folder, or a new
 * database on a Postgres server (dropped on stop). The production build is
 * made first when the sources changed, once: a lock file makes parallel test
 * files wait for one `next build` instead of running several.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, open, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import postgres from "postgres";

export const PROJECT_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

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
  /** What the hub printed so far. */
  log(): string;
  stop(): Promise<void>;
}

const BUILD_LOCK = path.join(tmpdir(), `concord-build-${createHash("sha256").update(PROJECT_ROOT).digest("hex").slice(0, 12)}.lock`);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits for the build lock of this checkout; a lock whose owner died is taken over. */
async function takeBuildLock(timeoutMs: number): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const file = await open(BUILD_LOCK, "wx");
      await file.writeFile(String(process.pid));
      await file.close();
      return () => rm(BUILD_LOCK, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const owner = Number(await readFile(BUILD_LOCK, "utf8").catch(() => ""));
    const age = Date.now() - ((await stat(BUILD_LOCK).catch(() => null))?.mtimeMs ?? Date.now());
    // An empty lock younger than a few seconds is being written; an old one or a dead owner's is stale.
    if ((owner > 0 && !alive(owner)) || (!owner && age > 10_000)) await rm(BUILD_LOCK, { force: true });
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs / 1000} s for another process's next build (lock ${BUILD_LOCK})`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** `next build` when the sources changed since the last build; one process at a time per checkout. */
export async function ensureBuild(timeoutMs = 600_000): Promise<void> {
  const release = await takeBuildLock(timeoutMs);
  try {
    const { code, output } = await new Promise<{ code: number; output: string }>((resolve, reject) => {
      const child = spawn("node", ["scripts/build-if-needed.mjs"], { cwd: PROJECT_ROOT, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NEXT_TELEMETRY_DISABLED: "1" } });
      let text = "";
      child.stdout.on("data", (d: Buffer) => (text += d.toString()));
      child.stderr.on("data", (d: Buffer) => (text += d.toString()));
      child.on("error", reject);
      child.on("close", (c) => resolve({ code: c ?? 1, output: text }));
    });
    if (code !== 0) throw new Error(`next build failed:\n${output.slice(-3000)}`);
  } finally {
    await release();
  }
}

/** A new, empty database on the Postgres server of `serverUrl`; `drop()` removes it. */
export async function createDatabase(serverUrl: string, prefix = "concord_hub_"): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}${process.pid}_${randomBytes(4).toString("hex")}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const dropper = postgres(serverUrl, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
      try {
        await dropper.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await dropper.end({ timeout: 5 });
      }
    },
  };
}

export async function startHubProcess(options: HubProcessOptions): Promise<HubProcess> {
  const serverUrl = options.serverUrl ?? process.env.DATABASE_URL ?? undefined;
  const engine: Engine = options.engine ?? (serverUrl ? "postgres" : "pglite");
  if (engine === "postgres" && !serverUrl) throw new Error("engine postgres needs a server URL (DATABASE_URL)");
  const adminToken = options.adminToken ?? `hub-${randomBytes(16).toString("hex")}`;
  if (!options.reuseBuild) await ensureBuild();

  const cleanups: (() => Promise<void>)[] = [];
  const env: NodeJS.ProcessEnv = { ...process.env, ADMIN_TOKEN: adminToken, NEXT_TELEMETRY_DISABLED: "1", ...options.env };
  delete env.CONCORD_DEFAULT_POLICY;
  delete env.PORT;
  let databaseUrl: string | undefined;
  if (engine === "pglite") {
    const dir = await mkdtemp(path.join(tmpdir(), "concord-hub-"));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    env.PGLITE_DIR = path.join(dir, "pglite");
    delete env.DATABASE_URL;
  } else {
    const db = await createDatabase(serverUrl as string, options.databasePrefix);
    cleanups.push(() => db.drop());
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
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
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
  return { base, adminToken, engine, databaseUrl, log: () => log, stop };
}

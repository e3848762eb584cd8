// Decides whether the production build in .next is stale, and rebuilds it when
// it is. Shared by scripts/start.mjs (npm start) and scripts/verify.mjs (npm test).
// Plain Node ESM on purpose: it must run before anything is compiled.
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
import { open, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Everything `next build` compiles or reads; a change to any of them means a rebuild. */
const SOURCE_DIRS = ["app", "components", "lib", "drizzle", "public"];
const SOURCE_FILES = [
  "instrumentation.ts",
  "instrumentation-client.ts",
  "middleware.ts",
  "proxy.ts",
  "next.config.js",
  "package.json",
  "package-lock.json",
  "postcss.config.mjs",
  "tsconfig.json",
];

const BUILD_ID = path.join(".next", "BUILD_ID");
const STAMP = path.join(".next", "concord-build-stamp.json");

/** The newest modification time under `dir`, counting directories too (so deletions count). */
function newestMtime(dir) {
  let newest = 0;
  let stat;
  try {
    stat = statSync(dir);
  } catch {
    return 0;
  }
  newest = stat.mtimeMs;
  if (!stat.isDirectory()) return newest;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === "node_modules" || entry.name === ".DS_Store") continue;
    newest = Math.max(newest, newestMtime(path.join(dir, entry.name)));
  }
  return newest;
}

/** When the current build started, or undefined when there is no usable build. */
function lastBuildTime(root) {
  if (!existsSync(path.join(root, BUILD_ID))) return undefined;
  try {
    const stamp = JSON.parse(readFileSync(path.join(root, STAMP), "utf8"));
    if (typeof stamp.startedAt === "number") return stamp.startedAt;
  } catch {
    // Built by `next build` directly: BUILD_ID is written at the end of a build.
  }
  return statSync(path.join(root, BUILD_ID)).mtimeMs;
}

/** Why a build is needed ("no production build yet", …), or null when .next is current. */
export function buildReason(root = projectRoot) {
  const builtAt = lastBuildTime(root);
  if (builtAt === undefined) return "no production build yet";
  const newest = Math.max(
    ...SOURCE_DIRS.map((dir) => newestMtime(path.join(root, dir))),
    ...SOURCE_FILES.map((file) => newestMtime(path.join(root, file))),
  );
  return newest > builtAt ? "sources changed since the last build" : null;
}

function run(command, args, options) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: "inherit", ...options });
    child.on("error", reject);
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

/**
 * Runs `next build` when the build is stale. Resolves to true when the build is
 * current afterwards (built or reused), false when `next build` failed. One
 * process at a time per checkout (npm start, npm test, test files that start
 * hubs, benchmarks): the others wait for the lock, then find the build current.
 */
export async function buildIfNeeded({ root = projectRoot, log = console.log, lockTimeoutMs = 600_000 } = {}) {
  const release = await takeBuildLock(root, lockTimeoutMs);
  try {
    return await buildIfStale(root, log);
  } finally {
    await release();
  }
}

async function buildIfStale(root, log) {
  const reason = buildReason(root);
  if (reason === null) {
    log("Using the existing production build (no sources changed since it was made).");
    return true;
  }
  log(`Building Concord (${reason})…`);
  // The stamp records when the build started, so a file saved during the build
  // still counts as newer than it and triggers the next rebuild.
  const startedAt = Date.now();
  const code = await run(path.join(root, "node_modules", ".bin", "next"), ["build"], { cwd: root });
  if (code !== 0 || !existsSync(path.join(root, BUILD_ID))) {
    log(`next build failed (exit code ${code}).`);
    return false;
  }
  writeFileSync(path.join(root, STAMP), `${JSON.stringify({ startedAt, finishedAt: Date.now() })}\n`);
  return true;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits for the build lock of this checkout; a lock whose owner died is taken over. */
async function takeBuildLock(root, timeoutMs) {
  const lock = path.join(tmpdir(), `concord-build-${createHash("sha256").update(root).digest("hex").slice(0, 12)}.lock`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const file = await open(lock, "wx");
      await file.writeFile(String(process.pid));
      await file.close();
      return () => rm(lock, { force: true });
    } catch (error) {
      if (error.code !== "EEXIST") throw error;
    }
    const owner = Number(await readFile(lock, "utf8").catch(() => ""));
    const age = Date.now() - ((await stat(lock).catch(() => null))?.mtimeMs ?? Date.now());
    // An empty lock younger than a few seconds is being written; an old one or a dead owner's is stale.
    if ((owner > 0 && !alive(owner)) || (!owner && age > 10_000)) await rm(lock, { force: true });
    if (Date.now() > deadline) throw new Error(`waited ${timeoutMs / 1000} s for another process's next build (lock ${lock})`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

// `node scripts/build-if-needed.mjs` on its own: build when stale, exit non-zero on failure.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = (await buildIfNeeded()) ? 0 : 1;
}

// Decides whether the production build in .next is stale, and rebuilds it when
// it is. Shared by scripts/start.mjs (npm start) and scripts/verify.mjs (npm test).
// Plain Node ESM on purpose: it must run before anything is compiled.
import { spawn } from "node:child_process";
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from "node:fs";
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
 * current afterwards (built or reused), false when `next build` failed.
 */
export async function buildIfNeeded({ root = projectRoot, log = console.log } = {}) {
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

// `node scripts/build-if-needed.mjs` on its own: build when stale, exit non-zero on failure.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = (await buildIfNeeded()) ? 0 : 1;
}

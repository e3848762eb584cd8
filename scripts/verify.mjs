// `npm test`: the one command that says whether Concord works. CI runs it too.
//
//   1. type-check     next typegen + tsc --noEmit
//   2. lint           eslint --max-warnings=0 .
//   3. unit + integration tests   vitest run (PGlite, or Postgres when DATABASE_URL is set)
//   4. browser + API tests        Chromium check, next build when stale, playwright test
//
// Stops at the first failing step. The last line of output is always
//   Concord: N passed, N failed, N skipped
// (tests counted from vitest's and Playwright's JSON reports; a step that fails
// outside any test, such as tsc or a build, counts as one failure, so the line
// never reads "0 failed" for a failed run). `--no-e2e` skips step 4.
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { buildIfNeeded, projectRoot } from "./build-if-needed.mjs";

const args = new Set(process.argv.slice(2));
for (const arg of args) {
  if (arg !== "--no-e2e") {
    console.error(`Unknown option ${arg}. Usage: npm test [-- --no-e2e]`);
    process.exit(2);
  }
}
const withE2e = !args.has("--no-e2e");

const bin = (name) => path.join(projectRoot, "node_modules", ".bin", name);
const resultsDir = path.join(projectRoot, "test-results");
const vitestReport = path.join(resultsDir, "vitest.json");
const e2eReport = path.join(resultsDir, "e2e.json");

/** @typedef {{ passed: number, failed: number, skipped: number }} Counts */
/** @type {Array<{ name: string, status: "passed" | "failed" | "skipped", seconds: number, note?: string, counts?: Counts }>} */
const steps = [];

function run(command, commandArgs, options = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, commandArgs, { cwd: projectRoot, stdio: "inherit", ...options });
    child.on("error", (error) => {
      console.error(`Could not run ${command}: ${error.message}`);
      resolve(127);
    });
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

function announce(name, detail) {
  console.log(`\n━━ ${name} ━━ ${detail}`);
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
}

/** Counts from vitest's JSON report; a file that failed to load counts as one failure. */
function vitestCounts() {
  const report = readJson(vitestReport);
  if (!report) return undefined;
  const brokenFiles = (report.testResults ?? []).filter(
    (file) => file.status === "failed" && !(file.assertionResults ?? []).some((test) => test.status === "failed"),
  ).length;
  return {
    passed: report.numPassedTests ?? 0,
    failed: (report.numFailedTests ?? 0) + brokenFiles,
    skipped: (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0),
  };
}

/** Counts from Playwright's JSON report; errors outside tests (webServer, config) count as failures. */
function playwrightCounts() {
  const report = readJson(e2eReport);
  if (!report?.stats) return undefined;
  const { expected = 0, unexpected = 0, flaky = 0, skipped = 0 } = report.stats;
  return {
    passed: expected + flaky,
    failed: unexpected + (report.errors?.length ?? 0),
    skipped,
  };
}

/**
 * Runs one step. `body` resolves to { ok, counts?, note? }. Returns whether the
 * step passed; the caller stops at the first failure.
 */
async function step(name, detail, body) {
  announce(name, detail);
  const started = Date.now();
  const result = await body();
  const seconds = (Date.now() - started) / 1000;
  steps.push({ name, status: result.ok ? "passed" : "failed", seconds, note: result.note, counts: result.counts });
  if (!result.ok) console.error(`\n✗ ${name} failed${result.note ? `: ${result.note}` : ""}.`);
  return result.ok;
}

async function command(cmd, cmdArgs) {
  const code = await run(cmd, cmdArgs);
  return { ok: code === 0, note: code === 0 ? undefined : `exit code ${code}` };
}

const plan = [
  ["Type-check", "next typegen && tsc --noEmit", async () => {
    // Route types under .next/types must match the routes on disk before tsc reads them.
    const typegen = await run(bin("next"), ["typegen"]);
    if (typegen !== 0) return { ok: false, note: `next typegen exited with ${typegen}` };
    return command(bin("tsc"), ["--noEmit"]);
  }],
  ["Lint", "eslint --max-warnings=0 .", () => command(bin("eslint"), ["--max-warnings=0", "."])],
  ["Unit and integration tests", `vitest run (${process.env.DATABASE_URL ? "Postgres from DATABASE_URL" : "PGlite"})`, async () => {
    rmSync(vitestReport, { force: true });
    const code = await run(bin("vitest"), [
      "run",
      "--reporter=default",
      "--reporter=json",
      `--outputFile.json=${path.relative(projectRoot, vitestReport)}`,
    ]);
    const counts = vitestCounts();
    if (!counts) return { ok: false, note: `vitest exited with ${code} and wrote no report`, counts: { passed: 0, failed: 1, skipped: 0 } };
    return { ok: code === 0 && counts.failed === 0, counts, note: code === 0 ? undefined : `exit code ${code}` };
  }],
];

if (withE2e) {
  plan.push(
    ["Chromium", "scripts/ensure-chromium.sh", () => command("bash", [path.join(projectRoot, "scripts", "ensure-chromium.sh")])],
    ["Production build", "next build when sources changed", async () => ({ ok: await buildIfNeeded() })],
    ["Browser and API tests", "playwright test", async () => {
      rmSync(e2eReport, { force: true });
      const code = await run(bin("playwright"), ["test"]);
      const counts = playwrightCounts();
      if (!counts) return { ok: false, note: `playwright exited with ${code} and wrote no report`, counts: { passed: 0, failed: 1, skipped: 0 } };
      return { ok: code === 0 && counts.failed === 0, counts, note: code === 0 ? undefined : `exit code ${code}` };
    }],
  );
}

mkdirSync(resultsDir, { recursive: true });
const startedAll = Date.now();
let stoppedAt;
for (const [name, detail, body] of plan) {
  if (!(await step(name, detail, body))) {
    stoppedAt = name;
    break;
  }
}

// Summary
const total = { passed: 0, failed: 0, skipped: 0 };
const pad = Math.max(...plan.map(([name]) => name.length));
console.log("\n━━ Summary ━━");
for (const [name] of plan) {
  const done = steps.find((s) => s.name === name);
  let line;
  if (!done) {
    line = "not run";
  } else {
    line = `${done.status === "passed" ? "ok    " : "FAILED"} ${done.seconds.toFixed(1).padStart(6)} s`;
    if (done.counts) line += `  (${done.counts.passed} passed, ${done.counts.failed} failed, ${done.counts.skipped} skipped)`;
    if (done.note) line += `  ${done.note}`;
  }
  console.log(`  ${name.padEnd(pad)}  ${line}`);
  if (done?.counts) {
    total.passed += done.counts.passed;
    total.failed += done.counts.failed;
    total.skipped += done.counts.skipped;
  } else if (done?.status === "failed") {
    total.failed += 1; // a failure outside any test (tsc, eslint, build, …)
  }
}
if (!withE2e) console.log(`  ${"Browser and API tests".padEnd(pad)}  not run (--no-e2e)`);
console.log(`  Total ${((Date.now() - startedAll) / 1000).toFixed(1)} s${stoppedAt ? `; stopped at "${stoppedAt}"` : ""}.`);
if (existsSync(e2eReport) && withE2e) console.log("  Reports: test-results/vitest.json, test-results/e2e.json");
else if (existsSync(vitestReport)) console.log("  Report: test-results/vitest.json");

const failed = stoppedAt !== undefined || total.failed > 0;
if (failed && total.failed === 0) total.failed = 1;
console.log(`Concord: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
process.exitCode = failed ? 1 : 0;

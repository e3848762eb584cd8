import { Worker } from "node:worker_threads";
import { ServiceError } from "../errors";
import { log } from "../log";
import type { CheckMode, CheckResult, LoadResult } from "./check";
import type { CheckJob } from "./check-worker";

/**
 * The policy checker: parses and validates policy text (and test-loads it
 * into Casbin) in one worker thread, so a large draft never blocks the
 * server's event loop — health checks, sync requests and console pages keep
 * being answered while it is checked. One worker serves the process, one job
 * at a time in arrival order; a job that runs past the timeout is stopped
 * (the worker is terminated and a fresh one serves the next job) and answered
 * with `policy_invalid`. When too many jobs wait, new ones are refused with
 * `rate_limited` instead of piling up.
 */

export const POLICY_CHECK_TIMEOUT_MS = 10_000;
export const POLICY_CHECK_MAX_WAITING = 16;
/** Extra time a fresh worker gets to load its code before its first job's clock starts. */
const WORKER_START_MS = 30_000;

interface Job {
  yaml: string;
  mode: CheckMode;
  resolve: (result: CheckResult | LoadResult) => void;
  reject: (error: unknown) => void;
}

interface Running {
  id: number;
  job: Job;
  timer: ReturnType<typeof setTimeout>;
}

type Answer = { id: number; result: CheckResult | LoadResult } | { id: number; failure: string } | { ready: true };

export class PolicyChecker {
  private worker: Worker | null = null;
  /** Whether the worker has loaded its code (its first job's clock starts then). */
  private ready = false;
  private running: Running | null = null;
  private readonly waiting: Job[] = [];
  private nextId = 1;

  constructor(private readonly settings: { timeoutMs: number; maxWaiting: number } = { timeoutMs: POLICY_CHECK_TIMEOUT_MS, maxWaiting: POLICY_CHECK_MAX_WAITING }) {}

  /** Validates policy text and test-loads it into the engine, in the worker: what activation requires. */
  check(yaml: string): Promise<CheckResult> {
    return this.submit(yaml, "check") as Promise<CheckResult>;
  }

  /** Validates policy text in the worker and hands back the normalised policy, for the caller to compile. */
  load(yaml: string): Promise<LoadResult> {
    return this.submit(yaml, "load") as Promise<LoadResult>;
  }

  private submit(yaml: string, mode: CheckMode): Promise<CheckResult | LoadResult> {
    if (this.waiting.length >= this.settings.maxWaiting) {
      return Promise.reject(
        new ServiceError(
          "rate_limited",
          `The policy checker is busy with ${this.waiting.length + 1} other policies; try again in a moment (Retry-After).`,
          { retryAfterSeconds: 1 },
        ),
      );
    }
    return new Promise<CheckResult | LoadResult>((resolve, reject) => {
      this.waiting.push({ yaml, mode, resolve, reject });
      this.next();
    });
  }

  /** Stops the worker (tests, shutdown); waiting jobs are refused. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    const stopped = new ServiceError("internal", "The policy checker was stopped before it checked this policy; try again.");
    if (this.running) {
      clearTimeout(this.running.timer);
      this.running.job.reject(stopped);
      this.running = null;
    }
    for (const job of this.waiting.splice(0)) job.reject(stopped);
    if (worker) await worker.terminate();
  }

  private next(): void {
    if (this.running) return;
    const job = this.waiting.shift();
    if (!job) {
      this.worker?.unref();
      return;
    }
    const worker = this.ensureWorker();
    worker.ref();
    const id = this.nextId++;
    const timer = setTimeout(() => this.timedOut(id), this.settings.timeoutMs + (this.ready ? 0 : WORKER_START_MS));
    this.running = { id, job, timer };
    const message: CheckJob = { id, yaml: job.yaml, mode: job.mode };
    worker.postMessage(message);
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const worker = startWorker();
    this.ready = false;
    worker.on("message", (answer: Answer) => this.answered(worker, answer));
    worker.on("error", (error) => this.failed(worker, error));
    worker.on("exit", (code) => this.failed(worker, new Error(`the policy checker's worker exited with code ${code}`)));
    this.worker = worker;
    return worker;
  }

  private finish(id: number): Job | null {
    const running = this.running;
    if (!running || running.id !== id) return null;
    clearTimeout(running.timer);
    this.running = null;
    return running.job;
  }

  private answered(worker: Worker, answer: Answer): void {
    if ("ready" in answer) {
      if (worker !== this.worker) return;
      this.ready = true;
      const running = this.running;
      if (running) {
        clearTimeout(running.timer);
        running.timer = setTimeout(() => this.timedOut(running.id), this.settings.timeoutMs);
      }
      return;
    }
    const job = this.finish(answer.id);
    if (!job) return;
    if ("result" in answer) job.resolve(answer.result);
    else job.reject(new ServiceError("internal", `The policy checker failed on this policy (${answer.failure}); nothing was changed.`));
    this.next();
  }

  private timedOut(id: number): void {
    const job = this.finish(id);
    if (!job) return;
    this.discard();
    const seconds = this.settings.timeoutMs / 1000;
    const message = `checking the policy took longer than ${seconds} s and was stopped; simplify it (fewer rules, shorter conditions)`;
    job.reject(
      new ServiceError("policy_invalid", `The policy could not be checked in time (${seconds} s) and was not changed; simplify it and try again.`, [
        { line: 1, column: 1, message },
      ]),
    );
    this.next();
  }

  private failed(worker: Worker, error: Error): void {
    if (worker !== this.worker) return;
    this.worker = null;
    const running = this.running;
    if (!running) return;
    this.finish(running.id);
    log.error("the policy checker's worker stopped", error);
    running.job.reject(new ServiceError("internal", "The policy checker stopped while checking this policy; nothing was changed. Try again."));
    this.next();
  }

  /** Terminates the current worker; the next job starts a fresh one. */
  private discard(): void {
    const worker = this.worker;
    this.worker = null;
    if (worker) void worker.terminate();
  }
}

/**
 * The worker thread. Next.js bundles `new Worker(new URL(...))` entries for
 * the server. Unbundled (vitest, tsx scripts) the entry is the TypeScript
 * source, which the worker loads through tsx's loader like its parent.
 */
function startWorker(): Worker {
  const name = "concord-policy-checker";
  if (process.env.NEXT_RUNTIME !== undefined) {
    return new Worker(new URL("./check-worker.ts", import.meta.url), { name });
  }
  const entry = import.meta.url.replace(/[^/]*$/, "check-worker.ts");
  const bootstrap = `import("tsx/esm/api").then(({ register }) => { register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(bootstrap, { eval: true, name });
}

const CHECKER = Symbol.for("concord.policyChecker");
type WithChecker = typeof globalThis & { [CHECKER]?: PolicyChecker };

/** The process's policy checker (on globalThis: Next.js may load this module more than once). */
export function policyChecker(): PolicyChecker {
  const g = globalThis as WithChecker;
  g[CHECKER] ??= new PolicyChecker();
  return g[CHECKER];
}

import { parentPort } from "node:worker_threads";
import { checkPolicyText, loadPolicyText, type CheckMode } from "./check";

/**
 * The policy checker's worker thread (lib/policy/checker.ts): parses,
 * validates and test-loads policy text off the server's event loop, one job
 * at a time, and answers each with its result.
 */
export interface CheckJob {
  id: number;
  yaml: string;
  mode: CheckMode;
}

const port = parentPort;
if (port) {
  port.on("message", (job: CheckJob) => {
    const work = job.mode === "check" ? checkPolicyText(job.yaml) : Promise.resolve(loadPolicyText(job.yaml));
    work.then(
      (result) => port.postMessage({ id: job.id, result }),
      (error: unknown) => port.postMessage({ id: job.id, failure: error instanceof Error ? error.message : String(error) }),
    );
  });
  // Loaded: from now on a job's time is the check's own.
  port.postMessage({ ready: true });
}

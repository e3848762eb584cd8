import type { Database } from "../db/client";
import { ServiceError } from "../errors";
import { CompiledPolicy } from "../policy/compile";
import { policyChecker } from "../policy/checker";
import { activatePolicy, getActivePolicy, type ActivateResult } from "../policy/store";
import { MAX_POLICY_BYTES, type PolicyIssue } from "../policy/validate";

/**
 * The console's policy draft: checked as the operator types with the very
 * engine that activation uses (validatePolicy, then compiling into Casbin, in
 * the policy checker's worker thread), and activated only against the version
 * it was written from.
 */
export interface DraftCheck {
  /** Whether the draft would activate: no errors and the engine compiles it. */
  ok: boolean;
  errors: PolicyIssue[];
  warnings: PolicyIssue[];
  /** The draft's systems and collections, when it is valid (for the simulator). */
  systems: string[];
  collections: string[];
}

export async function checkDraft(yaml: string): Promise<DraftCheck> {
  // What dryRunPolicy and activatePolicy do, in the checker's worker: a file Casbin cannot load is refused too.
  const result = await policyChecker().check(yaml);
  if (!result.ok) return { ok: false, errors: result.errors, warnings: result.warnings, systems: [], collections: [] };
  return { ok: true, errors: [], warnings: result.warnings, systems: result.systems, collections: result.collections };
}

/** Compiles a draft for simulation, or throws `policy_invalid` naming the first problem. */
export async function compileDraft(yaml: string): Promise<CompiledPolicy> {
  const result = await policyChecker().load(yaml);
  if (!result.ok) {
    const first = result.errors[0];
    throw new ServiceError(
      "policy_invalid",
      `The draft is invalid${first ? ` (line ${first.line}: ${first.message})` : ""}; fix it first, or simulate the active policy.`,
      result.errors,
    );
  }
  return CompiledPolicy.create(result.policy);
}

export interface ActivateDraftInput {
  yaml: string;
  /** The active version the draft was loaded from. */
  baseVersion: number;
  comment: string;
  actor: string;
}

export const MAX_COMMENT_LENGTH = 500;

/**
 * Activates a draft from the console. Refuses an empty comment, a draft that
 * does not change the active text, and a draft written against a version that
 * is no longer active (checked again inside the activation transaction).
 */
export async function activateDraft(db: Database, input: ActivateDraftInput): Promise<ActivateResult> {
  const comment = input.comment.trim();
  if (comment === "") {
    throw new ServiceError("invalid_request", "Write a comment saying why the policy changes; it is kept with the version.");
  }
  if (comment.length > MAX_COMMENT_LENGTH) {
    throw new ServiceError("invalid_request", `The comment is longer than ${MAX_COMMENT_LENGTH} characters; shorten it.`);
  }
  if (Buffer.byteLength(input.yaml, "utf8") > MAX_POLICY_BYTES) {
    throw new ServiceError("payload_too_large", `The policy is larger than ${MAX_POLICY_BYTES / 1024} KiB.`);
  }
  const active = await getActivePolicy(db);
  if (active.version !== input.baseVersion) {
    throw new ServiceError(
      "conflict",
      `The active policy changed while you edited: your draft is based on version ${input.baseVersion}, but version ${active.version} is active now. Nothing was changed; reload the page to see version ${active.version}, merge your edits into it, and activate again.`,
      { expectedVersion: input.baseVersion, activeVersion: active.version },
    );
  }
  if (active.yaml === input.yaml) {
    throw new ServiceError("conflict", `The draft is the same as the active version ${active.version}; there is nothing to activate.`);
  }
  return activatePolicy(db, {
    yaml: input.yaml,
    actor: input.actor,
    source: "console",
    comment,
    expectedVersion: input.baseVersion,
  });
}

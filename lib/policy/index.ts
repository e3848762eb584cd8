import { ServiceError } from "../errors";
import { CompiledPolicy } from "./compile";
import { validatePolicy } from "./validate";

export { CompiledPolicy } from "./compile";
export type { Action, Grant, Scope, ConflictSetting } from "./compile";
export { validatePolicy, type Policy, type PolicyIssue } from "./validate";

/** Validates and compiles policy text; throws `policy_invalid` with positions. */
export async function compilePolicy(source: string): Promise<CompiledPolicy> {
  const result = validatePolicy(source);
  if (!result.ok) {
    throw new ServiceError("policy_invalid", "The policy is invalid.", result.errors);
  }
  return CompiledPolicy.create(result.policy);
}

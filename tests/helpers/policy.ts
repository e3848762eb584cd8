import { readFileSync } from "node:fs";
import { expect } from "vitest";
import type { JsonObject } from "@/lib/db/schema";
import { compilePolicy } from "@/lib/policy";
import { covers, fieldsFor, type Action, type CompiledPolicy } from "@/lib/policy/compile";

export const compile = compilePolicy;

export function compileFile(path: string): Promise<CompiledPolicy> {
  return compile(readFileSync(path, "utf8"));
}

/**
 * One line of a decision matrix: Casbin's answer and the compiled scope's
 * answer must both be `allowed` (for the record, or for one field of it).
 */
export function expectDecision(
  policy: CompiledPolicy,
  system: string,
  collection: string,
  record: JsonObject,
  action: Action,
  allowed: boolean,
  field?: string,
): void {
  const label = `${system} ${action} ${collection}${field ? `.${field}` : ""} ${JSON.stringify(record)}`;
  expect(policy.decide(system, collection, action, record, field ?? ""), `Casbin: ${label}`).toBe(allowed);
  const scope = policy.scope(system, collection, action);
  if (field === undefined) {
    expect(covers(scope, record), `compiled: ${label}`).toBe(allowed);
  } else {
    const fields = fieldsFor(scope, record);
    const compiled = fields === "*" || (fields !== null && fields.has(field));
    expect(compiled, `compiled: ${label}`).toBe(allowed);
  }
}

/**
 * The policy condition language (policy.md, "Conditions"). Semantics and
 * limits are documented in ./ast.ts.
 */
import type { Condition } from "./ast";

export * from "./ast";
export { parseCondition, type ConditionSyntaxError, type ParseResult } from "./parse";
export { printCondition, printLiteral } from "./print";
export { compilePredicate, type RecordPredicate } from "./evaluate";
export { conditionToSql } from "./sql";
export { conditionToCasbin, casbinConditionFunctions } from "./casbin";
export { compareCodePoints } from "./value";

/** Dotted paths the condition reads, each once, in order of first use. */
export function fieldsReferenced(ast: Condition): string[] {
  const seen = new Set<string>();
  const visit = (node: Condition): void => {
    switch (node.kind) {
      case "cmp":
      case "in":
      case "exists":
        seen.add(node.path.join("."));
        return;
      case "not":
        visit(node.expr);
        return;
      case "and":
      case "or":
        node.operands.forEach(visit);
        return;
    }
  };
  visit(ast);
  return [...seen];
}

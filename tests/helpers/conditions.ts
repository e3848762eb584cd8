import fc from "fast-check";
import type { Condition, Literal } from "@/lib/policy/condition";

/**
 * Generators of condition ASTs for property tests, over the given paths and
 * literal generators (each test picks the strings its translation finds hard).
 */
export function conditionArbitraries(options: {
  paths: ReadonlyArray<readonly string[]>;
  strings: fc.Arbitrary<string>;
  numbers: fc.Arbitrary<number>;
  maxExtraOperands?: number;
}) {
  const { strings, numbers } = options;
  const literal: fc.Arbitrary<Literal> = fc.oneof(strings, numbers, fc.boolean(), fc.constant(null));
  const path = fc.constantFrom(...options.paths);
  const atom: fc.Arbitrary<Condition> = fc.oneof(
    fc.record({ kind: fc.constant("cmp" as const), op: fc.constantFrom("==" as const, "!=" as const), path, value: literal }),
    fc.record({
      kind: fc.constant("cmp" as const),
      op: fc.constantFrom("<" as const, "<=" as const, ">" as const, ">=" as const),
      path,
      value: fc.oneof(strings, numbers),
    }),
    fc.record({ kind: fc.constant("in" as const), path, values: fc.array(literal, { maxLength: 4 }), negated: fc.boolean() }),
    fc.record({ kind: fc.constant("exists" as const), path }),
  );
  const condition = (depth: number): fc.Arbitrary<Condition> => {
    if (depth === 0) return atom;
    const inner = condition(depth - 1);
    return fc.oneof(
      { arbitrary: atom, weight: 3 },
      { arbitrary: inner.map((expr): Condition => ({ kind: "not", expr })), weight: 1 },
      {
        arbitrary: fc
          .tuple(fc.constantFrom("and" as const, "or" as const), inner, inner, fc.array(inner, { maxLength: options.maxExtraOperands ?? 2 }))
          .map(([kind, x, y, rest]): Condition => ({ kind, operands: [x, y, ...rest] })),
        weight: 2,
      },
    );
  };
  return { literal, atom, condition };
}

/** Every literal a condition mentions (to seed records with values that make atoms true). */
export function literalsOf(ast: Condition): Literal[] {
  switch (ast.kind) {
    case "cmp":
      return [ast.value];
    case "in":
      return [...ast.values];
    case "exists":
      return [];
    case "not":
      return literalsOf(ast.expr);
    case "and":
    case "or":
      return ast.operands.flatMap(literalsOf);
  }
}

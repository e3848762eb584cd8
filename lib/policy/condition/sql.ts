import { sql, type AnyColumn, type SQL } from "drizzle-orm";
import type { Condition, FieldPath, Literal, OrderingOp } from "./ast";
import { printNumber } from "./print";

/**
 * A SQL boolean over a `jsonb` column that is true exactly when the condition
 * holds for the stored record (semantics: ast.ts).
 *
 * - Every literal and every path key is a bound parameter; `sql.raw` only
 *   ever sees operators and keywords from this file.
 * - Two-valued: every atom is wrapped so it is true or false, never NULL, so
 *   `NOT` and `!=` keep their meaning on missing fields.
 * - It cannot raise on any stored JSON: casts sit inside `CASE WHEN
 *   jsonb_typeof(...)` branches, because Postgres does not promise to
 *   short-circuit `AND`.
 * - Path keys are separate `->` steps with text parameters (no array
 *   parameters), which postgres.js and PGlite both bind the same way; `->`
 *   with a text key yields NULL on arrays and scalars, which is "missing".
 */
export function conditionToSql(ast: Condition, dataColumn: SQL | AnyColumn): SQL {
  switch (ast.kind) {
    case "cmp": {
      const value = jsonPath(dataColumn, ast.path);
      switch (ast.op) {
        case "==":
          return equals(value, ast.value);
        case "!=":
          return sql`(NOT ${equals(value, ast.value)})`;
        default:
          return ordering(value, ast.op, ast.value);
      }
    }
    case "in": {
      const test = membership(jsonPath(dataColumn, ast.path), ast.values);
      return ast.negated ? sql`(NOT ${test})` : test;
    }
    case "exists":
      return sql`(${jsonPath(dataColumn, ast.path)} IS NOT NULL)`;
    case "not":
      return sql`(NOT ${conditionToSql(ast.expr, dataColumn)})`;
    case "and":
    case "or": {
      const parts = ast.operands.map((operand) => conditionToSql(operand, dataColumn));
      return sql`(${sql.join(parts, ast.kind === "and" ? sql` AND ` : sql` OR `)})`;
    }
  }
}

function jsonPath(dataColumn: SQL | AnyColumn, path: FieldPath): SQL {
  // The explicit ::text picks the object-key form of `->` (an untyped
  // parameter would be ambiguous with the array-index form).
  let expr = sql`${dataColumn}`;
  for (const key of path) expr = sql`${expr} -> ${key}::text`;
  return sql`(${expr})`;
}

function equals(value: SQL, literal: Literal): SQL {
  if (literal === null) return sql`coalesce(${value} = 'null'::jsonb, true)`;
  // jsonb equality is numeric for numbers (1 = 1.0) and exact for strings;
  // a missing value is SQL NULL, which coalesce turns into false.
  return sql`coalesce(${value} = ${JSON.stringify(literal)}::jsonb, false)`;
}

const ORDERING_SQL: Readonly<Record<OrderingOp, SQL>> = {
  "<": sql.raw("<"),
  "<=": sql.raw("<="),
  ">": sql.raw(">"),
  ">=": sql.raw(">="),
};

function ordering(value: SQL, op: OrderingOp, literal: string | number): SQL {
  const operator = ORDERING_SQL[op];
  if (typeof literal === "number") {
    // The literal travels as text: a float8 parameter cast to numeric could
    // round, text like "1e+21" or "0.1" converts exactly.
    return sql`(CASE WHEN jsonb_typeof(${value}) = 'number' THEN (${value})::numeric ${operator} ${printNumber(literal)}::numeric ELSE false END)`;
  }
  // COLLATE "C" compares UTF-8 bytes, which is Unicode code point order.
  return sql`(CASE WHEN jsonb_typeof(${value}) = 'string' THEN (${value} #>> '{}') COLLATE "C" ${operator} ${literal}::text COLLATE "C" ELSE false END)`;
}

function membership(value: SQL, literals: readonly Literal[]): SQL {
  const nonNull = literals.filter((literal) => literal !== null);
  const tests: SQL[] = [];
  if (nonNull.length > 0) {
    const list = sql.join(
      nonNull.map((literal) => sql`${JSON.stringify(literal)}::jsonb`),
      sql`, `,
    );
    tests.push(sql`coalesce(${value} IN (${list}), false)`);
  }
  if (literals.includes(null)) tests.push(equals(value, null));
  if (tests.length === 0) return sql`false`;
  return sql`(${sql.join(tests, sql` OR `)})`;
}

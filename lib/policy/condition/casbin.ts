import type { MatchingFunction } from "casbin";
import type { Condition, FieldPath, Literal, OrderingOp } from "./ast";
import { printNumber } from "./print";
import { compareCodePoints, lookupPath } from "./value";

/**
 * The condition as Casbin matcher text over the request attribute `r.rec`,
 * meant to be a policy field read by `eval(p.cond)` (semantics: ast.ts).
 * Register `casbinConditionFunctions` on the enforcer first.
 *
 * The text is pre-escaped for the path Casbin 5.51 sends an eval rule down,
 * and only for that path (do not paste it into a matcher directly):
 *
 * 1. `escapeAssertion` rewrites `r.`/`p.` after a space, bracket or operator
 *    to `r_`/`p_`, inside string literals too. Every `.` in a literal is
 *    written `\.`; jsep reads an unknown escape as the character itself.
 * 2. `replaceEval` splices the rule in with `String.prototype.replace`, which
 *    expands `$&`, `$'`, `` $` ``, `$$` and `$1` in it. Every `$` in a literal
 *    is written `$$`.
 * 3. `bracketCompatible` turns any ` (…, …)` group into an array literal when
 *    the expression contains ` in `. Nothing emitted here has a space outside
 *    string literals, and a space inside one is written `\ `, so the output
 *    never contains ` in `; the matcher around `eval(p.cond)` must not either.
 * 4. jsep strings know only `\n \r \t \b \f \v` and "any other character
 *    stands for itself"; there is no `\u`. Backslashes and quotes are escaped;
 *    every other character (controls, astral, private use) is written raw,
 *    which jsep copies unchanged.
 * 5. jsep numbers accept `1e+21` and `5e-324`; a negative literal is unary
 *    minus on the positive one, which gives the same double (and `-0`).
 * 6. Only operators that never coerce an operand touch record values
 *    (`===`, `==null`, `!`, `&&`, `||`): coercion calls a record's own
 *    `toString`/`valueOf` keys, and a non-function there makes Casbin throw.
 */
export function conditionToCasbin(ast: Condition): string {
  switch (ast.kind) {
    case "cmp": {
      const value = valueOf(ast.path);
      switch (ast.op) {
        case "==":
          return equals(value, ast.value);
        case "!=":
          return `!(${equals(value, ast.value)})`;
        default:
          return ordering(value, ast.op, ast.value);
      }
    }
    case "in": {
      const value = valueOf(ast.path);
      const test = ast.values.length === 0 ? "false" : `(${ast.values.map((literal) => equals(value, literal)).join("||")})`;
      return ast.negated ? `!${test}` : test;
    }
    case "exists":
      return `${CASBIN_HAS}(r.rec,${pathArguments(ast.path)})`;
    case "not":
      return `!(${conditionToCasbin(ast.expr)})`;
    case "and":
    case "or":
      return `(${ast.operands.map(conditionToCasbin).join(ast.kind === "and" ? "&&" : "||")})`;
  }
}

const CASBIN_VALUE = "condVal";
const CASBIN_HAS = "condHas";
const CASBIN_STRCMP = "condStrCmp";
const CASBIN_NUM = "condNum";

function valueOf(path: FieldPath): string {
  return `${CASBIN_VALUE}(r.rec,${pathArguments(path)})`;
}

/** Segments are separate arguments, so no dot ever appears in a key. */
function pathArguments(path: FieldPath): string {
  return path.map(casbinString).join(",");
}

function equals(value: string, literal: Literal): string {
  // JS `==` with null is exactly "missing (undefined) or null"; for every
  // other literal `===` already means "same type and equal".
  return literal === null ? `${value}==null` : `${value}===${casbinLiteral(literal)}`;
}

function ordering(value: string, op: OrderingOp, literal: string | number): string {
  if (typeof literal === "number") {
    // Not the native guard `x===+x`: unary plus runs ToPrimitive, which
    // throws on record data such as {"toString": 1} (and so does `<` on an
    // object). condNum passes numbers through and turns the rest into NaN,
    // which every ordering operator compares false.
    return `${CASBIN_NUM}(${value})${op}${casbinLiteral(literal)}`;
  }
  // NaN (not two strings) compares false with 0 under every operator.
  return `${CASBIN_STRCMP}(${value},${casbinLiteral(literal)})${op}0`;
}

function casbinLiteral(literal: Exclude<Literal, null>): string {
  if (typeof literal === "string") return casbinString(literal);
  if (typeof literal === "number") return printNumber(literal);
  return literal ? "true" : "false";
}

const CASBIN_STRING_ESCAPES: Readonly<Record<string, string>> = {
  "\\": "\\\\",
  "'": "\\'",
  ".": "\\.",
  " ": "\\ ",
  $: "$$",
};

function casbinString(value: string): string {
  let out = "'";
  for (const ch of value) out += CASBIN_STRING_ESCAPES[ch] ?? ch;
  return `${out}'`;
}

function conditionValue(root: unknown, ...path: unknown[]): unknown {
  return path.every((key): key is string => typeof key === "string") ? lookupPath(root, path) : undefined;
}

function conditionHas(root: unknown, ...path: unknown[]): boolean {
  return conditionValue(root, ...path) !== undefined;
}

function conditionNumber(value: unknown): number {
  return typeof value === "number" ? value : Number.NaN;
}

function conditionStringCompare(a: unknown, b: unknown): number {
  return typeof a === "string" && typeof b === "string" ? compareCodePoints(a, b) : Number.NaN;
}

/**
 * Register each with `enforcer.addFunction(name, fn)`. Casbin types helpers
 * as returning boolean | number | string, but expression-eval passes a
 * helper's result on as an operand, so `condVal` may return any JSON value or
 * undefined; the cast only widens what Casbin's declaration admits.
 */
export const casbinConditionFunctions: Readonly<Record<string, MatchingFunction>> = {
  [CASBIN_VALUE]: conditionValue as MatchingFunction,
  [CASBIN_HAS]: conditionHas,
  [CASBIN_NUM]: conditionNumber,
  [CASBIN_STRCMP]: conditionStringCompare,
};

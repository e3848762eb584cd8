/**
 * The policy condition language: a closed expression language over a record's
 * JSON fields (policy.md, "Conditions"). Each condition has three exact
 * translations that must agree on every record: the Casbin matcher text (the
 * reference meaning), a compiled in-process predicate (writes) and a SQL
 * predicate over the stored `jsonb` (reads).
 *
 * ## Syntax
 *
 * - Comparisons `==  !=  <  <=  >  >=`, always *field* on the left and a
 *   *literal* on the right (`region == 'north'`, never `'north' == region`, and
 *   never field against field).
 * - `field in [lit, …]`, `field not in [lit, …]` (an empty list is allowed),
 *   `exists(field)`.
 * - `and`, `or`, `not`, parentheses. Precedence, tightest first: comparisons,
 *   `not`, `and`, `or`. So `not a == 1 and b == 2 or c == 3` reads as
 *   `((not (a == 1)) and b == 2) or c == 3`.
 * - Literals: strings in single or double quotes with the escapes `\\ \' \"
 *   \n \t \r \uXXXX` (a surrogate pair may be written as two `\u` escapes);
 *   numbers in JSON syntax with an optional leading minus (`42`, `-3.5`,
 *   `1e3`), which must be finite as doubles; `true`, `false`, `null`.
 *   Strings may not contain U+0000 or unpaired surrogates: Postgres `jsonb`
 *   and `text` cannot hold them, so the SQL translation could not either.
 * - Field paths: dot-separated segments `[A-Za-z_][A-Za-z0-9_]*`, no spaces
 *   around the dots (`address.city`). The keywords `and or not in exists true
 *   false null` are lowercase and case-sensitive; they cannot be the first
 *   segment of a path, so a top-level field literally named `in` (or `null`,
 *   …) cannot be tested. Later segments may be keywords (`meta.in`).
 * - Ordering operators (`< <= > >=`) take a number or a string literal only.
 * - Limits against hostile input: at most 4096 characters of text, at most 32
 *   nested levels of parentheses and `not`, at most 256 atoms (comparisons,
 *   `in` tests and `exists`).
 *
 * ## Semantics (two-valued everywhere: a condition is true or false, never unknown)
 *
 * A path's *value*: walk own properties of nested plain objects from the
 * record; if a segment is missing, or its parent is not a plain object (an
 * array, a scalar, null), the value is *missing*. A property whose value is
 * `undefined` counts as missing (JSON has no `undefined`).
 *
 * - `f == lit` (lit a string, number or boolean): true iff the value is
 *   present, of the same JSON type, and equal (numbers numerically, so `1 ==
 *   1.0`; strings exactly). Arrays and objects never equal a literal.
 * - `f == null`: true iff the value is missing or JSON `null`.
 * - `f != lit` is exactly `not (f == lit)`: `region != 'north'` is true when
 *   `region` is missing.
 * - `f < lit` (and `<= > >=`): true iff the value and the literal are both
 *   numbers (numeric order) or both strings (Unicode code point order, which
 *   is the byte order of UTF-8, not JavaScript's UTF-16 code unit order);
 *   otherwise false. So `not (f < 5)` is true when `f` is missing or a string.
 * - `f in [a, b]` is `f == a or f == b`; `f in []` is false.
 *   `f not in [...]` is `not (f in [...])`; `f not in []` is true.
 * - `exists(f)`: true iff the value is present (JSON `null` counts as present).
 *
 * Numbers are IEEE doubles on the JavaScript side; the SQL side compares the
 * stored `jsonb` numerics, which agree as long as stored numbers came from
 * JavaScript (`JSON.stringify` writes the shortest text that reads back as
 * the same double, and that map preserves order and equality).
 */

export type Literal = string | number | boolean | null;

export type EqualityOp = "==" | "!=";
export type OrderingOp = "<" | "<=" | ">" | ">=";
export type ComparisonOp = EqualityOp | OrderingOp;

/** Path segments, e.g. `["address", "city"]`; never empty. */
export type FieldPath = readonly string[];

export type Comparison =
  | { readonly kind: "cmp"; readonly op: EqualityOp; readonly path: FieldPath; readonly value: Literal }
  | { readonly kind: "cmp"; readonly op: OrderingOp; readonly path: FieldPath; readonly value: string | number };

export interface InList {
  readonly kind: "in";
  readonly path: FieldPath;
  readonly values: readonly Literal[];
  /** `f not in [...]` */
  readonly negated: boolean;
}

export interface Exists {
  readonly kind: "exists";
  readonly path: FieldPath;
}

/**
 * n-ary so a chain `a and b and c` is one node; a parenthesised `(b and c)`
 * inside a chain stays a separate node, which is what lets printing and
 * parsing round-trip to the same tree.
 */
export interface Junction {
  readonly kind: "and" | "or";
  readonly operands: readonly [Condition, Condition, ...Condition[]];
}

export interface Not {
  readonly kind: "not";
  readonly expr: Condition;
}

export type Atom = Comparison | InList | Exists;
export type Condition = Atom | Junction | Not;
/** The name the rest of lib/policy uses for a parsed condition. */
export type ConditionAst = Condition;

export const KEYWORDS: ReadonlySet<string> = new Set(["and", "or", "not", "in", "exists", "true", "false", "null"]);

export const CONDITION_LIMITS = {
  maxLength: 4096,
  maxDepth: 32,
  maxAtoms: 256,
} as const;

export function isOrderingOp(op: ComparisonOp): op is OrderingOp {
  return op === "<" || op === "<=" || op === ">" || op === ">=";
}

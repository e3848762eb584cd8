import { newEnforcer, newModelFromString, type Enforcer } from "casbin";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import {
  casbinConditionFunctions,
  compilePredicate,
  conditionToCasbin,
  parseCondition,
  printCondition,
  type Condition,
} from "@/lib/policy/condition";
import { conditionArbitraries, literalsOf } from "@/tests/helpers/conditions";

// Paths overlap with the record keys below, include keyword-named inner
// segments and the Object.prototype names an unsafe lookup would find.
const PATHS: ReadonlyArray<readonly string[]> = [
  ["a"],
  ["b"],
  ["a", "b"],
  ["a", "c"],
  ["b", "a"],
  ["a", "in"],
  ["a", "b", "c"],
  ["__proto__"],
  ["constructor"],
  ["toString"],
  ["r"],
];
const KEYS = ["a", "b", "c", "in", "__proto__", "constructor", "toString", "r"];

/** Strings that break naive translations: Casbin rewrites, replace() patterns, quotes, code unit order. */
const TRICKY_STRINGS = [
  "",
  "a",
  "b",
  "north",
  "r.b",
  " r.x",
  "p.cond",
  "(r.sub, p.sub)",
  "x in y (a, b)",
  "$&",
  "$$",
  "$'",
  "$`",
  "$1",
  "'",
  '"',
  "\\",
  "\\'",
  "'; drop table x; --",
  "😀",
  "\uE000",
  "\uFFFF",
  "\uD7FF",
  "é",
  "e\u0301",
  "\n",
  "\t\r",
  "\u0001",
  "\u007f",
  "\u{10FFFF}",
  "#",
  "1",
];

const trickyChar = fc.oneof(
  fc.constantFrom(".", "$", "'", '"', "\\", " ", "r", "p", "a", "b", "😀", "\uE000", "\uFFFF", "\uD7FF", "\u0001", "\n", "é", "&", "`", "("),
  fc
    .integer({ min: 1, max: 0x10ffff })
    .filter((c) => c < 0xd800 || c > 0xdfff)
    .map((c) => String.fromCodePoint(c)),
);
const literalString = fc.oneof(fc.constantFrom(...TRICKY_STRINGS), fc.string({ unit: trickyChar, maxLength: 6 }));

const NUMBERS = [0, -0, 1, -1, 2, 1.5, -3.5, 0.1, 0.30000000000000004, 42, 1e21, -1e21, 1e-7, 5e-324, Number.MAX_VALUE, -Number.MAX_VALUE, 2 ** 53, 2 ** 53 + 2];
const literalNumber = fc.oneof(
  fc.constantFrom(...NUMBERS),
  fc.integer({ min: -5, max: 5 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);
const { condition } = conditionArbitraries({ paths: PATHS, strings: literalString, numbers: literalNumber });
const conditionArb = condition(3);

/**
 * Records whose values are mostly the condition's own literals (so equality
 * and ordering hit exactly, including the strings Casbin might mangle) or
 * drawn from the shared pools.
 */
function recordsFor(ast: Condition): fc.Arbitrary<Array<Record<string, unknown>>> {
  const own = literalsOf(ast);
  const scalar: fc.Arbitrary<unknown> = fc.oneof(
    { arbitrary: own.length > 0 ? fc.constantFrom(...own) : fc.constant("a"), weight: 4 },
    { arbitrary: fc.constantFrom(...TRICKY_STRINGS), weight: 2 },
    { arbitrary: fc.constantFrom(...NUMBERS), weight: 2 },
    { arbitrary: fc.integer({ min: -5, max: 5 }), weight: 1 },
    { arbitrary: fc.string({ unit: trickyChar, maxLength: 4 }), weight: 1 },
    // Not storable in Postgres, but JavaScript records can hold them; Casbin
    // and the predicate must still agree.
    { arbitrary: fc.constantFrom("\uD800", "a\u0000", "\uDE00\uD83D"), weight: 1 },
    { arbitrary: fc.double({ noNaN: true }), weight: 1 },
    { arbitrary: fc.boolean(), weight: 1 },
    { arbitrary: fc.constant(null), weight: 2 },
    { arbitrary: fc.constant(undefined), weight: 1 },
  );
  const { object } = fc.letrec<{ value: unknown; object: Record<string, unknown> }>((tie) => ({
    value: fc.oneof({ depthSize: "small", withCrossShrink: true }, scalar, fc.array(tie("value"), { maxLength: 3 }), tie("object")),
    object: fc
      .uniqueArray(fc.tuple(fc.constantFrom(...KEYS), tie("value")), { selector: ([key]) => key, maxLength: 5 })
      // fromEntries defines own data properties, so "__proto__" stays a plain key.
      .map((entries) => Object.fromEntries(entries)),
  }));
  return fc.array(object, { minLength: 1, maxLength: 8 });
}

const MODEL = `
[request_definition]
r = sub, rec

[policy_definition]
p = sub, cond

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = r.sub == p.sub && eval(p.cond)
`;

describe("condition properties", () => {
  let enforcer: Enforcer;

  beforeAll(async () => {
    enforcer = await newEnforcer(newModelFromString(MODEL));
    for (const [name, fn] of Object.entries(casbinConditionFunctions)) await enforcer.addFunction(name, fn);
  });

  it("print → parse gives back the same AST", () => {
    fc.assert(
      fc.property(conditionArb, (ast) => {
        const text = printCondition(ast);
        const result = parseCondition(text);
        if (!result.ok) throw new Error(`${text}: ${result.error.message} at ${result.error.offset}`);
        expect(result.ast).toEqual(ast);
        expect(printCondition(result.ast)).toBe(text);
      }),
      { numRuns: 3000 },
    );
  });

  it("the compiled predicate agrees with Casbin on every record", async () => {
    const outcomes = { true: 0, false: 0 };
    await fc.assert(
      fc.asyncProperty(conditionArb.chain((ast) => fc.tuple(fc.constant(ast), recordsFor(ast))), async ([ast, records]) => {
        const cond = conditionToCasbin(ast);
        enforcer.clearPolicy();
        await enforcer.addPolicy("s", cond);
        const predicate = compilePredicate(ast);
        for (const record of records) {
          const expected = enforcer.enforceSync("s", record);
          outcomes[expected ? "true" : "false"]++;
          if (predicate(record) !== expected) {
            throw new Error(`disagree on ${printCondition(ast)}\ncasbin: ${cond} → ${expected}\nrecord: ${JSON.stringify(record)}`);
          }
        }
      }),
      { numRuns: 5000 },
    );
    // Guards against a vacuous pass (say, every rule failing to compile).
    expect(Math.min(outcomes.true, outcomes.false)).toBeGreaterThan(0.2 * (outcomes.true + outcomes.false));
  });

  it("agrees on targeted edge cases", async () => {
    const records: Array<Record<string, unknown>> = [
      {},
      { a: null },
      { a: 1 },
      { a: 1.0 },
      { a: -0 },
      { a: "1" },
      { a: true },
      { a: [1] },
      { a: { b: 1 } },
      { a: { b: null } },
      { a: [{ b: 1 }] },
      { a: "😀" },
      { a: "\uE000" },
      { a: "r.b" },
      { a: "$&" },
      JSON.parse('{"__proto__": 1, "constructor": "x"}') as Record<string, unknown>,
      // Own toString/valueOf keys make any coercion of the value throw.
      { a: { toString: 1, valueOf: 2 } },
      { a: [{ toString: 1 }] },
      { a: " r.x" },
      { a: "(r.sub, p.sub)" },
      { a: "x in y (a, b)" },
      { a: "$1$&$$" },
    ];
    const texts = [
      "a == 1",
      "a != 1",
      "a == '1'",
      "a == null",
      "a != null",
      "a < 2",
      "not a < 2",
      "a >= '\uE000'",
      "a > '\uE000'",
      "a < '\uE000'",
      "a.b == 1",
      "a.b == null",
      "exists(a.b)",
      "exists(a)",
      "a in [1, null]",
      "a not in []",
      "a in []",
      "a == 'r.b' or a == '$&'",
      "__proto__ == 1",
      "constructor == 'x'",
      "toString == null",
      "exists(toString)",
      "a == -0",
      "a <= -0",
      "a < 5",
      "a > 'x'",
      "a.toString == 1",
      "a == ' r.x'",
      "a == '(r.sub, p.sub)'",
      "a == 'x in y (a, b)'",
      "a == '$1$&$$'",
    ];
    for (const text of texts) {
      const result = parseCondition(text);
      if (!result.ok) throw new Error(`${text}: ${result.error.message}`);
      enforcer.clearPolicy();
      await enforcer.addPolicy("s", conditionToCasbin(result.ast));
      const predicate = compilePredicate(result.ast);
      for (const record of records) {
        expect([text, record, predicate(record)]).toEqual([text, record, enforcer.enforceSync("s", record)]);
      }
    }
  });

  it("matches the documented semantics on a few hand-checked cases", () => {
    const check = (text: string, record: Record<string, unknown>) => {
      const result = parseCondition(text);
      if (!result.ok) throw new Error(result.error.message);
      return compilePredicate(result.ast)(record);
    };
    expect(check("region != 'north'", {})).toBe(true);
    expect(check("not (total < 5)", {})).toBe(true);
    expect(check("total < 5", { total: "4" })).toBe(false);
    expect(check("total == 1", { total: 1.0 })).toBe(true);
    expect(check("tags == 'x'", { tags: ["x"] })).toBe(false);
    expect(check("exists(x)", { x: null })).toBe(true);
    expect(check("x == null", { x: null })).toBe(true);
    expect(check("x == null", {})).toBe(true);
    expect(check("x.y == null", { x: 5 })).toBe(true);
    expect(check("exists(x.y)", { x: [1] })).toBe(false);
    expect(check("s > '\uE000'", { s: "😀" })).toBe(true);
    expect(check("constructor == null", {})).toBe(true);
  });
});

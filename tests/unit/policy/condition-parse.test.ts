import { PgDialect } from "drizzle-orm/pg-core";
import { sql } from "drizzle-orm";
import { describe, expect, it } from "vitest";
import {
  compareCodePoints,
  compilePredicate,
  conditionToCasbin,
  conditionToSql,
  fieldsReferenced,
  parseCondition,
  printCondition,
  printLiteral,
  type Condition,
  type Literal,
} from "@/lib/policy/condition";

const cmp = (path: string, op: "==" | "!=", value: Literal): Condition => ({ kind: "cmp", op, path: path.split("."), value });
const ord = (path: string, op: "<" | "<=" | ">" | ">=", value: string | number): Condition => ({
  kind: "cmp",
  op,
  path: path.split("."),
  value,
});
const inList = (path: string, values: Literal[], negated = false): Condition => ({
  kind: "in",
  path: path.split("."),
  values,
  negated,
});
const exists = (path: string): Condition => ({ kind: "exists", path: path.split(".") });
const not = (expr: Condition): Condition => ({ kind: "not", expr });
const and = (a: Condition, b: Condition, ...rest: Condition[]): Condition => ({ kind: "and", operands: [a, b, ...rest] });
const or = (a: Condition, b: Condition, ...rest: Condition[]): Condition => ({ kind: "or", operands: [a, b, ...rest] });

function parsed(text: string): Condition {
  const result = parseCondition(text);
  if (!result.ok) throw new Error(`did not parse: ${text}: ${result.error.message} at ${result.error.offset}`);
  return result.ast;
}

describe("parseCondition: accepted text", () => {
  const cases: Array<[string, Condition]> = [
    ["region == 'north'", cmp("region", "==", "north")],
    ['region == "north"', cmp("region", "==", "north")],
    ["address.city != 'Oslo'", cmp("address.city", "!=", "Oslo")],
    ["total > 0", ord("total", ">", 0)],
    ["total >= -3.5", ord("total", ">=", -3.5)],
    ["total < 1e3", ord("total", "<", 1000)],
    ["total <= 1E-3", ord("total", "<=", 0.001)],
    ["total == -0", cmp("total", "==", -0)],
    ["name < 'm'", ord("name", "<", "m")],
    ["flag == true", cmp("flag", "==", true)],
    ["flag != false", cmp("flag", "!=", false)],
    ["gone == null", cmp("gone", "==", null)],
    ["status in ['paid', 'packed']", inList("status", ["paid", "packed"])],
    ["status not in ['x', 1, true, null]", inList("status", ["x", 1, true, null], true)],
    ["status in []", inList("status", [])],
    ["status not in [ ]", inList("status", [], true)],
    ["exists(address.city)", exists("address.city")],
    ["exists ( a )", exists("a")],
    ["_x1.Y_2 == 1", cmp("_x1.Y_2", "==", 1)],
    ["meta.in == 1", cmp("meta.in", "==", 1)],
    ["meta.not.exists == 1", cmp("meta.not.exists", "==", 1)],
    ["a==1", cmp("a", "==", 1)],
    ["\n\ta == 1\r\n", cmp("a", "==", 1)],
    ["a == 'it\\'s'", cmp("a", "==", "it's")],
    ['a == "say \\"hi\\""', cmp("a", "==", 'say "hi"')],
    ["a == 'back\\\\slash'", cmp("a", "==", "back\\slash")],
    ["a == '\\n\\t\\r'", cmp("a", "==", "\n\t\r")],
    ["a == '\\u00e9\\u00C9'", cmp("a", "==", "éÉ")],
    ["a == '\\ud83d\\ude00'", cmp("a", "==", "😀")],
    ["a == '😀\uE000'", cmp("a", "==", "😀\uE000")],
    ["a == 'two\nlines'", cmp("a", "==", "two\nlines")],
    ["a == \"'\"", cmp("a", "==", "'")],
  ];
  it.each(cases)("%j", (text, ast) => {
    expect(parsed(text)).toEqual(ast);
  });

  it("keeps -0 distinct from 0", () => {
    const ast = parsed("a == -0");
    expect(ast.kind === "cmp" && Object.is(ast.value, -0)).toBe(true);
  });
});

describe("parseCondition: precedence", () => {
  const a = cmp("a", "==", 1);
  const b = cmp("b", "==", 2);
  const c = cmp("c", "==", 3);
  const cases: Array<[string, Condition]> = [
    ["a == 1 and b == 2 or c == 3", or(and(a, b), c)],
    ["a == 1 or b == 2 and c == 3", or(a, and(b, c))],
    ["a == 1 and b == 2 and c == 3", and(a, b, c)],
    ["a == 1 or b == 2 or c == 3", or(a, b, c)],
    ["a == 1 and (b == 2 and c == 3)", and(a, and(b, c))],
    ["(a == 1 or b == 2) and c == 3", and(or(a, b), c)],
    ["not a == 1 and b == 2", and(not(a), b)],
    ["not a == 1 or b == 2", or(not(a), b)],
    ["not (a == 1 or b == 2)", not(or(a, b))],
    ["not not a == 1", not(not(a))],
    ["not a not in [1]", not(inList("a", [1], true))],
    ["not exists(a) and a in []", and(not(exists("a")), inList("a", []))],
    ["((a == 1))", a],
  ];
  it.each(cases)("%j", (text, ast) => {
    expect(parsed(text)).toEqual(ast);
  });
});

describe("parseCondition: errors carry a plain message and the offset", () => {
  const cases: Array<[string, string, number]> = [
    ["", "the condition is empty", 0],
    ["   ", "the condition is empty", 3],
    ["a == and", "expected a literal after '==' but found 'and'", 5],
    ["a ==", "expected a literal after '==' but found the end of the condition", 4],
    ["a == b", "expected a literal after '==' but found 'b' (a field", 5],
    ["a = 1", "unknown operator '=' (did you mean '=='?)", 2],
    ["a === 1", "unknown operator '===' (did you mean '=='?)", 2],
    ["a !== 1", "unknown operator '!==' (did you mean '!='?)", 2],
    ["a <> 1", "unknown operator '<>' (did you mean '!='?)", 2],
    ["a => 1", "unknown operator '=>' (did you mean '>='?)", 2],
    ["a == 1 && b == 2", "unknown operator '&&' (did you mean 'and'?)", 7],
    ["a == 1 || b == 2", "unknown operator '||' (did you mean 'or'?)", 7],
    ["!a == 1", "unknown operator '!' (did you mean 'not'?)", 0],
    ["a == 'north", "unterminated string", 5],
    ["a == \"north'", "unterminated string", 5],
    ["a == 'x\\", "unterminated string", 5],
    ["a == 'x\\q'", "unknown escape '\\q' in a string", 7],
    ["a == '\\u12'", "expected four hex digits after '\\u'", 6],
    ["a == '\\ud800'", "unpaired surrogate", 5],
    ["a == '\\ude00\\ud83d'", "unpaired surrogate", 5],
    ["a == '\\u0000'", "U+0000", 5],
    ["a == 'x\u0000'", "U+0000", 5],
    ["1abc == 1", "field names must start with a letter or underscore", 0],
    ["a.1b == 1", "field names must start with a letter or underscore", 2],
    ["a. b == 1", "expected a field name after '.'", 2],
    ["a. == 1", "expected a field name after '.'", 2],
    [".a == 1", "field names must start with a letter or underscore", 0],
    ["région == 1", "field names may only use the ASCII letters", 1],
    ["first-name == 1", "field names may only use the ASCII letters", 5],
    ["a == 'x' b", "expected 'and', 'or' or the end of the condition but found 'b'", 9],
    ["a == 1 AND b == 2", "(keywords are lowercase: 'and')", 7],
    ["a == 1)", "unexpected ')' without a matching '('", 6],
    ["(a == 1", "expected ')' to close the '(' at offset 0 but found the end of the condition", 7],
    ["'north' == region", "the field must be on the left and the literal on the right", 0],
    ["42 < total", "the field must be on the left and the literal on the right", 0],
    ["null == a", "the field must be on the left and the literal on the right", 0],
    ["a < true", "ordering needs a number or a string", 4],
    ["a >= null", "ordering needs a number or a string", 5],
    ["a > false", "ordering needs a number or a string", 4],
    ["a == 01", "numbers cannot have leading zeros", 5],
    ["a == -01", "numbers cannot have leading zeros", 6],
    ["a == 1.", "expected a digit after the decimal point", 7],
    ["a == .5", "numbers need a digit before the decimal point", 5],
    ["a == 1e", "expected a digit in the exponent", 7],
    ["a == 1.2.3", "unexpected '.' in a number", 8],
    ["a == - 5", "expected a digit after '-'", 6],
    ["a == +5", "unexpected character '+'", 5],
    ["a == 1e400", "the number 1e400 is out of range", 5],
    ["a == 5x", "a number cannot be followed directly by letters ('5x')", 5],
    ["a in 'x'", "expected '[' after 'in' but found the string 'x'", 5],
    ["a in [1,]", "expected a literal after ',' but found ']'", 8],
    ["a in [1 2]", "expected ',' or ']' in the list but found '2'", 8],
    ["a in [b]", "expected a literal in the list but found 'b'", 6],
    ["a in [1", "expected ',' or ']' in the list but found the end of the condition", 7],
    ["a not 1", "expected 'in' after 'a not' but found '1'", 6],
    ["a", "expected a comparison", 1],
    ["a b", "expected a comparison", 2],
    ["exists a", "expected '(' after 'exists' but found 'a'", 7],
    ["exists()", "expected a field inside exists(…) but found ')'", 7],
    ["exists(a", "expected ')' after the field in exists(…)", 8],
    ["exists(a) == true", "expected 'and', 'or' or the end of the condition but found '=='", 10],
    ["in.x == 1", "'in' is a keyword and cannot start a field path", 0],
    ["null.x == 1", "'null' is a keyword and cannot start a field path", 0],
    ["and == 1", "expected a field, 'not', 'exists' or '(' but found 'and'", 0],
    ["a == 1 and", "expected a field, 'not', 'exists' or '(' but found the end of the condition", 10],
    ["not", "expected a field, 'not', 'exists' or '(' but found the end of the condition", 3],
    ["a == 1; drop table x", "unexpected character ';'", 6],
    ["a == @", "unexpected character '@'", 5],
    ["a == 1 # comment", "unexpected character '#'", 7],
    ["a == 1\u0007", "unexpected character U+0007", 6],
    ["f(a) == 1", "expected a comparison", 1],
  ];
  it.each(cases)("%j", (text, message, offset) => {
    const result = parseCondition(text);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.error.message).toContain(message);
    expect(result.error.offset).toBe(offset);
  });
});

describe("parseCondition: limits", () => {
  it("accepts 4096 characters and refuses 4097", () => {
    const base = "a == ''";
    const ok = `a == '${"x".repeat(4096 - base.length)}'`;
    expect(ok.length).toBe(4096);
    expect(parseCondition(ok).ok).toBe(true);
    const result = parseCondition(`${ok} `);
    expect(result).toEqual({ ok: false, error: { message: expect.stringContaining("too long: 4097 characters, at most 4096"), offset: 4096 } });
  });

  it("refuses megabytes of text without scanning it", () => {
    const result = parseCondition("(".repeat(5_000_000));
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.error.message).toContain("too long");
  });

  it("allows 32 levels of nesting and refuses 33", () => {
    const nest = (levels: number) => `${"(".repeat(levels)}a == 1${")".repeat(levels)}`;
    expect(parseCondition(nest(32)).ok).toBe(true);
    expect(parseCondition(nest(33))).toEqual({
      ok: false,
      error: { message: expect.stringContaining("nests too deeply"), offset: 32 },
    });
    expect(parseCondition(`${"not ".repeat(32)}a == 1`).ok).toBe(true);
    const nots = parseCondition(`${"not ".repeat(33)}a == 1`);
    expect(nots).toEqual({ ok: false, error: { message: expect.stringContaining("nests too deeply"), offset: 128 } });
    expect(parseCondition(`${"not (".repeat(16)}a == 1${")".repeat(16)}`).ok).toBe(true);
    expect(parseCondition(`${"not (".repeat(17)}a == 1${")".repeat(17)}`).ok).toBe(false);
  });

  it("does not count siblings as nesting", () => {
    const text = Array.from({ length: 100 }, (_, i) => `(a == ${i})`).join(" or ");
    expect(parseCondition(text).ok).toBe(true);
  });

  it("allows 256 atoms and refuses 257", () => {
    const atoms = (n: number) => Array.from({ length: n }, (_, i) => (i % 2 ? `exists(b${i})` : `a${i} in [1]`)).join(" or ");
    expect(parseCondition(atoms(256)).ok).toBe(true);
    const text = atoms(257);
    const result = parseCondition(text);
    expect(result).toEqual({
      ok: false,
      error: { message: expect.stringContaining("too many tests"), offset: text.lastIndexOf("a256") },
    });
  });

  it("survives a ladder of open brackets, quotes and operators", () => {
    for (const text of ["[".repeat(4000), "'".repeat(4000), "\\".repeat(4000), "=".repeat(4000), "a in [".repeat(600), "not ".repeat(1000)]) {
      const result = parseCondition(text);
      expect(result.ok).toBe(false);
    }
  });
});

describe("hostile literals stay data in every translation", () => {
  const hostile = [
    "'; drop table x; --",
    "' or '1'='1",
    "\\' or 1=1 --",
    "$& $' $` $$ $1 $<0>",
    " r.x",
    "(r.sub, p.sub)",
    "x in y (a, b)",
    "eval(p.cond)",
    "\"double\"",
    "back\\slash\\",
    "#not a comment",
    "😀\uE000\uFFFF",
    "line\nbreak\r\ttab\u0001\u007f\u2028",
    "${process.exit(1)}",
  ];
  const dialect = new PgDialect();

  it.each(hostile)("%j", (literal) => {
    const text = `a.b == ${printLiteral(literal)} or c in ['$&', ${printLiteral(literal)}] or d < ${printLiteral(literal)}`;
    const ast = parsed(text);
    expect(parsed(printCondition(ast))).toEqual(ast);

    const query = dialect.sqlToQuery(conditionToSql(ast, sql`data`));
    expect(query.params).toContain(JSON.stringify(literal));
    expect(query.params).toContain(literal);
    for (const piece of [literal, "drop", "$&", "r.x", "eval"]) {
      if (piece.length > 1 && literal.includes(piece)) expect(query.sql).not.toContain(piece);
    }
    expect(query.sql).not.toMatch(/'a'|'b'|'c'|'d'/);
    expect(query.params).toEqual(expect.arrayContaining(["a", "b", "c", "d"]));

    const predicate = compilePredicate(ast);
    expect(predicate({ a: { b: literal } })).toBe(true);
    expect(predicate({ c: literal })).toBe(true);
    expect(predicate({ a: { b: `${literal}!` }, d: `${literal}!` })).toBe(false);
    expect(predicate({ d: literal.slice(0, -1) })).toBe(true);
    expect(conditionToCasbin(ast)).not.toContain(" in ");
  });
});

describe("printCondition", () => {
  const cases: Array<[string, string]> = [
    ["a==1", "a == 1"],
    ['a == "x"', "a == 'x'"],
    ["a == 1e3", "a == 1000"],
    ["a == 1e21", "a == 1e+21"],
    ["a == -0", "a == -0"],
    ["a == 0.1", "a == 0.1"],
    ["a == 'it\\'s \\\\ \\u0001 \\n é 😀'", "a == 'it\\'s \\\\ \\u0001 \\n é 😀'"],
    ["a in [ 'x' ,1,null ]", "a in ['x', 1, null]"],
    ["a not in []", "a not in []"],
    ["exists( a.b )", "exists(a.b)"],
    ["(a == 1 or b == 2) and c == 3", "(a == 1 or b == 2) and c == 3"],
    ["a == 1 or (b == 2 and c == 3)", "a == 1 or b == 2 and c == 3"],
    ["a == 1 and (b == 2 and c == 3)", "a == 1 and (b == 2 and c == 3)"],
    ["(a == 1 or b == 2) or c == 3", "(a == 1 or b == 2) or c == 3"],
    ["not (a == 1 and b == 2)", "not (a == 1 and b == 2)"],
    ["not (not a == 1)", "not not a == 1"],
    ["((a == 1))", "a == 1"],
  ];
  it.each(cases)("%j prints as %j", (text, printed) => {
    const ast = parsed(text);
    expect(printCondition(ast)).toBe(printed);
    expect(parsed(printed)).toEqual(ast);
  });

  it("refuses a path the language cannot express", () => {
    expect(() => printCondition(cmp("in", "==", 1))).toThrow(/field path/);
    expect(() => printCondition({ kind: "exists", path: ["a-b"] })).toThrow(/field path/);
  });
});

describe("fieldsReferenced", () => {
  it("lists each dotted path once in order of first use", () => {
    expect(fieldsReferenced(parsed("b == 1 and (a.x in [1] or not exists(b)) and a.x < 3 and c.d.e != null"))).toEqual([
      "b",
      "a.x",
      "c.d.e",
    ]);
  });
});

describe("compareCodePoints", () => {
  const naive = (a: string, b: string) => {
    const x = Array.from(a, (ch) => ch.codePointAt(0) ?? 0);
    const y = Array.from(b, (ch) => ch.codePointAt(0) ?? 0);
    for (let i = 0; i < Math.min(x.length, y.length); i++) {
      if (x[i] !== y[i]) return (x[i] ?? 0) < (y[i] ?? 0) ? -1 : 1;
    }
    return Math.sign(x.length - y.length);
  };
  const samples = ["", "a", "ab", "b", "é", "\uD7FF", "\uE000", "\uFFFF", "😀", "😀a", "\u{10000}", "\u{10FFFF}", "a😀", "a\uFFFF", "aa"];
  it("orders by code point, not UTF-16 unit", () => {
    expect("😀" < "\uE000").toBe(true); // the trap: UTF-16 order puts astral first
    expect(compareCodePoints("😀", "\uE000")).toBe(1);
    for (const a of samples) for (const b of samples) expect(compareCodePoints(a, b)).toBe(naive(a, b));
  });
});

describe("translation shapes", () => {
  const dialect = new PgDialect();

  it("Casbin text uses native non-coercing operators plus the registered helpers", () => {
    expect(conditionToCasbin(parsed("status in ['paid', 'a.b $1'] and total > -1.5 or not exists(x.y) and name < 'n' and z == null"))).toBe(
      "(((condVal(r.rec,'status')==='paid'||condVal(r.rec,'status')==='a\\.b\\ $$1')&&condNum(condVal(r.rec,'total'))>-1.5)" +
        "||(!(condHas(r.rec,'x','y'))&&condStrCmp(condVal(r.rec,'name'),'n')<0&&condVal(r.rec,'z')==null))",
    );
    expect(conditionToCasbin(parsed("a not in []"))).toBe("!false");
    expect(conditionToCasbin(parsed("a != true"))).toBe("!(condVal(r.rec,'a')===true)");
  });

  it("SQL binds every key and literal and pins string order to the C collation", () => {
    // The Postgres used in tests defaults to C.UTF-8, so the integration test
    // cannot notice a missing COLLATE "C"; a server with a linguistic default
    // collation would order 'a' < 'B' differently from the predicate.
    const query = dialect.sqlToQuery(conditionToSql(parsed("name.first < 'x' and total >= 1e21 and tag in ['a', 2, null]"), sql`data`));
    expect(query.sql).toBe(
      "(" +
        "(CASE WHEN jsonb_typeof((data -> $1::text -> $2::text)) = 'string' THEN ((data -> $3::text -> $4::text) #>> '{}') COLLATE \"C\" < $5::text COLLATE \"C\" ELSE false END)" +
        " AND (CASE WHEN jsonb_typeof((data -> $6::text)) = 'number' THEN ((data -> $7::text))::numeric >= $8::numeric ELSE false END)" +
        " AND (coalesce((data -> $9::text) IN ($10::jsonb, $11::jsonb), false) OR coalesce((data -> $12::text) = 'null'::jsonb, true))" +
        ")",
    );
    expect(query.params).toEqual(["name", "first", "name", "first", "x", "total", "total", "1e+21", "tag", '"a"', "2", "tag"]);
  });
});

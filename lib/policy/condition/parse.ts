import {
  CONDITION_LIMITS,
  KEYWORDS,
  isOrderingOp,
  type ComparisonOp,
  type Condition,
  type FieldPath,
  type Literal,
} from "./ast";

export interface ConditionSyntaxError {
  readonly message: string;
  /**
   * 0-based index into the condition text, in UTF-16 code units (JavaScript
   * string indexes, the same unit the YAML library reports positions in).
   */
  readonly offset: number;
}

export type ParseResult =
  | { readonly ok: true; readonly ast: Condition }
  | { readonly ok: false; readonly error: ConditionSyntaxError };

type Token =
  | { readonly kind: "path"; readonly path: FieldPath; readonly text: string; readonly offset: number }
  | { readonly kind: "keyword"; readonly text: string; readonly offset: number }
  | { readonly kind: "number"; readonly value: number; readonly text: string; readonly offset: number }
  | { readonly kind: "string"; readonly value: string; readonly text: string; readonly offset: number }
  | { readonly kind: "op"; readonly op: ComparisonOp; readonly text: string; readonly offset: number }
  | { readonly kind: "punct"; readonly text: "(" | ")" | "[" | "]" | ","; readonly offset: number }
  | { readonly kind: "end"; readonly text: ""; readonly offset: number };

/** Thrown inside the parser only; parseCondition turns it into a result. */
class SyntaxFailure extends Error {
  readonly offset: number;
  constructor(message: string, offset: number) {
    super(message);
    this.offset = offset;
  }
}

function fail(message: string, offset: number): never {
  throw new SyntaxFailure(message, offset);
}

export function parseCondition(text: string): ParseResult {
  try {
    if (text.length > CONDITION_LIMITS.maxLength) {
      fail(
        `the condition is too long: ${text.length} characters, at most ${CONDITION_LIMITS.maxLength} are allowed`,
        CONDITION_LIMITS.maxLength,
      );
    }
    const tokens = tokenize(text);
    return { ok: true, ast: new Parser(tokens).parseAll() };
  } catch (error) {
    if (error instanceof SyntaxFailure) {
      return { ok: false, error: { message: error.message, offset: error.offset } };
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------
// Lexer

const isIdentStart = (c: number): boolean => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95;
const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isIdentPart = (c: number): boolean => isIdentStart(c) || isDigit(c);
const isSpace = (c: number): boolean => c === 32 || c === 9 || c === 10 || c === 13;

function tokenize(text: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text.charCodeAt(i);
    if (isSpace(c)) {
      i++;
      continue;
    }
    const token = lexToken(text, i, c);
    tokens.push(token);
    i += token.text.length;
  }
  tokens.push({ kind: "end", text: "", offset: text.length });
  return tokens;
}

function lexToken(text: string, i: number, c: number): Token {
  if (isIdentStart(c)) return lexPathOrKeyword(text, i);
  if (isDigit(c) || (c === 45 /* - */ && isDigit(text.charCodeAt(i + 1)))) return lexNumber(text, i);
  if (c === 39 || c === 34) return lexString(text, i);
  return lexSymbol(text, i);
}

function lexPathOrKeyword(text: string, start: number): Token {
  const segments: string[] = [];
  let i = start;
  for (;;) {
    const segStart = i;
    while (i < text.length && isIdentPart(text.charCodeAt(i))) i++;
    segments.push(text.slice(segStart, i));
    if (text.charCodeAt(i) !== 46 /* . */) break;
    i++;
    if (!isIdentStart(text.charCodeAt(i))) {
      fail(
        i < text.length && !isSpace(text.charCodeAt(i))
          ? "field names must start with a letter or underscore"
          : "expected a field name after '.'",
        i,
      );
    }
  }
  checkNoStrayFieldCharacter(text, i);
  const first = segments[0] ?? "";
  if (KEYWORDS.has(first)) {
    if (segments.length > 1) {
      fail(`'${first}' is a keyword and cannot start a field path (a top-level field with that name cannot be used)`, start);
    }
    return { kind: "keyword", text: first, offset: start };
  }
  return { kind: "path", path: segments, text: text.slice(start, i), offset: start };
}

/**
 * Catches `région` and `first-name`, whose tails would otherwise lex as
 * unrelated tokens and produce a confusing message further on.
 */
function checkNoStrayFieldCharacter(text: string, i: number): void {
  const next = text.codePointAt(i);
  if (next === undefined) return;
  const nonAsciiLetter = next > 127 && /\p{L}|\p{N}/u.test(String.fromCodePoint(next));
  const hyphenated = next === 45 && isIdentStart(text.charCodeAt(i + 1));
  if (nonAsciiLetter || hyphenated) {
    fail("field names may only use the ASCII letters A-Z and a-z, digits and '_'", i);
  }
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;

function lexNumber(text: string, start: number): Token {
  NUMBER.lastIndex = start;
  const match = NUMBER.exec(text);
  const raw = match?.[0] ?? "";
  const end = start + raw.length;
  const next = text.charCodeAt(end);
  const digitsStart = text.charCodeAt(start) === 45 ? start + 1 : start;
  if (text.charCodeAt(digitsStart) === 48 && isDigit(text.charCodeAt(digitsStart + 1))) {
    fail("numbers cannot have leading zeros", digitsStart);
  }
  if (next === 46 /* . */) {
    if (isDigit(text.charCodeAt(end + 1))) fail("unexpected '.' in a number", end);
    fail("expected a digit after the decimal point", end + 1);
  }
  if (next === 101 || next === 69 /* e E */) {
    fail("expected a digit in the exponent of the number", end + 1);
  }
  if (isIdentPart(next)) {
    fail(
      `a number cannot be followed directly by letters ('${wordAt(text, start)}'); field names must start with a letter or underscore`,
      start,
    );
  }
  const value = Number(raw);
  if (!Number.isFinite(value)) fail(`the number ${raw} is out of range`, start);
  return { kind: "number", value, text: raw, offset: start };
}

function wordAt(text: string, start: number): string {
  let i = start + 1;
  while (i < text.length && (isIdentPart(text.charCodeAt(i)) || text.charCodeAt(i) === 46)) i++;
  return text.slice(start, i);
}

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = {
  "\\": "\\",
  "'": "'",
  '"': '"',
  n: "\n",
  t: "\t",
  r: "\r",
};

function lexString(text: string, start: number): Token {
  const quote = text[start];
  let value = "";
  let i = start + 1;
  for (;;) {
    if (i >= text.length) fail("unterminated string", start);
    const ch = text.charAt(i);
    if (ch === quote) break;
    if (ch === "\\") {
      const esc = text.charAt(i + 1);
      if (esc === "") fail("unterminated string", start);
      const simple = SIMPLE_ESCAPES[esc];
      if (simple !== undefined) {
        value += simple;
        i += 2;
      } else if (esc === "u") {
        const hex = text.slice(i + 2, i + 6);
        if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("expected four hex digits after '\\u'", i);
        value += String.fromCharCode(Number.parseInt(hex, 16));
        i += 6;
      } else {
        fail(`unknown escape '\\${esc}' in a string (known: \\\\ \\' \\" \\n \\t \\r \\uXXXX)`, i);
      }
      continue;
    }
    value += ch;
    i++;
  }
  const end = i + 1;
  checkStorableString(value, start);
  return { kind: "string", value, text: text.slice(start, end), offset: start };
}

/** See ast.ts: Postgres text and jsonb reject NUL and unpaired surrogates. */
function checkStorableString(value: string, start: number): void {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0) fail("strings cannot contain the character U+0000", start);
    if (c >= 0xd800 && c <= 0xdfff) {
      const next = value.charCodeAt(i + 1);
      if (c <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
      fail("strings cannot contain an unpaired surrogate (a \\uD800-\\uDFFF escape must be one half of a pair)", start);
    }
  }
}

const OPERATORS: readonly ComparisonOp[] = ["==", "!=", "<=", ">=", "<", ">"];

const WRONG_OPERATORS: ReadonlyArray<readonly [string, string]> = [
  ["===", "=="],
  ["!==", "!="],
  ["<>", "!="],
  ["=>", ">="],
  ["=<", "<="],
  ["&&", "and"],
  ["||", "or"],
  ["=", "=="],
  ["!", "not"],
  ["&", "and"],
  ["|", "or"],
];

function lexSymbol(text: string, start: number): Token {
  for (const [wrong, right] of WRONG_OPERATORS) {
    if (text.startsWith(wrong, start) && !(wrong.length === 1 && OPERATORS.some((op) => text.startsWith(op, start)))) {
      fail(`unknown operator '${wrong}' (did you mean '${right}'?)`, start);
    }
  }
  for (const op of OPERATORS) {
    if (text.startsWith(op, start)) return { kind: "op", op, text: op, offset: start };
  }
  const ch = text.charAt(start);
  if (ch === "(" || ch === ")" || ch === "[" || ch === "]" || ch === ",") {
    return { kind: "punct", text: ch, offset: start };
  }
  if (ch === "-") fail("expected a digit after '-'", start + 1);
  if (ch === ".") {
    fail(
      isDigit(text.charCodeAt(start + 1)) ? "numbers need a digit before the decimal point" : "field names must start with a letter or underscore",
      start,
    );
  }
  const codePoint = text.codePointAt(start) ?? 0;
  if (/\p{L}/u.test(String.fromCodePoint(codePoint))) {
    fail("field names may only use the ASCII letters A-Z and a-z, digits and '_'", start);
  }
  return fail(`unexpected character ${describeChar(codePoint)}`, start);
}

function describeChar(codePoint: number): string {
  const hex = `U+${codePoint.toString(16).toUpperCase().padStart(4, "0")}`;
  return codePoint < 32 || codePoint === 127 || (codePoint >= 0x80 && codePoint <= 0x9f)
    ? hex
    : `'${String.fromCodePoint(codePoint)}' (${hex})`;
}

// ---------------------------------------------------------------------------
// Parser
//
//   or      := and ('or' and)*
//   and     := not ('and' not)*
//   not     := 'not' not | primary
//   primary := '(' or ')' | 'exists' '(' path ')' | path test
//   test    := cmpop literal | 'in' list | 'not' 'in' list
//   list    := '[' (literal (',' literal)*)? ']'

class Parser {
  private pos = 0;
  private depth = 0;
  private atoms = 0;
  private readonly end: Token;

  constructor(private readonly tokens: readonly Token[]) {
    this.end = tokens[tokens.length - 1] ?? { kind: "end", text: "", offset: 0 };
  }

  parseAll(): Condition {
    const first = this.peek();
    if (first.kind === "end") fail("the condition is empty", first.offset);
    const ast = this.parseOr();
    const next = this.peek();
    if (next.kind !== "end") {
      if (next.kind === "punct" && next.text === ")") fail("unexpected ')' without a matching '('", next.offset);
      fail(`expected 'and', 'or' or the end of the condition but found ${describe(next)}${keywordHint(next)}`, next.offset);
    }
    return ast;
  }

  private peek(): Token {
    return this.tokens[this.pos] ?? this.end;
  }

  private advance(): Token {
    const token = this.peek();
    if (token.kind !== "end") this.pos++;
    return token;
  }

  private isKeyword(token: Token, word: string): boolean {
    return token.kind === "keyword" && token.text === word;
  }

  private isPunct(token: Token, text: string): boolean {
    return token.kind === "punct" && token.text === text;
  }

  private enter(token: Token): void {
    if (++this.depth > CONDITION_LIMITS.maxDepth) {
      fail(`the condition nests too deeply: at most ${CONDITION_LIMITS.maxDepth} levels of parentheses and 'not' are allowed`, token.offset);
    }
  }

  private countAtom(token: Token): void {
    if (++this.atoms > CONDITION_LIMITS.maxAtoms) {
      fail(`the condition has too many tests: at most ${CONDITION_LIMITS.maxAtoms} comparisons, 'in' and 'exists' are allowed`, token.offset);
    }
  }

  private parseOr(): Condition {
    const first = this.parseAnd();
    if (!this.isKeyword(this.peek(), "or")) return first;
    const rest: Condition[] = [];
    while (this.isKeyword(this.peek(), "or")) {
      this.advance();
      rest.push(this.parseAnd());
    }
    return { kind: "or", operands: [first, ...(rest as [Condition, ...Condition[]])] };
  }

  private parseAnd(): Condition {
    const first = this.parseNot();
    if (!this.isKeyword(this.peek(), "and")) return first;
    const rest: Condition[] = [];
    while (this.isKeyword(this.peek(), "and")) {
      this.advance();
      rest.push(this.parseNot());
    }
    return { kind: "and", operands: [first, ...(rest as [Condition, ...Condition[]])] };
  }

  private parseNot(): Condition {
    const token = this.peek();
    if (this.isKeyword(token, "not")) {
      this.advance();
      this.enter(token);
      const expr = this.parseNot();
      this.depth--;
      return { kind: "not", expr };
    }
    return this.parsePrimary();
  }

  private parsePrimary(): Condition {
    const token = this.peek();
    if (this.isPunct(token, "(")) {
      this.advance();
      this.enter(token);
      const inner = this.parseOr();
      this.depth--;
      const close = this.peek();
      if (!this.isPunct(close, ")")) {
        fail(
          `expected ')' to close the '(' at offset ${token.offset} but found ${describe(close)}${keywordHint(close)}`,
          close.offset,
        );
      }
      this.advance();
      return inner;
    }
    if (this.isKeyword(token, "exists")) return this.parseExists();
    if (token.kind === "path") return this.parseTest(token);
    if (token.kind === "string" || token.kind === "number" || this.isLiteralKeyword(token)) {
      fail(
        `the field must be on the left and the literal on the right (write field == ${token.text}, not ${token.text} == field)`,
        token.offset,
      );
    }
    return fail(`expected a field, 'not', 'exists' or '(' but found ${describe(token)}`, token.offset);
  }

  private isLiteralKeyword(token: Token): boolean {
    return token.kind === "keyword" && (token.text === "true" || token.text === "false" || token.text === "null");
  }

  private parseExists(): Condition {
    const keyword = this.advance();
    this.countAtom(keyword);
    const open = this.peek();
    if (!this.isPunct(open, "(")) fail(`expected '(' after 'exists' but found ${describe(open)}`, open.offset);
    this.advance();
    const field = this.peek();
    if (field.kind !== "path") fail(`expected a field inside exists(…) but found ${describe(field)}`, field.offset);
    this.advance();
    const close = this.peek();
    if (!this.isPunct(close, ")")) fail(`expected ')' after the field in exists(…) but found ${describe(close)}`, close.offset);
    this.advance();
    return { kind: "exists", path: field.path };
  }

  private parseTest(field: Extract<Token, { kind: "path" }>): Condition {
    this.advance();
    this.countAtom(field);
    const next = this.peek();
    if (next.kind === "op") {
      this.advance();
      const { value, token } = this.parseLiteral(`after '${next.op}'`);
      const { op } = next;
      if (isOrderingOp(op)) {
        if (typeof value !== "string" && typeof value !== "number") {
          return fail(`ordering needs a number or a string: '${op}' cannot compare with ${token.text}`, token.offset);
        }
        return { kind: "cmp", op, path: field.path, value };
      }
      return { kind: "cmp", op, path: field.path, value };
    }
    if (this.isKeyword(next, "in")) {
      this.advance();
      return { kind: "in", path: field.path, values: this.parseList(), negated: false };
    }
    if (this.isKeyword(next, "not")) {
      this.advance();
      const inKeyword = this.peek();
      if (!this.isKeyword(inKeyword, "in")) {
        fail(`expected 'in' after '${field.text} not' but found ${describe(inKeyword)}`, inKeyword.offset);
      }
      this.advance();
      return { kind: "in", path: field.path, values: this.parseList(), negated: true };
    }
    return fail(
      `expected a comparison ('==', '!=', '<', '<=', '>', '>=', 'in' or 'not in') after '${field.text}' but found ${describe(next)}${keywordHint(next)}`,
      next.offset,
    );
  }

  private parseList(): Literal[] {
    const open = this.peek();
    if (!this.isPunct(open, "[")) fail(`expected '[' after 'in' but found ${describe(open)}`, open.offset);
    this.advance();
    const values: Literal[] = [];
    if (this.isPunct(this.peek(), "]")) {
      this.advance();
      return values;
    }
    for (;;) {
      values.push(this.parseLiteral(values.length === 0 ? "in the list" : "after ','").value);
      const sep = this.peek();
      if (this.isPunct(sep, "]")) {
        this.advance();
        return values;
      }
      if (!this.isPunct(sep, ",")) fail(`expected ',' or ']' in the list but found ${describe(sep)}`, sep.offset);
      this.advance();
    }
  }

  private parseLiteral(where: string): { value: Literal; token: Token } {
    const token = this.peek();
    let value: Literal;
    if (token.kind === "string" || token.kind === "number") value = token.value;
    else if (this.isKeyword(token, "true")) value = true;
    else if (this.isKeyword(token, "false")) value = false;
    else if (this.isKeyword(token, "null")) value = null;
    else {
      const hint =
        token.kind === "path" ? " (a field; conditions compare a field with a literal, quote text as 'text')" : keywordHint(token);
      return fail(`expected a literal ${where} but found ${describe(token)}${hint}`, token.offset);
    }
    this.advance();
    return { value, token };
  }
}

function describe(token: Token): string {
  switch (token.kind) {
    case "end":
      return "the end of the condition";
    case "string":
      return token.text.length > 40 ? `the string ${token.text.slice(0, 37)}…` : `the string ${token.text}`;
    default:
      return `'${token.text}'`;
  }
}

/** Keywords are case-sensitive; `AND` lexes as a field, so say why it failed. */
function keywordHint(token: Token): string {
  if (token.kind === "path" && token.path.length === 1 && KEYWORDS.has(token.text.toLowerCase())) {
    return ` (keywords are lowercase: '${token.text.toLowerCase()}')`;
  }
  return "";
}

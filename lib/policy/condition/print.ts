import { KEYWORDS, type Condition, type FieldPath, type Literal } from "./ast";

/**
 * Canonical text for a condition: `parseCondition(printCondition(ast))` gives
 * back an AST equal to `ast` (including `-0` and nested junctions), so the
 * printed form can be stored, shown to operators and compared. The length
 * limit applies to what operators write: canonical text can be longer than
 * its source (`, ` in lists, `1e3` → `1000`, escaped control characters), so
 * a condition near 4096 characters may print to text the parser refuses.
 */
export function printCondition(ast: Condition): string {
  switch (ast.kind) {
    case "cmp":
      return `${printPath(ast.path)} ${ast.op} ${printLiteral(ast.value)}`;
    case "in":
      return `${printPath(ast.path)} ${ast.negated ? "not in" : "in"} [${ast.values.map(printLiteral).join(", ")}]`;
    case "exists":
      return `exists(${printPath(ast.path)})`;
    case "not":
      return `not ${printOperand(ast.expr, "not")}`;
    case "and":
    case "or":
      return ast.operands.map((operand) => printOperand(operand, ast.kind)).join(` ${ast.kind} `);
  }
}

/**
 * Parentheses only where the parser would otherwise build a different tree:
 * a looser operator inside a tighter one, and a junction nested directly in a
 * junction of the same kind (the parser flattens unparenthesised chains).
 */
function printOperand(child: Condition, parent: "and" | "or" | "not"): string {
  const text = printCondition(child);
  const needsParens = child.kind === "or" || (child.kind === "and" && parent !== "or");
  return needsParens ? `(${text})` : text;
}

const SEGMENT = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function printPath(path: FieldPath): string {
  const first = path[0];
  if (first === undefined || KEYWORDS.has(first) || !path.every((segment) => SEGMENT.test(segment))) {
    throw new Error(`not a field path the condition language can express: ${JSON.stringify(path)}`);
  }
  return path.join(".");
}

export function printLiteral(value: Literal): string {
  if (typeof value === "string") return printString(value);
  if (typeof value === "number") return printNumber(value);
  return String(value);
}

/** `String(n)` is the shortest text that reads back as the same double. */
export function printNumber(value: number): string {
  if (!Number.isFinite(value)) throw new Error(`not a finite number: ${value}`);
  return Object.is(value, -0) ? "-0" : String(value);
}

const NAMED_ESCAPES: Readonly<Record<string, string>> = { "\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r" };

/** Control characters and line separators become escapes so the text stays on one visible line. */
function needsUnicodeEscape(c: number): boolean {
  return c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029;
}

export function printString(value: string): string {
  let out = "'";
  for (let i = 0; i < value.length; i++) {
    const ch = value.charAt(i);
    const c = value.charCodeAt(i);
    const named = NAMED_ESCAPES[ch];
    if (named !== undefined) out += named;
    else if (needsUnicodeEscape(c)) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return `${out}'`;
}

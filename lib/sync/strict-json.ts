import { joinPath, MAX_JSON_DEPTH } from "./json-safety";

/**
 * A JSON reader that refuses what JSON.parse would silently change: a key
 * given twice in one object (JSON.parse keeps the last), and a number literal
 * whose value a double cannot hold — beyond its range (1e400 would become
 * Infinity), so small it would become 0 (1e-400), or an integer literal that
 * would lose digits (9007199254740993 would become …992). Integers a double
 * holds exactly are accepted however large (2^60 = 1152921504606846976).
 * Literals with a fraction or an exponent are floating-point notation and
 * round to the nearest double as in every JSON reader (0.1 has no exact
 * binary form), unless they overflow or underflow. Nesting is bounded too.
 *
 * These are properties of the text, not of any value, so they refuse the whole
 * text (an HTTP body gets 400); the message names the path. What a value may
 * hold (U+0000, lone surrogates) is checked where it is stored, by
 * ./json-safety.
 *
 * Speed matters on the push path (a 1,000-change body is ~250 KB): the value
 * comes from the engine's JSON.parse, and one linear scan of the text checks
 * the number literals and counts the keys; JSON.parse keeps one key per name,
 * so the text has a duplicate exactly when it holds more keys than the parsed
 * value. Only a text with a problem is scanned again, with paths, to say where.
 * Every step is iterative: no nesting overflows the stack.
 *
 * Shared by the hub and the client SDK (bundle files): it imports only
 * ./json-safety.
 */

/** How deep a whole document may nest: a record's limit plus room for the envelope around it (a bundle wraps records in five levels). */
export const MAX_DOCUMENT_DEPTH = MAX_JSON_DEPTH + 16;

export type StrictJsonProblemCode = "not_json" | "duplicate_key" | "number" | "too_deep";

export interface StrictJsonProblem {
  code: StrictJsonProblemCode;
  /** Where, e.g. `changes.0.data.total` ("" for the top level or a syntax error). */
  path: string;
  /** What is wrong there, as a clause after "it": "is a key given twice in one object". */
  message: string;
  /** The number literal as written (code `number`). */
  literal?: string;
}

export type StrictJsonResult = { ok: true; value: unknown } | { ok: false; problem: StrictJsonProblem };

export interface StrictJsonOptions {
  /** Levels of objects and arrays allowed (default MAX_DOCUMENT_DEPTH). */
  maxDepth?: number;
}

/** Parses JSON text, or says what is wrong with it and where. */
export function parseStrictJson(text: string, options: StrictJsonOptions = {}): StrictJsonResult {
  const maxDepth = options.maxDepth ?? MAX_DOCUMENT_DEPTH;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: { code: "not_json", path: "", message: syntaxMessage(error) } };
  }
  const shape = measure(value, maxDepth);
  const scan = scanText(text);
  if (shape.tooDeep || scan.badNumber || scan.keys !== shape.keys) {
    // The exact account, with paths; JSON.parse accepted the text, so it is well-formed JSON.
    const problem = explain(text, maxDepth, "");
    if (problem) return { ok: false, problem };
    // Unreachable for text JSON.parse accepts: the scan and the explanation read the same tokens.
    return { ok: false, problem: { code: "duplicate_key", path: "", message: "holds a key given twice in one object" } };
  }
  return { ok: true, value };
}

/** A person's sentence for a problem, e.g. "The request body has … at changes.0.data". */
export function describeProblem(problem: StrictJsonProblem, what: string): string {
  if (problem.code === "not_json") return `${what} is not valid JSON: ${problem.message}.`;
  const where = problem.path === "" ? "at the top level" : `at ${problem.path}`;
  return `${what} is refused ${where}: it ${problem.message}.`;
}

function syntaxMessage(error: unknown): string {
  const raw = error instanceof Error ? error.message : String(error);
  // The engine quotes the text around the error; keep the quote printable and short.
  const printable = Array.from(raw.slice(0, 300), (ch) => (/[\p{Cc}\p{Cs}]/u.test(ch) ? `\\u${ch.charCodeAt(0).toString(16).padStart(4, "0")}` : ch)).join("");
  return printable.replace(/\.$/, "");
}

// ---------------------------------------------------------------------------
// The value: how many keys JSON.parse kept, and whether it nests too deep.

function measure(value: unknown, maxDepth: number): { keys: number; tooDeep: boolean } {
  if (typeof value !== "object" || value === null) return { keys: 0, tooDeep: false };
  let keys = 0;
  const stack: unknown[] = [value];
  const depths: number[] = [1];
  while (stack.length > 0) {
    const node = stack.pop() as object;
    const depth = depths.pop() as number;
    if (depth > maxDepth) return { keys, tooDeep: true };
    if (Array.isArray(node)) {
      for (const child of node) {
        if (typeof child === "object" && child !== null) {
          stack.push(child);
          depths.push(depth + 1);
        }
      }
    } else {
      for (const key of Object.keys(node)) {
        keys++;
        const child = (node as Record<string, unknown>)[key];
        if (typeof child === "object" && child !== null) {
          stack.push(child);
          depths.push(depth + 1);
        }
      }
    }
  }
  return { keys, tooDeep: false };
}

// ---------------------------------------------------------------------------
// The text: one pass over the tokens of a document JSON.parse accepted.

const QUOTE = 34;
const BACKSLASH = 92;
const COLON = 58;

function isSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

function isNumberChar(c: number): boolean {
  return (c >= 48 && c <= 57) || c === 46 || c === 101 || c === 69 || c === 43 || c === 45;
}

/** The index of the closing quote of the string that opens at `start`. */
function stringEnd(text: string, start: number): number {
  let from = start + 1;
  for (;;) {
    const quote = text.indexOf('"', from);
    if (quote < 0) return text.length;
    let backslashes = 0;
    for (let k = quote - 1; text.charCodeAt(k) === BACKSLASH; k--) backslashes++;
    if ((backslashes & 1) === 0) return quote;
    from = quote + 1;
  }
}

/** Keys in the text, and whether any number literal cannot be held by a double. */
function scanText(text: string): { keys: number; badNumber: boolean } {
  let keys = 0;
  let badNumber = false;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      i = stringEnd(text, i) + 1;
      while (i < n && isSpace(text.charCodeAt(i))) i++;
      if (text.charCodeAt(i) === COLON) keys++;
    } else if (c === 45 || (c >= 48 && c <= 57)) {
      const start = i;
      let plain = true;
      for (i++; i < n; i++) {
        const d = text.charCodeAt(i);
        if (!isNumberChar(d)) break;
        if (d === 101 || d === 69) plain = false;
      }
      // Up to 15 digits without an exponent is always exact; anything else is looked at closely.
      if ((!plain || i - start > 15) && numberProblem(text.slice(start, i)) !== null) badNumber = true;
    } else {
      i++;
    }
  }
  return { keys, badNumber };
}

interface Container {
  keys: Set<string> | null;
  /** The current key (objects) or index (arrays). */
  at: string | number;
}

/** The first problem in document order, with its path; null when there is none. */
function explain(text: string, maxDepth: number, root: string): StrictJsonProblem | null {
  const stack: Container[] = [];
  const path = () => joinPath([root, ...stack.map((c) => c.at)]);
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 123 || c === 91) {
      if (stack.length + 1 > maxDepth) {
        return { code: "too_deep", path: path(), message: `nests deeper than ${maxDepth} levels of objects and arrays, the most accepted` };
      }
      stack.push({ keys: c === 123 ? new Set() : null, at: c === 123 ? "" : 0 });
      i++;
    } else if (c === 125 || c === 93) {
      stack.pop();
      i++;
    } else if (c === 44) {
      const top = stack[stack.length - 1];
      if (top && top.keys === null) top.at = (top.at as number) + 1;
      i++;
    } else if (c === QUOTE) {
      const end = stringEnd(text, i);
      const token = text.slice(i, end + 1);
      i = end + 1;
      while (i < n && isSpace(text.charCodeAt(i))) i++;
      const top = stack[stack.length - 1];
      if (text.charCodeAt(i) === COLON && top?.keys) {
        const key = token.includes("\\") ? (JSON.parse(token) as string) : token.slice(1, -1);
        top.at = key;
        if (top.keys.has(key)) {
          return { code: "duplicate_key", path: path(), message: "is a key given twice in one object (a JSON reader would silently keep only the last value)" };
        }
        top.keys.add(key);
        i++;
      }
    } else if (c === 45 || (c >= 48 && c <= 57)) {
      const start = i;
      for (i++; i < n && isNumberChar(text.charCodeAt(i)); i++);
      const literal = text.slice(start, i);
      const problem = numberProblem(literal);
      if (problem) return { code: "number", path: path(), message: problem, literal };
    } else {
      i++;
    }
  }
  return null;
}

// ---------------------------------------------------------------------------
// Number literals

const NUMBER = /^(-?)(\d+)(?:\.(\d+))?(?:[eE]([+-]?\d+))?$/;

/**
 * Why a JSON number literal cannot be held by a double, or null. Refused: a
 * literal that overflows to ±Infinity, a non-zero one that becomes 0, and an
 * integer literal (digits only) that would silently lose digits: its exact
 * value is not the double's, and it is not how JavaScript writes that double
 * either. So 9007199254740993 is refused (it would come back as
 * 9007199254740992), while both 1152921504606846976 (2^60 exactly) and
 * 1152921504606847000 (2^60 as JSON.stringify writes it, and as canonical
 * JSON writes it back) are accepted. A literal with a fraction or an exponent
 * is floating-point notation: it rounds to the nearest double (1.5e300 and
 * 0.1 are as exact as a double gets).
 */
export function numberProblem(literal: string): string | null {
  const value = Number(literal);
  const shown = literal.length > 40 ? `${literal.slice(0, 37)}…` : literal;
  if (!Number.isFinite(value)) {
    return `holds the number ${shown}, beyond the range of a double-precision number (it would become ${value > 0 ? "" : "-"}Infinity); send it as a string`;
  }
  const match = NUMBER.exec(literal);
  if (!match) return null; // JSON.parse accepted the text, so this is a number; the pattern only splits it.
  const [, , whole = "", fraction, exponent] = match;
  if (value === 0) {
    return /[1-9]/.test(whole + (fraction ?? ""))
      ? `holds the number ${shown}, too small for a double-precision number (it would become 0); send it as a string`
      : null;
  }
  // Below 2^53 every integer is exact.
  if (fraction !== undefined || exponent !== undefined || Math.abs(value) < 2 ** 53) return null;
  if (BigInt(literal) === BigInt(value) || String(value) === literal) return null;
  return `holds the integer ${shown}, which a double-precision number cannot hold exactly (it would become ${BigInt(value)}); send it as a string`;
}

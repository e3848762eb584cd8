/**
 * Values the hub cannot store faithfully, which the wire contract refuses.
 * PostgreSQL refuses U+0000 in text and jsonb; UTF-8 has no encoding for a
 * lone surrogate (drivers silently turn it into U+FFFD); JSON has no Infinity
 * or NaN (JSON.stringify writes null); and unbounded nesting overflows every
 * recursive reader on the way (canonical JSON, jsonb, other clients' parsers).
 * Such a value is refused with a sentence naming where it is, never stored
 * altered.
 *
 * Shared by the hub and the client SDK (Node or browser): it imports nothing.
 * The walk is iterative and stops at the depth limit, so a hostile value can
 * neither overflow the stack nor take longer than its size.
 */

/** How deep a record may nest: the record itself is level 1, each object or array inside it one more. */
export const MAX_JSON_DEPTH = 64;

/**
 * Why `value` cannot be stored, naming the first offending place in document
 * order (`path` names `value` itself, e.g. `data`), or null when it can. Checks
 * strings and keys for U+0000 and lone surrogates, numbers for Infinity and
 * NaN, values for types JSON does not have, and nesting deeper than
 * MAX_JSON_DEPTH. The same value always gets the same answer.
 */
export function unstorableReason(value: unknown, path: string): string | null {
  return findUnstorable(value, path, MAX_JSON_DEPTH)?.message ?? null;
}

export interface Unstorable {
  /** Where, as in `message`: `data.address.city`, `data["a\u0000b"]` for a key. */
  path: string;
  /** The whole sentence: the path, then what is wrong there. */
  message: string;
}

/**
 * unstorableReason with the path apart, and another depth limit: a request
 * body wraps records in a few levels of its own, so the HTTP layer checks
 * bodies against a larger one.
 */
export function findUnstorable(value: unknown, path: string, maxDepth: number): Unstorable | null {
  const found = (at: string, problem: string, key = false): Unstorable => ({
    path: at,
    message: key ? `The key ${at} ${problem}` : `${describe(at)} ${problem}`,
  });
  const scalar = scalarProblem(value);
  if (scalar !== undefined) return scalar === null ? null : found(path, scalar);
  if (maxDepth < 1) return found(path, tooDeep(maxDepth));

  // One frame per open container, children visited in order: the first problem in document order wins.
  const stack: Frame[] = [frameOf(value as object, path, null)];
  while (stack.length > 0) {
    const frame = stack[stack.length - 1] as Frame;
    if (frame.next >= frame.size) {
      stack.pop();
      continue;
    }
    const i = frame.next++;
    let child: unknown;
    let segment: string | number;
    if (frame.keys === null) {
      segment = i;
      child = (frame.container as unknown[])[i];
    } else {
      const key = frame.keys[i] as string;
      const keyProblem = textProblem(key);
      if (keyProblem !== null) return found(renderPath(frame, key), keyProblem, true);
      segment = key;
      child = (frame.container as Record<string, unknown>)[key];
    }
    const problem = scalarProblem(child);
    if (problem === null) continue;
    if (problem !== undefined) return found(renderPath(frame, segment), problem);
    if (stack.length >= maxDepth) return found(renderPath(frame, segment), tooDeep(maxDepth));
    stack.push(frameOf(child as object, segment, frame));
  }
  return null;
}

interface Frame {
  container: object;
  /** Own keys in order for an object; null for an array. */
  keys: string[] | null;
  size: number;
  next: number;
  /** This container's place in its parent (the root's is the caller's path). */
  segment: string | number;
  parent: Frame | null;
}

function frameOf(container: object, segment: string | number, parent: Frame | null): Frame {
  if (Array.isArray(container)) return { container, keys: null, size: container.length, next: 0, segment, parent };
  const keys = Object.keys(container);
  return { container, keys, size: keys.length, next: 0, segment, parent };
}

/** undefined: a container to walk; null: a storable scalar; a string: what is wrong with it. */
function scalarProblem(value: unknown): string | null | undefined {
  switch (typeof value) {
    case "string":
      return textProblem(value);
    case "number":
      return Number.isFinite(value) ? null : `is ${String(value)}, not a plain JSON number; send a finite number (or a string)`;
    case "boolean":
      return null;
    case "object":
      return value === null ? null : undefined;
    default:
      return `is ${typeof value === "undefined" ? "undefined" : `a ${typeof value}`}, not a plain JSON value`;
  }
}

// A quick test first: almost every string has neither, and the exact scan below only runs when one might.
const SUSPECT = /[\u0000\ud800-\udfff]/;

/** What is wrong with a string or key, or null. */
export function textProblem(text: string): string | null {
  if (!SUSPECT.test(text)) return null;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0) return "contains U+0000 (a NUL character), which the hub cannot store; remove it";
    if (c >= 0xd800 && c <= 0xdbff) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        i++;
        continue;
      }
      return `contains a lone surrogate (U+${hex(c)} without its pair), which is not Unicode text and cannot be stored as UTF-8`;
    }
    if (c >= 0xdc00 && c <= 0xdfff) {
      return `contains a lone surrogate (U+${hex(c)} without its pair), which is not Unicode text and cannot be stored as UTF-8`;
    }
  }
  return null;
}

function hex(code: number): string {
  return code.toString(16).toUpperCase().padStart(4, "0");
}

function tooDeep(maxDepth: number): string {
  return `nests deeper than ${maxDepth} levels of objects and arrays, the most the hub accepts; flatten it`;
}

function describe(path: string): string {
  return path === "" ? "The value" : path;
}

function renderPath(frame: Frame, last: string | number): string {
  const segments: (string | number)[] = [last];
  for (let f: Frame | null = frame; f !== null; f = f.parent) segments.push(f.segment);
  segments.reverse();
  return joinPath(segments);
}

/**
 * A path as people read it: `data.address.city`, `changes.0.data`. A key that
 * would be ambiguous or unreadable there (empty, with a dot, brackets, quotes,
 * control characters or lone surrogates) is shown quoted and escaped,
 * `data["a.b"]`; a long one is cut short. The first segment is the caller's
 * path as given.
 */
export function joinPath(segments: readonly (string | number)[]): string {
  let out = "";
  for (const [i, segment] of segments.entries()) {
    if (i === 0) {
      out = String(segment);
      continue;
    }
    if (typeof segment === "number") out += out === "" ? String(segment) : `.${segment}`;
    else if (PLAIN_KEY.test(segment)) out += out === "" ? segment : `.${segment}`;
    else out += `[${JSON.stringify(shorten(segment))}]`;
  }
  return out;
}

const PLAIN_KEY = /^[^\p{C}\s.[\]"'\\]{1,64}$/u;

function shorten(key: string): string {
  const points = Array.from(key);
  return points.length > 64 ? `${points.slice(0, 63).join("")}…` : key;
}

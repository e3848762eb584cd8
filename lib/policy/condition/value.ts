/**
 * The two value primitives shared by the in-process predicate and the Casbin
 * helpers. They define "a path's value" and "string order" for JavaScript;
 * the SQL translation implements the same rules natively and the integration
 * test checks all three against each other.
 */

const hasOwn = Object.prototype.hasOwnProperty;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Own properties only: an inherited `constructor`, `__proto__` or a polluted
 * `Object.prototype` entry must never look like record data.
 */
export function lookupPath(root: unknown, path: readonly string[]): unknown {
  let current = root;
  for (const key of path) {
    if (!isPlainObject(current) || !hasOwn.call(current, key)) return undefined;
    current = current[key];
  }
  return current;
}

export function lookupKey(parent: unknown, key: string): unknown {
  return isPlainObject(parent) && hasOwn.call(parent, key) ? parent[key] : undefined;
}

/**
 * Compares by Unicode code point (the byte order of UTF-8, which is what
 * Postgres `COLLATE "C"` uses). Plain `<` on JS strings compares UTF-16 code
 * units, which puts astral characters (surrogates D800–DFFF) before U+E000–
 * U+FFFF; only the first differing unit can disagree, so it is remapped:
 * surrogates move above FFFF and E000–FFFF move down into the gap.
 */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) {
      x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
      y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
    }
    return x < y ? -1 : 1;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

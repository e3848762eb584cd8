import type { JsonObject, JsonValue } from "./protocol";
import { canonicalJson } from "./digest";

/** Equality of JSON values as JCS sees it: key order does not matter, 1 and 1.0 are equal. */
export function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  return canonicalJson(a) === canonicalJson(b);
}

/** Top-level fields whose values differ between two records (a missing field differs from any value). */
export function changedFields(before: JsonObject | null, after: JsonObject | null): string[] {
  const a = before ?? {};
  const b = after ?? {};
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => !jsonEqual(a[k], b[k]));
}

/** `target` with the given top-level fields taken from `source` (removed where `source` lacks them). */
export function overlay(target: JsonObject, source: JsonObject, fields: readonly string[]): JsonObject {
  const out: JsonObject = { ...target };
  for (const f of fields) {
    const value = source[f];
    if (value === undefined) delete out[f];
    else out[f] = value;
  }
  return out;
}

export function isPlainObject(value: JsonValue | undefined): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

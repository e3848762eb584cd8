import type { JsonObject, JsonValue } from "./protocol";
import { isPlainObject, jsonEqual } from "./json";

export interface MergeResult {
  /** The combined record, with colliding fields taken from the side `resolve` chose. */
  merged: JsonObject;
  /** Dotted paths both sides changed to different values. */
  collisions: string[];
}

/**
 * Three-way merge against the base version (field-merge): a field only one
 * side changed takes that side's value; a field both changed to the same value
 * takes it; nested objects merge per key; arrays and scalars are values, so two
 * different edits to one array collide. `prefer` settles collisions.
 */
export function threeWayMerge(
  base: JsonObject,
  server: JsonObject,
  client: JsonObject,
  prefer: "server" | "client",
): MergeResult {
  const collisions: string[] = [];
  const merged = mergeObjects(base, server, client, prefer, "", collisions);
  return { merged, collisions };
}

function mergeObjects(
  base: JsonObject,
  server: JsonObject,
  client: JsonObject,
  prefer: "server" | "client",
  prefix: string,
  collisions: string[],
): JsonObject {
  const out: JsonObject = {};
  const keys = new Set([...Object.keys(server), ...Object.keys(client), ...Object.keys(base)]);
  for (const key of [...keys].sort()) {
    const value = mergeValue(base[key], server[key], client[key], prefer, `${prefix}${key}`, collisions);
    if (value !== undefined) out[key] = value;
  }
  return out;
}

function mergeValue(
  b: JsonValue | undefined,
  s: JsonValue | undefined,
  c: JsonValue | undefined,
  prefer: "server" | "client",
  path: string,
  collisions: string[],
): JsonValue | undefined {
  if (jsonEqual(s, b)) return c;
  if (jsonEqual(c, b) || jsonEqual(c, s)) return s;
  if (isPlainObject(s) && isPlainObject(c)) {
    return mergeObjects(isPlainObject(b) ? b : {}, s, c, prefer, `${path}.`, collisions);
  }
  collisions.push(path);
  return prefer === "server" ? s : c;
}

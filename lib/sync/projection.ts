import { fieldsFor, type Scope } from "../policy/compile";
import { digestOf } from "./digest";
import type { JsonObject } from "./protocol";

/** A record as one reader sees it: the projected data and the digest of exactly that data. */
export interface ReaderCopy {
  data: JsonObject;
  digest: string;
}

/**
 * The record as a reader with this read scope sees it (protocol.md: `data` is
 * projected to the fields the caller may read, and the digest is over the data
 * as the reader sees it, so the client's "modified locally" test works on its
 * own copy). Null when no grant covers the record: the caller must then reveal
 * nothing of it.
 *
 * `fullDigest` is the stored digest of the whole data; it is reused when the
 * reader sees every field, which spares hashing on the common path.
 */
export function projectForReader(scope: Scope, data: JsonObject, fullDigest?: string): ReaderCopy | null {
  const fields = fieldsFor(scope, data);
  if (fields === null) return null;
  if (fields === "*") return { data, digest: fullDigest ?? digestOf(data) };
  const projected = projectFields(data, fields);
  return { data: projected, digest: digestOf(projected) };
}

/**
 * Only the listed top-level fields. Built with Object.fromEntries so that a
 * field named `__proto__` (a valid field name) stays an own data property
 * instead of replacing the object's prototype, as an assignment would.
 */
export function projectFields(data: JsonObject, fields: ReadonlySet<string>): JsonObject {
  return Object.fromEntries(Object.entries(data).filter(([key]) => fields.has(key))) as JsonObject;
}

import { createHash } from "node:crypto";
import { canonicalJson } from "./canonical";
import { DELETED_DIGEST, type JsonObject } from "./protocol";

export { canonicalJson } from "./canonical";

/** protocol.md: lowercase hex SHA-256 of the canonical JSON of the data; `null` for a deleted record. */
export function digestOf(data: JsonObject | null): string {
  if (data === null) return DELETED_DIGEST;
  return createHash("sha256").update(canonicalJson(data), "utf8").digest("hex");
}

/** The canonical size of a record's data in bytes (the 256 KiB limit applies to it). */
export function canonicalSize(data: JsonObject): number {
  return Buffer.byteLength(canonicalJson(data), "utf8");
}

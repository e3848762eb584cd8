import { canonicalJson } from "../sync/canonical";
import { DELETED_DIGEST, type JsonObject } from "../sync/protocol";

const encoder = new TextEncoder();
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

/**
 * Claim 5: a record is "modified locally" when the digest of its copy differs
 * from the base digest. Computed exactly as the hub does (protocol.md): the
 * lowercase hex SHA-256 of the RFC 8785 canonical JSON, through the same
 * canonicalJson; a deleted record's digest is that of `null`. WebCrypto, so it
 * runs in Node 20 and browsers alike.
 */
export async function digestOf(data: JsonObject | null): Promise<string> {
  if (data === null) return DELETED_DIGEST;
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(canonicalJson(data))));
  let hex = "";
  for (const byte of bytes) hex += HEX[byte];
  return hex;
}

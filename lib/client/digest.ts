import { canonicalJson } from "../sync/canonical";
import { DELETED_DIGEST, type JsonObject } from "../sync/protocol";

const encoder = new TextEncoder();
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

type NodeHash = (text: string) => string;

/**
 * node:crypto's synchronous SHA-256 when the SDK runs in Node (or Bun, Deno):
 * WebCrypto's `subtle.digest` is asynchronous, so each digest pays for a
 * promise and a trip through the thread pool — about ten times slower for
 * records of a few hundred bytes. Reached through `process.getBuiltinModule`
 * (Node 20.16+), not an import, so browser bundles never see node:crypto;
 * anywhere else (browsers, older Node) the SDK falls back to WebCrypto.
 */
const nodeHash: NodeHash | null = (() => {
  const proc = (globalThis as { process?: { getBuiltinModule?: (id: string) => unknown } }).process;
  const crypto = proc?.getBuiltinModule?.("node:crypto") as { createHash?: (algorithm: string) => { update(text: string, encoding: "utf8"): { digest(encoding: "hex"): string } } } | undefined;
  const createHash = crypto?.createHash;
  if (typeof createHash !== "function") return null;
  return (text) => createHash("sha256").update(text, "utf8").digest("hex");
})();

async function webCryptoHex(text: string): Promise<string> {
  const bytes = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  let hex = "";
  for (const byte of bytes) hex += HEX[byte];
  return hex;
}

/** Lowercase hex SHA-256 of each text's UTF-8 bytes, in order: one pass in Node, concurrent WebCrypto calls elsewhere. */
export async function sha256HexMany(texts: readonly string[]): Promise<string[]> {
  if (nodeHash) return texts.map(nodeHash);
  return Promise.all(texts.map(webCryptoHex));
}

/** Lowercase hex SHA-256 of a text's UTF-8 bytes. */
export async function sha256HexOf(text: string): Promise<string> {
  return nodeHash ? nodeHash(text) : webCryptoHex(text);
}

/**
 * Claim 5: a record is "modified locally" when the digest of its copy differs
 * from the base digest. Computed exactly as the hub does (protocol.md): the
 * lowercase hex SHA-256 of the RFC 8785 canonical JSON, through the same
 * canonicalJson; a deleted record's digest is that of `null`. Runs in Node 20
 * and browsers alike (see nodeHash).
 */
export async function digestOf(data: JsonObject | null): Promise<string> {
  if (data === null) return DELETED_DIGEST;
  return sha256HexOf(canonicalJson(data));
}

/** digestOf for many records at once (a bulk write, a push answer): same digests, in order; `null` hashes to DELETED_DIGEST. */
export async function digestsOf(records: readonly (JsonObject | null)[]): Promise<string[]> {
  return sha256HexMany(records.map((data) => canonicalJson(data)));
}

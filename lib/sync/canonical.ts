import canonicalize from "canonicalize";

/**
 * RFC 8785 (JCS) canonical JSON. `canonicalize` is the RFC authors' reference
 * implementation for JavaScript, so digests match any other JCS client. Pure
 * and platform-free: the server and the client SDK (Node or browser) share it.
 */
export function canonicalJson(value: unknown): string {
  const text = canonicalize(value);
  if (text === undefined) throw new TypeError("value cannot be canonicalised as JSON");
  return text;
}

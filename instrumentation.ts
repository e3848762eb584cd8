/**
 * Next.js calls register() once when a server starts: stamp requests with
 * their peer address (lib/http/peer-address.ts), let compressed answers keep
 * their Content-Encoding and Content-Length (lib/http/compression.ts), migrate the database,
 * activate the default policy on first start, and print a generated admin
 * token, before the first request rather than during it.
 */
export async function register(): Promise<void> {
  if (process.env.NEXT_RUNTIME !== "nodejs") return;
  const { installPeerAddressHeader } = await import("./lib/http/peer-address");
  installPeerAddressHeader();
  const { installEncodingHeaders } = await import("./lib/http/compression");
  installEncodingHeaders();
  const { getHub } = await import("./lib/hub");
  const { log } = await import("./lib/log");
  const hub = await getHub();
  log.info(`Hub ready on ${hub.kind === "pglite" ? "the embedded database (PGlite)" : "PostgreSQL"}.`);
}

// @ts-check
/** @type {import('next').NextConfig} */
const nextConfig = {
  // PGlite ships a wasm build of Postgres; it must stay a Node dependency of the
  // server, never bundled (a bundled copy answers 500 or leaks into browser assets).
  serverExternalPackages: ["@electric-sql/pglite"],
  poweredByHeader: false,
  // Gzip in the hub's own process costs more CPU than a sync payload is worth
  // on a small machine (pull of 100,000 records: 39,000/s with it, 55,000/s
  // without). Put a compressing reverse proxy in front, or set
  // CONCORD_COMPRESS=1 when clients are on slow links and the hub has CPU to spare.
  compress: process.env.CONCORD_COMPRESS === "1",
  reactStrictMode: true,
};

export default nextConfig;

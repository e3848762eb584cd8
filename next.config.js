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
  // Security headers on every response, static files included. Pages also get
  // a Content-Security-Policy with a per-request nonce from proxy.ts
  // (lib/http/security-headers.ts); API answers are JSON and event streams and
  // may load nothing at all.
  async headers() {
    return [
      {
        source: "/:path*",
        headers: [
          { key: "X-Content-Type-Options", value: "nosniff" },
          { key: "Referrer-Policy", value: "same-origin" },
          { key: "X-Frame-Options", value: "DENY" },
        ],
      },
      {
        source: "/api/:path*",
        headers: [{ key: "Content-Security-Policy", value: "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'" }],
      },
    ];
  },
};

export default nextConfig;

// @ts-check
/** @type {import('next').NextConfig} */
const nextConfig = {
  // PGlite ships a wasm build of Postgres; it must stay a Node dependency of the
  // server, never bundled (a bundled copy answers 500 or leaks into browser assets).
  serverExternalPackages: ["@electric-sql/pglite"],
  poweredByHeader: false,
  // Never Next's own gzip: it compressed every answer at level 6 on the main
  // thread and cost 30 % of pull throughput on a small machine (pull of 100,000
  // records: 39,000/s with it, 55,000/s without), and it would buffer event
  // streams. The sync and admin APIs compress their JSON answers themselves,
  // negotiated per answer with levels chosen by measurement (brotli or gzip,
  // off the event loop; lib/http/compression.ts, CONCORD_COMPRESS). Pages and
  // static files go uncompressed; put a compressing reverse proxy in front if
  // operators sit on slow links.
  compress: false,
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

// @ts-check
/** @type {import('next').NextConfig} */
const nextConfig = {
  // PGlite ships a wasm build of Postgres; it must stay a Node dependency of the
  // server, never bundled (a bundled copy answers 500 or leaks into browser assets).
  serverExternalPackages: ["@electric-sql/pglite"],
  poweredByHeader: false,
  reactStrictMode: true,
};

export default nextConfig;

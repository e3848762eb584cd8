/**
 * The browser-facing security headers. Pages get a Content-Security-Policy
 * with a fresh nonce per request (proxy.ts): Next.js reads the nonce from the
 * request's CSP header and puts it on its own inline and bundled scripts, and
 * `'strict-dynamic'` lets those load the rest, so no other script runs — not
 * even one injected into a page. There is no `'unsafe-eval'` (React and
 * Next.js need it only in development, where it is added). The static headers
 * (nosniff, Referrer-Policy, frame blocking, and a deny-all policy for API
 * responses) are set for every response in next.config.js.
 */

/** The request header that carries the nonce to server components (CodeMirror's style nonce). */
export const NONCE_HEADER = "x-nonce";
/** The request header that carries the page's path and query to server components (sign-in's `next`). */
export const PAGE_PATH_HEADER = "x-concord-page";

/** 128 random bits, base64: unguessable, and fresh for every page view. */
export function newNonce(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return btoa(String.fromCharCode(...bytes));
}

export function pageContentSecurityPolicy(nonce: string, options: { development: boolean }): string {
  const directives = [
    "default-src 'self'",
    `script-src 'self' 'nonce-${nonce}' 'strict-dynamic'${options.development ? " 'unsafe-eval'" : ""}`,
    // Stylesheets and <style> elements need the nonce. Style attributes are
    // allowed: the charts size their SVG with them (server-rendered and set by
    // script), and an attribute cannot run code or load anything.
    `style-src 'self' 'nonce-${nonce}'`,
    "style-src-attr 'unsafe-inline'",
    "img-src 'self' blob: data:",
    "font-src 'self'",
    "connect-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
  ];
  return directives.join("; ");
}

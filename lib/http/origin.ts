/**
 * The one check that a write made with a console session comes from the
 * console's own pages: its Origin header must equal the console's origin —
 * scheme, host and port. Used by the admin routes' wrapper (cookie-
 * authenticated writes, lib/http/handlers.ts) and by proxy.ts for every
 * server action and form post to a page. A missing Origin is refused
 * (browsers send one with every POST; a request without it did not come from
 * the console), and so is `Origin: null` (sandboxed frames, file: pages).
 * The Referer header is not accepted in its place.
 *
 * The console's origin is, in this order:
 * - `CONCORD_PUBLIC_URL`, when the operator set it (a proxy that changes the
 *   host or scheme);
 * - with `CONCORD_TRUST_PROXY`: the proxy's X-Forwarded-Proto and
 *   X-Forwarded-Host (or Host);
 * - otherwise the request's own scheme (`next start` serves http) and its
 *   Host header — the address the browser sent the request to.
 */

import { env } from "../env";

export interface OriginSettings {
  /** CONCORD_PUBLIC_URL as an origin (lib/env.ts validated it). */
  publicUrl?: string;
  /** CONCORD_TRUST_PROXY: reverse proxies in front of the hub. */
  trustProxy: number;
}

/** The settings from the environment (CONCORD_PUBLIC_URL, CONCORD_TRUST_PROXY). */
export function originSettings(): OriginSettings {
  const e = env();
  return { publicUrl: e.CONCORD_PUBLIC_URL, trustProxy: e.CONCORD_TRUST_PROXY };
}

interface RequestLike {
  headers: Headers;
  url: string;
}

function firstValue(header: string | null): string | undefined {
  const value = header?.split(",")[0]?.trim();
  return value ? value : undefined;
}

/** The console's origin for this request, or null when it cannot be known (no Host). */
export function expectedOrigin(request: RequestLike, settings: OriginSettings): string | null {
  if (settings.publicUrl) return settings.publicUrl;
  let own: URL;
  try {
    own = new URL(request.url);
  } catch {
    return null;
  }
  let scheme = own.protocol.replace(/:$/, "");
  let host = firstValue(request.headers.get("host")) ?? own.host;
  if (settings.trustProxy > 0) {
    const proto = firstValue(request.headers.get("x-forwarded-proto"))?.toLowerCase();
    if (proto === "http" || proto === "https") scheme = proto;
    host = firstValue(request.headers.get("x-forwarded-host")) ?? host;
  }
  try {
    return new URL(`${scheme}://${host}`).origin;
  } catch {
    return null;
  }
}

/**
 * Why this request may not change anything with a console session, or null
 * when its Origin is the console's. The sentence is for the person at the
 * browser and for the operator reading the log.
 */
export function originProblem(request: RequestLike, settings: OriginSettings): string | null {
  const sent = request.headers.get("origin");
  if (sent === null || sent.trim() === "") {
    return "This change was refused because the request has no Origin header: changes made with a console session must come from the console's own pages in a browser. Automation should use the admin token instead.";
  }
  const expected = expectedOrigin(request, settings);
  let origin: string | null = null;
  try {
    origin = sent === "null" ? null : new URL(sent).origin;
  } catch {
    origin = null;
  }
  if (origin === null || origin === "null") {
    return `This change was refused because it came from an opaque origin (Origin: ${describe(sent)}), not from the console's own pages.`;
  }
  if (expected === null) {
    return "This change was refused because the console's own address is unknown (no Host header); set CONCORD_PUBLIC_URL.";
  }
  if (origin !== expected) {
    return `This change was refused because it came from ${describe(origin)}, but the console is at ${expected}: changes made with a console session must come from the console's own pages. If you opened the console at ${describe(origin)} through a proxy, set CONCORD_PUBLIC_URL to that address (or CONCORD_TRUST_PROXY).`;
  }
  return null;
}

function describe(value: string): string {
  return value.length > 100 ? `${value.slice(0, 100)}…` : value;
}

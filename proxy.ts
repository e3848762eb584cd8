import { NextResponse, type NextRequest } from "next/server";
import { originProblem, originSettings } from "@/lib/http/origin";
import { newNonce, NONCE_HEADER, PAGE_PATH_HEADER, pageContentSecurityPolicy } from "@/lib/http/security-headers";
import { log } from "@/lib/log";

/**
 * Runs before every console page and server action (not the API, not static
 * files): refuses a write whose Origin is not the console's
 * (lib/http/origin.ts — the same check the admin routes make), and gives the
 * page a Content-Security-Policy with a fresh nonce
 * (lib/http/security-headers.ts).
 */
const READS = new Set(["GET", "HEAD", "OPTIONS"]);

export function proxy(request: NextRequest): NextResponse {
  const nonce = newNonce();
  const csp = pageContentSecurityPolicy(nonce, { development: process.env.NODE_ENV === "development" });
  if (!READS.has(request.method)) {
    const problem = originProblem(request, originSettings());
    if (problem) {
      log.warn(`refused a ${request.method} to ${request.nextUrl.pathname}: ${problem}`);
      const refused = NextResponse.json({ error: { code: "forbidden", message: problem } }, { status: 403 });
      refused.headers.set("content-security-policy", csp);
      refused.headers.set("cache-control", "no-store");
      return refused;
    }
  }
  const headers = new Headers(request.headers);
  headers.set(NONCE_HEADER, nonce);
  headers.set("content-security-policy", csp);
  headers.set(PAGE_PATH_HEADER, `${request.nextUrl.pathname}${request.nextUrl.search}`);
  const response = NextResponse.next({ request: { headers } });
  response.headers.set("content-security-policy", csp);
  return response;
}

export const config = {
  matcher: ["/((?!api/|_next/static/|_next/image|favicon.ico).*)"],
};

import { Duplex } from "node:stream";
import zlib from "node:zlib";
import * as changesRoute from "@/app/api/v1/collections/[collection]/changes/route";
import * as manifestRoute from "@/app/api/v1/collections/[collection]/manifest/route";
import * as pushRoute from "@/app/api/v1/collections/[collection]/push/route";
import * as configRoute from "@/app/api/v1/config/route";
import * as eventsRoute from "@/app/api/v1/events/route";
import type { FetchLike } from "@/lib/client";

export const HUB_URL = "http://hub";

type Route = (request: Request, args: { params: Promise<Record<string, string>> }) => Promise<Response>;

/**
 * A `fetch` that hands `http://hub/api/v1/...` requests to the real Next.js
 * route handlers in this process (the test hub's database), as Next.js would:
 * same Request, dynamic segments as a promise. Streaming answers (events)
 * stream; aborting the request's signal ends them. A compressed answer is
 * decoded as Node's fetch decodes it (headers kept as sent).
 */
export function inProcessFetch(): FetchLike {
  return async (input, init) => {
    const request = new Request(input, init);
    const url = new URL(request.url);
    if (url.origin !== HUB_URL) throw new TypeError(`fetch failed: in-process hub only serves ${HUB_URL}, not ${url.origin}`);
    return decoded(await hubAnswer(request));
  };
}

/** The sync route's answer to a request, as the hub sends it (compressed if it was asked to). */
export async function hubAnswer(request: Request): Promise<Response> {
  const url = new URL(request.url);
  const route = resolve(request.method, url.pathname);
  if (!route) return Response.json({ error: { code: "not_found", message: `no route ${request.method} ${url.pathname}` } }, { status: 404 });
  return route.handler(request, { params: Promise.resolve(route.params) });
}

/** The answer as `fetch` hands it over: its body decoded, its headers as sent. */
export function decoded(response: Response): Response {
  const coding = response.headers.get("content-encoding");
  if (!coding || !response.body) return response;
  const decoder = coding === "br" ? Duplex.toWeb(zlib.createBrotliDecompress()) : coding === "gzip" ? new DecompressionStream("gzip") : null;
  if (!decoder) throw new TypeError(`fetch failed: unknown Content-Encoding ${coding}`);
  const body = response.body.pipeThrough(decoder as unknown as ReadableWritablePair<Uint8Array, Uint8Array>);
  return new Response(body, { status: response.status, statusText: response.statusText, headers: response.headers });
}

function resolve(method: string, path: string): { handler: Route; params: Record<string, string> } | null {
  if (method === "GET" && path === "/api/v1/config") return { handler: configRoute.GET as Route, params: {} };
  if (method === "GET" && path === "/api/v1/events") return { handler: eventsRoute.GET as Route, params: {} };
  const match = /^\/api\/v1\/collections\/([^/]+)\/(changes|manifest|push)$/.exec(path);
  if (!match) return null;
  const params = { collection: decodeURIComponent(match[1] as string) };
  const kind = match[2];
  if (method === "GET" && kind === "changes") return { handler: changesRoute.GET as Route, params };
  if (method === "GET" && kind === "manifest") return { handler: manifestRoute.GET as Route, params };
  if (method === "POST" && kind === "push") return { handler: pushRoute.POST as Route, params };
  return null;
}

/** A fetch that fails like a network outage while `offline()` is true. */
export function flakyFetch(inner: FetchLike, offline: () => boolean): FetchLike {
  return async (input, init) => {
    if (offline()) throw new TypeError("fetch failed", { cause: new Error("connect ECONNREFUSED") });
    return inner(input, init);
  };
}

/** The JSON a request sent (a body the SDK gzip-compressed, decoded), or undefined without a body. */
export function sentJson(init: RequestInit | undefined): unknown {
  const body = init?.body;
  if (body === undefined || body === null) return undefined;
  if (typeof body === "string") return JSON.parse(body) as unknown;
  if (!(body instanceof Uint8Array)) throw new TypeError("sentJson reads string and byte bodies only");
  const coding = new Headers(init?.headers).get("content-encoding");
  const bytes = coding === "gzip" ? zlib.gunzipSync(body) : coding === "br" ? zlib.brotliDecompressSync(body) : Buffer.from(body);
  return JSON.parse(bytes.toString("utf8")) as unknown;
}

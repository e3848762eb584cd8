import { randomUUID } from "node:crypto";
import zlib from "node:zlib";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import * as healthRoute from "@/app/api/health/route";
import * as bundlesRoute from "@/app/api/v1/bundles/route";
import * as changesRoute from "@/app/api/v1/collections/[collection]/changes/route";
import * as manifestRoute from "@/app/api/v1/collections/[collection]/manifest/route";
import * as pushRoute from "@/app/api/v1/collections/[collection]/push/route";
import * as configRoute from "@/app/api/v1/config/route";
import * as eventsRoute from "@/app/api/v1/events/route";
import { resetEnvCache } from "@/lib/env";
import { MIN_COMPRESS_BYTES } from "@/lib/http/compression";
import { FORMAT, MAX_BUNDLE_BYTES, sealBundle } from "@/lib/sync/bundle-format";
import { sha256Hex } from "@/lib/sync/bundles";
import { MAX_PUSH_BODY_BYTES, type ChangesResponse, type ManifestResponse, type PushResponse } from "@/lib/sync/protocol";
import { fingerprint } from "@/tests/helpers/fingerprint";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { changeId, keysFor, push } from "@/tests/helpers/sync";

/**
 * Issue 12, "Fewer bytes": the sync API's JSON answers are compressed as the
 * request's Accept-Encoding asks (lib/http/compression.ts), through the real
 * route handlers; request bodies may be gzip or br, held to the body limit
 * once decoded.
 */

let t: TestHub;
let keys: Record<string, string>;

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "webshop");
  // Enough orders that a pull of them is well over the compression threshold.
  await push(
    keys.webshop as string,
    "orders",
    Array.from({ length: 60 }, (_, i) => ({
      id: `zip-${String(i).padStart(3, "0")}`,
      baseVersion: null,
      data: { customer_id: `c-${i}`, total: 10 + i, status: "new", items: ["A", "B"], shipping_address: `${i} Main Street, Springfield` },
    })),
  );
});
afterAll(async () => {
  await t.close();
});
afterEach(() => {
  delete process.env.CONCORD_COMPRESS;
  resetEnvCache();
});

type Handler = (request: Request, args: { params: Promise<Record<string, string>> }) => Promise<Response>;

interface RawCall {
  method?: string;
  params?: Record<string, string>;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
  token?: string | null;
}

/** Calls a route handler as Next.js would and hands back the Response as the hub sends it (body not decoded). */
async function raw(handler: unknown, path: string, options: RawCall = {}): Promise<Response> {
  const headers = new Headers(options.headers);
  const token = options.token === undefined ? keys.webshop : options.token;
  if (token) headers.set("authorization", `Bearer ${token}`);
  const request = new Request(`http://localhost${path}`, { method: options.method ?? "GET", headers, body: options.body as BodyInit | undefined });
  return (handler as Handler)(request, { params: Promise.resolve(options.params ?? {}) });
}

/** The bytes as sent, their Content-Length checked, and the JSON they carry once decoded. */
async function decode(response: Response): Promise<{ coding: string | null; wire: number; json: unknown }> {
  const bytes = Buffer.from(await response.arrayBuffer());
  expect(response.headers.get("content-length")).toBe(String(bytes.byteLength));
  const coding = response.headers.get("content-encoding");
  const plain = coding === "gzip" ? zlib.gunzipSync(bytes) : coding === "br" ? zlib.brotliDecompressSync(bytes) : bytes;
  if (coding !== null && coding !== "gzip" && coding !== "br") throw new Error(`unexpected Content-Encoding ${coding}`);
  return { coding, wire: bytes.byteLength, json: JSON.parse(plain.toString("utf8")) };
}

const varies = (response: Response) => (response.headers.get("vary") ?? "").toLowerCase().split(/\s*,\s*/).includes("accept-encoding");

const manifest = (headers?: Record<string, string>) =>
  raw(manifestRoute.GET, "/api/v1/collections/orders/manifest", { params: { collection: "orders" }, headers });
const changes = (headers?: Record<string, string>) =>
  raw(changesRoute.GET, "/api/v1/collections/orders/changes", { params: { collection: "orders" }, headers });

describe("answers are compressed as Accept-Encoding asks", () => {
  it("gzip and br answers decode to the same JSON as the uncompressed one, with Vary and a correct Content-Length", async () => {
    const plain = await decode(await manifest());
    expect(plain.coding).toBeNull();
    expect(plain.wire).toBeGreaterThan(MIN_COMPRESS_BYTES);
    expect((plain.json as ManifestResponse).count).toBe(60);
    for (const coding of ["gzip", "br"]) {
      const response = await manifest({ "accept-encoding": coding });
      expect(response.status).toBe(200);
      expect(varies(response)).toBe(true);
      expect(response.headers.get("x-policy-version")).toBe("1");
      expect(response.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
      const got = await decode(response);
      expect(got.coding).toBe(coding);
      expect(got.json).toEqual(plain.json);
      expect(got.wire).toBeLessThan(plain.wire / 2);
    }
  });

  it("the delta feed, config and push results are compressed too", async () => {
    const plain = (await decode(await changes())).json as ChangesResponse;
    const zipped = await decode(await changes({ "accept-encoding": "br, gzip" }));
    expect(zipped.coding).toBe("br");
    // Checkpoints are sealed with a random IV: equal positions, different strings.
    expect({ ...(zipped.json as ChangesResponse), checkpoint: "" }).toEqual({ ...plain, checkpoint: "" });

    const pushed = await raw(pushRoute.POST, "/api/v1/collections/orders/push", {
      method: "POST",
      params: { collection: "orders" },
      headers: { "accept-encoding": "gzip", "content-type": "application/json" },
      body: JSON.stringify({
        changes: Array.from({ length: 20 }, (_, i) => ({ changeId: changeId("z"), id: `zip-push-${i}`, baseVersion: null, data: { customer_id: "c-1", total: i, status: "new" } })),
      }),
    });
    const result = await decode(pushed);
    expect(result.coding).toBe("gzip");
    expect((result.json as PushResponse).results.map((r) => r.status)).toEqual(Array(20).fill("applied"));

    // A small answer is sent as it is, but still says it varies.
    const config = await raw(configRoute.GET, "/api/v1/config", { headers: { "accept-encoding": "br, gzip" } });
    const body = await decode(config);
    if (body.wire < MIN_COMPRESS_BYTES) expect(body.coding).toBeNull();
    else expect(body.coding).toBe("br");
    expect(varies(config)).toBe(true);
  });

  it("honours q-values, `*` and identity", async () => {
    const cases: [string | undefined, string | null][] = [
      [undefined, null], // no Accept-Encoding: as it is
      ["", null],
      ["identity", null],
      ["gzip, deflate", "gzip"], // Node's fetch default
      ["gzip, deflate, br", "br"], // ties: the hub's order, brotli first
      ["br;q=0.5, gzip", "gzip"],
      ["br;q=0.2, gzip;q=0.1", "br"],
      ["gzip;q=0, br;q=0", null],
      ["*", "br"],
      ["*;q=0.5, br;q=0", "gzip"],
      ["identity;q=1, gzip;q=0.5", null], // the client likes identity better
      ["compress, deflate", null], // nothing the hub speaks
      ["GZIP", "gzip"],
      ["x-gzip", "gzip"],
      ["br;q=2, gzip", "gzip"], // a malformed q-value drops its entry
    ];
    for (const [header, expected] of cases) {
      const response = await manifest(header === undefined ? undefined : { "accept-encoding": header });
      expect(response.headers.get("content-encoding"), `Accept-Encoding: ${header}`).toBe(expected);
      expect(varies(response), `Accept-Encoding: ${header}`).toBe(true);
      expect(((await decode(response)).json as ManifestResponse).count).toBeGreaterThanOrEqual(60);
    }
  });

  it("small answers are not compressed unless the client refuses identity", async () => {
    const empty = (headers: Record<string, string>) => raw(changesRoute.GET, "/api/v1/collections/products/changes", { params: { collection: "products" }, headers });
    const small = await empty({ "accept-encoding": "br, gzip" });
    const body = await decode(small);
    expect(body.wire).toBeLessThan(MIN_COMPRESS_BYTES);
    expect(body.coding).toBeNull();
    expect(varies(small)).toBe(true);
    expect((body.json as ChangesResponse).changes).toEqual([]);

    const refused = await decode(await empty({ "accept-encoding": "gzip, identity;q=0" }));
    expect(refused.coding).toBe("gzip");
    expect((refused.json as ChangesResponse).changes).toEqual([]);
    const starRefused = await decode(await empty({ "accept-encoding": "br, *;q=0" }));
    expect(starRefused.coding).toBe("br");
  });

  it("error answers use the same negotiation: a small 401 goes uncompressed with Vary", async () => {
    const response = await raw(changesRoute.GET, "/api/v1/collections/orders/changes", { params: { collection: "orders" }, token: null, headers: { "accept-encoding": "br" } });
    expect(response.status).toBe(401);
    expect(varies(response)).toBe(true);
    const body = await decode(response);
    expect(body.coding).toBeNull();
    expect(body.json).toMatchObject({ error: { code: "unauthenticated" } });
  });

  it("every adapter compresses: health (public) gets Vary too", async () => {
    const response = await (healthRoute.GET as unknown as (r: Request) => Promise<Response>)(new Request("http://localhost/api/health", { headers: { "accept-encoding": "br, gzip" } }));
    expect(response.status).toBe(200);
    expect(varies(response)).toBe(true);
    expect((await decode(response)).json).toMatchObject({ status: "ok" });
  });

  it("the event stream is never compressed", async () => {
    const abort = new AbortController();
    const headers = new Headers({ authorization: `Bearer ${keys.webshop}`, "accept-encoding": "br, gzip", accept: "text/event-stream" });
    const response = await (eventsRoute.GET as unknown as Handler)(new Request("http://localhost/api/v1/events", { headers, signal: abort.signal }), { params: Promise.resolve({}) });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toMatch(/^text\/event-stream/);
    expect(response.headers.get("content-encoding")).toBeNull();
    expect(response.headers.get("content-length")).toBeNull();
    abort.abort();
    await response.body?.cancel().catch(() => undefined);
  });

  it("tells clients which request codings it reads (Accept-Encoding on the answer, RFC 7694)", async () => {
    const response = await manifest({ "accept-encoding": "gzip" });
    expect(response.headers.get("accept-encoding")).toMatch(/^br, (zstd, )?gzip$/);
  });

  it("CONCORD_COMPRESS=0 turns compression off", async () => {
    process.env.CONCORD_COMPRESS = "0";
    resetEnvCache();
    const response = await manifest({ "accept-encoding": "br, gzip" });
    expect(response.headers.get("content-encoding")).toBeNull();
    expect(((await response.json()) as ManifestResponse).count).toBeGreaterThanOrEqual(60);
  });
});

// ---------------------------------------------------------------------------
// Request bodies

const order = (id: string) => ({ changeId: changeId("rq"), id, baseVersion: null, data: { customer_id: "c-9", total: 99, status: "new", note: "x".repeat(300) } });

function pushBody(body: Uint8Array | string, contentEncoding?: string) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (contentEncoding !== undefined) headers["content-encoding"] = contentEncoding;
  return raw(pushRoute.POST, "/api/v1/collections/orders/push", { method: "POST", params: { collection: "orders" }, headers, body });
}

describe("compressed request bodies", () => {
  it("a gzip or br push body is decoded and applied", async () => {
    const encoders: [string, (b: Buffer) => Buffer][] = [
      ["gzip", (b) => zlib.gzipSync(b)],
      ["x-gzip", (b) => zlib.gzipSync(b)],
      ["br", (b) => zlib.brotliCompressSync(b)],
      ["identity", (b) => b],
    ];
    for (const [coding, encode] of encoders) {
      const ids = [0, 1, 2, 3, 4].map((i) => `rq-${coding}-${i}`);
      const text = JSON.stringify({ changes: ids.map(order) });
      const response = await pushBody(encode(Buffer.from(text)), coding);
      const body = await decode(response);
      expect(response.status, JSON.stringify(body.json)).toBe(200);
      expect((body.json as PushResponse).results.map((r) => [r.id, r.status])).toEqual(ids.map((id) => [id, "applied"]));
    }
  });

  it("an unknown or stacked Content-Encoding is 415 unsupported_encoding, in the error envelope, naming what the hub reads; nothing written", async () => {
    const before = await fingerprint(t.hub.db);
    const text = JSON.stringify({ changes: [order("rq-415")] });
    for (const coding of ["compress", "deflate", "zstd-nope", "gzip, br", "gzip, gzip"]) {
      const response = await pushBody(coding.startsWith("gzip") ? zlib.gzipSync(zlib.gzipSync(text)) : text, coding);
      expect(response.status, coding).toBe(415);
      expect(response.headers.get("accept-encoding")).toMatch(/^br, (zstd, )?gzip$/);
      const body = (await decode(response)).json as { error: { code: string; message: string; requestId: string } };
      expect(body.error.code).toBe("unsupported_encoding");
      expect(body.error.message).toMatch(/Content-Encoding .* is not one the hub reads: send the body uncompressed, or compressed once with br or/);
      expect(body.error.requestId).toBe(response.headers.get("x-request-id"));
    }
    expect(await fingerprint(t.hub.db)).toEqual(before);
  });

  it("a body that is not what its Content-Encoding says is 400, not 5xx; nothing written", async () => {
    const before = await fingerprint(t.hub.db);
    const text = JSON.stringify({ changes: [order("rq-400")] });
    const cases: [string, Uint8Array | string][] = [
      ["gzip", text], // not compressed at all
      ["br", zlib.gzipSync(text)], // the wrong coding
      ["gzip", zlib.gzipSync(text).subarray(0, 20)], // cut short
      ["gzip", new Uint8Array(0)],
    ];
    for (const [coding, body] of cases) {
      const response = await pushBody(body, coding);
      const json = (await decode(response)).json as { error: { code: string; message: string } };
      expect(response.status, `${coding}: ${json.error.message}`).toBe(400);
      expect(json.error.code).toBe("invalid_request");
      expect(json.error.message).toContain(`not valid ${coding}`);
    }
    // Valid gzip of text that is not UTF-8.
    const notUtf8 = await pushBody(zlib.gzipSync(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), "gzip");
    expect(notUtf8.status).toBe(400);
    expect(((await decode(notUtf8)).json as { error: { message: string } }).error.message).toMatch(/not valid UTF-8 once gzip-decoded/);
    expect(await fingerprint(t.hub.db)).toEqual(before);
  });

  it("a small compressed push body that inflates beyond the 32 MiB limit is 413, and nothing is written", async () => {
    const before = await fingerprint(t.hub.db);
    // Valid JSON all the way: one real change, then whitespace past the limit.
    const text = `{"changes":[${JSON.stringify(order("rq-bomb"))}${" ".repeat(MAX_PUSH_BODY_BYTES)}]}`;
    for (const [coding, bomb] of [
      ["gzip", zlib.gzipSync(text, { level: 9 })],
      ["br", zlib.brotliCompressSync(text)],
    ] as const) {
      expect(bomb.byteLength).toBeLessThan(100 * 1024);
      const response = await pushBody(bomb, coding);
      const json = (await decode(response)).json as { error: { code: string; message: string } };
      expect(response.status, json.error.message).toBe(413);
      expect(json.error.code).toBe("payload_too_large");
      expect(json.error.message).toBe(
        `The request body, ${coding}-decoded, is larger than the limit of 32 MiB (the limit holds for the decoded body); send fewer or smaller changes per request. Nothing was changed.`,
      );
    }
    expect(await fingerprint(t.hub.db)).toEqual(before);
  });

  it("bundles: a gzip upload is applied, one that inflates beyond 64 MiB is 413 with nothing written", async () => {
    const bundle = await sealBundle(
      {
        format: FORMAT,
        bundleId: randomUUID(),
        system: "webshop",
        createdAt: new Date().toISOString(),
        policyVersion: 1,
        checkpoints: {},
        changes: { orders: [order("rq-bundle")] },
      },
      sha256Hex,
    );
    const upload = (body: Uint8Array, coding: string) =>
      raw(bundlesRoute.POST, "/api/v1/bundles", { method: "POST", headers: { "content-encoding": coding, "accept-encoding": "br" }, body });
    const applied = await upload(zlib.gzipSync(JSON.stringify(bundle)), "gzip");
    const answer = await decode(applied);
    expect(applied.status, JSON.stringify(answer.json)).toBe(200);
    expect(answer.json).toMatchObject({ format: "concord-bundle-response/1", results: { orders: [{ id: "rq-bundle", status: "applied" }] } });

    const before = await fingerprint(t.hub.db);
    const huge = `${JSON.stringify({ ...bundle, bundleId: randomUUID() }).slice(0, -1)},"pad":"${"x".repeat(MAX_BUNDLE_BYTES)}"}`;
    const refused = await upload(zlib.gzipSync(huge, { level: 9 }), "gzip");
    expect(refused.status).toBe(413);
    expect(((await decode(refused)).json as { error: { message: string } }).error.message).toMatch(/gzip-decoded, is larger than the limit of 64 MiB/);
    expect(await fingerprint(t.hub.db)).toEqual(before);
  });
});

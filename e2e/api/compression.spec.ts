import http from "node:http";
import zlib from "node:zlib";
import { expect, test } from "@playwright/test";
import { E2E_ADMIN_TOKEN } from "../support/env";

/**
 * Compression through the production server (`next start`), over raw HTTP, as
 * the bytes travel: Next.js drops Content-Encoding and Content-Length from
 * route handlers' answers, so this checks that the hub's answers still carry
 * them (lib/http/compression.ts, installEncodingHeaders), that a compressed
 * push body is read, and that the event stream stays uncompressed.
 */

interface Raw {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request over node:http: the answer's head and body exactly as sent (nothing decoded). */
function raw(baseURL: string, method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(path, baseURL), { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

function decoded(res: Raw): unknown {
  const coding = res.headers["content-encoding"];
  const bytes = coding === "br" ? zlib.brotliDecompressSync(res.body) : coding === "gzip" ? zlib.gunzipSync(res.body) : res.body;
  return JSON.parse(bytes.toString("utf8"));
}

test("the hub's answers are compressed on the wire, with Content-Encoding, Content-Length and Vary", async ({ request, baseURL }) => {
  const base = baseURL as string;
  const issued = await request.post("/api/admin/systems/webshop/keys", { headers: { authorization: `Bearer ${E2E_ADMIN_TOKEN}` } });
  expect(issued.status()).toBe(201);
  const key = ((await issued.json()) as { key: string }).key;
  const auth = { authorization: `Bearer ${key}` };

  // A push sent gzip-compressed, answered with brotli.
  const run = `${Date.now()}`;
  const changes = Array.from({ length: 40 }, (_, i) => ({
    changeId: `e2e-zip-${run}-${i}`,
    id: `e2e-zip-${run}-${i}`,
    baseVersion: null,
    data: { customer_id: `c-${i}`, total: 10 + i, status: "new", items: ["A", "B"], shipping_address: `${i} Main Street, Springfield` },
  }));
  const pushed = await raw(base, "POST", "/api/v1/collections/orders/push", { ...auth, "content-type": "application/json", "content-encoding": "gzip", "accept-encoding": "br" }, zlib.gzipSync(JSON.stringify({ changes })));
  expect(pushed.status, pushed.body.toString("latin1").slice(0, 200)).toBe(200);
  expect(pushed.headers["content-encoding"]).toBe("br");
  expect(pushed.headers["content-length"]).toBe(String(pushed.body.byteLength));
  expect(pushed.headers["transfer-encoding"]).toBeUndefined();
  expect(pushed.headers.vary).toBe("Accept-Encoding");
  expect(pushed.headers["accept-encoding"]).toMatch(/^br, (zstd, )?gzip$/);
  expect(pushed.headers["x-concord-content-encoding"]).toBeUndefined();
  expect(pushed.headers["x-concord-content-length"]).toBeUndefined();
  expect((decoded(pushed) as { results: { status: string }[] }).results.map((r) => r.status)).toEqual(Array(40).fill("applied"));

  // The delta feed with gzip; the same with no Accept-Encoding is larger and plain.
  const zipped = await raw(base, "GET", "/api/v1/collections/orders/changes?limit=10000", { ...auth, "accept-encoding": "gzip" });
  expect(zipped.status).toBe(200);
  expect(zipped.headers["content-encoding"]).toBe("gzip");
  expect(zipped.headers["content-length"]).toBe(String(zipped.body.byteLength));
  const plain = await raw(base, "GET", "/api/v1/collections/orders/changes?limit=10000", auth);
  expect(plain.headers["content-encoding"]).toBeUndefined();
  expect(plain.headers["content-length"]).toBe(String(plain.body.byteLength));
  expect(plain.headers.vary).toBe("Accept-Encoding");
  expect(zipped.body.byteLength).toBeLessThan(plain.body.byteLength / 2);
  const feed = (body: unknown) => (body as { changes: { id: string }[] }).changes.map((c) => c.id);
  expect(feed(decoded(zipped))).toEqual(feed(decoded(plain)));
  expect(feed(decoded(zipped))).toEqual(expect.arrayContaining(changes.map((c) => c.id)));

  // A request body in a coding the hub does not read: 415 in the error envelope.
  const refused = await raw(base, "POST", "/api/v1/collections/orders/push", { ...auth, "content-type": "application/json", "content-encoding": "deflate" }, zlib.deflateSync("{}"));
  expect(refused.status).toBe(415);
  expect(refused.headers["accept-encoding"]).toMatch(/^br, (zstd, )?gzip$/);
  expect(decoded(refused)).toMatchObject({ error: { code: "unsupported_encoding" } });
});

test("the event stream is not compressed", async ({ baseURL, request }) => {
  const issued = await request.post("/api/admin/systems/crm/keys", { headers: { authorization: `Bearer ${E2E_ADMIN_TOKEN}` } });
  const key = ((await issued.json()) as { key: string }).key;
  const headers = await new Promise<http.IncomingHttpHeaders>((resolve, reject) => {
    const req = http.get(new URL("/api/v1/events", baseURL), { headers: { authorization: `Bearer ${key}`, accept: "text/event-stream", "accept-encoding": "br, gzip" } }, (res) => {
      resolve(res.headers);
      req.destroy();
    });
    req.on("error", (error: NodeJS.ErrnoException) => (error.code === "ECONNRESET" ? undefined : reject(error)));
  });
  expect(headers["content-type"]).toMatch(/^text\/event-stream/);
  expect(headers["content-encoding"]).toBeUndefined();
});

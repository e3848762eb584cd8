import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MemoryStore, SyncClient } from "@/lib/client";
import { hubAnswer } from "@/tests/helpers/inprocess-fetch";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { keysFor } from "@/tests/helpers/sync";

/**
 * The SDK over real HTTP with Node's own fetch: a node:http server hands each
 * request to the real route handlers and sends their answer byte for byte, so
 * undici does the decoding a client meets in production. The SDK asks for
 * `br, gzip`, gets brotli, and gzips its pushes once the hub said it reads
 * them; against a hub that refuses compressed bodies it sends them again
 * uncompressed.
 */

interface Seen {
  method: string;
  path: string;
  acceptEncoding: string | undefined;
  requestEncoding: string | undefined;
  status: number;
  responseEncoding: string | null;
  /** Bytes of the body as sent. */
  wire: number;
}

let t: TestHub;
let keys: Record<string, string>;
let server: http.Server;
let base: string;
const seen: Seen[] = [];
/** Answer like a hub that does not read compressed bodies (an older instance behind the same address). */
let refuseCompressed = false;

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "webshop", "warehouse");
  server = http.createServer((req, res) => {
    void (async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of req) chunks.push(chunk as Buffer);
      const body = Buffer.concat(chunks);
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) if (typeof value === "string") headers.set(name, value);
      const request = new Request(`http://hub${req.url ?? "/"}`, { method: req.method, headers, body: body.byteLength > 0 ? body : undefined });
      const response =
        refuseCompressed && req.headers["content-encoding"]
          ? Response.json({ error: { code: "invalid_request", message: "The request body is not valid UTF-8." } }, { status: 400 })
          : await hubAnswer(request);
      const bytes = Buffer.from(await response.arrayBuffer());
      seen.push({
        method: req.method ?? "",
        path: new URL(request.url).pathname,
        acceptEncoding: req.headers["accept-encoding"],
        requestEncoding: req.headers["content-encoding"],
        status: response.status,
        responseEncoding: response.headers.get("content-encoding"),
        wire: bytes.byteLength,
      });
      res.writeHead(response.status, Object.fromEntries(response.headers));
      res.end(bytes);
    })().catch((error: unknown) => {
      res.writeHead(500).end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await t.close();
});

const order = (i: number) => ({ customer_id: `c-${i}`, total: 10 + i, status: "new", items: ["A", "B"], shipping_address: `${i} Main Street, Springfield` });
const client = (system: string) => new SyncClient({ baseUrl: base, apiKey: keys[system] as string, store: new MemoryStore() });

describe("the SDK asks for compressed answers and compresses its pushes", () => {
  it("answers come as brotli and Node's fetch decodes them; pushes go gzip-compressed once the hub said it reads gzip", async () => {
    seen.length = 0;
    const writer = client("webshop");
    await writer.init();
    for (let i = 0; i < 40; i++) await writer.put("orders", `sdkz-${i}`, order(i));
    expect(await writer.sync()).toMatchObject({ pushed: 40 });

    const config = seen.find((s) => s.path === "/api/v1/config");
    expect(config).toMatchObject({ acceptEncoding: "br, gzip", requestEncoding: undefined, status: 200 });
    const pushes = seen.filter((s) => s.path === "/api/v1/collections/orders/push");
    expect(pushes.length).toBeGreaterThan(0);
    for (const p of pushes) expect(p).toMatchObject({ acceptEncoding: "br, gzip", requestEncoding: "gzip", status: 200, responseEncoding: "br" });

    // A fresh client pulls all 40 through a brotli-compressed feed.
    seen.length = 0;
    const reader = client("webshop");
    expect(await reader.sync()).toMatchObject({ pulled: expect.any(Number) as number });
    for (let i = 0; i < 40; i++) expect(await reader.get("orders", `sdkz-${i}`)).toEqual(order(i));
    const pulls = seen.filter((s) => s.path === "/api/v1/collections/orders/changes");
    expect(pulls.some((p) => p.responseEncoding === "br")).toBe(true);
    for (const p of seen) expect(p.acceptEncoding).toBe("br, gzip");
    // A no-op sync: every answer small and uncompressed.
    seen.length = 0;
    expect(await reader.sync()).toMatchObject({ pushed: 0, pulled: 0 });
    for (const p of seen) expect(p.responseEncoding, p.path).toBeNull();
  });

  it("a compressed push refused with 400 (an older hub) is sent again uncompressed, and nothing is quarantined", async () => {
    const writer = client("webshop");
    await writer.init();
    for (let i = 100; i < 120; i++) await writer.put("orders", `sdkz-${i}`, order(i));
    seen.length = 0;
    refuseCompressed = true;
    try {
      expect(await writer.sync()).toMatchObject({ pushed: 20, quarantined: 0 });
    } finally {
      refuseCompressed = false;
    }
    const pushes = seen.filter((s) => s.path === "/api/v1/collections/orders/push").map((s) => [s.requestEncoding, s.status]);
    expect(pushes).toEqual([
      ["gzip", 400],
      [undefined, 200],
    ]);
    const reader = client("webshop");
    await reader.sync();
    expect(await reader.get("orders", "sdkz-119")).toEqual(order(119));
  });
});

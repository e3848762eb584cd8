import http from "node:http";
import type { AddressInfo } from "node:net";
import zlib from "node:zlib";
import { describe, expect, it } from "vitest";
import {
  chooseCoding,
  ENCODING_PASS_HEADER,
  installEncodingHeaders,
  LENGTH_PASS_HEADER,
  MIN_COMPRESS_BYTES,
  parseAcceptEncoding,
  requestCoding,
} from "@/lib/http/compression";
import { ServiceError } from "@/lib/errors";

const BIG = MIN_COMPRESS_BYTES;

describe("parseAcceptEncoding", () => {
  it("reads codings and q-values, case-insensitively, x-gzip as gzip", () => {
    expect(parseAcceptEncoding(" GZip ; q=0.5 , br,identity;q=0 , x-gzip;q=0.7")).toEqual(
      new Map([
        ["gzip", 0.7],
        ["br", 1],
        ["identity", 0],
      ]),
    );
  });

  it("drops an entry whose q-value is malformed", () => {
    expect([...parseAcceptEncoding("br;q=2, gzip;q=abc, zstd;q=0.1234, deflate;q=1.000").keys()]).toEqual(["deflate"]);
  });
});

describe("chooseCoding", () => {
  it("sends bodies as they are without Accept-Encoding, or under the threshold", () => {
    expect(chooseCoding(null, 10 * BIG)).toBeNull();
    expect(chooseCoding("  ", 10 * BIG)).toBeNull();
    expect(chooseCoding("br, gzip", BIG - 1)).toBeNull();
    expect(chooseCoding("br, gzip", BIG)).toBe("br");
  });

  it("follows the client's q-values, then the hub's order", () => {
    expect(chooseCoding("gzip, br", BIG)).toBe("br");
    expect(chooseCoding("gzip, br;q=0.9", BIG)).toBe("gzip");
    expect(chooseCoding("br;q=0.1", BIG)).toBe("br");
    expect(chooseCoding("*;q=0.3, gzip;q=0.4", BIG)).toBe("gzip");
    expect(chooseCoding("deflate, compress", BIG)).toBeNull();
  });

  it("identity: preferred when named with a higher q, forced off by identity;q=0 or *;q=0", () => {
    expect(chooseCoding("identity, gzip;q=0.5", BIG)).toBeNull();
    expect(chooseCoding("identity;q=0.5, gzip", BIG)).toBe("gzip");
    expect(chooseCoding("gzip, identity;q=0", 10)).toBe("gzip");
    expect(chooseCoding("br, *;q=0", 10)).toBe("br");
    expect(chooseCoding("identity, *;q=0", 10 * BIG)).toBeNull();
    // Nothing acceptable at all: the body as it is rather than a 406.
    expect(chooseCoding("identity;q=0, deflate", BIG)).toBeNull();
  });
});

describe("requestCoding", () => {
  it("none, identity, one known coding", () => {
    expect(requestCoding(null)).toBeNull();
    expect(requestCoding("identity")).toBeNull();
    expect(requestCoding(" GZIP ")).toBe("gzip");
    expect(requestCoding("x-gzip")).toBe("gzip");
    expect(requestCoding("br")).toBe("br");
  });

  it("refuses other and stacked codings with unsupported_encoding", () => {
    for (const header of ["deflate", "compress", "gzip, br", "br, br", "zstd-x"]) {
      const error = (() => {
        try {
          requestCoding(header);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(error, header).toBeInstanceOf(ServiceError);
      expect((error as ServiceError).code).toBe("unsupported_encoding");
    }
  });
});

describe("installEncodingHeaders", () => {
  /** A server that writes its head as Next.js's sendResponse does (appendHeader, then the body); the raw head as a client reads it. */
  async function head(write: (res: http.ServerResponse) => void): Promise<{ headers: http.IncomingHttpHeaders; body: Buffer }> {
    installEncodingHeaders();
    installEncodingHeaders(); // twice does nothing
    const server = http.createServer((_req, res) => write(res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      return await new Promise((resolve, reject) => {
        http
          .get(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`, (res) => {
            const chunks: Buffer[] = [];
            res.on("data", (c: Buffer) => chunks.push(c));
            res.on("end", () => resolve({ headers: res.headers, body: Buffer.concat(chunks) }));
          })
          .on("error", reject);
      });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  }

  it("sends the pass-through headers as Content-Encoding and Content-Length and drops Next's page-router Vary", async () => {
    const body = zlib.gzipSync('{"ok":true}');
    const got = await head((res) => {
      res.appendHeader("vary", "rsc, next-router-state-tree, next-router-prefetch, next-router-segment-prefetch");
      res.appendHeader("vary", "Accept-Encoding");
      res.appendHeader("content-type", "application/json");
      res.appendHeader(ENCODING_PASS_HEADER, "gzip");
      res.appendHeader(LENGTH_PASS_HEADER, String(body.byteLength));
      res.write(body);
      res.end();
    });
    expect(got.headers["content-encoding"]).toBe("gzip");
    expect(got.headers["content-length"]).toBe(String(body.byteLength));
    expect(got.headers["transfer-encoding"]).toBeUndefined();
    expect(got.headers.vary).toBe("Accept-Encoding");
    expect(got.headers[ENCODING_PASS_HEADER]).toBeUndefined();
    expect(got.headers[LENGTH_PASS_HEADER]).toBeUndefined();
    expect(zlib.gunzipSync(got.body).toString()).toBe('{"ok":true}');
  });

  it("leaves other answers alone", async () => {
    const got = await head((res) => {
      res.appendHeader("vary", "rsc, next-router-state-tree");
      res.end("<html></html>");
    });
    expect(got.headers.vary).toBe("rsc, next-router-state-tree");
    expect(got.headers["content-encoding"]).toBeUndefined();
  });
});

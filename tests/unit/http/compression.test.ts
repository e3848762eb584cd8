import { describe, expect, it } from "vitest";
import { chooseCoding, MIN_COMPRESS_BYTES, parseAcceptEncoding, requestCoding } from "@/lib/http/compression";
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

import { describe, expect, it } from "vitest";
import { expectedOrigin, originProblem, type OriginSettings } from "@/lib/http/origin";

const direct: OriginSettings = { trustProxy: 0 };

function req(url: string, headers: Record<string, string>) {
  return { url, headers: new Headers(headers) };
}

describe("the console's origin", () => {
  it("is the request's scheme and Host header without a proxy; a client's X-Forwarded-* headers change nothing", () => {
    expect(expectedOrigin(req("http://127.0.0.1:3000/x", { host: "hub.example:3000" }), direct)).toBe("http://hub.example:3000");
    expect(expectedOrigin(req("http://127.0.0.1:3000/x", {}), direct)).toBe("http://127.0.0.1:3000");
    expect(
      expectedOrigin(req("http://127.0.0.1:3000/x", { host: "hub.example", "x-forwarded-host": "evil.example", "x-forwarded-proto": "https" }), direct),
    ).toBe("http://hub.example");
  });

  it("follows the trusted proxy's X-Forwarded-Proto and X-Forwarded-Host", () => {
    const behind = { trustProxy: 1 };
    expect(expectedOrigin(req("http://127.0.0.1:3000/x", { host: "127.0.0.1:3000", "x-forwarded-proto": "https", "x-forwarded-host": "concord.example" }), behind)).toBe(
      "https://concord.example",
    );
    expect(expectedOrigin(req("http://127.0.0.1:3000/x", { host: "concord.example", "x-forwarded-proto": "https" }), behind)).toBe("https://concord.example");
  });

  it("is CONCORD_PUBLIC_URL when set, whatever the request says", () => {
    const configured = { trustProxy: 0, publicUrl: "https://concord.example" };
    expect(expectedOrigin(req("http://127.0.0.1:3000/x", { host: "127.0.0.1:3000" }), configured)).toBe("https://concord.example");
  });
});

describe("a write's Origin", () => {
  const at = (origin: string | null) => req("http://127.0.0.1:3000/policies", origin === null ? { host: "hub.example:3000" } : { host: "hub.example:3000", origin });

  it("passes when scheme, host and port equal the console's", () => {
    expect(originProblem(at("http://hub.example:3000"), direct)).toBeNull();
    expect(originProblem(at("http://HUB.example:3000"), direct)).toBeNull();
  });

  it.each([
    [null, /no Origin header/],
    ["", /no Origin header/],
    ["null", /opaque origin/],
    ["not a url", /opaque origin/],
    ["https://hub.example:3000", /came from https:\/\/hub\.example:3000, but the console is at http:\/\/hub\.example:3000/],
    ["http://hub.example", /came from http:\/\/hub\.example, but/],
    ["http://hub.example:3001", /came from http:\/\/hub\.example:3001/],
    ["http://evil.example:3000", /came from http:\/\/evil\.example:3000/],
    ["http://hub.example.evil.example:3000", /came from/],
  ])("refuses Origin %j", (origin, message) => {
    expect(originProblem(at(origin), direct)).toMatch(message);
  });

  it("does not take the Referer instead", () => {
    expect(originProblem(req("http://127.0.0.1:3000/", { host: "hub.example:3000", referer: "http://hub.example:3000/policies" }), direct)).toMatch(/no Origin/);
  });
});

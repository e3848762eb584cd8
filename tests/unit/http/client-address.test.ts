import { createServer, request as httpRequest } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, expect, it } from "vitest";
import { addressBucket, clientAddress, normaliseAddress, PEER_ADDRESS_HEADER, UNKNOWN_ADDRESS } from "@/lib/http/client-address";
import { installPeerAddressHeader } from "@/lib/http/peer-address";
import { readEnv } from "@/lib/env";

const headers = (h: Record<string, string>) => new Headers(h);

describe("the client's address", () => {
  it("is unknown without a trusted proxy until the server stamps the peer address, and X-Forwarded-For is never believed then", () => {
    const forged = headers({ "x-forwarded-for": "10.9.8.7", [PEER_ADDRESS_HEADER]: "6.6.6.6" });
    expect(clientAddress(forged, 0)).toBe(UNKNOWN_ADDRESS);
    installPeerAddressHeader();
    expect(clientAddress(headers({ "x-forwarded-for": "10.9.8.7", [PEER_ADDRESS_HEADER]: "::ffff:127.0.0.1" }), 0)).toBe("127.0.0.1");
  });

  it("behind n trusted proxies is the n-th X-Forwarded-For entry from the right; what the client wrote stays ignored", () => {
    const xff = headers({ "x-forwarded-for": "1.1.1.1, 203.0.113.9, 10.0.0.2" });
    expect(clientAddress(xff, 1)).toBe("10.0.0.2");
    expect(clientAddress(xff, 2)).toBe("203.0.113.9");
    expect(clientAddress(xff, 3)).toBe("1.1.1.1");
    expect(clientAddress(headers({ "x-forwarded-for": "203.0.113.9" }), 2)).toBe("203.0.113.9");
    expect(clientAddress(headers({}), 1)).toBe(UNKNOWN_ADDRESS);
    expect(clientAddress(headers({ "x-forwarded-for": "1.1.1.1, not-an-address" }), 1)).toBe(UNKNOWN_ADDRESS);
  });

  it.each([
    ["203.0.113.9", "203.0.113.9"],
    ["::ffff:203.0.113.9", "203.0.113.9"],
    ["203.0.113.9:4431", "203.0.113.9"],
    ["[2001:db8::1]:443", "2001:db8::1"],
    ["2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"],
    ["", UNKNOWN_ADDRESS],
    ["evil.example", UNKNOWN_ADDRESS],
    ["<script>", UNKNOWN_ADDRESS],
  ])("normalises %j to %j", (input, expected) => {
    expect(normaliseAddress(input)).toBe(expected);
  });

  it("draws IPv4 budgets per address and IPv6 budgets per /64", () => {
    expect(addressBucket("203.0.113.9")).toBe("203.0.113.9");
    expect(addressBucket("2001:db8:1:2:aaaa::1")).toBe("2001:db8:1:2::/64");
    expect(addressBucket("2001:db8:1:2:bbbb::2")).toBe("2001:db8:1:2::/64");
    expect(addressBucket(UNKNOWN_ADDRESS)).toBe(UNKNOWN_ADDRESS);
  });

  it("is stamped from the socket by a real HTTP server, replacing a forged header", async () => {
    installPeerAddressHeader();
    const server = createServer((req, res) => res.end(String(req.headers[PEER_ADDRESS_HEADER])));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpRequest({ host: "127.0.0.1", port, path: "/", headers: { [PEER_ADDRESS_HEADER]: "6.6.6.6" } }, (res) => {
          let text = "";
          res.on("data", (chunk: Buffer) => (text += chunk.toString()));
          res.on("end", () => resolve(text));
        });
        req.on("error", reject);
        req.end();
      });
      expect(body).toBe("127.0.0.1");
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

describe("proxy settings in the environment", () => {
  it("accept a number of proxies and a public origin, and refuse anything else with a sentence", () => {
    expect(readEnv({}).CONCORD_TRUST_PROXY).toBe(0);
    expect(readEnv({ CONCORD_TRUST_PROXY: "2" }).CONCORD_TRUST_PROXY).toBe(2);
    expect(() => readEnv({ CONCORD_TRUST_PROXY: "yes" })).toThrow(/CONCORD_TRUST_PROXY must be the number of reverse proxies/);
    expect(readEnv({ CONCORD_PUBLIC_URL: "https://Concord.Example.com/" }).CONCORD_PUBLIC_URL).toBe("https://concord.example.com");
    expect(readEnv({ CONCORD_PUBLIC_URL: "http://localhost:8080" }).CONCORD_PUBLIC_URL).toBe("http://localhost:8080");
    expect(readEnv({ CONCORD_PUBLIC_URL: "" }).CONCORD_PUBLIC_URL).toBeUndefined();
    for (const bad of ["concord.example.com", "ftp://concord.example.com", "https://concord.example.com/console", "https://u:p@concord.example.com"]) {
      expect(() => readEnv({ CONCORD_PUBLIC_URL: bad }), bad).toThrow(/CONCORD_PUBLIC_URL must be an http:\/\/ or https:\/\/ address/);
    }
  });
});

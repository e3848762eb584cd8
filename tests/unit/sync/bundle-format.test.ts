import { createHash, webcrypto } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  bundleChecksum,
  decodeBundle,
  FORMAT,
  RESPONSE_FORMAT,
  sealBundle,
  type UnsealedRequestBundle,
  type UnsealedResponseBundle,
} from "@/lib/sync/bundle-format";

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");
/** What a browser passes: WebCrypto, asynchronous. */
const webSha256 = async (text: string) =>
  Buffer.from(await webcrypto.subtle.digest("SHA-256", new TextEncoder().encode(text))).toString("hex");

const request: UnsealedRequestBundle = {
  format: FORMAT,
  bundleId: "6f1c1f55-3a8e-4a1e-9d55-2a4f1c7b9e01",
  system: "crm",
  createdAt: "2026-11-25T10:00:00.000Z",
  policyVersion: 3,
  checkpoints: { customers: "s12", products: null },
  changes: {
    customers: [
      { changeId: "a1", id: "c1", baseVersion: null, data: { name: "Ann", region: "north" } },
      { changeId: "a2", id: "c2", baseVersion: 4, patch: { phone: "555" } },
      { changeId: "a3", id: "c3", baseVersion: 2, deleted: true },
    ],
  },
};

const response: UnsealedResponseBundle = {
  format: RESPONSE_FORMAT,
  bundleId: request.bundleId,
  system: "crm",
  policyVersion: 4,
  createdAt: "2026-11-25T11:00:00.000Z",
  results: { customers: [{ changeId: "a1", id: "c1", status: "applied", version: 1, digest: "d".repeat(64) }] },
  changes: {
    customers: [
      { id: "c1", version: 1, digest: "d".repeat(64), data: { name: "Ann" } },
      { id: "c4", version: 2, digest: "e".repeat(64), deleted: true },
      { id: "c5", removed: true },
    ],
  },
  checkpoints: { customers: "s40" },
};

/** The same JSON value with every object's keys in reverse order. */
function reversed(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(reversed);
  if (typeof value !== "object" || value === null) return value;
  return Object.fromEntries(Object.entries(value).reverse().map(([k, v]) => [k, reversed(v)]));
}

describe("bundleChecksum", () => {
  it("is the SHA-256 of the canonical JSON without the checksum field", async () => {
    const checksum = await bundleChecksum(request, sha256);
    expect(checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(await bundleChecksum({ ...request, checksum: "whatever" }, sha256)).toBe(checksum);
  });

  it("does not depend on key order or whitespace, nor on the hash implementation", async () => {
    const checksum = await bundleChecksum(request, sha256);
    expect(await bundleChecksum(reversed(request) as object, sha256)).toBe(checksum);
    expect(await bundleChecksum(JSON.parse(JSON.stringify(request, null, 2)) as object, sha256)).toBe(checksum);
    expect(await bundleChecksum(request, webSha256)).toBe(checksum);
  });

  it("changes when any content changes", async () => {
    const checksum = await bundleChecksum(request, sha256);
    const variants: object[] = [
      { ...request, system: "billing" },
      { ...request, checkpoints: { customers: "s13", products: null } },
      { ...request, changes: { customers: request.changes.customers?.slice(0, 2) ?? [] } },
      { ...request, changes: { customers: [{ changeId: "a1", id: "c1", baseVersion: null, data: { name: "Anne", region: "north" } }] } },
      { ...request, policyVersion: null },
    ];
    for (const v of variants) expect(await bundleChecksum(v, sha256)).not.toBe(checksum);
  });

  it("is pinned: a file written today must verify with any later version", async () => {
    const fixed = { format: FORMAT, b: [1, 1.5, "x"], a: { z: null, y: true } };
    // canonical: {"a":{"y":true,"z":null},"b":[1,1.5,"x"],"format":"concord-bundle/1"}
    expect(await bundleChecksum(fixed, sha256)).toBe(sha256('{"a":{"y":true,"z":null},"b":[1,1.5,"x"],"format":"concord-bundle/1"}'));
  });
});

describe("decodeBundle", () => {
  it("reads a sealed request and response bundle", async () => {
    const sealedRequest = await sealBundle(request, sha256);
    const r = await decodeBundle(JSON.stringify(sealedRequest), "request", sha256);
    expect(r).toEqual({ ok: true, bundle: sealedRequest });
    const sealedResponse = await sealBundle(response, webSha256);
    const s = await decodeBundle(JSON.stringify(reversed(sealedResponse), null, 2), "response", webSha256);
    expect(s).toEqual({ ok: true, bundle: sealedResponse });
  });

  it("tells a tampered, truncated, mistaken or malformed file apart", async () => {
    const text = JSON.stringify(await sealBundle(request, sha256));
    const tampered = text.replace('"Ann"', '"Anx"');
    expect(tampered).not.toBe(text);
    const cases: [string, string, RegExp][] = [
      [tampered, "checksum_mismatch", /checksum does not match: the file was changed or cut short; export it again/],
      [text.slice(0, text.length - 20), "not_json", /cut short; export it again/],
      ["[]", "wrong_format", /not a Concord bundle/],
      [JSON.stringify({ ...JSON.parse(text), format: "other/1" }), "wrong_format", /"format" must be "concord-bundle\/1"/],
      [JSON.stringify(await sealBundle(response, sha256)), "wrong_format", /response bundle/],
      [JSON.stringify({ ...JSON.parse(text), checksum: "ABC" }), "invalid", /checksum/],
    ];
    for (const [input, code, message] of cases) {
      const r = await decodeBundle(input, "request", sha256);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.problem.code).toBe(code);
        expect(r.problem.message).toMatch(message);
      }
    }
  });

  it("refuses unknown fields and bad values with their path, even with a correct checksum", async () => {
    const cases: [object, string][] = [
      [{ ...request, extra: 1 }, ""],
      [{ ...request, changes: { customers: [{ changeId: "a1", id: "c1", baseVersion: null, data: {}, colour: "red" }] } }, "changes.customers.0"],
      [{ ...request, changes: { customers: [{ changeId: "a1", id: "c1", baseVersion: null }] } }, "changes.customers.0"],
      [{ ...request, changes: { Customers: [] } }, "changes.Customers"],
      [{ ...request, bundleId: "not-a-uuid" }, "bundleId"],
      [{ ...request, checkpoints: { customers: 12 } }, "checkpoints.customers"],
    ];
    for (const [bundle, path] of cases) {
      const r = await decodeBundle(JSON.stringify(await sealBundle(bundle, sha256)), "request", sha256);
      expect(r.ok, JSON.stringify(bundle)).toBe(false);
      if (!r.ok && r.problem.code === "invalid") expect(r.problem.issues[0]?.path).toBe(path);
      else expect.fail(`expected an invalid bundle for ${path}`);
    }
  });

  it("is read strictly: a key given twice, a number a double cannot hold, U+0000 are refused with their path", async () => {
    const sealed = JSON.stringify(await sealBundle(request, sha256));
    const cases: [string, string, RegExp][] = [
      [sealed.replace('"region":"north"', '"region":"north","region":"south"'), "changes.customers.0.data.region", /key given twice/],
      [sealed.replace('"phone":"555"', '"phone":9007199254740993'), "changes.customers.1.patch.phone", /cannot hold exactly/],
      [sealed.replace('"phone":"555"', '"phone":"5\\u00005"'), "changes.customers.1.patch.phone", /U\+0000/],
    ];
    for (const [text, path, message] of cases) {
      expect(text).not.toBe(sealed);
      const r = await decodeBundle(text, "request", sha256);
      if (r.ok || r.problem.code !== "invalid") expect.fail(`expected an invalid bundle at ${path}`);
      else {
        expect(r.problem.issues[0]?.path).toBe(path);
        expect(r.problem.message).toMatch(message);
      }
    }
  });

  it("reads a response bundle's large integers as the hub writes them (2^60 as 1152921504606847000)", async () => {
    const withBig = { ...response, changes: { customers: [{ id: "c1", version: 1, digest: "d".repeat(64), data: { n: 2 ** 60 } }] } };
    const text = JSON.stringify(await sealBundle(withBig, sha256));
    expect(text).toContain("1152921504606847000");
    const r = await decodeBundle(text, "response", sha256);
    expect(r.ok && r.bundle.changes.customers?.[0]).toMatchObject({ data: { n: 2 ** 60 } });
  });

  it("takes response results and entries with fields a later server may add", async () => {
    const extended = {
      ...response,
      results: { customers: [{ changeId: "a1", id: "c1", status: "applied", version: 1, digest: "d".repeat(64), hint: "new" }] },
    };
    const r = await decodeBundle(JSON.stringify(await sealBundle(extended, sha256)), "response", sha256);
    expect(r.ok).toBe(true);
  });
});

describe("module boundary", () => {
  const importsOf = (file: string) => [...readFileSync(file, "utf8").matchAll(/^import [^;]*? from "([^"]+)";$/gm)].map((m) => m[1]).sort();

  it("imports only zod, ./protocol, ./canonical and the JSON checks (the SDK runs it in browsers)", () => {
    expect(importsOf("lib/sync/bundle-format.ts")).toEqual(["./canonical", "./json-safety", "./protocol", "./strict-json", "zod"]);
    expect(importsOf("lib/sync/strict-json.ts")).toEqual(["./json-safety"]);
    expect(importsOf("lib/sync/json-safety.ts")).toEqual([]);
  });
});

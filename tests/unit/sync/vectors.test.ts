import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import mergePatch from "json-merge-patch";
import { describe, expect, it } from "vitest";
import { canonicalJson } from "@/lib/sync/canonical";
import { digestOf } from "@/lib/sync/digest";

/** Published vectors (tests/fixtures/README.md says where they come from). */
const JCS = "tests/fixtures/jcs";
const names = readdirSync(path.join(JCS, "input")).filter((f) => f.endsWith(".json"));

describe("RFC 8785 canonical JSON: the published vectors", () => {
  it("has vectors to check", () => {
    expect(names.length).toBeGreaterThanOrEqual(6);
  });

  it.each(names)("%s canonicalises to exactly the expected bytes", (name) => {
    const input: unknown = JSON.parse(readFileSync(path.join(JCS, "input", name), "utf8"));
    const expected = readFileSync(path.join(JCS, "output", name), "utf8").replace(/\n$/, "");
    expect(canonicalJson(input)).toBe(expected);
  });

  // Records are JSON objects; the vectors whose top level is an array are for canonicalisation alone.
  const objects = names.filter((name) => {
    const input: unknown = JSON.parse(readFileSync(path.join(JCS, "input", name), "utf8"));
    return typeof input === "object" && input !== null && !Array.isArray(input);
  });

  it.each(objects)("%s: a record's digest is SHA-256 of those bytes", (name) => {
    const input = JSON.parse(readFileSync(path.join(JCS, "input", name), "utf8")) as Record<string, never>;
    const expected = readFileSync(path.join(JCS, "output", name), "utf8").replace(/\n$/, "");
    expect(digestOf(input)).toBe(createHash("sha256").update(expected, "utf8").digest("hex"));
  });
});

interface MergeCase {
  original: unknown;
  patch: unknown;
  result: unknown;
}

const cases = JSON.parse(readFileSync("tests/fixtures/merge-patch/rfc7396-appendix-a.json", "utf8")) as MergeCase[];

describe("RFC 7396 merge patch: Appendix A", () => {
  it("has the fifteen examples", () => {
    expect(cases).toHaveLength(15);
  });

  it.each(cases.map((c, i) => [i + 1, c] as const))("example %i", (_n, { original, patch, result }) => {
    expect(mergePatch.apply(structuredClone(original), patch)).toEqual(result);
  });
});

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { joinPath, MAX_JSON_DEPTH, unstorableReason } from "@/lib/sync/json-safety";
import { MAX_DOCUMENT_DEPTH, parseStrictJson, type StrictJsonProblem } from "@/lib/sync/strict-json";

function problemOf(text: string): StrictJsonProblem {
  const result = parseStrictJson(text);
  if (result.ok) throw new Error(`expected ${text.slice(0, 80)} to be refused`);
  return result.problem;
}


const nested = (depth: number, leaf = "1") => '{"a":'.repeat(depth - 1) + `{"b":${leaf}}` + "}".repeat(depth - 1);

describe("parseStrictJson", () => {
  it("reads what JSON.parse reads when nothing is lost", () => {
    for (const text of ['{"a": 1, "b": [1, 2, {"c": null}]}', "[]", '"x"', "0", "-0", "1.5e300", "0.1", "-12.5e-3", '{"a": {"a": {"a": 1}}}']) {
      expect(parseStrictJson(text)).toEqual({ ok: true, value: JSON.parse(text) });
    }
  });

  it("accepts large integers a double holds exactly (2^53, 2^60, 2^70 written in full)", () => {
    for (const literal of ["9007199254740992", "1152921504606846976", "-1152921504606846976", "1180591620717411303424"]) {
      expect(parseStrictJson(`{"n": ${literal}}`)).toEqual({ ok: true, value: { n: Number(literal) } });
    }
  });

  it.each([
    ["1e400", /beyond the range .* Infinity/],
    ["-1e400", /-Infinity/],
    ["1e-400", /too small .* become 0/],
    ["-0.0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001", /too small/],
    ["9007199254740993", /cannot hold exactly \(it would become 9007199254740992\)/],
    ["-9007199254740993", /-9007199254740992/],
  ])("refuses the number %s with its path", (literal, message) => {
    const problem = problemOf(`{"changes": [{"data": {"address": {"zip": ${literal}}}}]}`);
    expect(problem).toMatchObject({ code: "number", path: "changes.0.data.address.zip" });
    expect(problem.message).toMatch(message);
  });

  it("accepts an integer as JavaScript writes it, or exactly, and nothing that would lose digits", () => {
    expect(parseStrictJson(JSON.stringify({ n: 2 ** 60, m: -(2 ** 70) }))).toEqual({ ok: true, value: { n: 2 ** 60, m: -(2 ** 70) } });
    expect(parseStrictJson('{"n": 1152921504606846976}')).toEqual({ ok: true, value: { n: 2 ** 60 } });
    expect(parseStrictJson('{"n": 9007199254740993}')).toMatchObject({ ok: false, problem: { code: "number", path: "n" } });
    expect(parseStrictJson('{"n": 12345678901234567890}')).toMatchObject({ ok: false, problem: { code: "number", path: "n" } });
    expect(parseStrictJson('{"n": 1e400}')).toMatchObject({ ok: false, problem: { code: "number" } });
  });

  it("treats literals with a fraction or an exponent as floating point (rounded, not refused)", () => {
    expect(parseStrictJson("[1e23, 9007199254740993.0, 1.5e300, 0.12345678901234567890123]")).toMatchObject({ ok: true });
  });

  it("refuses a key given twice, also when spelled with escapes, naming the object", () => {
    expect(problemOf('{"a": 1, "b": {"x": 1, "x": 1}}')).toMatchObject({ code: "duplicate_key", path: "b.x" });
    expect(problemOf('{"a": 1, "\\u0061": 2}')).toMatchObject({ code: "duplicate_key", path: "a" });
    expect(problemOf('[{"ok": 1}, {"__proto__": 1, "__proto__": 2}]')).toMatchObject({ code: "duplicate_key", path: "1.__proto__" });
    expect(problemOf('{"a": 1, "b": {"x": 1, "x": 1}}').message).toMatch(/key given twice/);
  });

  it("does not mistake strings that look like keys or numbers for them", () => {
    expect(parseStrictJson('{"a": "\\"a\\": 1e400", "b": ["a", "a"], "c": "9007199254740993"}')).toMatchObject({ ok: true });
  });

  it("bounds nesting: MAX_DOCUMENT_DEPTH levels pass, one more is refused with its path, 100,000 never overflow", () => {
    expect(parseStrictJson(nested(MAX_DOCUMENT_DEPTH))).toMatchObject({ ok: true });
    const deep = problemOf(nested(MAX_DOCUMENT_DEPTH + 1));
    expect(deep.code).toBe("too_deep");
    expect(deep.path).toBe(Array(MAX_DOCUMENT_DEPTH).fill("a").join("."));
    expect(problemOf("[".repeat(100_000) + "]".repeat(100_000)).code).toBe("too_deep");
    expect(problemOf(nested(100_000)).code).toBe("too_deep");
  });

  it("names the first problem in document order", () => {
    expect(problemOf('{"a": [1, 2, 1e400], "b": {"x": 1, "x": 2}}')).toMatchObject({ code: "number", path: "a.2" });
    expect(problemOf('{"b": {"x": 1, "x": 2}, "a": [1, 2, 1e400]}')).toMatchObject({ code: "duplicate_key", path: "b.x" });
  });

  it("says why text is not JSON, printable", () => {
    expect(problemOf('{"a": 1')).toMatchObject({ code: "not_json", path: "" });
    expect(problemOf("\u0000").message).not.toMatch(/\u0000/);
  });

  it("agrees with JSON.parse on every JSON text JSON.stringify writes, and the answer never changes", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (value) => {
        const text = JSON.stringify(value);
        const first = parseStrictJson(text);
        expect(parseStrictJson(text)).toEqual(first);
        expect(first).toEqual({ ok: true, value: JSON.parse(text) });
      }),
      { numRuns: 500 },
    );
  });

  it("refuses every text with a key repeated in an object", () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), { minKeys: 1, maxKeys: 5 }),
        fc.nat(),
        fc.jsonValue({ maxDepth: 2 }),
        (object, pick, again) => {
          const keys = Object.keys(object);
          const key = keys[pick % keys.length] as string;
          const text = `{"wrap": [${JSON.stringify(object).slice(0, -1)}, ${JSON.stringify(key)}: ${JSON.stringify(again)}}]}`;
          expect(problemOf(text)).toMatchObject({ code: "duplicate_key", path: joinPath(["wrap", 0, key]) });
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("unstorableReason", () => {
  it("accepts ordinary records, paired surrogates and deep-but-allowed nesting", () => {
    expect(unstorableReason({ name: "Ann 😀", tags: ["a"], n: 1.5, ok: true, none: null }, "data")).toBeNull();
    expect(unstorableReason(JSON.parse(nested(MAX_JSON_DEPTH)), "data")).toBeNull();
  });

  it.each([
    [{ address: { city: "Os\u0000lo" } }, /^data\.address\.city contains U\+0000/],
    [{ address: { ["ci\u0000ty"]: "Oslo" } }, /^The key data\.address\["ci\\u0000ty"\] contains U\+0000/],
    [{ name: "a\ud800b" }, /^data\.name contains a lone surrogate \(U\+D800/],
    [{ name: "\udc00" }, /lone surrogate \(U\+DC00/],
    [{ ["\ud83d"]: 1 }, /^The key data\["\\ud83d"\] contains a lone surrogate/],
    [{ list: [1, Infinity] }, /^data\.list\.1 is Infinity/],
    [{ n: NaN }, /^data\.n is NaN/],
    [{ u: undefined }, /^data\.u is undefined/],
    [{ b: 10n }, /^data\.b is a bigint/],
  ])("names the place: %o", (value, message) => {
    expect(unstorableReason(value, "data")).toMatch(message);
  });

  it("refuses nesting deeper than MAX_JSON_DEPTH, and cycles, without overflowing the stack", () => {
    expect(unstorableReason(JSON.parse(nested(MAX_JSON_DEPTH + 1)), "data")).toMatch(
      new RegExp(`^data(\\.a){${MAX_JSON_DEPTH}} nests deeper than ${MAX_JSON_DEPTH} levels`),
    );
    expect(unstorableReason(JSON.parse("[".repeat(100_000) + "]".repeat(100_000)), "data")).toMatch(/nests deeper/);
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    expect(unstorableReason(cycle, "data")).toMatch(/nests deeper/);
  });

  it("names the first problem in document order, the same every time", () => {
    const value = { a: { b: ["x", "y\u0000"] }, c: "\ud800" };
    expect(unstorableReason(value, "data")).toMatch(/^data\.a\.b\.1 contains U\+0000/);
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), (v) => {
        expect(unstorableReason(v, "data")).toBe(unstorableReason(structuredClone(v), "data"));
      }),
      { numRuns: 200 },
    );
  });

  it("finds a NUL or a lone surrogate wherever it is put in generated data", () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 4 }), fc.constantFrom("\u0000", "\ud800", "\udfff"), fc.boolean(), (v, bad, asKey) => {
        const record = asKey ? { wrap: v, [`k${bad}`]: 1 } : { wrap: v, bad: `x${bad}` };
        expect(unstorableReason(record, "data")).not.toBeNull();
      }),
      { numRuns: 200 },
    );
  });
});

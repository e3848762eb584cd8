import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hasInvisible, showInvisible, splitInvisible } from "@/lib/console/invisible-chars";

describe("invisible and direction-changing characters", () => {
  it("finds the right-to-left override that makes gnp.exe look like exe.png", () => {
    expect(splitInvisible("\u202Egnp.exe")).toEqual([
      { kind: "invisible", char: "\u202E", code: "U+202E", name: "RIGHT-TO-LEFT OVERRIDE" },
      { kind: "text", text: "gnp.exe" },
    ]);
    expect(showInvisible("\u202Egnp.exe")).toBe("⟨U+202E⟩gnp.exe");
  });

  it.each([
    ["\u202A", "LEFT-TO-RIGHT EMBEDDING"],
    ["\u202B", "RIGHT-TO-LEFT EMBEDDING"],
    ["\u202C", "POP DIRECTIONAL FORMATTING"],
    ["\u202D", "LEFT-TO-RIGHT OVERRIDE"],
    ["\u2066", "LEFT-TO-RIGHT ISOLATE"],
    ["\u2067", "RIGHT-TO-LEFT ISOLATE"],
    ["\u2068", "FIRST STRONG ISOLATE"],
    ["\u2069", "POP DIRECTIONAL ISOLATE"],
    ["\u200E", "LEFT-TO-RIGHT MARK"],
    ["\u200F", "RIGHT-TO-LEFT MARK"],
    ["\u061C", "ARABIC LETTER MARK"],
    ["\u200B", "ZERO WIDTH SPACE"],
    ["\u200C", "ZERO WIDTH NON-JOINER"],
    ["\u200D", "ZERO WIDTH JOINER"],
    ["\uFEFF", "ZERO WIDTH NO-BREAK SPACE (BYTE ORDER MARK)"],
    ["\u2060", "WORD JOINER"],
    ["\u00AD", "SOFT HYPHEN"],
    ["\u2028", "LINE SEPARATOR"],
    ["\u3164", "HANGUL FILLER"],
    ["\u0000", "CONTROL CHARACTER"],
    ["\u001B", "CONTROL CHARACTER"],
    ["\u0085", "CONTROL CHARACTER"],
    ["\n", "CONTROL CHARACTER"],
    ["\u{E0041}", "TAG CHARACTER"],
    ["\u{E0001}", "TAG CHARACTER"],
    ["\uFFF9", "FORMAT CHARACTER"],
  ])("marks %j as %s", (char, name) => {
    const parts = splitInvisible(`a${char}b`);
    expect(parts).toHaveLength(3);
    expect(parts[1]).toMatchObject({ kind: "invisible", char, name });
    expect(hasInvisible(`a${char}b`)).toBe(true);
  });

  it("leaves ordinary text alone, including other scripts, accents and emoji", () => {
    for (const text of ["order-17", "Ærøskøbing", "مرحبا", "שלום", "日本語", "e\u0301", "🙂", "a b\u00A0c"]) {
      expect(splitInvisible(text)).toEqual([{ kind: "text", text }]);
      expect(hasInvisible(text)).toBe(false);
      expect(showInvisible(text)).toBe(text);
    }
  });

  it("keeps the layout of formatted JSON when asked, and marks what JSON does not escape", () => {
    const formatted = JSON.stringify({ name: "\u202Eevil", note: "line\nbreak" }, null, 2);
    const parts = splitInvisible(formatted, { layout: true });
    expect(parts.filter((p) => p.kind === "invisible").map((p) => p.kind === "invisible" && p.code)).toEqual(["U+202E"]);
    expect(splitInvisible("a\tb\nc", { layout: true })).toEqual([{ kind: "text", text: "a\tb\nc" }]);
  });

  it("gives the text back when the parts are joined, whatever the text", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme-composite", maxLength: 40 }), fc.string({ unit: "binary", maxLength: 40 }), (a, b) => {
        for (const text of [a, b, `${a}\u202E${b}`]) {
          const joined = splitInvisible(text)
            .map((p) => (p.kind === "text" ? p.text : p.char))
            .join("");
          expect(joined).toBe(text);
          // No two plain runs in a row, and no empty ones.
          const parts = splitInvisible(text);
          parts.forEach((p, i) => {
            if (p.kind === "text") {
              expect(p.text).not.toBe("");
              expect(parts[i + 1]?.kind).not.toBe("text");
            }
          });
        }
      }),
    );
  });
});

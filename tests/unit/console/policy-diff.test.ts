import { describe, expect, it } from "vitest";
import { diffBlocks, diffPolicies } from "@/lib/console/policy-diff";

describe("diffPolicies", () => {
  it("marks kept, removed and added lines with their line numbers in each text", () => {
    const d = diffPolicies("a\nb\nc\n", "a\nB\nc\nd\n");
    expect(d.lines).toEqual([
      { kind: "same", oldLine: 1, newLine: 1, text: "a" },
      { kind: "removed", oldLine: 2, newLine: null, text: "b" },
      { kind: "added", oldLine: null, newLine: 2, text: "B" },
      { kind: "same", oldLine: 3, newLine: 3, text: "c" },
      { kind: "added", oldLine: null, newLine: 4, text: "d" },
    ]);
    expect([d.added, d.removed, d.changed]).toEqual([2, 1, true]);
  });

  it("reports no change for identical texts, and a change for a final newline only", () => {
    const same = diffPolicies("x: 1\n", "x: 1\n");
    expect(same.changed).toBe(false);
    expect(same.lines.every((l) => l.kind === "same")).toBe(true);
    expect(diffPolicies("x: 1", "x: 1\n").changed).toBe(true);
  });

  it("treats an empty old text as everything added (the first version)", () => {
    const d = diffPolicies("", "version: 1\nsystems: {}\n");
    expect(d.lines.map((l) => [l.kind, l.newLine])).toEqual([
      ["added", 1],
      ["added", 2],
    ]);
  });

  it("ignores CR of CRLF line ends in the displayed text", () => {
    expect(diffPolicies("", "a\r\nb\r\n").lines.map((l) => l.text)).toEqual(["a", "b"]);
  });
});

describe("diffBlocks", () => {
  it("keeps three lines of context around changes and folds the rest", () => {
    const old = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`).join("\n") + "\n";
    const next = old.replace("line 10\n", "line ten\n");
    const blocks = diffBlocks(diffPolicies(old, next));
    expect(blocks.map((b) => (b.kind === "fold" ? `fold ${b.count}` : `lines ${b.lines.length}`))).toEqual([
      "fold 6",
      "lines 8",
      "fold 7",
    ]);
    const shown = blocks.flatMap((b) => (b.kind === "lines" ? b.lines : []));
    expect(shown[0]?.oldLine).toBe(7);
    expect(shown.filter((l) => l.kind !== "same").map((l) => l.text)).toEqual(["line 10", "line ten"]);
  });

  it("shows no blocks of lines when nothing changed", () => {
    expect(diffBlocks(diffPolicies("a\nb\n", "a\nb\n"))).toEqual([{ kind: "fold", count: 2 }]);
  });
});

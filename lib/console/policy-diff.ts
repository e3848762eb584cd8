import { diffLines } from "diff";

/**
 * A line diff of two policy texts for display: every line of either text once,
 * marked as kept, removed (old text only) or added (new text only), with its
 * line numbers. Pure, so the editor computes it in the browser as you type and
 * the versions page on the server.
 */
export type DiffLineKind = "same" | "removed" | "added";

export interface DiffLine {
  kind: DiffLineKind;
  /** 1-based line in the old text (absent for added lines). */
  oldLine: number | null;
  /** 1-based line in the new text (absent for removed lines). */
  newLine: number | null;
  text: string;
}

/** A run of lines to show, or a count of unchanged lines folded away between runs. */
export type DiffBlock = { kind: "lines"; lines: DiffLine[] } | { kind: "fold"; count: number };

export interface PolicyDiff {
  lines: DiffLine[];
  added: number;
  removed: number;
  /** Whether the texts differ at all (also for a difference in the final newline only). */
  changed: boolean;
}

/** A text's lines, without a trailing empty line and without `\r`. */
export function splitLines(value: string): string[] {
  const lines = value.split("\n");
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines.map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
}

export function diffPolicies(oldText: string, newText: string): PolicyDiff {
  const lines: DiffLine[] = [];
  let oldLine = 1;
  let newLine = 1;
  let added = 0;
  let removed = 0;
  for (const change of diffLines(oldText, newText)) {
    for (const text of splitLines(change.value)) {
      if (change.added) {
        lines.push({ kind: "added", oldLine: null, newLine: newLine++, text });
        added++;
      } else if (change.removed) {
        lines.push({ kind: "removed", oldLine: oldLine++, newLine: null, text });
        removed++;
      } else {
        lines.push({ kind: "same", oldLine: oldLine++, newLine: newLine++, text });
      }
    }
  }
  return { lines, added, removed, changed: oldText !== newText };
}

/**
 * The diff as blocks to render: changed lines with `context` unchanged lines
 * around them; longer unchanged stretches fold into a count.
 */
export function diffBlocks(diff: PolicyDiff, context = 3): DiffBlock[] {
  const { lines } = diff;
  const keep = new Array<boolean>(lines.length).fill(false);
  lines.forEach((line, i) => {
    if (line.kind === "same") return;
    for (let j = Math.max(0, i - context); j <= Math.min(lines.length - 1, i + context); j++) keep[j] = true;
  });
  const blocks: DiffBlock[] = [];
  let i = 0;
  while (i < lines.length) {
    const start = i;
    const kept = keep[i];
    while (i < lines.length && keep[i] === kept) i++;
    if (kept) blocks.push({ kind: "lines", lines: lines.slice(start, i) });
    else blocks.push({ kind: "fold", count: i - start });
  }
  return blocks;
}

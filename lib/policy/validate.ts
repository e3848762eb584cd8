import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node } from "yaml";
import type { z } from "zod";
import { fieldsReferenced, parseCondition, type ConditionAst } from "./condition";
import {
  durationSeconds,
  policyFileSchema,
  type FallbackStrategy,
  type PolicyFile,
  type RightInput,
  type Strategy,
} from "./document";
import { policyLimitIssues } from "./limits";

/** A problem in a policy file, at a 1-based line and column of the YAML. */
export interface PolicyIssue {
  line: number;
  column: number;
  message: string;
}

export interface Right {
  /** The condition, or null for every record. */
  where: ConditionAst | null;
  /** The condition as the operator wrote it (for display). */
  whereText: string | null;
  /** Field names, or "*" for every field. */
  fields: "*" | readonly string[];
}

export interface Rule {
  /** Position in the file's `rules` list (0-based) and its line, for messages. */
  index: number;
  line: number;
  /** A system name, `group:<name>`, or `*`. */
  who: string;
  collection: string;
  read: Right | null;
  write: Right | null;
  conflict: Strategy | null;
  fallback: FallbackStrategy | null;
}

export interface SyncSchedule {
  intervalSeconds: number;
  realtime: boolean;
}

/** A policy file that passed validation, normalised for compilation. */
export interface Policy {
  systems: Record<string, { name: string; priority: number }>;
  groups: Record<string, readonly string[]>;
  collections: Record<string, { conflict: Strategy; fallback: FallbackStrategy }>;
  rules: readonly Rule[];
  sync: { default: SyncSchedule; systems: Record<string, SyncSchedule> };
}

export type ValidationResult =
  | { ok: true; policy: Policy; warnings: PolicyIssue[] }
  | { ok: false; errors: PolicyIssue[]; warnings: PolicyIssue[] };

/** Policy files are small; a larger one is refused before it is parsed. */
export const MAX_POLICY_BYTES = 256 * 1024;
const UNSTORABLE_TEXT = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const DEFAULT_SYNC: SyncSchedule = { intervalSeconds: 60, realtime: true };
const DEFAULT_FALLBACK: FallbackStrategy = "manual";

type Path = readonly (string | number)[];

/**
 * Parses and validates a policy file. Every error names a line and column and
 * says what is wrong; nothing here throws on bad input.
 */
export function validatePolicy(source: string): ValidationResult {
  if (Buffer.byteLength(source, "utf8") > MAX_POLICY_BYTES) {
    return fail([{ line: 1, column: 1, message: `the policy file is larger than ${MAX_POLICY_BYTES / 1024} KiB` }]);
  }
  // YAML lets U+0000 and lone surrogates through in comments, but the stored text cannot hold them faithfully.
  const unstorable = UNSTORABLE_TEXT.exec(source);
  if (unstorable) {
    const before = source.slice(0, unstorable.index).split("\n");
    const what = unstorable[0] === "\u0000" ? "U+0000 (a NUL character)" : "a lone surrogate (not Unicode text)";
    return fail([{ line: before.length, column: (before.at(-1)?.length ?? 0) + 1, message: `the policy file contains ${what}; remove it` }]);
  }
  const lineCounter = new LineCounter();
  let doc: Document.Parsed;
  try {
    doc = parseDocument(source, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  } catch (error) {
    // Pathological nesting can exhaust the parser's stack; that is bad input, not a crash.
    return fail([{ line: 1, column: 1, message: `the file could not be parsed as YAML (${describe(error)})` }]);
  }
  const at = (offset: number): { line: number; column: number } => {
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };

  if (doc.errors.length > 0) {
    return fail(
      doc.errors.map((e) => ({ ...at(e.pos[0]), message: yamlMessage(e.code, e.message) })),
    );
  }

  let raw: unknown;
  try {
    // Aliases are legitimate YAML, but a few hundred of them is how "billion laughs" bombs start.
    raw = doc.toJS({ maxAliasCount: 50 });
  } catch (error) {
    return fail([{ line: 1, column: 1, message: `the file could not be read: ${describe(error)}` }]);
  }
  if (raw === null || raw === undefined) {
    return fail([{ line: 1, column: 1, message: "the policy file is empty" }]);
  }

  const positionOf: PositionOf = (path, inner) => {
    const offset = nodeOffset(doc, path);
    if (inner === undefined) return at(offset);
    // Point inside a condition when the scalar holds it verbatim (plain, or
    // quoted without escapes); otherwise at the scalar's start.
    const node = nodeAt(doc, path);
    const range = isScalar(node) ? node.range : undefined;
    if (range) {
      const text = source.slice(range[0], range[1]);
      if (text === inner.text) return at(range[0] + inner.offset);
      if (text.slice(1, -1) === inner.text) return at(range[0] + 1 + inner.offset);
    }
    return at(offset);
  };

  const parsed = policyFileSchema.safeParse(raw);
  if (!parsed.success) {
    return fail(
      parsed.error.issues.map((issue) => ({ ...positionOf(issuePath(issue)), message: zodMessage(issue, raw) })),
    );
  }
  // Size and complexity bounds (lib/policy/limits.ts), before the work that grows with them.
  const tooLarge = policyLimitIssues(parsed.data);
  if (tooLarge.length > 0) return fail(tooLarge.map((issue) => ({ ...positionOf(issue.path), message: issue.message })));
  return checkReferences(parsed.data, positionOf);
}

type PositionOf = (path: Path, inner?: { text: string; offset: number }) => { line: number; column: number };

function checkReferences(file: PolicyFile, positionOf: PositionOf): ValidationResult {
  const errors: PolicyIssue[] = [];
  const warnings: PolicyIssue[] = [];
  const error = (path: Path, message: string) => errors.push({ ...positionOf(path), message });
  const warn = (path: Path, message: string) => warnings.push({ ...positionOf(path), message });

  const systemNames = new Set(Object.keys(file.systems));
  const groupNames = new Set(Object.keys(file.groups));
  const collectionNames = new Set(Object.keys(file.collections));

  for (const [group, members] of Object.entries(file.groups)) {
    if (systemNames.has(group)) error(["groups", group], `group "${group}" has the same name as a system; rename one of them`);
    members.forEach((member, i) => {
      if (!systemNames.has(member)) error(["groups", group, i], `unknown system "${member}" in group "${group}"${suggest(member, systemNames)}`);
    });
    if (members.length === 0) warn(["groups", group], `group "${group}" has no members`);
  }

  const collections: Policy["collections"] = {};
  for (const [name, c] of Object.entries(file.collections)) {
    if (c.fallback && c.conflict !== "field-merge") {
      warn(["collections", name, "fallback"], `fallback is only used with field-merge; collection "${name}" uses ${c.conflict}`);
    }
    collections[name] = { conflict: c.conflict, fallback: c.fallback ?? DEFAULT_FALLBACK };
  }

  const rules: Rule[] = [];
  file.rules.forEach((r, index) => {
    const base: Path = ["rules", index];
    const who = r.who;
    if (who !== "*") {
      if (who.startsWith("group:")) {
        const g = who.slice("group:".length);
        if (!groupNames.has(g)) error([...base, "who"], `unknown group "${g}" in who${suggest(g, groupNames)}`);
      } else if (!systemNames.has(who)) {
        error([...base, "who"], `unknown system "${who}" in who${suggest(who, systemNames)}; use a system, group:<name>, or "*"`);
      }
    }
    if (!collectionNames.has(r.collection)) {
      error([...base, "collection"], `unknown collection "${r.collection}"${suggest(r.collection, collectionNames)}`);
    }
    const read = normaliseRight(r.read, [...base, "read"], errors, positionOf);
    const write = normaliseRight(r.write, [...base, "write"], errors, positionOf);
    if (!r.read && !r.write) warn(base, "this rule grants nothing: give it read and/or write");
    if (r.fallback && (r.conflict ?? file.collections[r.collection]?.conflict) !== "field-merge") {
      warn([...base, "fallback"], "fallback is only used with field-merge");
    }
    rules.push({
      index,
      line: positionOf(base).line,
      who,
      collection: r.collection,
      read,
      write,
      conflict: r.conflict ?? null,
      fallback: r.fallback ?? null,
    });
  });

  // One strategy and one fallback per system and collection: two rules that
  // both reach a system must not assign it different ones, or the outcome
  // would depend on rule order.
  const membersOf = (who: string): string[] =>
    who === "*" ? [...systemNames] : who.startsWith("group:") ? [...(file.groups[who.slice(6)] ?? [])] : [who];
  for (const setting of ["conflict", "fallback"] as const) {
    const assigned = new Map<string, { value: string; index: number }>();
    for (const rule of rules) {
      const value = rule[setting];
      if (value === null) continue;
      for (const system of membersOf(rule.who)) {
        const key = `${system}\u0000${rule.collection}`;
        const prev = assigned.get(key);
        if (!prev) assigned.set(key, { value, index: rule.index });
        else if (prev.value !== value) {
          const what = setting === "conflict" ? "conflict strategy" : "fallback";
          error(
            ["rules", rule.index, setting],
            `system "${system}" gets ${what} ${value} here but ${prev.value} from rule ${prev.index + 1} (line ${rules[prev.index]?.line}) on collection "${rule.collection}"; give each system one ${what} per collection`,
          );
        }
      }
    }
  }

  const sync: Policy["sync"] = { default: DEFAULT_SYNC, systems: {} };
  for (const [key, s] of Object.entries(file.sync)) {
    if (key !== "default" && !systemNames.has(key)) {
      error(["sync", key], `unknown system "${key}" in sync; use "default" or a system name${suggest(key, systemNames)}`);
      continue;
    }
    const base = key === "default" ? DEFAULT_SYNC : sync.default;
    const schedule: SyncSchedule = {
      intervalSeconds: s.interval === undefined ? base.intervalSeconds : durationSeconds(s.interval),
      realtime: s.realtime ?? base.realtime,
    };
    if (key === "default") sync.default = schedule;
    else sync.systems[key] = schedule;
  }
  // A system-specific entry inherits from default whatever order the keys were written in.
  for (const [key, s] of Object.entries(file.sync)) {
    if (key === "default" || !systemNames.has(key)) continue;
    sync.systems[key] = {
      intervalSeconds: s.interval === undefined ? sync.default.intervalSeconds : durationSeconds(s.interval),
      realtime: s.realtime ?? sync.default.realtime,
    };
  }

  checkWriteConditions(file, rules, membersOf, error);

  for (const system of systemNames) {
    const reaches = rules.some((r) => (r.read || r.write) && membersOf(r.who).includes(system));
    if (!reaches) warn(["systems", system], `system "${system}" can reach no collection: no rule gives it read or write`);
  }

  if (errors.length > 0) return { ok: false, errors: sortIssues(errors), warnings: sortIssues(warnings) };
  const policy: Policy = {
    systems: Object.fromEntries(
      Object.entries(file.systems).map(([k, s]) => [k, { name: s.name ?? k, priority: s.priority }]),
    ),
    groups: file.groups,
    collections,
    rules,
    sync,
  };
  return { ok: true, policy, warnings: sortIssues(warnings) };
}

/**
 * A write condition may test only fields the system can read in every record
 * it can read in that collection (when it can read any). The hub answers a
 * refused write `forbidden`, so a condition over a field the system cannot
 * read would let it learn that field by trying writes: exactly what the
 * read rule hides (protocol.md, "Information flow"). A system with no read
 * right on the collection only creates records there, from data it sends, so
 * its write condition may test any field.
 */
function checkWriteConditions(
  file: PolicyFile,
  rules: readonly Rule[],
  membersOf: (who: string) => string[],
  error: (path: Path, message: string) => void,
): void {
  const reported = new Set<string>();
  for (const rule of rules) {
    const where = rule.write?.where;
    if (!where) continue;
    const tested = [...new Set(fieldsReferenced(where).map((path) => path.split(".")[0] as string))];
    for (const system of membersOf(rule.who)) {
      const reads = rules.filter((r) => r.read && r.collection === rule.collection && membersOf(r.who).includes(system));
      if (reads.length === 0) continue;
      const readable = readableEverywhere(reads.map((r) => (r.read as Right).fields));
      const hidden = readable === "*" ? [] : tested.filter((f) => !readable.has(f));
      if (hidden.length === 0 || reported.has(`${rule.index}`)) continue;
      reported.add(`${rule.index}`);
      const raw = file.rules[rule.index]?.write;
      const path: Path = typeof raw === "string" ? ["rules", rule.index, "write"] : ["rules", rule.index, "write", "where"];
      const names = hidden.map((f) => `"${f}"`).join(", ");
      error(
        path,
        `this write condition tests ${names}, which system "${system}" cannot read in every record of "${rule.collection}" it can read; a refused write would tell it what its read rule hides. Add ${names} to its read fields there, or test only fields it can read`,
      );
    }
  }
}

/** The fields readable in every record a set of read grants covers: the intersection of their field lists. */
function readableEverywhere(lists: readonly ("*" | readonly string[])[]): "*" | Set<string> {
  let common: Set<string> | "*" = "*";
  for (const fields of lists) {
    if (fields === "*") continue;
    common = common === "*" ? new Set(fields) : new Set(fields.filter((f) => (common as Set<string>).has(f)));
  }
  return common;
}

function normaliseRight(
  input: RightInput | undefined,
  path: Path,
  errors: PolicyIssue[],
  positionOf: PositionOf,
): Right | null {
  if (input === undefined) return null;
  const whereText = typeof input === "string" ? (input.trim() === "all" ? null : input) : (input.where ?? null);
  const wherePath = typeof input === "string" ? path : [...path, "where"];
  const fields = typeof input === "string" || !input.fields || input.fields.includes("*") ? "*" : [...new Set(input.fields)];
  if (whereText === null || whereText.trim() === "all") return { where: null, whereText: null, fields };
  const parsed = parseCondition(whereText);
  if (!parsed.ok) {
    errors.push({
      ...positionOf(wherePath, { text: whereText, offset: parsed.error.offset }),
      message: `condition "${excerpt(whereText)}" does not parse at character ${parsed.error.offset + 1}: ${parsed.error.message}`,
    });
    return null;
  }
  return { where: parsed.ast, whereText, fields };
}

// ---------------------------------------------------------------------------
// Positions

/** The node at `path` exactly, if there is one. */
function nodeAt(doc: Document.Parsed, path: Path): unknown {
  let node: unknown = doc.contents;
  for (const key of path) {
    if (isMap(node)) {
      node = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(key))?.value;
    } else if (isSeq(node) && typeof key === "number") {
      node = node.items[key];
    } else {
      return undefined;
    }
  }
  return node;
}

/** The source offset of the node at `path`, or of the deepest existing parent. */
function nodeOffset(doc: Document.Parsed, path: Path): number {
  let node: unknown = doc.contents;
  let offset = rangeStart(node) ?? 0;
  for (const key of path) {
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && String(item.key.value) === String(key));
      if (!pair) break;
      // Point at the value when there is one, else at the key.
      node = pair.value ?? pair.key;
      offset = rangeStart(node) ?? rangeStart(pair.key) ?? offset;
    } else if (isSeq(node) && typeof key === "number") {
      const item = node.items[key];
      if (item === undefined) break;
      node = item;
      offset = rangeStart(node) ?? offset;
    } else {
      break;
    }
  }
  return offset;
}

function rangeStart(node: unknown): number | undefined {
  if (node && typeof node === "object" && "range" in node) {
    const range = (node as Node).range;
    if (range) return range[0];
  }
  return undefined;
}

function issuePath(issue: z.core.$ZodIssue): Path {
  return issue.path.filter((p): p is string | number => typeof p === "string" || typeof p === "number");
}

// ---------------------------------------------------------------------------
// Messages

function zodMessage(issue: z.core.$ZodIssue, raw: unknown): string {
  const path = issuePath(issue);
  const where = describePath(path);
  if (issue.code === "unrecognized_keys") {
    return `${where}unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.map((k) => `"${k}"`).join(", ")}`;
  }
  if (issue.code === "invalid_type") {
    const value = valueAt(raw, path);
    if (value === undefined) return `${where}is required`;
    const expected = issue.expected === "object" ? "a map" : issue.expected === "array" ? "a list" : `a ${issue.expected}`;
    return `${where}must be ${expected}, not ${kindOf(value)}`;
  }
  return `${where}${issue.message}`;
}

function valueAt(raw: unknown, path: Path): unknown {
  let value = raw;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string | number, unknown>)[key];
  }
  return value;
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a map";
  if (typeof value === "string") return `the text ${JSON.stringify(value.length > 40 ? `${value.slice(0, 37)}...` : value)}`;
  return `${typeof value} ${String(value)}`;
}

function describePath(path: Path): string {
  if (path.length === 0) return "";
  const text = path.map((p) => (typeof p === "number" ? `[${p}]` : `.${p}`)).join("").replace(/^\./, "");
  return `${text}: `;
}

function yamlMessage(code: string, message: string): string {
  if (code === "DUPLICATE_KEY") return "duplicate key: each key may appear once in a map";
  // The yaml library's messages are already plain; drop its trailing source excerpt.
  return message.split("\n")[0] ?? message;
}

function suggest(input: string, known: Set<string>): string {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const name of known) {
    const d = editDistance(input, name);
    if (d < bestDistance) {
      bestDistance = d;
      best = name;
    }
  }
  return best !== undefined && bestDistance <= Math.max(1, Math.floor(input.length / 3)) ? ` (did you mean "${best}"?)` : "";
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] ?? 0;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j] ?? 0;
      row[j] = Math.min(current + 1, (row[j - 1] ?? 0) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = current;
    }
  }
  return row[b.length] ?? 0;
}

function excerpt(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

function describe(error: unknown): string {
  if (error instanceof RangeError) return "it is nested too deeply";
  return error instanceof Error ? error.message : String(error);
}

function sortIssues(issues: PolicyIssue[]): PolicyIssue[] {
  return issues.sort((a, b) => a.line - b.line || a.column - b.column);
}

function fail(errors: PolicyIssue[]): ValidationResult {
  return { ok: false, errors, warnings: [] };
}

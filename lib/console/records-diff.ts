import diff from "microdiff";
import type { JsonObject, JsonValue } from "../sync/protocol";

/**
 * Field-level differences between JSON records, for the console's version
 * diff and the three sides of a conflict. Pure: no database, no Next.js.
 *
 * A path is a list of object keys and array indexes (microdiff's form); it is
 * shown as `address.city`, `items[1]`, or `["odd key"]` for keys that are not
 * plain identifiers.
 */

export type PathSegment = string | number;
export type DiffKind = "added" | "removed" | "changed";

export interface FieldDiff {
  path: string;
  segments: PathSegment[];
  kind: DiffKind;
  /** The value on the left side (absent for `added`). */
  before?: JsonValue;
  /** The value on the right side (absent for `removed`). */
  after?: JsonValue;
}

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

/** `a.b[0]["odd key"]`: readable and unambiguous. */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = "";
  for (const s of segments) {
    if (typeof s === "number") out += `[${s}]`;
    else if (IDENT.test(s)) out += out === "" ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out === "" ? "(record)" : out;
}

const KIND = { CREATE: "added", REMOVE: "removed", CHANGE: "changed" } as const;

/**
 * The differences that turn `before` into `after`, in path order. A missing
 * side (a deleted record, no base) counts as an empty object, so every field
 * of the other side is added or removed.
 */
export function diffRecords(before: JsonObject | null | undefined, after: JsonObject | null | undefined): FieldDiff[] {
  const out: FieldDiff[] = diff(before ?? {}, after ?? {}).map((d) => {
    const entry: FieldDiff = { path: formatPath(d.path), segments: d.path, kind: KIND[d.type] };
    if (d.type !== "CREATE") entry.before = d.oldValue as JsonValue;
    if (d.type !== "REMOVE") entry.after = d.value as JsonValue;
    return entry;
  });
  return out.sort((a, b) => comparePaths(a.segments, b.segments));
}

function comparePaths(a: readonly PathSegment[], b: readonly PathSegment[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (x === y) continue;
    if (typeof x === "number" && typeof y === "number") return x - y;
    return String(x) < String(y) ? -1 : 1;
  }
  return a.length - b.length;
}

/** The value at `segments`, or undefined when a step is missing. */
export function valueAt(root: JsonValue | null | undefined, segments: readonly PathSegment[]): JsonValue | undefined {
  let node: JsonValue | undefined = root ?? undefined;
  for (const s of segments) {
    if (node === null || node === undefined || typeof node !== "object") return undefined;
    if (Array.isArray(node)) {
      if (typeof s !== "number") return undefined;
      node = node[s];
    } else {
      if (typeof s !== "string" || !Object.hasOwn(node, s)) return undefined;
      node = node[s];
    }
  }
  return node;
}

/** Whether one path is the other or lies inside it (a change to `a` touches `a.b`, and the reverse). */
function overlaps(a: readonly PathSegment[], b: readonly PathSegment[]): boolean {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return false;
  return true;
}

export interface ThreeWayRow {
  path: string;
  segments: PathSegment[];
  base?: JsonValue;
  server?: JsonValue;
  client?: JsonValue;
  /** The server's side changed this field since the base. */
  serverChanged: boolean;
  /** The client's side changed this field since the base. */
  clientChanged: boolean;
  /** Both sides changed it, to different values: the collision itself. */
  conflicting: boolean;
}

/**
 * A conflict's three sides compared field by field: every path where the
 * server or the client differs from the base, or from each other. With no
 * base (a creation over an existing record) every field differs from it.
 */
export function threeWayDiff(
  base: JsonObject | null | undefined,
  server: JsonObject | null | undefined,
  client: JsonObject | null | undefined,
): ThreeWayRow[] {
  const serverPaths = diffRecords(base, server).map((d) => d.segments);
  const clientPaths = diffRecords(base, client).map((d) => d.segments);
  const betweenPaths = diffRecords(server, client).map((d) => d.segments);
  const seen = new Map<string, PathSegment[]>();
  for (const p of [...serverPaths, ...clientPaths, ...betweenPaths]) seen.set(JSON.stringify(p), p);
  const rows = [...seen.values()].map((segments): ThreeWayRow => {
    const serverChanged = serverPaths.some((p) => overlaps(p, segments));
    const clientChanged = clientPaths.some((p) => overlaps(p, segments));
    const s = valueAt(server, segments);
    const c = valueAt(client, segments);
    return {
      path: formatPath(segments),
      segments,
      base: valueAt(base, segments),
      server: s,
      client: c,
      serverChanged,
      clientChanged,
      conflicting: serverChanged && clientChanged && !sameValue(s, c),
    };
  });
  return rows.sort((a, b) => comparePaths(a.segments, b.segments));
}

function sameValue(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return diff({ v: a }, { v: b }).length === 0;
}

export type FieldMark = "changed" | "conflict";

/**
 * Top-level fields to highlight in each side's JSON view: the fields a side
 * changed since the base, and `conflict` where both sides changed a field
 * differently.
 */
export function conflictHighlights(rows: readonly ThreeWayRow[]): {
  base: Record<string, FieldMark>;
  server: Record<string, FieldMark>;
  client: Record<string, FieldMark>;
} {
  const base: Record<string, FieldMark> = {};
  const server: Record<string, FieldMark> = {};
  const client: Record<string, FieldMark> = {};
  for (const row of rows) {
    const key = row.segments[0];
    if (typeof key !== "string") continue;
    const mark: FieldMark = row.conflicting ? "conflict" : "changed";
    const put = (target: Record<string, FieldMark>) => {
      if (target[key] !== "conflict") target[key] = mark;
    };
    if (row.serverChanged || row.clientChanged) put(base);
    if (row.serverChanged) put(server);
    if (row.clientChanged) put(client);
  }
  return { base, server, client };
}

/** Top-level fields that differ between two records, for highlighting a version's JSON view. */
export function changedTopLevel(rows: readonly FieldDiff[]): Record<string, FieldMark> {
  const out: Record<string, FieldMark> = {};
  for (const row of rows) {
    const key = row.segments[0];
    if (typeof key === "string") out[key] = "changed";
  }
  return out;
}

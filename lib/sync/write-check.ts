import type { Scope } from "../policy/compile";
import type { JsonObject } from "./protocol";

export type WriteCheck = { ok: true } | { ok: false; reason: string };

/**
 * policy.md: a system may write only records that satisfy its write condition
 * both before and after the change, and only the fields listed. Several write
 * rules combine: the fields allowed are those of every rule whose condition
 * holds for both states. Deleting removes every field, so it needs a rule that
 * allows all fields ("*").
 */
export function checkWrite(
  scope: Scope,
  before: JsonObject | null,
  after: JsonObject | null,
  changed: readonly string[],
): WriteCheck {
  const who = `System "${scope.system}"`;
  if (scope.grants.length === 0) {
    return { ok: false, reason: `${who} may not write to collection "${scope.collection}" (it is read-only or out of reach for it).` };
  }
  const coverBefore = before === null ? scope.grants : scope.grants.filter((g) => g.covers(before));
  if (coverBefore.length === 0) {
    return { ok: false, reason: `${who} may not change this record: the server's copy is outside its write range (${ranges(scope)}).` };
  }
  const applicable = after === null ? coverBefore : coverBefore.filter((g) => g.covers(after));
  if (applicable.length === 0) {
    return { ok: false, reason: `${who} may not make this change: the record would leave its write range (${ranges(scope)}).` };
  }
  if (applicable.some((g) => g.fields === "*")) return { ok: true };
  if (after === null) {
    return { ok: false, reason: `${who} may not delete this record: deleting needs write access to every field, and it may write only some.` };
  }
  const allowed = new Set(applicable.flatMap((g) => [...(g.fields as ReadonlySet<string>)]));
  const refused = changed.filter((f) => !allowed.has(f));
  if (refused.length > 0) {
    return {
      ok: false,
      reason: `${who} may not write field${refused.length > 1 ? "s" : ""} ${refused.map((f) => `"${f}"`).join(", ")} of this record; it may write ${[...allowed].sort().join(", ")}.`,
    };
  }
  return { ok: true };
}

function ranges(scope: Scope): string {
  const texts = scope.grants.map((g) => g.whereText ?? "all records");
  return texts.length === 1 ? `where ${texts[0]}` : `where ${texts.map((t) => `(${t})`).join(" or ")}`;
}

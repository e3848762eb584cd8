import mergePatch from "json-merge-patch";
import { hasKeyDeep, isJsonObject, type JsonObject, type JsonValue, type PushChange } from "../sync/protocol";
import type { LocalRecord } from "./store";

/**
 * The wire body of a local edit (claim 7: only the changed parts are
 * uploaded). A deletion is `deleted: true`; a creation (no live base) sends
 * `data`; an edit of a synced record sends an RFC 7396 merge patch from the
 * base data to the copy — unless a merge patch cannot say it: a `null` value
 * (a patch's null removes the field), or keys the hub refuses in patches.
 */
export function changeBody(record: LocalRecord, changeId: string): PushChange {
  const baseVersion = record.base?.version ?? null;
  const common = { changeId, id: record.id, baseVersion, ...(record.modifiedAt ? { modifiedAt: record.modifiedAt } : {}) };
  if (record.data === null) return { ...common, deleted: true };
  const before = record.base?.data ?? null;
  if (before === null || !patchable(record.data)) return { ...common, data: record.data };
  const patch: unknown = mergePatch.generate(before, record.data);
  if (!isJsonObject(patch)) return { ...common, data: record.data };
  return { ...common, patch };
}

function patchable(data: JsonObject): boolean {
  return !hasNull(data) && !hasKeyDeep(data, "constructor") && !hasKeyDeep(data, "prototype");
}

function hasNull(value: JsonValue): boolean {
  if (value === null) return true;
  if (Array.isArray(value)) return false; // arrays travel whole; a null inside one is kept as is
  if (typeof value === "object") return Object.values(value).some(hasNull);
  return false;
}

/**
 * Re-bases edits made after a change was sent onto the hub's answer: the
 * fields the host program changed since `sent` are applied over `result`
 * (a three-way merge by merge patch), so a later edit is never lost.
 */
export function rebase(sent: JsonObject | null, local: JsonObject | null, result: JsonObject | null): JsonObject | null {
  if (local === null) return null;
  if (sent === null || result === null || !patchable(local)) return local;
  const delta: unknown = mergePatch.generate(sent, local);
  if (delta === undefined) return result;
  const merged: unknown = mergePatch.apply(structuredClone(result), delta);
  return isJsonObject(merged) ? merged : local;
}

"use server";

import { revalidatePath } from "next/cache";
import { parseRecordJson, resolveFormSchema } from "@/lib/console/conflicts-view";
import { resolveConflict } from "@/lib/sync/conflicts";
import type { JsonObject } from "@/lib/sync/protocol";
import { operatorAction, type ActionResult } from "../../_server/operator";

/**
 * Resolves a pending conflict from its page. The operator's role is checked
 * by operatorAction on every call (a viewer replaying this POST is refused),
 * and resolveConflict refuses a decision made on a version the record has
 * since left, so nothing changes on a stale page.
 */
export async function resolveConflictAction(input: {
  id: number;
  resolution: string;
  expectedVersion: number;
  data?: string;
}): Promise<ActionResult<string>> {
  const parsed = resolveFormSchema.safeParse(input);
  if (!parsed.success) return { ok: false, message: `${parsed.error.issues[0]?.message ?? "The form is not complete"}. Nothing was changed.` };
  const { id, resolution, expectedVersion, data: text } = parsed.data;
  let data: JsonObject | undefined;
  if (resolution === "custom") {
    const json = parseRecordJson(text ?? "");
    if (!json.ok) return { ok: false, message: json.message };
    data = json.data;
  }
  const result = await operatorAction("conflicts", "write", async ({ hub, operator }) => {
    const resolved = await resolveConflict({ db: hub.db, actor: operator.username }, { id, resolution, expectedVersion, data });
    return resolved.message;
  });
  if (result.ok) {
    revalidatePath("/conflicts");
    revalidatePath(`/conflicts/${id}`);
  }
  return result.ok ? { ...result, message: result.value } : result;
}

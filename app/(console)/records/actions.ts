"use server";

import { revalidatePath } from "next/cache";
import { restoreFormSchema } from "@/lib/console/records-history";
import { restoreRecordVersion } from "@/lib/sync/history";
import { operatorAction, type ActionResult } from "../../_server/operator";

/**
 * Restores an earlier version of a record as a new version. operatorAction
 * checks the session and the admin role on every call, so a viewer who
 * replays this POST is refused before anything is read or written; the
 * restore and its audit row commit together (restoreRecordVersion).
 */
export async function restoreVersionAction(input: { collection: string; id: string; version: number }): Promise<ActionResult<string>> {
  const parsed = restoreFormSchema.safeParse(input);
  if (!parsed.success) return { ok: false, message: `${parsed.error.issues[0]?.message ?? "The form is not complete"}. Nothing was changed.` };
  const result = await operatorAction("records", "write", async ({ hub, operator }) => {
    const restored = await restoreRecordVersion({ db: hub.db, actor: operator.username }, parsed.data);
    return restored.message;
  });
  if (result.ok) revalidatePath(`/records/${parsed.data.collection}/${encodeURIComponent(parsed.data.id)}`);
  return result.ok ? { ...result, message: result.value } : result;
}

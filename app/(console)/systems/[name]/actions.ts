"use server";

import { revalidatePath } from "next/cache";
import { z } from "zod";
import { issueApiKey, revokeApiKey, type IssuedKey } from "@/lib/auth/api-keys";
import { keyPrefixSchema, systemNameSchema } from "@/lib/http/schemas";
import { operatorAction, type ActionResult } from "../../../_server/operator";

const issueInput = z.object({ system: systemNameSchema });
const revokeInput = z.object({ system: systemNameSchema, prefix: keyPrefixSchema });

/** Issues a key; the key travels back in this answer only (the page shows it once). */
export async function issueKeyAction(system: string): Promise<ActionResult<IssuedKey>> {
  const parsed = issueInput.safeParse({ system });
  if (!parsed.success) return { ok: false, message: "That is not a system name." };
  const result = await operatorAction("keys", "write", ({ hub, operator }) =>
    issueApiKey(hub.db, { system: parsed.data.system, actor: operator.username }),
  );
  if (result.ok) revalidatePath(`/systems/${parsed.data.system}`);
  return result;
}

export async function revokeKeyAction(system: string, prefix: string): Promise<ActionResult> {
  const parsed = revokeInput.safeParse({ system, prefix });
  if (!parsed.success) return { ok: false, message: "That is not a key of this system." };
  const result = await operatorAction("keys", "write", async ({ hub, operator }) => {
    await revokeApiKey(hub.db, { ...parsed.data, actor: operator.username });
    return undefined;
  });
  revalidatePath(`/systems/${parsed.data.system}`);
  return result.ok ? { ...result, message: `Revoked key ${parsed.data.prefix}.` } : result;
}

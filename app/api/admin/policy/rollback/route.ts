import { z } from "zod";
import { readJson } from "@/lib/http/body";
import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { rollbackPolicy } from "@/lib/policy/store";

export const dynamic = "force-dynamic";

const rollbackBody = z.strictObject({
  version: z.number().int().positive(),
  comment: z.string().max(500).optional(),
});

/** Activates an earlier version's text again, as a new version. */
export const POST = withAdmin("policy", async ({ hub, actor }, request) => {
  const body = await readJson(request, rollbackBody, 16 * 1024);
  const result = await rollbackPolicy(hub.db, { toVersion: body.version, actor, comment: body.comment ?? null });
  return json({ version: result.version, rolledBackFrom: body.version, warnings: result.warnings });
});

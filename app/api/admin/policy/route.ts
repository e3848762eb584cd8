import { z } from "zod";
import { isServiceError, ServiceError } from "@/lib/errors";
import { readQuery, readText } from "@/lib/http/body";
import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { activatePolicy, dryRunPolicy, getActivePolicy } from "@/lib/policy/store";
import { MAX_POLICY_BYTES } from "@/lib/policy/validate";

export const dynamic = "force-dynamic";

/** The active policy: its version, YAML text and activation time. */
export const GET = withAdmin("policy", async ({ hub }) => {
  const active = await getActivePolicy(hub.db);
  return json({
    version: active.version,
    yaml: active.yaml,
    activatedAt: active.activatedAt.toISOString(),
    activatedBy: active.activatedBy,
  });
});

const putQuery = z.strictObject({
  dryRun: z.enum(["0", "1", "true", "false"], { error: "dryRun must be 1 or 0" }).optional(),
  comment: z.string().max(500, "comment must be at most 500 characters").optional(),
});

/** Validates and activates a policy (the body is the YAML); `?dryRun=1` validates only. */
export const PUT = withAdmin("policy", async ({ hub, actor }, request) => {
  const query = readQuery(request, putQuery);
  const yaml = await readText(request, MAX_POLICY_BYTES).catch((error: unknown) => {
    if (isServiceError(error) && error.code === "payload_too_large") {
      throw new ServiceError(
        "payload_too_large",
        `The policy is larger than ${MAX_POLICY_BYTES / 1024} KiB, the most a policy file may be; nothing was changed. Combine rules with groups or "*" and conditions.`,
      );
    }
    throw error;
  });
  if (query.dryRun === "1" || query.dryRun === "true") {
    const { warnings } = await dryRunPolicy(yaml);
    return json({ valid: true, version: null, warnings });
  }
  const result = await activatePolicy(hub.db, { yaml, actor, source: "api", comment: query.comment ?? null });
  return json({ version: result.version, warnings: result.warnings });
});

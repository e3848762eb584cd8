import { ServiceError } from "@/lib/errors";
import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { parseParam, positiveIntSchema } from "@/lib/http/schemas";
import { getPolicyVersion } from "@/lib/policy/store";

export const dynamic = "force-dynamic";

/** One policy version with its YAML text. */
export const GET = withAdmin<{ version: string }>("policy", async ({ hub }, _request, params) => {
  const version = parseParam(positiveIntSchema, params.version, "policy version");
  const row = await getPolicyVersion(hub.db, version);
  if (!row) throw new ServiceError("not_found", `There is no policy version ${version}.`);
  return json({ ...row, activatedAt: row.activatedAt.toISOString() });
});

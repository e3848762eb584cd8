import { revokeApiKey } from "@/lib/auth/api-keys";
import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { keyPrefixSchema, parseParam, systemNameSchema } from "@/lib/http/schemas";

export const dynamic = "force-dynamic";

/** Revokes a key: it stops working at once, on every instance. */
export const DELETE = withAdmin<{ system: string; prefix: string }>("keys", async ({ hub, actor }, _request, params) => {
  const system = parseParam(systemNameSchema, params.system, "system name");
  const prefix = parseParam(keyPrefixSchema, params.prefix, "key prefix");
  const revoked = await revokeApiKey(hub.db, { system, prefix, actor });
  return json({ prefix: revoked.prefix, revokedAt: revoked.revokedAt.toISOString() });
});

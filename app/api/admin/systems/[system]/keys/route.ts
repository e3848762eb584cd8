import { issueApiKey, listApiKeys } from "@/lib/auth/api-keys";
import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { parseParam, systemNameSchema } from "@/lib/http/schemas";

export const dynamic = "force-dynamic";

/** Issues an API key for a system; the key is in this response only. */
export const POST = withAdmin<{ system: string }>("keys", async ({ hub, actor }, _request, params) => {
  const system = parseParam(systemNameSchema, params.system, "system name");
  const issued = await issueApiKey(hub.db, { system, actor });
  return json(issued, { status: 201 });
});

/** The system's keys (prefixes and dates; never the keys themselves). */
export const GET = withAdmin<{ system: string }>("keys", async ({ hub }, _request, params) => {
  const system = parseParam(systemNameSchema, params.system, "system name");
  const keys = await listApiKeys(hub.db, system);
  return json({ keys });
});

import { withAdmin } from "@/lib/http/handlers";
import { parseParam, systemNameSchema } from "@/lib/http/schemas";
import { getActivePolicy } from "@/lib/policy/store";
import { bundleIdSchema, getBundleResponse } from "@/lib/sync/bundles";

export const dynamic = "force-dynamic";

/** Downloads the response bundle of a bundle applied for the system, as a file for the site's CLI to import. */
export const GET = withAdmin<{ system: string; bundleId: string }>("bundles", async ({ hub }, _request, params) => {
  const system = parseParam(systemNameSchema, params.system, "system name");
  const bundleId = parseParam(bundleIdSchema, params.bundleId, "bundle id");
  const response = await getBundleResponse({ db: hub.db, system, bundleId, policy: await getActivePolicy(hub.db) });
  return new Response(JSON.stringify(response), {
    headers: {
      "content-type": "application/json; charset=utf-8",
      "content-disposition": `attachment; filename="${system}-${bundleId}.response.json"`,
      "cache-control": "no-store",
    },
  });
});

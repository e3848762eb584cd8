import { summarizeBundle } from "@/lib/console/systems";
import { readText } from "@/lib/http/body";
import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { parseParam, systemNameSchema } from "@/lib/http/schemas";
import { getActivePolicy } from "@/lib/policy/store";
import { MAX_BUNDLE_BYTES } from "@/lib/sync/bundle-format";
import { applyBundleForOperator } from "@/lib/sync/bundles";

export const dynamic = "force-dynamic";

/**
 * The console's bundle upload: an operator applies an offline site's bundle
 * on its behalf. A route handler rather than a server action, because action
 * bodies are size-limited and a bundle may be up to 64 MiB; the session cookie
 * authenticates (writes need the `bundles` right and a same-origin request).
 * Answers with a summary; the response bundle is downloaded from
 * ./[bundleId].
 */
export const POST = withAdmin<{ system: string }>("bundles", async ({ hub, actor }, request, params) => {
  const system = parseParam(systemNameSchema, params.system, "system name");
  const text = await readText(request, MAX_BUNDLE_BYTES);
  const policy = await getActivePolicy(hub.db);
  const response = await applyBundleForOperator({ db: hub.db, policy, bundle: text, actor, system });
  return json({ summary: summarizeBundle(response) });
});

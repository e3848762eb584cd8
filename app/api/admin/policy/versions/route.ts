import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { listPolicyVersions } from "@/lib/policy/store";

export const dynamic = "force-dynamic";

/** Every activated policy version, newest first (without the YAML text). */
export const GET = withAdmin("policy", async ({ hub }) => {
  const versions = await listPolicyVersions(hub.db);
  return json({
    versions: versions.map((v) => ({ ...v, activatedAt: v.activatedAt.toISOString() })),
  });
});

import { withSystem } from "@/lib/http/handlers";
import { readQuery } from "@/lib/http/body";
import { json } from "@/lib/http/respond";
import { readManifest } from "@/lib/sync/manifest";
import { manifestQuerySchema } from "@/lib/sync/protocol";

export const dynamic = "force-dynamic";

/** Reconciliation: every live record in the caller's read scope as id, version and digest, by id. */
export const GET = withSystem<{ collection: string }>(async (ctx, request, params) => {
  const query = readQuery(request, manifestQuerySchema);
  return json(await readManifest({ ctx, input: { collection: params.collection, ...query } }));
});

import { withSystem } from "@/lib/http/handlers";
import { readQuery } from "@/lib/http/body";
import { json } from "@/lib/http/respond";
import { pullChanges } from "@/lib/sync/changes";
import { changesQuerySchema } from "@/lib/sync/protocol";

export const dynamic = "force-dynamic";

/** The delta feed: changes in the caller's read scope after `since`, oldest first. */
export const GET = withSystem<{ collection: string }>(async (ctx, request, params) => {
  const query = readQuery(request, changesQuerySchema);
  return json(await pullChanges({ ctx, input: { collection: params.collection, ...query } }));
});

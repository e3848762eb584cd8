import { readJson } from "@/lib/http/body";
import { withSystem } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { pushChanges } from "@/lib/sync/push";
import { MAX_PUSH_BODY_BYTES, pushRequestSchema } from "@/lib/sync/protocol";

export const dynamic = "force-dynamic";

/** Push changes (protocol.md): one result per change, in order, each durable before the answer. */
export const POST = withSystem<{ collection: string }>(async (ctx, request, params) => {
  // A record the hub cannot store is answered `invalid` on its own (pushChanges checks each): the rest of the batch goes through.
  const body = await readJson(request, pushRequestSchema, MAX_PUSH_BODY_BYTES, { values: "per-change" });
  return json(await pushChanges({ ctx, input: { collection: params.collection, changes: body.changes } }));
});

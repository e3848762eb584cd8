import { readJson } from "@/lib/http/body";
import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { parseParam } from "@/lib/http/schemas";
import { conflictIdSchema, RESOLVE_BODY_LIMIT, resolveConflict, resolveConflictSchema } from "@/lib/sync/conflicts";

export const dynamic = "force-dynamic";

/** Resolves a pending conflict with the server's copy, the client's change or custom data. */
export const POST = withAdmin<{ id: string }>("conflicts", async ({ hub, actor }, request, params) => {
  const id = parseParam(conflictIdSchema, params.id, "conflict id");
  const body = await readJson(request, resolveConflictSchema, RESOLVE_BODY_LIMIT);
  return json(await resolveConflict({ db: hub.db, actor }, { id, ...body }));
});

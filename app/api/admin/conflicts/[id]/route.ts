import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { parseParam } from "@/lib/http/schemas";
import { conflictIdSchema, getConflict } from "@/lib/sync/conflicts";

export const dynamic = "force-dynamic";

/** One conflict with both sides, the base and the client's change as sent. */
export const GET = withAdmin<{ id: string }>("conflicts", async ({ hub }, _request, params) => {
  const id = parseParam(conflictIdSchema, params.id, "conflict id");
  return json(await getConflict({ db: hub.db }, { id }));
});

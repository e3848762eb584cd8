import { readQuery } from "@/lib/http/body";
import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { listConflicts, listConflictsQuerySchema } from "@/lib/sync/conflicts";

export const dynamic = "force-dynamic";

/** The conflict log, newest first, filtered and keyset-paginated (`before` = the previous page's `next`). */
export const GET = withAdmin("conflicts", async ({ hub }, request) => {
  const query = readQuery(request, listConflictsQuerySchema);
  return json(await listConflicts({ db: hub.db }, query));
});

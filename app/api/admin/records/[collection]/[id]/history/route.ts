import { readQuery } from "@/lib/http/body";
import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { parseParam } from "@/lib/http/schemas";
import { getRecordHistory, historyQuerySchema } from "@/lib/sync/history";
import { collectionNameSchema, recordIdSchema } from "@/lib/sync/protocol";

export const dynamic = "force-dynamic";

/** Every version of a record, newest first, keyset-paginated (`before` = the previous page's `next`). */
export const GET = withAdmin<{ collection: string; id: string }>("records", async ({ hub }, request, params) => {
  const collection = parseParam(collectionNameSchema, params.collection, "collection name");
  const id = parseParam(recordIdSchema, params.id, "record id");
  const query = readQuery(request, historyQuerySchema);
  return json(await getRecordHistory({ db: hub.db }, { collection, id, ...query }));
});

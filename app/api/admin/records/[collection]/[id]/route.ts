import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { parseParam } from "@/lib/http/schemas";
import { getRecord } from "@/lib/sync/history";
import { collectionNameSchema, recordIdSchema } from "@/lib/sync/protocol";

export const dynamic = "force-dynamic";

/** A record's current state, tombstones included (a tombstone has no data). */
export const GET = withAdmin<{ collection: string; id: string }>("records", async ({ hub }, _request, params) => {
  const collection = parseParam(collectionNameSchema, params.collection, "collection name");
  const id = parseParam(recordIdSchema, params.id, "record id");
  return json(await getRecord({ db: hub.db }, { collection, id }));
});

import { readJson } from "@/lib/http/body";
import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { parseParam } from "@/lib/http/schemas";
import { restoreRecordVersion, restoreRequestSchema } from "@/lib/sync/history";
import { collectionNameSchema, recordIdSchema } from "@/lib/sync/protocol";

export const dynamic = "force-dynamic";

/** Writes an earlier version's data as a new version (origin `restore`). */
export const POST = withAdmin<{ collection: string; id: string }>("records", async ({ hub, actor }, request, params) => {
  const collection = parseParam(collectionNameSchema, params.collection, "collection name");
  const id = parseParam(recordIdSchema, params.id, "record id");
  const body = await readJson(request, restoreRequestSchema, 16 * 1024);
  return json(await restoreRecordVersion({ db: hub.db, actor }, { collection, id, ...body }));
});

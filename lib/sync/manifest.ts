import { sql } from "drizzle-orm";
import { rowsOf } from "../db/client";
import { ServiceError } from "../errors";
import { allFields, scopeSql } from "../policy/compile";
import type { SyncContext } from "./context";
import { projectForReader } from "./projection";
import { DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT, type JsonObject, type ManifestEntry, type ManifestResponse } from "./protocol";
import { requireScope } from "./scope";

export interface ReadManifestInput {
  collection: string;
  /** The `next` of the previous page; absent: from the first id. */
  after?: string;
  limit?: number;
}

interface ManifestRow {
  id: string;
  version: number;
  digest: string;
  /** Only selected when the reader's fields vary, to compute its digest. */
  data?: string;
}

/**
 * GET /api/v1/collections/{c}/manifest: every live record in the caller's read
 * scope as `{id, version, digest}`, the digest over the data as the caller sees
 * it, ordered by id in code point order (ids are `COLLATE "C"`), in keyset
 * pages of ids greater than `after`. `next` is the last id of the page when
 * more follow, null on the last page; `count` is the number of entries in this
 * page (not in the whole manifest, which would cost a scan of the collection).
 */
export async function readManifest({ ctx, input }: { ctx: SyncContext; input: ReadManifestInput }): Promise<ManifestResponse> {
  const scope = requireScope(ctx, input.collection, "read");
  const limit = input.limit ?? DEFAULT_PAGE_LIMIT;
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > MAX_PAGE_LIMIT) {
    throw new ServiceError("invalid_request", `limit must be a whole number from 1 to ${MAX_PAGE_LIMIT}.`);
  }
  const everyField = allFields(scope);
  // One row more than the page tells whether another page follows, so `next` is null exactly on the last page.
  const rows = rowsOf<ManifestRow>(
    await ctx.db.execute(sql`
      select r.id, r.version, r.digest${everyField ? sql`` : sql`, r.data::text as data`}
      from records r
      where r.collection = ${input.collection} and not r.deleted and ${scopeSql(scope, sql`r.data`)}
        ${input.after === undefined ? sql`` : sql`and r.id > ${input.after}`}
      order by r.id
      limit ${limit + 1}`),
  );
  const hasMore = rows.length > limit;
  const page = hasMore ? rows.slice(0, limit) : rows;

  const entries: ManifestEntry[] = [];
  for (const row of page) {
    if (everyField || row.data === undefined) {
      entries.push({ id: row.id, version: row.version, digest: row.digest });
      continue;
    }
    const copy = projectForReader(scope, JSON.parse(row.data) as JsonObject, row.digest);
    // Should the in-process predicate ever disagree with the SQL one, leave the
    // record out: the client drops it rather than keeping data it may not see.
    if (copy !== null) entries.push({ id: row.id, version: row.version, digest: copy.digest });
  }
  return { entries, next: hasMore ? (page.at(-1)?.id ?? null) : null, count: entries.length };
}

import { sql } from "drizzle-orm";

/**
 * The delta feed's horizon as SQL (an xid8): every position whose xid is
 * below it is final — its transaction has ended, and nothing written later
 * can take a position below it (README "Concurrency", lib/sync/versions.ts).
 *
 * It is the smallest id of a transaction still running when the statement's
 * snapshot was taken (its in-progress ids, and any id from its xmax on),
 * leaving out two kinds that can never write a position:
 *
 * - our own transaction: a bundle pulls after its own pushes in one
 *   transaction; its versions are visible to it, and the checkpoint reaches
 *   the client only after it commits (when xmax is our own id, ids from the
 *   next one on may be running);
 * - transactions of other databases on the same server, known from
 *   pg_stat_activity. Transaction ids are shared by the whole server, so
 *   without this a long transaction of another application would hold the
 *   feed back. An id is left out only when it is positively seen in another
 *   database (a transaction that ended meanwhile is not listed and so still
 *   counts, which only delays); a role without pg_read_all_stats sees no
 *   other role's ids and so leaves none out.
 */
export const HORIZON_SQL = sql`(select least(
    (select min(x) from pg_snapshot_xip(v.s) x
     where x is distinct from v.me
       and not exists (select 1 from pg_stat_activity a where a.backend_xid = xid(x) and a.datname is distinct from current_database())),
    case when pg_snapshot_xmax(v.s) = v.me then (v.me::text::numeric + 1)::text::xid8 else pg_snapshot_xmax(v.s) end)
  from (select pg_current_snapshot() as s, pg_current_xact_id_if_assigned() as me) v)`;

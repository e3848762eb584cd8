import { sql } from "drizzle-orm";
import { rowsOf, type Database } from "@/lib/db/client";

/**
 * What a refused request must not change: every table that holds data or
 * decisions, as row counts and a digest of the rows' content. Left out are
 * the observability columns a refused request updates by design: a system's
 * last error (the console's badge), activity counters, pull cursors, and a
 * key's last use.
 */
const TABLES: Record<string, string> = {
  records: `select collection, id, version, digest, deleted, seq, data::text from records`,
  record_history: `select collection, id, version, digest, deleted, seq, origin, change_id from record_history`,
  push_receipts: `select system, change_id, collection, result::text from push_receipts`,
  conflicts: `select id, collection, change_id, outcome, result_version, resolution from conflicts`,
  bundle_receipts: `select system, bundle_id, request_checksum, response_checksum from bundle_receipts`,
  policy_versions: `select version, comment, source, activated_by from policy_versions`,
  api_keys: `select prefix, system, key_hash, revoked_at from api_keys`,
  audit_log: `select id, actor, action, target from audit_log`,
  operators: `select id, username, role, disabled_at from operators`,
  operator_sessions: `select token_hash, operator_id from operator_sessions`,
  settings: `select key, value::text from settings`,
};

export type Fingerprint = Record<string, { rows: number; digest: string }>;

export async function fingerprint(db: Database): Promise<Fingerprint> {
  // One round trip: a fuzz test takes a fingerprint per request.
  const query = Object.entries(TABLES)
    .map(
      ([table, select]) =>
        `select '${table}' as name, count(*) as rows, md5(coalesce(string_agg(t::text, '|' order by t::text), '')) as digest from (${select}) t`,
    )
    .join(" union all ");
  const out: Fingerprint = {};
  for (const row of rowsOf<{ name: string; rows: number | string; digest: string }>(await db.execute(sql.raw(query)))) {
    out[row.name] = { rows: Number(row.rows), digest: String(row.digest) };
  }
  return out;
}

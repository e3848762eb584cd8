import { and, asc, desc, eq, gt, lt, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { Database } from "../db/client";
import { auditLog, type AuditRow } from "../db/schema";

/**
 * The audit log as the console shows it: every operator action, newest first,
 * filtered by actor and action, in keyset pages (by id), so a page costs the
 * same at the first row and the millionth.
 */

/** Every action name the code writes to audit_log (grep `action: "` in lib/). */
export const AUDIT_ACTIONS = [
  "sign-in",
  "sign-in.failed",
  "sign-in.locked",
  "sign-in.unlock",
  "sign-out",
  "operator.create",
  "operator.role",
  "operator.disable",
  "operator.password",
  "policy.activate",
  "policy.rollback",
  "key.issue",
  "key.revoke",
  "conflict.resolve",
  "record.restore",
  "bundle.apply",
] as const;
export type AuditAction = (typeof AUDIT_ACTIONS)[number];

export const AUDIT_PAGE_SIZE = 50;

const cursor = z.coerce.number().int().positive().max(Number.MAX_SAFE_INTEGER);

/** The page's query string; unknown or malformed values are dropped rather than refused (it is a link). */
export const auditQuerySchema = z.object({
  actor: z.string().trim().max(200).optional().catch(undefined),
  action: z.enum(AUDIT_ACTIONS).optional().catch(undefined),
  /** Rows older than this id (the "Older" link). */
  before: cursor.optional().catch(undefined),
  /** Rows newer than this id (the "Newer" link). */
  after: cursor.optional().catch(undefined),
});
export type AuditQuery = z.infer<typeof auditQuerySchema>;

export interface AuditPage {
  entries: AuditRow[];
  /** `before` for the next (older) page, null on the last page. */
  older: number | null;
  /** `after` for the previous (newer) page, null on the first page. */
  newer: number | null;
}

export async function listAudit(db: Database, query: AuditQuery, limit = AUDIT_PAGE_SIZE): Promise<AuditPage> {
  const filters: SQL[] = [];
  if (query.actor) filters.push(eq(auditLog.actor, query.actor));
  if (query.action) filters.push(eq(auditLog.action, query.action));
  const backwards = query.after !== undefined && query.before === undefined;
  if (backwards) filters.push(gt(auditLog.id, query.after as number));
  else if (query.before !== undefined) filters.push(lt(auditLog.id, query.before));

  // One row more than the page tells whether another page follows in that direction.
  const rows = await db
    .select()
    .from(auditLog)
    .where(filters.length > 0 ? and(...filters) : undefined)
    .orderBy(backwards ? asc(auditLog.id) : desc(auditLog.id))
    .limit(limit + 1);
  const more = rows.length > limit;
  const page = more ? rows.slice(0, limit) : rows;
  if (backwards) page.reverse();

  const first = page[0]?.id ?? null;
  const last = page.at(-1)?.id ?? null;
  if (backwards) {
    return { entries: page, newer: more ? first : null, older: last };
  }
  return { entries: page, older: more ? last : null, newer: query.before !== undefined ? first : null };
}

/** A one-line description of an entry's details for the table. */
export function describeDetails(details: AuditRow["details"]): string {
  if (!details) return "";
  return Object.entries(details)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(", ");
}

import { sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import type { Database } from "../db/client";
import { collectionNameSchema } from "./protocol";

/**
 * The NOTIFY channel on which every write of records tells every instance's
 * event bus (lib/sync/events-bus.ts) which collection changed and which
 * sequence numbers it took. Postgres delivers a NOTIFY only when its
 * transaction commits, so listeners never hear of a write that rolled back.
 */
export const CHANGES_CHANNEL = "concord_changes";

/**
 * One transaction's write to one collection: `{"c", "from", "to", "x"}` on
 * the wire. Its versions took change sequence numbers between `from` and
 * `to` (other writers' may interleave: writers do not wait for each other)
 * and all have position xid `x` (decimal text; see lib/sync/versions.ts).
 */
export interface ChangeNotification {
  c: string;
  from: number;
  to: number;
  x: string;
}

const seqSchema = z.number().int().nonnegative().refine(Number.isSafeInteger);

const changeNotificationSchema = z
  .strictObject({ c: collectionNameSchema, from: seqSchema, to: seqSchema, x: z.string().regex(/^(0|[1-9][0-9]{0,19})$/) })
  .refine((n) => n.from <= n.to);

/** What an event stream tells a subscriber (protocol.md, GET /api/v1/events). */
export type SyncEvent =
  | { type: "config"; policyVersion: number }
  | { type: "change"; collection: string; checkpoint: string };

/**
 * Tells every instance, when `tx` commits, that records of `collection` got
 * versions with change sequence numbers in `from`..`to` and position xid
 * `xid`, after checking them. The engine's own writes send it from the
 * statement that stores the versions (changeNotificationSql).
 *
 * The payload stays under 130 bytes (a collection name is at most 63
 * characters), far below Postgres's 8000-byte NOTIFY limit.
 */
export async function notifyChanges(tx: Database, collection: string, at: { from: number; to: number; xid: string }): Promise<void> {
  const parsed = changeNotificationSchema.safeParse({ c: collection, from: at.from, to: at.to, x: at.xid });
  if (!parsed.success) {
    // A caller bug, not a client error: a malformed payload would be dropped by every listener.
    throw new RangeError(
      `notifyChanges needs a valid collection name, 0 <= from <= to and a decimal xid (got ${JSON.stringify({ collection, ...at })}).`,
    );
  }
  await tx.execute(sql`select ${changeNotificationSql(collection, { from: sql`${at.from}::bigint`, to: sql`${at.to}::bigint`, xid: sql`${at.xid}::text` })}`);
}

/**
 * The NOTIFY of a ChangeNotification as an SQL expression, so a statement
 * that draws the numbers itself can send it (versionWrites in versions.ts):
 * the one place the payload's shape is written.
 */
export function changeNotificationSql(collection: string, at: { from: SQL; to: SQL; xid: SQL }): SQL {
  return sql`pg_notify(${CHANGES_CHANNEL}, json_build_object('c', ${collection}::text, 'from', ${at.from}, 'to', ${at.to}, 'x', ${at.xid})::text)`;
}

/** A CHANGES_CHANNEL payload, or null when it is not one (listeners ignore it then). */
export function parseChangeNotification(payload: string): ChangeNotification | null {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return null;
  }
  const parsed = changeNotificationSchema.safeParse(value);
  return parsed.success ? parsed.data : null;
}

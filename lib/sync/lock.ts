import { sql } from "drizzle-orm";
import type { Database } from "../db/client";

/** Advisory lock class for "one writer per collection at a time". */
const COLLECTION_LOCK_CLASS = 0x0c0c01;

/**
 * Serialises writers of one collection until the transaction ends, on every
 * instance. Taken before a writer draws sequence numbers, it makes commit
 * order equal seq order within a collection: a reader that has seen seq s will
 * never later find a committed change of that collection with seq <= s, so the
 * delta feed needs no per-reader state and never skips a change.
 */
export async function lockCollection(tx: Database, collection: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(${COLLECTION_LOCK_CLASS}, hashtext(${collection}))`);
}

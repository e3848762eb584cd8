import { sql } from "drizzle-orm";
import {
  bigint,
  boolean,
  customType,
  index,
  integer,
  jsonb,
  pgSequence,
  pgTable,
  primaryKey,
  text,
  timestamp,
} from "drizzle-orm/pg-core";

import type { JsonObject } from "../../sync/protocol";

export type { JsonObject, JsonValue } from "../../sync/protocol";

/**
 * The global change sequence. Every accepted change takes the next value; a
 * record's `seq` is the value of its latest change, so "changes since
 * checkpoint" is a range scan on (collection, seq).
 */
export const changeSeq = pgSequence("change_seq", { startWith: 1, increment: 1 });

/**
 * Record ids compare by Unicode code point (COLLATE "C") on every server,
 * whatever its locale, so manifest pages are ordered the same everywhere and
 * match the SDK's ordering.
 */
export const recordId = customType<{ data: string; notNull: true }>({
  dataType: () => 'text COLLATE "C"',
});

/**
 * A transaction id (Postgres `xid8`, 64 bits, never wraps), read and written
 * as its decimal text. See `xid` on `records` for what it orders.
 */
export const xid8 = customType<{ data: string; notNull: true }>({
  dataType: () => "xid8",
});

/** Where a version came from (shown in history, chosen by the verb that wrote it). */
export const RECORD_ORIGINS = ["push", "merge", "resolution", "restore"] as const;
export type RecordOrigin = (typeof RECORD_ORIGINS)[number];

/** Current state of every record: one row per (collection, id). */
export const records = pgTable(
  "records",
  {
    collection: text("collection").notNull(),
    id: recordId("id").notNull(),
    /**
     * The record's JSON object. A tombstone keeps the last live data so that
     * read scopes can still be evaluated for it (to tell a reader that a record
     * it could see was deleted); it is never returned to clients.
     */
    data: jsonb("data").$type<JsonObject>().notNull(),
    version: integer("version").notNull(),
    /** SHA-256 of the canonical JSON of the full data (or of `null` when deleted). */
    digest: text("digest").notNull(),
    deleted: boolean("deleted").notNull().default(false),
    seq: bigint("seq", { mode: "number" }).notNull(),
    /**
     * The feed position of the current version is (xid, seq). `xid` is the
     * writing transaction's id, or the previous version's `xid` when that is
     * larger, so positions grow with versions. Writers of one collection do
     * not wait for each other, so they commit out of seq order; but a reader
     * whose snapshot shows no transaction older than xid X still running
     * (pg_snapshot_xmin) knows that every position below (X, 0) is final.
     * The delta feed serves only those (docs: README "Concurrency").
     * Rows written before positions existed have xid 0.
     */
    xid: xid8("xid").notNull().default(sql`'0'::xid8`),
    updatedBy: text("updated_by").notNull(),
    updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
    /**
     * When the current version was modified, for last-writer-wins: the
     * writer's `modifiedAt`, never later than the time the server received it.
     */
    modifiedAt: timestamp("modified_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.collection, t.id] }),
    // The delta feed: changes of one collection after a checkpoint, oldest first.
    index("records_collection_seq_idx").on(t.collection, t.seq),
    // The delta feed in position order (see `xid`).
    index("records_collection_position_idx").on(t.collection, t.xid, t.seq),
    // The console's "filter by field" (`data @> '{"status":"paid"}'`): a GIN
    // index with jsonb_path_ops, small and built for containment.
    index("records_data_path_idx").using("gin", sql`${t.data} jsonb_path_ops`),
  ],
);

/** Every accepted version of every record, kept forever. */
export const recordHistory = pgTable(
  "record_history",
  {
    collection: text("collection").notNull(),
    id: recordId("id").notNull(),
    version: integer("version").notNull(),
    data: jsonb("data").$type<JsonObject>().notNull(),
    digest: text("digest").notNull(),
    deleted: boolean("deleted").notNull().default(false),
    seq: bigint("seq", { mode: "number" }).notNull(),
    /** With `seq`, this version's feed position (see `xid` on records). */
    xid: xid8("xid").notNull().default(sql`'0'::xid8`),
    origin: text("origin").$type<RecordOrigin>().notNull(),
    /** The push's changeId, when the version came from a push. */
    changeId: text("change_id"),
    /** The system (for pushes) or `operator:<name>` (for resolutions and restores). */
    writtenBy: text("written_by").notNull(),
    writtenAt: timestamp("written_at", { withTimezone: true }).notNull().defaultNow(),
    modifiedAt: timestamp("modified_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    // (collection, id, version) also answers "the version a reader had at
    // checkpoint s" (the latest version with seq <= s): versions grow with seq.
    primaryKey({ columns: [t.collection, t.id, t.version] }),
    // The delta feed after a checkpoint: versions in position order (lib/sync/changes.ts).
    index("record_history_position_idx").on(t.collection, t.xid, t.seq),
  ],
);

/**
 * Idempotency: what was decided for every change a system pushed, by
 * (system, collection, changeId). `result` is the decision (status, version,
 * reason, conflict), not the answer given: a replay renders the answer again
 * from the record's history under the policy active then, so it never shows
 * what the system may no longer read. `changeDigest` (SHA-256 of the change's
 * canonical JSON) tells a true re-send from a changeId reused for another
 * change.
 */
export const pushReceipts = pgTable(
  "push_receipts",
  {
    system: text("system").notNull(),
    changeId: text("change_id").notNull(),
    collection: text("collection").notNull(),
    recordId: recordId("record_id").notNull(),
    result: jsonb("result").$type<JsonObject>().notNull(),
    changeDigest: text("change_digest"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.system, t.collection, t.changeId] })],
);

export type RecordRow = typeof records.$inferSelect;
export type RecordHistoryRow = typeof recordHistory.$inferSelect;
export type PushReceiptRow = typeof pushReceipts.$inferSelect;

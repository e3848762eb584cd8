import { jsonb, pgTable, primaryKey, text, timestamp, uuid } from "drizzle-orm/pg-core";
import type { JsonObject } from "../../sync/protocol";

/**
 * Offline bundles a system has applied, one row per (system, bundleId), written
 * in the transaction that applied the bundle: a bundle is refused as a replay
 * exactly when it completed. The response bundle is kept whole, so the site (or
 * an operator for it) can download it again when the first copy was lost.
 */
export const bundleReceipts = pgTable(
  "bundle_receipts",
  {
    system: text("system").notNull(),
    bundleId: uuid("bundle_id").notNull(),
    appliedAt: timestamp("applied_at", { withTimezone: true }).notNull().defaultNow(),
    /** The system itself (API key) or `operator:<actor>` (uploaded in the console). */
    appliedBy: text("applied_by").notNull(),
    /** The checksum of the request bundle that was applied. */
    requestChecksum: text("request_checksum").notNull(),
    responseChecksum: text("response_checksum").notNull(),
    /** The response bundle as returned, checksum included. */
    response: jsonb("response").$type<JsonObject>().notNull(),
  },
  (t) => [primaryKey({ columns: [t.system, t.bundleId] })],
);

export type BundleReceiptRow = typeof bundleReceipts.$inferSelect;

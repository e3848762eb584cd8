import { bigint, bigserial, boolean, index, integer, jsonb, pgTable, text, timestamp, uniqueIndex } from "drizzle-orm/pg-core";
import { recordId, type JsonObject } from "./records";

export const CONFLICT_OUTCOMES = ["server-won", "client-won", "merged", "pending", "resolved"] as const;
export type ConflictOutcome = (typeof CONFLICT_OUTCOMES)[number];

/**
 * The conflict log. Every conflict is kept with both sides and the base, so a
 * losing change is never lost: it stays readable here.
 */
export const conflicts = pgTable(
  "conflicts",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    collection: text("collection").notNull(),
    recordId: recordId("record_id").notNull(),
    /** The system that pushed the colliding change. */
    clientSystem: text("client_system").notNull(),
    /**
     * The conflict's number among that system's own conflicts (1, 2, …): the
     * `conflict.id` its push result shows. The global `id` would tell a
     * system how many conflicts other systems had, so it never leaves the
     * console and the admin API.
     */
    clientRef: bigint("client_ref", { mode: "number" }),
    /** The system (or operator) that wrote the server's copy the change collided with. */
    serverSystem: text("server_system").notNull(),
    changeId: text("change_id").notNull(),
    baseVersion: integer("base_version"),
    baseData: jsonb("base_data").$type<JsonObject>(),
    serverVersion: integer("server_version").notNull(),
    serverData: jsonb("server_data").$type<JsonObject>(),
    serverDeleted: boolean("server_deleted").notNull().default(false),
    /** The change exactly as the client sent it (data, patch or delete, modifiedAt). */
    clientChange: jsonb("client_change").$type<JsonObject>().notNull(),
    /** The client's whole record as it intended it (patch applied to the base), or null for a delete. */
    clientData: jsonb("client_data").$type<JsonObject>(),
    strategy: text("strategy").notNull(),
    outcome: text("outcome").$type<ConflictOutcome>().notNull(),
    /** Strategy-specific facts: merged fields, colliding fields, the fallback used, timestamps compared. */
    details: jsonb("details").$type<JsonObject>(),
    /** The record version the settlement produced, if it wrote one. */
    resultVersion: integer("result_version"),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    /** For operator resolution: `server`, `client` or `custom`. */
    resolution: text("resolution"),
    resolvedBy: text("resolved_by"),
    resolvedAt: timestamp("resolved_at", { withTimezone: true }),
  },
  (t) => [
    index("conflicts_outcome_id_idx").on(t.outcome, t.id),
    index("conflicts_collection_id_idx").on(t.collection, t.id),
    index("conflicts_record_idx").on(t.collection, t.recordId, t.id),
    index("conflicts_client_system_id_idx").on(t.clientSystem, t.id),
    // Console filters: by the other side's system and by strategy, newest first.
    index("conflicts_server_system_id_idx").on(t.serverSystem, t.id),
    index("conflicts_strategy_id_idx").on(t.strategy, t.id),
    index("conflicts_created_at_idx").on(t.createdAt),
    uniqueIndex("conflicts_client_ref_idx").on(t.clientSystem, t.clientRef),
  ],
);

export type ConflictRow = typeof conflicts.$inferSelect;

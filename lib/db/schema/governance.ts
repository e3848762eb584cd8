import { bigint, bigserial, index, integer, jsonb, pgTable, primaryKey, serial, text, timestamp } from "drizzle-orm/pg-core";
import type { JsonObject, JsonValue } from "../../sync/protocol";

/** Every activated policy file, kept forever. The active policy is the highest version. */
export const policyVersions = pgTable("policy_versions", {
  version: integer("version").primaryKey(),
  yaml: text("yaml").notNull(),
  comment: text("comment"),
  /** `default` (first start), `api`, `console`, or `rollback`. */
  source: text("source").notNull(),
  /** For a rollback: the version whose text was activated again. */
  rolledBackFrom: integer("rolled_back_from"),
  activatedBy: text("activated_by").notNull(),
  activatedAt: timestamp("activated_at", { withTimezone: true }).notNull().defaultNow(),
});

/** Operational state of the business systems the policy declares. */
export const systems = pgTable("systems", {
  name: text("name").primaryKey(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  lastSeenAt: timestamp("last_seen_at", { withTimezone: true }),
  lastPushAt: timestamp("last_push_at", { withTimezone: true }),
  lastPullAt: timestamp("last_pull_at", { withTimezone: true }),
  lastError: text("last_error"),
  lastErrorAt: timestamp("last_error_at", { withTimezone: true }),
  /**
   * How many conflicts this system's pushes have logged: the last number of
   * its own conflict numbering (conflicts.client_ref), which is what a push
   * result's `conflict.id` shows it.
   */
  conflictRefs: bigint("conflict_refs", { mode: "number" }).notNull().default(0),
});

/** System API keys: only a SHA-256 hash is stored; the key is shown once. */
export const apiKeys = pgTable(
  "api_keys",
  {
    prefix: text("prefix").primaryKey(),
    system: text("system").notNull(),
    keyHash: text("key_hash").notNull(),
    createdBy: text("created_by").notNull(),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    revokedAt: timestamp("revoked_at", { withTimezone: true }),
    lastUsedAt: timestamp("last_used_at", { withTimezone: true }),
  },
  (t) => [index("api_keys_system_idx").on(t.system)],
);

/** Every operator action: sign-in, policy activation, key issue/revoke, resolution, restore. */
export const auditLog = pgTable(
  "audit_log",
  {
    id: bigserial("id", { mode: "number" }).primaryKey(),
    at: timestamp("at", { withTimezone: true }).notNull().defaultNow(),
    actor: text("actor").notNull(),
    action: text("action").notNull(),
    target: text("target"),
    details: jsonb("details").$type<JsonObject>(),
  },
  (t) => [
    index("audit_log_at_idx").on(t.at),
    index("audit_log_action_idx").on(t.action, t.id),
    index("audit_log_actor_idx").on(t.actor, t.id),
    // Counting recent failed sign-ins for one username (sign-in slow-down).
    index("audit_log_action_target_at_idx").on(t.action, t.target, t.at),
  ],
);

/** Console operators. Passwords are stored as slow hashes (scrypt). */
export const operators = pgTable("operators", {
  id: serial("id").primaryKey(),
  username: text("username").notNull().unique(),
  passwordHash: text("password_hash").notNull(),
  /** `admin` or `viewer`. */
  role: text("role").notNull(),
  createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
  disabledAt: timestamp("disabled_at", { withTimezone: true }),
});

/** Console sessions: the cookie holds a random token, the table its hash. */
export const operatorSessions = pgTable(
  "operator_sessions",
  {
    tokenHash: text("token_hash").primaryKey(),
    operatorId: integer("operator_id")
      .notNull()
      .references(() => operators.id, { onDelete: "cascade" }),
    createdAt: timestamp("created_at", { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp("expires_at", { withTimezone: true }).notNull(),
  },
  (t) => [index("operator_sessions_operator_idx").on(t.operatorId)],
);

/**
 * Sign-in attempts per window, counted atomically before any password is
 * checked (lib/auth/sign-in-throttle.ts). One row per budget: `pair` (a
 * username from one client address), `user` (a username from every address)
 * and `address` (one address, every username); the columns a budget does not
 * use are ''.
 */
export const signInThrottle = pgTable(
  "sign_in_throttle",
  {
    kind: text("kind").notNull(),
    username: text("username").notNull(),
    address: text("address").notNull(),
    windowStartedAt: timestamp("window_started_at", { withTimezone: true }).notNull(),
    attempts: integer("attempts").notNull(),
  },
  (t) => [
    // Username first: an admin clears one username's budgets by prefix.
    primaryKey({ columns: [t.username, t.address, t.kind] }),
    // Windows that ran out are swept by age.
    index("sign_in_throttle_window_idx").on(t.windowStartedAt),
  ],
);

/** Small server-wide settings (e.g. the hash of a generated admin token). */
export const settings = pgTable("settings", {
  key: text("key").primaryKey(),
  value: jsonb("value").$type<JsonValue>().notNull(),
  updatedAt: timestamp("updated_at", { withTimezone: true }).notNull().defaultNow(),
});

export type PolicyVersionRow = typeof policyVersions.$inferSelect;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type AuditRow = typeof auditLog.$inferSelect;
export type AuditDetails = JsonObject;

/**
 * Sync activity per minute, system and kind (`push.applied`, `push.conflict`,
 * `pull.requests`, `pull.records`, `error`, ...). Counted in memory and added
 * here every few seconds by lib/sync/activity.ts, so a busy hub does not write
 * a row per request; the console draws its charts from it.
 */
export const activity = pgTable(
  "activity",
  {
    bucket: timestamp("bucket", { withTimezone: true }).notNull(),
    system: text("system").notNull(),
    kind: text("kind").notNull(),
    count: bigint("count", { mode: "number" }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.bucket, t.system, t.kind] })],
);

/**
 * How far each system has pulled each collection: the highest change sequence
 * number it has been sent. With the collection's newest sequence number this
 * gives the console a system's lag.
 */
export const systemCursors = pgTable(
  "system_cursors",
  {
    system: text("system").notNull(),
    collection: text("collection").notNull(),
    seq: bigint("seq", { mode: "number" }).notNull(),
    at: timestamp("at", { withTimezone: true }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.system, t.collection] })],
);

export type ActivityRow = typeof activity.$inferSelect;
export type OperatorRow = typeof operators.$inferSelect;

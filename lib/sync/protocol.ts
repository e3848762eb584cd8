import { z } from "zod";

/**
 * Sync protocol v1 (../shared/spec/protocol.md): names, limits and wire
 * schemas. Shared by the server and the client SDK; imports only zod.
 */

export const API_BASE = "/api/v1";
export const POLICY_VERSION_HEADER = "X-Policy-Version";

export const COLLECTION_PATTERN = /^[a-z][a-z0-9_]{0,62}$/;
/** 1 to 256 characters of printable Unicode: no control characters, no lone surrogates. */
export const RECORD_ID_PATTERN = /^[^\p{Cc}\p{Cs}]{1,256}$/u;
export const CHANGE_ID_PATTERN = /^[\x21-\x7e]{1,128}$/;

/** A record's data is at most 256 KiB as canonical JSON. */
export const MAX_RECORD_BYTES = 256 * 1024;
export const MAX_PUSH_CHANGES = 1000;
/** A push body: 1,000 changes of typical size fit easily; one oversized record is refused per record. */
export const MAX_PUSH_BODY_BYTES = 32 * 1024 * 1024;
export const DEFAULT_PAGE_LIMIT = 1000;
export const MAX_PAGE_LIMIT = 10_000;

/** SHA-256 of the four bytes `null`: the digest of a deleted record. */
export const DELETED_DIGEST = "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b";

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

// ---------------------------------------------------------------------------
// Identifiers

export const collectionNameSchema = z
  .string()
  .regex(COLLECTION_PATTERN, "a collection name starts with a lowercase letter and uses only a-z, 0-9 and _ (at most 63 characters)");

export const recordIdSchema = z
  .string({ error: "id must be a string" })
  .refine((id) => RECORD_ID_PATTERN.test(id) && [...id].length <= 256, {
    message: "id must be 1 to 256 printable characters (no control characters)",
  });

// ---------------------------------------------------------------------------
// Checkpoints: opaque to clients. The server seals a position in its change
// sequence into a string of at most this many characters.

export const MAX_CHECKPOINT_LENGTH = 128;

// ---------------------------------------------------------------------------
// Push

/** Whether a JSON value has a key named `key` at any depth. */
export function hasKeyDeep(value: unknown, key: string): boolean {
  if (typeof value !== "object" || value === null) return false;
  if (Array.isArray(value)) return value.some((v) => hasKeyDeep(v, key));
  return Object.hasOwn(value, key) || Object.values(value).some((v) => hasKeyDeep(v, key));
}

/**
 * JSON objects arrive from JSON.parse, so their values are JSON. `__proto__` is
 * refused as a key: assigning it in JavaScript changes an object's prototype
 * instead of storing a field, which would lose data silently.
 */
const jsonObjectSchema = z
  .custom<JsonObject>(isJsonObject, { message: "must be a JSON object" })
  .refine((v) => !hasKeyDeep(v, "__proto__"), { message: 'must not contain a key named "__proto__"' });

export const pushChangeSchema = z
  .strictObject({
    changeId: z.string({ error: "changeId must be a string" }).regex(CHANGE_ID_PATTERN, "changeId must be 1 to 128 printable ASCII characters"),
    id: recordIdSchema,
    baseVersion: z.number().int("baseVersion must be a whole number").min(1, "baseVersion must be at least 1, or null for a new record").nullable(),
    data: jsonObjectSchema.optional(),
    patch: jsonObjectSchema.optional(),
    deleted: z.literal(true, { error: "deleted must be true when present" }).optional(),
    /** The client's modification time, used by last-writer-wins. */
    modifiedAt: z.iso.datetime({ offset: true, error: "modifiedAt must be an ISO 8601 date-time" }).optional(),
  })
  .refine((c) => [c.data, c.patch, c.deleted].filter((v) => v !== undefined).length === 1, {
    message: "a change carries exactly one of data, patch or deleted: true",
  });

export const pushRequestSchema = z.strictObject({
  changes: z.array(pushChangeSchema).max(MAX_PUSH_CHANGES, `at most ${MAX_PUSH_CHANGES} changes per request`),
});

export type PushChange = z.infer<typeof pushChangeSchema>;
export type PushRequest = z.infer<typeof pushRequestSchema>;

export const PUSH_STATUSES = ["applied", "unchanged", "merged", "rejected", "pending", "forbidden", "invalid"] as const;
export type PushStatus = (typeof PUSH_STATUSES)[number];

export interface PushResult {
  changeId: string;
  id: string;
  status: PushStatus;
  version?: number;
  digest?: string;
  data?: JsonObject;
  deleted?: boolean;
  conflict?: { id: number; strategy: string };
  reason?: string;
}

export interface PushResponse {
  results: PushResult[];
}

// ---------------------------------------------------------------------------
// Pull

export type ChangeEntry =
  | { id: string; version: number; digest: string; data: JsonObject }
  | { id: string; version: number; digest: string; deleted: true }
  | { id: string; removed: true };

export interface ChangesResponse {
  changes: ChangeEntry[];
  checkpoint: string;
  hasMore: boolean;
}

export interface ManifestEntry {
  id: string;
  version: number;
  digest: string;
}

export interface ManifestResponse {
  entries: ManifestEntry[];
  /** The `after` of the next page; null on the last page. */
  next: string | null;
  /** The number of entries in this page. */
  count: number;
}

const limitSchema = z
  .string()
  .regex(/^[1-9][0-9]{0,5}$/, `limit must be a whole number from 1 to ${MAX_PAGE_LIMIT}`)
  .transform(Number)
  .refine((n) => n <= MAX_PAGE_LIMIT, `limit must be at most ${MAX_PAGE_LIMIT}`);

export const changesQuerySchema = z.strictObject({
  since: z.string().min(1).max(MAX_CHECKPOINT_LENGTH, "since must be a checkpoint returned by this server").optional(),
  limit: limitSchema.optional(),
});

export const manifestQuerySchema = z.strictObject({
  after: recordIdSchema.optional(),
  limit: limitSchema.optional(),
});

// ---------------------------------------------------------------------------
// Configuration broadcast

export interface ScopeDescription {
  where: string;
  fields: string[];
}

export interface CollectionConfig {
  read: ScopeDescription | null;
  write: ScopeDescription | null;
  conflict: { strategy: string; fallback: string };
}

export interface ConfigResponse {
  system: string;
  policyVersion: number;
  collections: Record<string, CollectionConfig>;
  sync: { intervalSeconds: number; realtime: boolean };
  serverTime: string;
}

// ---------------------------------------------------------------------------
// Errors

export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}

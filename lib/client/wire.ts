import { z } from "zod";
import {
  isJsonObject,
  PUSH_STATUSES,
  type ChangeEntry,
  type ChangesResponse,
  type ConfigResponse,
  type JsonObject,
  type ManifestResponse,
  type PushResponse,
} from "../sync/protocol";

/**
 * The hub's answers, checked at the boundary (the request side is checked by
 * the hub with protocol.ts's schemas). Loose objects: protocol.md welcomes
 * extensions, so unknown fields are allowed and ignored.
 */

const jsonObject = z.custom<JsonObject>(isJsonObject, { message: "must be a JSON object" });
const version = z.number().int().min(1);
const digest = z.string().regex(/^[0-9a-f]{64}$/);

const changeEntrySchema = z.union([
  z.looseObject({ id: z.string(), version, digest, data: jsonObject }),
  z.looseObject({ id: z.string(), version, digest, deleted: z.literal(true) }),
  z.looseObject({ id: z.string(), removed: z.literal(true) }),
]);

export const changesResponseSchema = z.looseObject({
  changes: z.array(changeEntrySchema),
  checkpoint: z.string().min(1),
  hasMore: z.boolean(),
});

export const manifestResponseSchema = z.looseObject({
  entries: z.array(z.looseObject({ id: z.string(), version, digest })),
  next: z.string().nullable(),
  count: z.number().int().min(0),
});

export const pushResponseSchema = z.looseObject({
  results: z.array(
    z.looseObject({
      changeId: z.string(),
      id: z.string(),
      status: z.enum(PUSH_STATUSES),
      version: version.optional(),
      digest: digest.optional(),
      data: jsonObject.optional(),
      deleted: z.boolean().optional(),
      conflict: z.looseObject({ id: z.number(), strategy: z.string() }).optional(),
      reason: z.string().optional(),
    }),
  ),
});

const scope = z.looseObject({ where: z.string(), fields: z.array(z.string()) }).nullable();

export const configResponseSchema = z.looseObject({
  system: z.string(),
  policyVersion: z.number().int(),
  collections: z.record(
    z.string(),
    z.looseObject({ read: scope, write: scope, conflict: z.looseObject({ strategy: z.string(), fallback: z.string() }) }),
  ),
  sync: z.looseObject({ intervalSeconds: z.number().positive(), realtime: z.boolean() }),
  serverTime: z.string(),
});

export const errorBodySchema = z.looseObject({
  error: z.looseObject({ code: z.string(), message: z.string(), details: z.unknown().optional() }),
});

// The schemas produce the protocol's types: a drift between them is a compile error here.
type Assert<T extends true> = T;
export type _ChangesMatch = Assert<z.infer<typeof changesResponseSchema> extends ChangesResponse ? true : false>;
export type _EntryMatch = Assert<z.infer<typeof changeEntrySchema> extends ChangeEntry ? true : false>;
export type _ManifestMatch = Assert<z.infer<typeof manifestResponseSchema> extends ManifestResponse ? true : false>;
export type _PushMatch = Assert<z.infer<typeof pushResponseSchema> extends PushResponse ? true : false>;
export type _ConfigMatch = Assert<z.infer<typeof configResponseSchema> extends ConfigResponse ? true : false>;

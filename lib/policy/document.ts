import { z } from "zod";

/**
 * The policy file's shape (../shared/spec/policy.md), as zod schemas. These
 * check structure and types only; cross references (unknown systems, groups,
 * collections) and conditions are checked in validate.ts, where positions in
 * the YAML are known.
 */

export const NAME_PATTERN = /^[a-z][a-z0-9_]{0,62}$/;
export const FIELD_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

export const STRATEGIES = [
  "server-wins",
  "client-wins",
  "last-writer-wins",
  "priority",
  "field-merge",
  "manual",
] as const;
export type Strategy = (typeof STRATEGIES)[number];
/** Strategies a field-merge may fall back to: every one but field-merge itself. */
export const FALLBACK_STRATEGIES = STRATEGIES.filter((s) => s !== "field-merge") as Exclude<
  Strategy,
  "field-merge"
>[];
export type FallbackStrategy = Exclude<Strategy, "field-merge">;

const name = (what: string) =>
  z
    .string({ error: `${what} must be a string` })
    .regex(NAME_PATTERN, `${what} must start with a lowercase letter and use only a-z, 0-9 and _ (at most 63 characters)`);

const strategy = z.enum(STRATEGIES, {
  error: (issue) =>
    `unknown conflict strategy ${JSON.stringify(issue.input)}; use one of ${STRATEGIES.join(", ")}`,
});
const fallback = z.enum(FALLBACK_STRATEGIES as [FallbackStrategy, ...FallbackStrategy[]], {
  error: (issue) =>
    `unknown fallback strategy ${JSON.stringify(issue.input)}; use one of ${FALLBACK_STRATEGIES.join(", ")}`,
});

const systemSchema = z.strictObject({
  name: z.string().min(1).max(200).optional(),
  priority: z.number().int("priority must be a whole number").min(-1_000_000).max(1_000_000).default(0),
  description: z.string().max(2000).optional(),
});

const collectionSchema = z.strictObject({
  conflict: strategy.default("server-wins"),
  fallback: fallback.optional(),
  description: z.string().max(2000).optional(),
});

const fieldList = z
  .array(
    z
      .string({ error: "a field name must be a string" })
      .refine((f) => f === "*" || FIELD_PATTERN.test(f), {
        message: 'a field name must be "*" or start with a letter or _ and use only letters, digits and _',
      }),
    { error: "fields must be a list of field names" },
  )
  .min(1, "fields must name at least one field (or use [\"*\"])")
  .max(500);

/** `all`, a condition string, or `{where, fields}`. */
const rightSchema = z.union(
  [
    z.string({ error: "a right must be `all`, a condition, or {where, fields}" }).min(1).max(4096),
    z.strictObject({
      where: z.string().min(1).max(4096).optional(),
      fields: fieldList.optional(),
    }),
  ],
  { error: "a right must be `all`, a condition string, or a map with `where` and/or `fields`" },
);

const ruleSchema = z.strictObject({
  who: z.string({ error: "who must be a system name, group:<name>, or \"*\"" }).min(1).max(200),
  collection: name("collection"),
  read: rightSchema.optional(),
  write: rightSchema.optional(),
  conflict: strategy.optional(),
  fallback: fallback.optional(),
  description: z.string().max(2000).optional(),
});

const durationSchema = z.union([
  z.number().int().min(1, "interval must be at least 1 second").max(7 * 24 * 3600),
  z
    .string()
    .regex(/^\d{1,7}(s|m|h|d)$/, "interval must look like 30s, 15m, 1h or 1d (or a number of seconds)"),
]);

const syncSchema = z.strictObject({
  interval: durationSchema.optional(),
  realtime: z.boolean().optional(),
});

export const policyFileSchema = z.strictObject({
  version: z.literal(1, { error: "version must be 1 (the only policy format so far)" }),
  systems: z.record(name("system name"), systemSchema).refine((s) => Object.keys(s).length > 0, {
    message: "declare at least one system",
  }),
  groups: z.record(name("group name"), z.array(z.string()).max(1000)).default({}),
  collections: z.record(name("collection name"), collectionSchema).refine((c) => Object.keys(c).length > 0, {
    message: "declare at least one collection",
  }),
  rules: z.array(ruleSchema).max(5000).default([]),
  sync: z.record(z.string(), syncSchema).default({}),
});

export type PolicyFile = z.infer<typeof policyFileSchema>;
export type RuleInput = PolicyFile["rules"][number];
export type RightInput = z.infer<typeof rightSchema>;

/** Seconds in a duration written in the policy (`60s`, `15m`, or a number of seconds). */
export function durationSeconds(value: string | number): number {
  if (typeof value === "number") return value;
  const match = /^(\d+)(s|m|h|d)$/.exec(value);
  if (!match) throw new Error(`not a duration: ${value}`);
  const n = Number(match[1]);
  const unit = match[2];
  const factor = unit === "s" ? 1 : unit === "m" ? 60 : unit === "h" ? 3600 : 86400;
  return n * factor;
}

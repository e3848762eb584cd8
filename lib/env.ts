import { z } from "zod";

/**
 * The environment, parsed and validated once. Every variable Concord reads is
 * listed here (and in the README's Configuration section).
 */
/** Default of CONCORD_RATE_LIMIT: far above what a debounced client sends, low enough to stop a runaway loop. */
export const DEFAULT_RATE_LIMIT = 1000;

const envSchema = z.object({
  DATABASE_URL: z
    .string()
    .trim()
    .regex(/^postgres(ql)?:\/\//, "DATABASE_URL must be a postgres:// or postgresql:// URL")
    .optional()
    .or(z.literal("").transform(() => undefined)),
  PGLITE_DIR: z.string().trim().min(1).default(".data/pglite"),
  ADMIN_TOKEN: z
    .string()
    .min(16, "ADMIN_TOKEN must be at least 16 characters long")
    .optional()
    .or(z.literal("").transform(() => undefined)),
  CONCORD_DEFAULT_POLICY: z.string().trim().min(1).default("policies/example.yaml"),
  /** The first console admin, created at start while no operator exists. Both or neither. */
  CONCORD_ADMIN_USERNAME: z
    .string()
    .trim()
    .optional()
    .or(z.literal("").transform(() => undefined)),
  CONCORD_ADMIN_PASSWORD: z
    .string()
    .optional()
    .or(z.literal("").transform(() => undefined)),
  /** Sync API requests per second per API key, per instance (bursts of twice that); 0 turns the limit off. */
  CONCORD_RATE_LIMIT: z.preprocess(
    (value) => (typeof value === "string" && value.trim() === "" ? undefined : value),
    z
      .string()
      .trim()
      .regex(/^(0|[1-9][0-9]{0,5})$/, "CONCORD_RATE_LIMIT must be a whole number of requests per second (0 turns the limit off)")
      .transform(Number)
      .optional()
      .transform((n) => n ?? DEFAULT_RATE_LIMIT),
  ),
  /**
   * How many reverse proxies stand in front of the hub and append the address
   * they saw to X-Forwarded-For. 0 (the default): X-Forwarded-For is ignored
   * and the client is the connection's peer address.
   */
  CONCORD_TRUST_PROXY: z.preprocess(
    (value) => (typeof value === "string" && value.trim() === "" ? undefined : value),
    z
      .string()
      .trim()
      .regex(/^(0|[1-9])$/, "CONCORD_TRUST_PROXY must be the number of reverse proxies in front of the hub, 0 to 9 (0: none, X-Forwarded-For is ignored)")
      .transform(Number)
      .optional()
      .transform((n) => n ?? 0),
  ),
  /**
   * 1 (the default): the hub compresses its JSON answers (brotli or gzip) for
   * clients that ask (lib/http/compression.ts). 0: never (a compressing
   * reverse proxy stands in front). Compressed request bodies are read either way.
   */
  CONCORD_COMPRESS: z.preprocess(
    (value) => (typeof value === "string" && value.trim() === "" ? undefined : value),
    z
      .string()
      .trim()
      .regex(/^[01]$/, "CONCORD_COMPRESS must be 1 (compress JSON answers for clients that ask) or 0 (never)")
      .optional()
      .transform((v) => v !== "0"),
  ),
  /**
   * The address operators type in the browser (scheme, host and port), when
   * the hub sits behind a proxy that changes them. Console writes must come
   * from this origin.
   */
  CONCORD_PUBLIC_URL: z
    .string()
    .trim()
    .optional()
    .transform((value, ctx) => {
      if (value === "") return undefined;
      if (value === undefined) return undefined;
      const origin = publicOrigin(value);
      if (origin === null) {
        ctx.addIssue({
          code: "custom",
          message: `CONCORD_PUBLIC_URL must be an http:// or https:// address with no path, query or user name, like https://concord.example.com (got "${value}")`,
        });
        return z.NEVER;
      }
      return origin;
    }),
}).refine((e) => (e.CONCORD_ADMIN_USERNAME === undefined) === (e.CONCORD_ADMIN_PASSWORD === undefined), {
  message: "set both CONCORD_ADMIN_USERNAME and CONCORD_ADMIN_PASSWORD, or neither",
  path: ["CONCORD_ADMIN_PASSWORD"],
});

export type Env = z.infer<typeof envSchema>;

/** The origin of a public URL (`https://host[:port]`), or null when it is not one. */
function publicOrigin(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") return null;
  if (url.username || url.password || url.search || url.hash || (url.pathname !== "/" && url.pathname !== "")) return null;
  return url.origin;
}

let cached: Env | undefined;

export function readEnv(source: Readonly<Record<string, string | undefined>> = process.env): Env {
  const parsed = envSchema.safeParse(source);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => `  ${issue.path.join(".")}: ${issue.message}`);
    throw new Error(`Concord cannot start: the environment is invalid.\n${lines.join("\n")}`);
  }
  return parsed.data;
}

export function env(): Env {
  cached ??= readEnv();
  return cached;
}

/** For tests that change process.env between cases. */
export function resetEnvCache(): void {
  cached = undefined;
}

import { z } from "zod";

/**
 * The environment, parsed and validated once. Every variable Concord reads is
 * listed here (and in the README's Configuration section).
 */
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
}).refine((e) => (e.CONCORD_ADMIN_USERNAME === undefined) === (e.CONCORD_ADMIN_PASSWORD === undefined), {
  message: "set both CONCORD_ADMIN_USERNAME and CONCORD_ADMIN_PASSWORD, or neither",
  path: ["CONCORD_ADMIN_PASSWORD"],
});

export type Env = z.infer<typeof envSchema>;

let cached: Env | undefined;

export function readEnv(source: NodeJS.ProcessEnv = process.env): Env {
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

import { chmod, mkdir, readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import { z } from "zod";
import { COLLECTION_PATTERN, RECORD_ID_PATTERN } from "../lib/sync/protocol";

/** A usage problem: the command was given something it cannot use. Exit code 2. */
export class UsageError extends Error {}

/** Where `concord` keeps its settings: `.concord/config.json` in the working directory, unless --config or CONCORD_CONFIG says otherwise. */
export const DEFAULT_CONFIG = path.join(".concord", "config.json");

/** The hub's API key format (lib/auth/api-keys.ts): `cnc_<12 hex>_<43 base64url>`. */
const KEY_PATTERN = /^cnc_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/;

export const serverSchema = z
  .string()
  .trim()
  .refine((v) => URL.canParse(v), "is not a URL; give the hub's address, e.g. http://localhost:3000")
  .transform((v) => new URL(v))
  .refine((u) => u.protocol === "http:" || u.protocol === "https:", "must start with http:// or https://")
  .refine((u) => u.search === "" && u.hash === "", "must not carry a query or fragment; give just the hub's address")
  .transform((u) => u.toString().replace(/\/+$/, ""));

export const keySchema = z
  .string()
  .trim()
  .regex(KEY_PATTERN, "does not look like a Concord API key (cnc_<12 hex>_<43 characters>); ask an operator: POST /api/admin/systems/<system>/keys");

export const collectionSchema = z
  .string()
  .regex(COLLECTION_PATTERN, "is not a collection name: a lowercase letter, then a-z, 0-9 or _ (at most 63 characters)");

export const recordIdSchema = z
  .string()
  .regex(RECORD_ID_PATTERN, "is not a record id: 1 to 256 printable characters, without control characters")
  .refine((id) => [...id].length <= 256, "is longer than 256 characters");

const fileSchema = z.strictObject({
  server: serverSchema,
  key: keySchema,
  /** The local store's folder, relative to the config file's folder (or absolute). */
  store: z.string().min(1),
});

export type CliConfig = z.infer<typeof fileSchema>;

/** Parses `value` with `schema`, or throws a UsageError naming `what` and the problem. */
export function valid<S extends z.ZodType>(schema: S, value: unknown, what: string): z.infer<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const where = issue && issue.path.length > 0 ? ` (${issue.path.join(".")})` : "";
  throw new UsageError(`${what}${where} ${issue?.message ?? "is invalid"}.`);
}

export function configPath(option: string | undefined): string {
  return path.resolve(option || process.env.CONCORD_CONFIG || DEFAULT_CONFIG);
}

export async function readConfig(file: string): Promise<CliConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    throw new UsageError(`There is no Concord configuration at ${file}; run \`concord init --server URL --key KEY\` first (or pass --config).`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UsageError(`${file} is not JSON; fix it, or run \`concord init --force ...\` again.`);
  }
  return valid(fileSchema, value, file);
}

export async function writeConfig(file: string, config: CliConfig): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, JSON.stringify(config, null, 2) + "\n", { mode: 0o600 });
  await chmod(file, 0o600); // it holds the API key
}

/** The store folder, resolved against the config file's folder. */
export function storeDir(file: string, config: CliConfig): string {
  return path.resolve(path.dirname(file), config.store);
}

import { eq } from "drizzle-orm";
import type { Database } from "../db/client";
import { settings } from "../db/schema";
import { digestsEqual, randomToken, sha256Hex } from "./secrets";

const SETTING_KEY = "admin_token_sha256";

export type AdminTokenSetup =
  | { source: "env" }
  | { source: "stored" }
  | { source: "generated"; token: string };

/**
 * With ADMIN_TOKEN set, that token guards the admin API. Without it, the first
 * start generates one, returns it to be printed once, and stores only its hash;
 * later starts find the hash. Concurrent first starts agree on one winner.
 */
export async function ensureAdminToken(db: Database, envToken: string | undefined): Promise<AdminTokenSetup> {
  if (envToken) return { source: "env" };
  const token = `cadm_${randomToken(32)}`;
  const inserted = await db
    .insert(settings)
    .values({ key: SETTING_KEY, value: sha256Hex(token) })
    .onConflictDoNothing()
    .returning({ key: settings.key });
  return inserted.length > 0 ? { source: "generated", token } : { source: "stored" };
}

/** Whether the presented token is the admin token (constant-time). */
export async function verifyAdminToken(
  db: Database,
  envToken: string | undefined,
  presented: string,
): Promise<boolean> {
  const presentedHash = sha256Hex(presented);
  if (envToken) return digestsEqual(presentedHash, sha256Hex(envToken));
  const [row] = await db.select({ value: settings.value }).from(settings).where(eq(settings.key, SETTING_KEY));
  return typeof row?.value === "string" && digestsEqual(presentedHash, row.value);
}

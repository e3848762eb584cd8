import { and, desc, eq, isNull, lt, or, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { apiKeys, auditLog, policyVersions, type ApiKeyRow } from "../db/schema";
import { ServiceError } from "../errors";
import { getActivePolicy } from "../policy/store";
import { digestsEqual, randomHex, randomToken, sha256Hex } from "./secrets";

/**
 * System API keys look like `cnc_<prefix>_<secret>`: the prefix (48 random
 * bits, not secret) names the key for lookup and revocation; the secret
 * carries 256 random bits. Only SHA-256(key) is stored.
 */
const KEY_PATTERN = /^cnc_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

/** NOTIFY channel on which a revocation tells every instance to end the key's open streams. */
export const KEYS_CHANNEL = "concord_keys";

export interface IssuedKey {
  key: string;
  prefix: string;
}

/** Issues a key for a system the active policy declares. */
export async function issueApiKey(
  db: Database,
  input: { system: string; actor: string },
): Promise<IssuedKey> {
  const active = await getActivePolicy(db);
  if (!active.compiled.hasSystem(input.system)) {
    throw new ServiceError(
      "not_found",
      `The active policy (version ${active.version}) declares no system "${input.system}"; add it under \`systems:\` before issuing it a key.`,
    );
  }
  for (let attempt = 0; attempt < 5; attempt++) {
    const prefix = randomHex(6);
    const key = `cnc_${prefix}_${randomToken(32)}`;
    const issued = await db.transaction(async (tx) => {
      const rows = await tx
        .insert(apiKeys)
        .values({ prefix, system: input.system, keyHash: sha256Hex(key), createdBy: input.actor })
        .onConflictDoNothing()
        .returning({ prefix: apiKeys.prefix });
      if (rows.length === 0) return false;
      await tx.insert(auditLog).values({
        actor: input.actor,
        action: "key.issue",
        target: `system:${input.system}`,
        details: { prefix },
      });
      return true;
    });
    if (issued) return { key, prefix };
  }
  throw new ServiceError("internal", "Could not allocate a unique key prefix; try again.");
}

export async function revokeApiKey(
  db: Database,
  input: { system: string; prefix: string; actor: string },
): Promise<{ prefix: string; revokedAt: Date }> {
  return db.transaction(async (tx) => {
    const [row] = await tx
      .update(apiKeys)
      .set({ revokedAt: new Date() })
      .where(and(eq(apiKeys.prefix, input.prefix), eq(apiKeys.system, input.system), isNull(apiKeys.revokedAt)))
      .returning({ prefix: apiKeys.prefix, revokedAt: apiKeys.revokedAt });
    if (!row?.revokedAt) {
      throw new ServiceError(
        "not_found",
        `System "${input.system}" has no active key with prefix "${input.prefix}" (it may be revoked already).`,
      );
    }
    await tx.execute(sql`select pg_notify(${KEYS_CHANNEL}, ${input.prefix})`);
    await tx.insert(auditLog).values({
      actor: input.actor,
      action: "key.revoke",
      target: `system:${input.system}`,
      details: { prefix: input.prefix },
    });
    return { prefix: row.prefix, revokedAt: row.revokedAt };
  });
}

export async function listApiKeys(db: Database, system: string): Promise<Omit<ApiKeyRow, "keyHash">[]> {
  return db
    .select({
      prefix: apiKeys.prefix,
      system: apiKeys.system,
      createdBy: apiKeys.createdBy,
      createdAt: apiKeys.createdAt,
      revokedAt: apiKeys.revokedAt,
      lastUsedAt: apiKeys.lastUsedAt,
    })
    .from(apiKeys)
    .where(eq(apiKeys.system, system))
    .orderBy(desc(apiKeys.createdAt));
}

const LAST_USED_GRANULARITY_MS = 60_000;

/**
 * The system a presented key belongs to (and the key's prefix), or null for an
 * unknown, malformed or revoked key (the caller answers 401 without saying which).
 * The key is read on every request, so a revoked key stops working at once on
 * every instance; the same statement reads the active policy version
 * (`policyVersion`, null when none), so a sync request learns both in one round trip.
 */
export async function authenticateApiKey(
  db: Database,
  presented: string,
): Promise<{ system: string; prefix: string; policyVersion: number | null } | null> {
  const match = KEY_PATTERN.exec(presented);
  if (!match) return null;
  const prefix = match[1] as string;
  const [row] = await db
    .select({
      system: apiKeys.system,
      keyHash: apiKeys.keyHash,
      revokedAt: apiKeys.revokedAt,
      lastUsedAt: apiKeys.lastUsedAt,
      policyVersion: sql<number | string | null>`(select max(${policyVersions.version}) from ${policyVersions})`,
    })
    .from(apiKeys)
    .where(eq(apiKeys.prefix, prefix));
  if (!row || row.revokedAt || !digestsEqual(sha256Hex(presented), row.keyHash)) return null;
  // Record use at most once a minute per key, so requests do not each cost a write (or a round trip).
  const stale = new Date(Date.now() - LAST_USED_GRANULARITY_MS);
  if (row.lastUsedAt === null || row.lastUsedAt < stale) {
    await db
      .update(apiKeys)
      .set({ lastUsedAt: new Date() })
      .where(and(eq(apiKeys.prefix, prefix), or(isNull(apiKeys.lastUsedAt), lt(apiKeys.lastUsedAt, stale))));
  }
  return { system: row.system, prefix, policyVersion: row.policyVersion === null ? null : Number(row.policyVersion) };
}

import { describeScope, type CompiledPolicy } from "../policy/compile";
import type { SyncContext } from "./context";
import type { CollectionConfig, ConfigResponse } from "./protocol";

/**
 * GET /api/v1/config: the calling system's effective configuration under the
 * active policy (the broadcast of claim 2). Collections it can neither read nor
 * write are left out, so a system learns nothing of collections it has no part in.
 */
export function readConfig({ ctx, now = new Date() }: { ctx: SyncContext; now?: Date }): ConfigResponse {
  const { intervalSeconds, realtime } = ctx.policy.compiled.sync(ctx.system);
  return {
    system: ctx.system,
    policyVersion: ctx.policy.version,
    collections: collectionConfigs(ctx.policy.compiled, ctx.system),
    sync: { intervalSeconds, realtime },
    serverTime: now.toISOString(),
  };
}

/** The system's read and write scopes and conflict strategy per collection it has a part in (what /config broadcasts). */
export function collectionConfigs(compiled: CompiledPolicy, system: string): Record<string, CollectionConfig> {
  const collections: Record<string, CollectionConfig> = {};
  for (const collection of compiled.collectionNames()) {
    const read = describeScope(compiled.scope(system, collection, "read"));
    const write = describeScope(compiled.scope(system, collection, "write"));
    if (read === null && write === null) continue;
    const { strategy, fallback } = compiled.conflict(system, collection);
    collections[collection] = { read, write, conflict: { strategy, fallback } };
  }
  return collections;
}

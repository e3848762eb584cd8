import { ServiceError } from "../errors";
import type { Action, Scope } from "../policy/compile";
import type { SyncContext } from "./context";
import { COLLECTION_PATTERN } from "./protocol";

/**
 * The caller's scope on a collection for an action, after checking that the
 * collection exists: 400 for a malformed name, 404 `unknown_collection` for one
 * the policy does not declare, 403 when the system has no such right on it.
 */
export function requireScope(ctx: SyncContext, collection: string, action: Action): Scope {
  if (!COLLECTION_PATTERN.test(collection)) {
    throw new ServiceError(
      "invalid_request",
      "The collection name in the path is invalid: it starts with a lowercase letter and uses only a-z, 0-9 and _.",
    );
  }
  const compiled = ctx.policy.compiled;
  if (!compiled.hasCollection(collection)) {
    throw new ServiceError(
      "unknown_collection",
      `There is no collection "${collection}" in the active policy (version ${ctx.policy.version}).`,
    );
  }
  const scope = compiled.scope(ctx.system, collection, action);
  if (scope.grants.length === 0 && action === "read") {
    throw new ServiceError(
      "forbidden",
      `System "${ctx.system}" may not read collection "${collection}" under policy version ${ctx.policy.version}.`,
    );
  }
  return scope;
}

import { verifyAdminToken } from "../auth/admin-token";
import { authenticateApiKey } from "../auth/api-keys";
import { getActivePolicy } from "../policy/store";
import type { SyncContext } from "../sync/context";
import { POLICY_VERSION_HEADER } from "../sync/protocol";
import { bearerToken } from "../auth/secrets";
import { env } from "../env";
import { ServiceError } from "../errors";
import { getHub, type Hub } from "../hub";
import { errorResponse } from "./respond";

/** Next.js passes dynamic route segments as a promise. */
export interface RouteArgs<P> {
  params: Promise<P>;
}

export interface AdminContext {
  hub: Hub;
  /** Who acted, for the audit log. */
  actor: string;
}

/**
 * Guards an admin automation route with the admin token. Without a valid
 * token the answer is 401 and says nothing about what the route holds.
 */
export function withAdmin<P>(
  handler: (ctx: AdminContext, request: Request, params: P) => Promise<Response>,
): (request: Request, args: RouteArgs<P>) => Promise<Response> {
  return async (request, args) => {
    try {
      const hub = await getHub();
      const token = bearerToken(request.headers.get("authorization"));
      if (!token || !(await verifyAdminToken(hub.db, env().ADMIN_TOKEN, token))) {
        throw new ServiceError(
          "unauthenticated",
          "This route needs the admin token: send `Authorization: Bearer <admin token>` (ADMIN_TOKEN, or the token printed at first start).",
        );
      }
      return await handler({ hub, actor: "admin-token" }, request, await args.params);
    } catch (error) {
      return errorResponse(error);
    }
  };
}

/** A route anyone may call (health). Errors still use the envelope. */
export function withPublic(handler: (hub: Hub, request: Request) => Promise<Response>): (request: Request) => Promise<Response> {
  return async (request) => {
    try {
      return await handler(await getHub(), request);
    } catch (error) {
      return errorResponse(error);
    }
  };
}

/**
 * Guards a sync route with a system API key, loads the active policy, and
 * stamps every answer (errors included) with X-Policy-Version, so a client
 * notices a policy change on any call.
 */
export function withSystem<P>(
  handler: (ctx: SyncContext, request: Request, params: P) => Promise<Response>,
): (request: Request, args: RouteArgs<P>) => Promise<Response> {
  return async (request, args) => {
    let policyVersion: number | undefined;
    try {
      const hub = await getHub();
      const key = bearerToken(request.headers.get("authorization"));
      const caller = key ? await authenticateApiKey(hub.db, key) : null;
      if (!caller) {
        throw new ServiceError(
          "unauthenticated",
          "This route needs a system API key: send `Authorization: Bearer <key>`. The key may be wrong or revoked; ask an operator for a new one.",
        );
      }
      const { system, prefix } = caller;
      const policy = await getActivePolicy(hub.db);
      policyVersion = policy.version;
      if (!policy.compiled.hasSystem(system)) {
        throw new ServiceError(
          "forbidden",
          `System "${system}" is not declared in the active policy (version ${policy.version}), so it may not sync; an operator must add it back.`,
        );
      }
      const response = await handler({ db: hub.db, system, policy, keyPrefix: prefix }, request, await args.params);
      response.headers.set(POLICY_VERSION_HEADER, String(policy.version));
      return response;
    } catch (error) {
      return errorResponse(error, policyVersion === undefined ? undefined : { [POLICY_VERSION_HEADER]: String(policyVersion) });
    }
  };
}

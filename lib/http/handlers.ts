import { verifyAdminToken } from "../auth/admin-token";
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

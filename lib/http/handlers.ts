import { verifyAdminToken } from "../auth/admin-token";
import { authenticateApiKey } from "../auth/api-keys";
import { operatorMay, type ConsoleArea } from "../auth/console-rights";
import { operatorForSession, SESSION_COOKIE } from "../auth/operators";
import { getActivePolicy } from "../policy/store";
import type { SyncContext } from "../sync/context";
import { POLICY_VERSION_HEADER } from "../sync/protocol";
import { bearerToken } from "../auth/secrets";
import { env } from "../env";
import { ServiceError } from "../errors";
import { getHub, type Hub } from "../hub";
import { noteSystemError, noteSystemSuccess } from "../sync/activity";
import { handleClosed, isDatabaseUnavailable } from "../db/unavailable";
import { originProblem, originSettings } from "./origin";
import { encodeResponse } from "./compression";
import { databaseUnavailable, errorResponse, newRequestId, withRequestId } from "./respond";
import { addressBudget, authFailureBudget, noteAuthFailure, rateLimiter } from "./rate-limit";

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
 * Guards an admin route. Automation sends the admin token (`Authorization:
 * Bearer`), which may do everything; the console's operators send their
 * session cookie, and Casbin decides by role: GET reads, any other method
 * writes `area`. A cookie-authenticated write must come from the hub's own
 * pages (Origin check), so another site cannot ride an operator's session.
 * Without either the answer is 401 and says nothing about what the route holds.
 */
export function withAdmin<P>(
  area: ConsoleArea,
  handler: (ctx: AdminContext, request: Request, params: P) => Promise<Response>,
): (request: Request, args: RouteArgs<P>) => Promise<Response> {
  return async (request, args) => {
    const requestId = newRequestId();
    let hub: Hub | undefined;
    try {
      hub = await getHub();
      const actor = await adminActor(hub, request, area);
      return await encodeResponse(request, withRequestId(await handler({ hub, actor }, request, await args.params), requestId));
    } catch (error) {
      return encodeResponse(request, errorResponse(failure(error, hub), undefined, requestId));
    }
  };
}

async function adminActor(hub: Hub, request: Request, area: ConsoleArea): Promise<string> {
  const token = bearerToken(request.headers.get("authorization"));
  if (token) {
    const failures = authFailureBudget(request);
    if (await verifyAdminToken(hub.db, env().ADMIN_TOKEN, token)) return "admin-token";
    noteAuthFailure(failures);
    throw new ServiceError("unauthenticated", "That is not the admin token: send ADMIN_TOKEN, or the token printed at first start.");
  }
  const operator = await operatorForSession(hub.db, cookieValue(request.headers.get("cookie"), SESSION_COOKIE));
  if (!operator) {
    throw new ServiceError(
      "unauthenticated",
      "This route needs the admin token (`Authorization: Bearer <admin token>`: ADMIN_TOKEN, or the token printed at first start) or a console session.",
    );
  }
  const action = request.method === "GET" || request.method === "HEAD" ? "read" : "write";
  if (!(await operatorMay(operator.role, area, action))) {
    throw new ServiceError(
      "forbidden",
      `Operator "${operator.username}" has the ${operator.role} role, which may not ${action === "write" ? "change" : "read"} ${area}; ask an admin.`,
    );
  }
  const problem = action === "write" ? originProblem(request, originSettings()) : null;
  if (problem) throw new ServiceError("forbidden", problem);
  return operator.username;
}

/** One cookie's value from a Cookie header. */
export function cookieValue(header: string | null, name: string): string | undefined {
  if (!header) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
  }
  return undefined;
}

/** A route anyone may call (health). Errors still use the envelope. */
export function withPublic(handler: (hub: Hub, request: Request) => Promise<Response>): (request: Request) => Promise<Response> {
  return async (request) => {
    const requestId = newRequestId();
    let hub: Hub | undefined;
    try {
      hub = await getHub();
      return await encodeResponse(request, withRequestId(await handler(hub, request), requestId));
    } catch (error) {
      return encodeResponse(request, errorResponse(failure(error, hub), undefined, requestId));
    }
  };
}

/** The error to answer with: a failure because the database handle was closed under the request is `unavailable`, whatever the driver threw. */
function failure(error: unknown, hub: Hub | undefined): unknown {
  return hub && !isDatabaseUnavailable(error) && handleClosed(hub.handle) ? databaseUnavailable() : error;
}

/**
 * Guards a sync route with a system API key, loads the active policy, and
 * stamps every answer (errors included) with X-Policy-Version, so a client
 * notices a policy change on any call. Every adapter here compresses its JSON
 * answers, errors included, as the request's Accept-Encoding asks
 * (./compression.ts); event streams pass as they are.
 */
export function withSystem<P>(
  handler: (ctx: SyncContext, request: Request, params: P) => Promise<Response>,
): (request: Request, args: RouteArgs<P>) => Promise<Response> {
  return async (request, args) => {
    const requestId = newRequestId();
    let policyVersion: number | undefined;
    let caller: { system: string; prefix: string; policyVersion: number | null } | null = null;
    let hub: Hub | undefined;
    try {
      hub = await getHub();
      const key = bearerToken(request.headers.get("authorization"));
      caller = key ? await authenticateApiKey(hub.db, key) : null;
      if (!caller) {
        // A valid key is never refused for its address's failures (another client behind the same
        // NAT must not stall this one); an address that keeps sending bad keys gets 429 instead of
        // 401. Keys carry 256 random bits, so checking first gives a guesser nothing to use.
        noteAuthFailure(addressBudget(request));
        throw new ServiceError(
          "unauthenticated",
          "This route needs a system API key: send `Authorization: Bearer <key>`. The key may be wrong or revoked; ask an operator for a new one.",
        );
      }
      const { system, prefix } = caller;
      // The key's lookup read the active version too: no second round trip unless it is not loaded yet.
      const policy = await getActivePolicy(hub.db, caller.policyVersion ?? undefined);
      policyVersion = policy.version;
      const limit = rateLimiter(env().CONCORD_RATE_LIMIT)?.take(prefix);
      if (limit && !limit.ok) {
        const retryAfterSeconds = Math.max(1, Math.ceil(limit.retryAfterMs / 1000));
        throw new ServiceError(
          "rate_limited",
          `This API key sent more than ${env().CONCORD_RATE_LIMIT} requests per second; wait ${retryAfterSeconds} s (Retry-After) before the next one. A client that syncs on an interval or on debounced events never needs this many.`,
          { retryAfterSeconds },
        );
      }
      if (!policy.compiled.hasSystem(system)) {
        throw new ServiceError(
          "forbidden",
          `System "${system}" is not declared in the active policy (version ${policy.version}), so it may not sync; an operator must add it back.`,
        );
      }
      const response = withRequestId(await handler({ db: hub.db, system, policy, keyPrefix: prefix }, request, await args.params), requestId);
      response.headers.set(POLICY_VERSION_HEADER, String(policy.version));
      if (response.ok) await noteSystemSuccess(hub.db, system);
      return await encodeResponse(request, response);
    } catch (error) {
      const answered = failure(error, hub);
      const response = errorResponse(
        answered,
        policyVersion === undefined ? undefined : { [POLICY_VERSION_HEADER]: String(policyVersion) },
        requestId,
      );
      // Without a database there is nowhere to note the error (and trying would only wait for another timeout).
      if (hub && caller && !isDatabaseUnavailable(answered) && !(answered instanceof ServiceError && answered.code === "unavailable")) {
        const message = answered instanceof ServiceError ? answered.message : "internal error";
        await noteSystemError(hub.db, caller.system, answered instanceof ServiceError ? answered.code : "internal", message);
      }
      return encodeResponse(request, response);
    }
  };
}

import { cookies, headers } from "next/headers";
import { redirect } from "next/navigation";
import { cache } from "react";
import { operatorMay, type ConsoleAction, type ConsoleArea } from "@/lib/auth/console-rights";
import { operatorForSession, SESSION_COOKIE, type Operator } from "@/lib/auth/operators";
import { env } from "@/lib/env";
import { isServiceError } from "@/lib/errors";
import { safeNextPath } from "@/lib/console/next-path";
import { clientAddress } from "@/lib/http/client-address";
import { PAGE_PATH_HEADER } from "@/lib/http/security-headers";
import { getHub, type Hub } from "@/lib/hub";
import { log } from "@/lib/log";

/**
 * The console's edge: who is signed in, and whether they may do what they
 * ask. Every page calls requireOperator(area) and every server action runs
 * through operatorAction(area, ...); rights are decided by Casbin
 * (lib/auth/console-rights.ts), on the server, on every call.
 */

export interface OperatorContext {
  hub: Hub;
  operator: Operator;
  /** Whether this operator may change things in the area (shows or hides controls; the server checks again). */
  canWrite: boolean;
}

/**
 * The signed-in operator of this request. Memoised per server render (React's
 * cache): the layout and the page both ask, and the session is read once.
 */
export const currentOperator = cache(async (): Promise<{ hub: Hub; operator: Operator | null }> => {
  const hub = await getHub();
  const token = (await cookies()).get(SESSION_COOKIE)?.value;
  return { hub, operator: await operatorForSession(hub.db, token) };
});

/** The sign-in page, with the page that was asked for as `next` (proxy.ts names it). */
async function signInUrl(): Promise<string> {
  const next = safeNextPath((await headers()).get(PAGE_PATH_HEADER));
  return next === "/" ? "/sign-in" : `/sign-in?next=${encodeURIComponent(next)}`;
}

/** For pages: the signed-in operator allowed to read `area`, or a redirect to sign-in. */
export async function requireOperator(area: ConsoleArea): Promise<OperatorContext> {
  const { hub, operator } = await currentOperator();
  if (!operator) redirect(await signInUrl());
  if (!(await operatorMay(operator.role, area, "read"))) redirect("/?denied=" + encodeURIComponent(area));
  return { hub, operator, canWrite: await operatorMay(operator.role, area, "write") };
}

export type ActionResult<T = undefined> = { ok: true; value: T; message?: string } | { ok: false; message: string };

/**
 * For server actions: checks the session and the role's right on `area`
 * before running `fn`, and turns a ServiceError into a message for the form.
 * Server actions are reachable by a direct POST, so this check is the guard,
 * not the hidden button.
 */
export async function operatorAction<T>(
  area: ConsoleArea,
  action: ConsoleAction,
  fn: (ctx: { hub: Hub; operator: Operator }) => Promise<T>,
): Promise<ActionResult<T>> {
  const { hub, operator } = await currentOperator();
  if (!operator) return { ok: false, message: "Your session has ended. Sign in again." };
  if (!(await operatorMay(operator.role, area, action))) {
    return { ok: false, message: `Your role (${operator.role}) may not ${action === "write" ? "change" : "read"} ${area}. Ask an admin.` };
  }
  try {
    return { ok: true, value: await fn({ hub, operator }) };
  } catch (error) {
    if (isServiceError(error)) return { ok: false, message: error.message };
    log.error(`console action on ${area} failed`, error);
    return { ok: false, message: "Something went wrong on the server; the change was not made. The server log has the details." };
  }
}

/** Whether the console is served over HTTPS (directly or behind a proxy): session cookies are then Secure. */
export async function requestIsHttps(): Promise<boolean> {
  const h = await headers();
  const proto = h.get("x-forwarded-proto")?.split(",")[0]?.trim();
  return proto === "https";
}

/** The client's address (lib/http/client-address.ts), for the sign-in throttle and the audit log. */
export async function requestAddress(): Promise<string> {
  return clientAddress(await headers(), env().CONCORD_TRUST_PROXY);
}

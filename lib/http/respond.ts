import { randomUUID } from "node:crypto";
import { ZodError } from "zod";
import { unavailableCause } from "../db/unavailable";
import { isServiceError, ServiceError, type ErrorCode } from "../errors";
import { log } from "../log";
import { REQUEST_CODINGS_HEADER, responseOfBytes } from "./compression";

const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  unknown_collection: 404,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  unsupported_encoding: 415,
  policy_invalid: 422,
  resync_required: 410,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

/** Every answer names its request, so a person can find it in the server log; errors repeat it as `error.requestId`. */
export const REQUEST_ID_HEADER = "X-Request-Id";

/** How long a client should wait before trying again while the database cannot be reached. */
export const UNAVAILABLE_RETRY_SECONDS = 5;

export function statusFor(code: ErrorCode): number {
  return STATUS[code];
}

/**
 * A fresh request id: random, so that it says nothing about other requests
 * (a counter would tell a caller how busy the hub is).
 */
export function newRequestId(): string {
  return randomUUID();
}

export function json(body: unknown, init: ResponseInit = {}): Response {
  const headers = new Headers(init.headers);
  headers.set("content-type", "application/json; charset=utf-8");
  headers.set("cache-control", "no-store");
  return responseOfBytes(Buffer.from(JSON.stringify(body), "utf8"), { ...init, headers });
}

/** The response with X-Request-Id set (a copy when its headers cannot be changed). */
export function withRequestId(response: Response, requestId: string): Response {
  try {
    response.headers.set(REQUEST_ID_HEADER, requestId);
    return response;
  } catch {
    const headers = new Headers(response.headers);
    headers.set(REQUEST_ID_HEADER, requestId);
    return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
  }
}

/**
 * The protocol's error envelope: `{"error": {"code", "message", "details"?,
 * "requestId"}}`, with X-Request-Id. A database that cannot be reached is 503
 * `unavailable` with Retry-After, not a failure of the request.
 */
export function errorResponse(error: unknown, headers?: HeadersInit, requestId: string = newRequestId()): Response {
  const known = toServiceError(error, requestId);
  const h = new Headers(headers);
  h.set(REQUEST_ID_HEADER, requestId);
  if (known) {
    const body = {
      code: known.code,
      message: known.message,
      ...(known.details === undefined ? {} : { details: known.details }),
      requestId,
    };
    if (known.code === "unauthenticated") h.set("www-authenticate", 'Bearer realm="concord"');
    // RFC 7694: a 415 for a request body's coding names the codings the hub reads.
    if (known.code === "unsupported_encoding") h.set("accept-encoding", REQUEST_CODINGS_HEADER);
    const retryAfter = retryAfterSeconds(known);
    if (retryAfter !== undefined) h.set("retry-after", String(retryAfter));
    return json({ error: body }, { status: statusFor(known.code), headers: h });
  }
  // Unknown failures are logged under the request id; the caller gets no internals.
  log.error(`request ${requestId} failed`, error);
  return json(
    {
      error: {
        code: "internal",
        message: `The server failed to handle this request (request id ${requestId}). Nothing was changed unless a result said so; retry, and report the id if it persists.`,
        requestId,
      },
    },
    { status: 500, headers: h },
  );
}

function retryAfterSeconds(error: ServiceError): number | undefined {
  if (error.code === "unavailable") return UNAVAILABLE_RETRY_SECONDS;
  if (error.code !== "rate_limited") return undefined;
  const details = error.details as { retryAfterSeconds?: unknown } | undefined;
  return typeof details?.retryAfterSeconds === "number" ? details.retryAfterSeconds : undefined;
}

function toServiceError(error: unknown, requestId: string): ServiceError | null {
  if (isServiceError(error)) return error.code === "internal" ? logged(error, requestId) : error;
  if (error instanceof ZodError) return invalidRequest(error);
  const unavailable = unavailableCause(error);
  if (unavailable) {
    // The driver's own words; not the failed query, whose parameters may hold a record's data.
    log.warn(`request ${requestId}: the database cannot be reached (${unavailable.message})`);
    return databaseUnavailable();
  }
  return null;
}

/** The one answer for a database that cannot be reached right now. */
export function databaseUnavailable(): ServiceError {
  return new ServiceError(
    "unavailable",
    `The hub cannot reach its database right now. Send the request again in ${UNAVAILABLE_RETRY_SECONDS} seconds (Retry-After) or later: every sync call is safe to repeat, and a push is applied once per changeId.`,
  );
}

function logged(error: ServiceError, requestId: string): ServiceError {
  log.error(`request ${requestId}: ${error.message}`);
  return error;
}

/** A zod failure as `invalid_request`, naming each field that is wrong. */
export function invalidRequest(error: ZodError, what = "request"): ServiceError {
  const details = error.issues.map((issue) => ({
    path: issue.path.map(String).join("."),
    message: issue.message,
  }));
  const first = details[0];
  const where = first?.path ? `${first.path}: ` : "";
  return new ServiceError(
    "invalid_request",
    `The ${what} is invalid: ${where}${first?.message ?? "unknown problem"}${details.length > 1 ? ` (and ${details.length - 1} more)` : ""}.`,
    details,
  );
}

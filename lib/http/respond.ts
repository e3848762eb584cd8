import { randomUUID } from "node:crypto";
import { ZodError } from "zod";
import { isServiceError, ServiceError, type ErrorCode } from "../errors";
import { log } from "../log";

const STATUS: Record<ErrorCode, number> = {
  invalid_request: 400,
  unauthenticated: 401,
  forbidden: 403,
  unknown_collection: 404,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  policy_invalid: 422,
  resync_required: 410,
  rate_limited: 429,
  unavailable: 503,
  internal: 500,
};

export function statusFor(code: ErrorCode): number {
  return STATUS[code];
}

export function json(body: unknown, init: ResponseInit = {}): Response {
  const headers = new Headers(init.headers);
  headers.set("content-type", "application/json; charset=utf-8");
  headers.set("cache-control", "no-store");
  return new Response(JSON.stringify(body), { ...init, headers });
}

/** The protocol's error envelope: `{"error": {"code", "message", "details"?}}`. */
export function errorResponse(error: unknown, headers?: HeadersInit): Response {
  const known = toServiceError(error);
  if (known) {
    const body: { code: ErrorCode; message: string; details?: unknown } = { code: known.code, message: known.message };
    if (known.details !== undefined) body.details = known.details;
    const h = new Headers(headers);
    if (known.code === "unauthenticated") h.set("www-authenticate", 'Bearer realm="concord"');
    const retryAfter = retryAfterSeconds(known);
    if (retryAfter !== undefined) h.set("retry-after", String(retryAfter));
    return json({ error: body }, { status: statusFor(known.code), headers: h });
  }
  // Unknown failures are logged with an id the operator can find; the caller gets no internals.
  const id = randomUUID();
  log.error(`request failed (error id ${id})`, error);
  return json(
    {
      error: {
        code: "internal",
        message: `The server failed to handle this request (error id ${id}). Nothing was changed unless a result said so; retry, and report the id if it persists.`,
      },
    },
    { status: 500, headers },
  );
}

function retryAfterSeconds(error: ServiceError): number | undefined {
  if (error.code !== "rate_limited") return undefined;
  const details = error.details as { retryAfterSeconds?: unknown } | undefined;
  return typeof details?.retryAfterSeconds === "number" ? details.retryAfterSeconds : undefined;
}

function toServiceError(error: unknown): ServiceError | null {
  if (isServiceError(error)) return error.code === "internal" ? logged(error) : error;
  if (error instanceof ZodError) return invalidRequest(error);
  return null;
}

function logged(error: ServiceError): ServiceError {
  log.error(error.message);
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

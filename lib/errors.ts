/**
 * Domain errors. Domain code throws ServiceError with one of these codes and a
 * sentence a person can act on; lib/http maps codes to HTTP statuses. This file
 * imports nothing so every layer may use it.
 */
export const ERROR_CODES = [
  "invalid_request",
  "unauthenticated",
  "forbidden",
  "unknown_collection",
  "not_found",
  "conflict",
  "payload_too_large",
  "unsupported_encoding",
  "policy_invalid",
  "resync_required",
  "rate_limited",
  "unavailable",
  "internal",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class ServiceError extends Error {
  readonly code: ErrorCode;
  readonly details: unknown;

  constructor(code: ErrorCode, message: string, details?: unknown) {
    super(message);
    this.name = "ServiceError";
    this.code = code;
    this.details = details;
  }
}

export function isServiceError(error: unknown): error is ServiceError {
  return error instanceof ServiceError;
}

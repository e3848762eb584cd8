/**
 * The SDK's errors. Every message says what to do next; `instanceof` tells
 * the host program which kind it is (ConcordError for all of them).
 */

export class ConcordError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The hub answered with a non-2xx status and the protocol's error envelope (or something else). */
export class HttpError extends ConcordError {
  readonly status: number;
  /** The protocol's `error.code` (`invalid_request`, `forbidden`, `rate_limited`, …), or `http_<status>` without an envelope. */
  readonly code: string;
  readonly details: unknown;
  /** The hub's Retry-After, in milliseconds, when it sent one (429). */
  readonly retryAfterMs: number | undefined;

  constructor(status: number, code: string, message: string, details?: unknown, retryAfterMs?: number) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfterMs = retryAfterMs;
  }

  /** Worth retrying later: the hub is overloaded or failed, not the request. */
  get retryable(): boolean {
    return this.status === 429 || this.status >= 500;
  }
}

/** 401: the API key is missing, wrong or revoked. Retrying does not help. */
export class AuthError extends HttpError {}

/**
 * The hub could not be reached (offline, DNS, refused, reset), or answered 503
 * (it cannot reach its database, or a proxy has no hub behind it). Local
 * writes stay queued with their changeIds; background sync backs off.
 */
export class NetworkError extends ConcordError {
  /** How long the hub asked to wait (503 with Retry-After), in milliseconds. */
  readonly retryAfterMs: number | undefined;

  constructor(message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** The hub answered 2xx with a body this SDK does not understand: a hub or proxy that does not speak protocol v1. */
export class ProtocolError extends ConcordError {}

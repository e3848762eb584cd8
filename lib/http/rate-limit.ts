import { env } from "../env";
import { ServiceError } from "../errors";
import { addressBucket, clientAddress } from "./client-address";

/**
 * Per-key request limits for the sync API (protocol.md: 429 `rate_limited`).
 *
 * A token bucket per API key, in the instance's memory: each key may make
 * `rate` requests per second on average and up to `2 × rate` in a burst. A
 * well-behaved client (debounced real time, an interval of seconds) never comes
 * near the default; a client stuck in a loop is slowed down before it starves
 * the others. With several instances behind a load balancer each instance
 * counts on its own, so the hub-wide limit is `rate × instances`.
 */

export interface Take {
  ok: boolean;
  /** When refused: milliseconds until one more request would be allowed. */
  retryAfterMs: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** Buckets kept before idle (full) ones are swept. */
const SWEEP_AT = 10_000;

export class RateLimiter {
  readonly rate: number;
  readonly capacity: number;
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;

  constructor(rate: number, now: () => number = () => performance.now()) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new RangeError(`rate must be a positive number of requests per second (got ${rate})`);
    this.rate = rate;
    this.capacity = Math.max(1, 2 * rate);
    this.now = now;
  }

  /** Spends one request of `key`'s budget, or says how long to wait. */
  take(key: string): Take {
    const now = this.now();
    const bucket = this.buckets.get(key);
    let tokens = this.capacity;
    if (bucket) tokens = Math.min(this.capacity, bucket.tokens + ((now - bucket.at) / 1000) * this.rate);
    if (tokens >= 1) {
      this.remember(key, { tokens: tokens - 1, at: now }, now);
      return { ok: true, retryAfterMs: 0 };
    }
    this.remember(key, { tokens, at: now }, now);
    return { ok: false, retryAfterMs: Math.ceil(((1 - tokens) / this.rate) * 1000) };
  }

  /** Milliseconds until `key` may make one more request (0: now); spends nothing. */
  wait(key: string): number {
    const bucket = this.buckets.get(key);
    if (!bucket) return 0;
    const tokens = Math.min(this.capacity, bucket.tokens + ((this.now() - bucket.at) / 1000) * this.rate);
    return tokens >= 1 ? 0 : Math.ceil(((1 - tokens) / this.rate) * 1000);
  }

  /** Number of keys with a bucket (for tests). */
  get size(): number {
    return this.buckets.size;
  }

  private remember(key: string, bucket: Bucket, now: number): void {
    this.buckets.set(key, bucket);
    if (this.buckets.size <= SWEEP_AT) return;
    // A bucket that has refilled completely is the same as no bucket.
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.rate >= this.capacity) this.buckets.delete(k);
    }
  }
}

const LIMITER = Symbol.for("concord.rateLimiter");
type WithLimiter = typeof globalThis & { [LIMITER]?: RateLimiter };

/**
 * The process's limiter for `rate` requests per second (0: no limit). Kept on
 * globalThis: Next.js may load this module more than once in one process.
 */
export function rateLimiter(rate: number): RateLimiter | null {
  if (rate <= 0) return null;
  const g = globalThis as WithLimiter;
  if (g[LIMITER]?.rate !== rate) g[LIMITER] = new RateLimiter(rate);
  return g[LIMITER];
}

// ---------------------------------------------------------------------------
// Failed authentications per client address

/**
 * Failed authentications — a missing, wrong or revoked API key, a wrong admin
 * token — that one client address (an IPv6 /64) may make per second, in
 * bursts of twice that, per instance. A client that keeps failing is then
 * refused with 429 before its credentials are even looked at, so guessing
 * keys costs the hub nothing; a client with a valid key never spends from
 * this budget.
 */
export const AUTH_FAILURE_RATE = 5;

const FAILURES = Symbol.for("concord.authFailureLimiter");
type WithFailures = typeof globalThis & { [FAILURES]?: RateLimiter };

function failureLimiter(): RateLimiter {
  const g = globalThis as WithFailures;
  g[FAILURES] ??= new RateLimiter(AUTH_FAILURE_RATE);
  return g[FAILURES];
}

function tooManyFailures(retryAfterMs: number): ServiceError {
  const retryAfterSeconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  return new ServiceError(
    "rate_limited",
    `Too many requests from your address had a missing, wrong or revoked key or token; wait ${retryAfterSeconds} s (Retry-After) before the next one. Check the key: an operator can issue a new one if it was revoked.`,
    { retryAfterSeconds },
  );
}

/**
 * Before credentials are checked: the caller's failure budget (its address),
 * or 429 `rate_limited` when that address has failed too often lately.
 */
export function authFailureBudget(request: Request): string {
  const budget = addressBudget(request);
  const wait = failureLimiter().wait(budget);
  if (wait > 0) throw tooManyFailures(wait);
  return budget;
}

/** The failure budget a request's client address spends from. */
export function addressBudget(request: Request): string {
  return addressBucket(clientAddress(request.headers, env().CONCORD_TRUST_PROXY));
}

/** After credentials failed: spends from the budget; 429 when this failure was one too many. */
export function noteAuthFailure(budget: string): void {
  const taken = failureLimiter().take(budget);
  if (!taken.ok) throw tooManyFailures(taken.retryAfterMs);
}

import { describe, expect, it } from "vitest";
import { RateLimiter, rateLimiter } from "@/lib/http/rate-limit";
import { readEnv, DEFAULT_RATE_LIMIT } from "@/lib/env";

describe("RateLimiter (token bucket per API key)", () => {
  it("allows a burst of twice the rate, then refuses with the time until the next request", () => {
    let now = 0;
    const limiter = new RateLimiter(5, () => now);
    for (let i = 0; i < 10; i++) expect(limiter.take("k").ok).toBe(true);
    const refused = limiter.take("k");
    expect(refused.ok).toBe(false);
    expect(refused.retryAfterMs).toBe(200); // one token at 5 per second
    now += 199;
    expect(limiter.take("k").ok).toBe(false);
    now += 201;
    expect(limiter.take("k").ok).toBe(true);
  });

  it("says how long a key must wait without spending anything", () => {
    let now = 0;
    const limiter = new RateLimiter(2, () => now);
    expect(limiter.wait("k")).toBe(0);
    for (let i = 0; i < 4; i++) limiter.take("k");
    expect(limiter.wait("k")).toBe(500);
    expect(limiter.wait("k")).toBe(500);
    now += 500;
    expect(limiter.wait("k")).toBe(0);
    expect(limiter.take("k").ok).toBe(true);
  });

  it("keeps keys apart: one client's loop does not slow another", () => {
    const now = 0;
    const limiter = new RateLimiter(1, () => now);
    expect(limiter.take("a").ok).toBe(true);
    expect(limiter.take("a").ok).toBe(true);
    expect(limiter.take("a").ok).toBe(false);
    expect(limiter.take("b").ok).toBe(true);
  });

  it("sustains exactly the rate over time", () => {
    let now = 0;
    const limiter = new RateLimiter(50, () => now);
    let allowed = 0;
    for (let ms = 0; ms < 10_000; ms += 1) {
      now = ms;
      if (limiter.take("k").ok) allowed++;
    }
    // 10 s at 50/s plus the initial burst of 100.
    expect(allowed).toBeGreaterThanOrEqual(599);
    expect(allowed).toBeLessThanOrEqual(601);
  });

  it("sweeps idle buckets so many keys do not grow memory without end", () => {
    let now = 0;
    const limiter = new RateLimiter(10, () => now);
    for (let i = 0; i < 10_001; i++) limiter.take(`k${i}`);
    now += 10_000;
    limiter.take("late");
    expect(limiter.size).toBeLessThan(10);
  });

  it("is off at 0 and replaced when the rate changes", () => {
    expect(rateLimiter(0)).toBeNull();
    const a = rateLimiter(7);
    expect(rateLimiter(7)).toBe(a);
    expect(rateLimiter(8)?.rate).toBe(8);
  });
});

describe("CONCORD_RATE_LIMIT", () => {
  it("defaults, accepts 0 and whole numbers, and names the variable when wrong", () => {
    expect(readEnv({}).CONCORD_RATE_LIMIT).toBe(DEFAULT_RATE_LIMIT);
    expect(readEnv({ CONCORD_RATE_LIMIT: "" }).CONCORD_RATE_LIMIT).toBe(DEFAULT_RATE_LIMIT);
    expect(readEnv({ CONCORD_RATE_LIMIT: "0" }).CONCORD_RATE_LIMIT).toBe(0);
    expect(readEnv({ CONCORD_RATE_LIMIT: "25" }).CONCORD_RATE_LIMIT).toBe(25);
    expect(() => readEnv({ CONCORD_RATE_LIMIT: "fast" })).toThrow(/CONCORD_RATE_LIMIT must be a whole number/);
    expect(() => readEnv({ CONCORD_RATE_LIMIT: "-1" })).toThrow(/CONCORD_RATE_LIMIT/);
  });
});

import type { DatabaseHandle } from "./client";
import { causes } from "./errors";

/**
 * Whether an error says the database cannot be reached right now (as opposed
 * to a query it refused): the connection was refused, reset, closed or timed
 * out, the server is shutting down or terminated the session, it has no room
 * for another connection, or the embedded database was closed. Such a request
 * did not fail for what it asked, and may succeed if sent again later.
 *
 * Drivers wrap their errors (drizzle's DrizzleQueryError holds the driver's
 * as `cause`), so the chain of causes is searched.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  return unavailableCause(error) !== null;
}

/** The error in the chain that says the database is unreachable (its message is the one worth logging), or null. */
export function unavailableCause(error: unknown): Error | null {
  for (const e of causes(error)) if (unavailableHere(e)) return e;
  return null;
}

/** Node socket errors and postgres.js's own connection errors. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
]);

/**
 * SQLSTATEs of a server that is going away or full: admin_shutdown (what
 * pg_terminate_backend sends), crash_shutdown, cannot_connect_now (starting or
 * in recovery), too_many_connections, and the database not existing (dropped
 * under a running hub). Class 08 (connection exception) is matched as a class.
 */
const UNAVAILABLE_SQLSTATES = new Set(["57P01", "57P02", "57P03", "53300", "3D000"]);

/** PGlite's messages for a handle that was closed, or is being closed. */
const PGLITE_CLOSED = /^PGlite is clos(ed|ing)$/;

function unavailableHere(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  if (typeof code === "string") {
    if (CONNECTION_CODES.has(code) || UNAVAILABLE_SQLSTATES.has(code)) return true;
    if (/^08[0-9A-Z]{3}$/.test(code)) return true;
  }
  return PGLITE_CLOSED.test(error.message);
}

/**
 * Whether the handle itself is gone: PGlite fails queries that were queued
 * when it was closed with whatever its torn-down module throws (a TypeError),
 * so such a failure is recognised by the handle's state rather than the error.
 */
export function handleClosed(handle: DatabaseHandle): boolean {
  return handle.pglite !== undefined && !handle.pglite.ready;
}

/**
 * The error and its causes, outermost first (at most 8 deep). Drivers wrap
 * their errors (drizzle's DrizzleQueryError holds the driver's as `cause`),
 * so a question about a database error is asked of every link.
 */
export function* causes(error: unknown): Generator<Error> {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    yield current;
    current = current.cause;
  }
}

/** Whether the error (or a cause) is a unique_violation of the named constraint (postgres.js: constraint_name; PGlite: constraint). */
export function violatesKey(error: unknown, constraint: string): boolean {
  for (const e of causes(error)) {
    const fields = e as { code?: unknown; constraint_name?: unknown; constraint?: unknown };
    if (fields.code === "23505" && (fields.constraint_name ?? fields.constraint) === constraint) return true;
  }
  return false;
}

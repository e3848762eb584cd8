/**
 * Server log lines for people: what happened, why, what to do. One line each,
 * prefixed so they stand out among Next.js's own output.
 */
export const log = {
  info(message: string): void {
    console.log(`[concord] ${message}`);
  },
  warn(message: string): void {
    console.warn(`[concord] warning: ${message}`);
  },
  error(message: string, error?: unknown): void {
    const detail = error instanceof Error ? `\n${error.stack ?? error.message}` : error ? ` ${String(error)}` : "";
    console.error(`[concord] error: ${message}${detail}`);
  },
};

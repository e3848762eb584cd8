"use client";

import { useState, useTransition, type ReactNode } from "react";

/** What a server action answers, as far as a row's buttons care. */
type Outcome = { ok: true } | { ok: false; message: string };

/**
 * Buttons in a table row that each run one server action: `run` starts it
 * (buttons disable while it is pending) and keeps its refusal, shown by
 * RowActions beside the buttons until the next attempt succeeds.
 */
export function useRowAction(): { pending: boolean; error: string | null; run: (action: () => Promise<Outcome>) => void } {
  const [pending, start] = useTransition();
  const [error, setError] = useState<string | null>(null);
  const run = (action: () => Promise<Outcome>) =>
    start(async () => {
      const result = await action();
      setError(result.ok ? null : result.message);
    });
  return { pending, error, run };
}

/** A row's buttons, with the last refusal (if any) before them. */
export function RowActions({ error, children }: { error: string | null; children: ReactNode }) {
  return (
    <span className="flex items-center justify-end gap-2">
      {error ? (
        <span role="alert" className="text-xs text-red-700">
          {error}
        </span>
      ) : null}
      {children}
    </span>
  );
}

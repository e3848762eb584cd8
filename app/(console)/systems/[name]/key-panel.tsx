"use client";

import { useState, useTransition } from "react";
import { RowActions, useRowAction } from "@/components/console/row-action";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { CopyButton } from "@/components/ui/copy-button";
import { issueKeyAction, revokeKeyAction } from "./actions";

/** Issues a key and shows it once: it lives in this component's state only, never in the page the server renders. */
export function IssueKey({ system }: { system: string }) {
  const [pending, start] = useTransition();
  const [issued, setIssued] = useState<{ key: string; prefix: string } | null>(null);
  const [error, setError] = useState<string | null>(null);
  return (
    <div className="flex flex-col gap-3">
      <div>
        <Button
          disabled={pending}
          onClick={() =>
            start(async () => {
              const r = await issueKeyAction(system);
              if (r.ok) {
                setIssued(r.value);
                setError(null);
              } else setError(r.message);
            })
          }
        >
          Issue a new key
        </Button>
      </div>
      {error ? <Alert tone="error">{error}</Alert> : null}
      {issued ? (
        <div className="rounded-md border border-amber-200 bg-amber-50 p-3 text-sm text-amber-900" data-testid="new-key">
          <p className="font-medium">Copy this key now: it is shown only once. Only its prefix ({issued.prefix}) is kept.</p>
          <div className="mt-2 flex items-center gap-2">
            <code className="min-w-0 flex-1 break-all rounded bg-white px-2 py-1 font-mono text-xs text-slate-900 ring-1 ring-amber-200" data-testid="new-key-value">
              {issued.key}
            </code>
            <CopyButton value={issued.key} label="Copy key" />
            <Button variant="ghost" size="sm" onClick={() => setIssued(null)}>
              Done
            </Button>
          </div>
        </div>
      ) : null}
    </div>
  );
}

export function RevokeKey({ system, prefix }: { system: string; prefix: string }) {
  const { pending, error, run } = useRowAction();
  return (
    <RowActions error={error}>
      <Button
        variant="danger"
        size="sm"
        disabled={pending}
        onClick={() => {
          if (window.confirm(`Revoke key ${prefix} of ${system}? Systems using it get 401 at once.`)) run(() => revokeKeyAction(system, prefix));
        }}
      >
        Revoke
      </Button>
    </RowActions>
  );
}

"use client";

import Link from "next/link";
import { useRouter } from "next/navigation";
import { useState, useTransition } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Card } from "@/components/ui/card";
import { Field, Textarea } from "@/components/ui/field";
import { rollbackAction } from "../../actions";

/** Roll back in two steps: open the form, then confirm with a comment. */
export function RollbackForm({ toVersion, activeVersion }: { toVersion: number; activeVersion: number }) {
  const router = useRouter();
  const [open, setOpen] = useState(false);
  const [comment, setComment] = useState("");
  const [pending, start] = useTransition();
  const [result, setResult] = useState<{ ok: boolean; message: string } | null>(null);
  if (result?.ok) {
    return (
      <Alert tone="success">
        {result.message}{" "}
        <Link href="/policies/versions" className="font-medium underline">
          See all versions
        </Link>
      </Alert>
    );
  }
  return (
    <Card title="Roll back">
      {!open ? (
        <div className="flex flex-wrap items-center gap-3">
          <p className="text-sm text-slate-600">
            Activates the text of version {toVersion} again, as a new version after the active version {activeVersion}. Systems get the new rights on their next request.
          </p>
          <Button variant="secondary" onClick={() => setOpen(true)}>
            Roll back to this version
          </Button>
        </div>
      ) : (
        <form
          className="flex flex-col gap-3"
          onSubmit={(e) => {
            e.preventDefault();
            start(async () => {
              const r = await rollbackAction({ toVersion, expectedVersion: activeVersion, comment });
              setResult({ ok: r.ok, message: r.ok ? (r.message ?? "Rolled back.") : r.message });
              if (r.ok) router.refresh();
            });
          }}
        >
          <p className="text-sm text-slate-700">
            Confirm: replace the active version {activeVersion} with the text of version {toVersion}. The change is audited.
          </p>
          <Field label="Rollback comment" hint="Required. Say why you roll back.">
            <Textarea rows={2} required maxLength={500} value={comment} onChange={(e) => setComment(e.target.value)} className="font-sans" autoFocus />
          </Field>
          <div className="flex gap-2">
            <Button type="submit" variant="danger" disabled={pending || comment.trim() === ""}>
              {pending ? "Rolling back…" : `Confirm rollback to version ${toVersion}`}
            </Button>
            <Button variant="ghost" onClick={() => setOpen(false)} disabled={pending}>
              Cancel
            </Button>
          </div>
          {result && !result.ok ? <Alert tone="error">{result.message}</Alert> : null}
        </form>
      )}
    </Card>
  );
}

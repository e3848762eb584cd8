"use client";

import { useRouter } from "next/navigation";
import { useRef, useState, useTransition } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { restoreVersionAction } from "../../actions";
import { showInvisible } from "@/lib/console/invisible-chars";

/** "Restore this version", behind a confirmation dialog that says what will happen. */
export function RestoreButton({ collection, id, version, current, deleted }: { collection: string; id: string; version: number; current: number; deleted: boolean }) {
  const dialog = useRef<HTMLDialogElement>(null);
  const router = useRouter();
  const [pending, start] = useTransition();
  const [result, setResult] = useState<{ ok: boolean; message: string } | null>(null);

  return (
    <>
      <Button variant="secondary" size="sm" onClick={() => dialog.current?.showModal()} disabled={pending}>
        Restore this version
      </Button>
      <dialog
        ref={dialog}
        aria-label={`Restore version ${version}`}
        className="m-auto max-w-md rounded-lg border border-slate-200 p-5 text-left shadow-xl backdrop:bg-slate-900/40"
      >
        <h2 className="text-base font-semibold text-slate-900">Restore version {version}?</h2>
        <p className="mt-2 text-sm whitespace-normal text-slate-700">
          {deleted
            ? `Version ${version} is a deletion: restoring it deletes ${showInvisible(`${collection}/${id}`)}`
            : `The data of version ${version} becomes the record's new version ${current + 1}`}
          . Every system that reads the record receives it on its next sync. The restore is recorded in the audit log.
        </p>
        <div className="mt-4 flex justify-end gap-2">
          <Button variant="ghost" onClick={() => dialog.current?.close()}>
            Cancel
          </Button>
          <Button
            variant="danger"
            disabled={pending}
            onClick={() =>
              start(async () => {
                const r = await restoreVersionAction({ collection, id, version });
                setResult({ ok: r.ok, message: r.message ?? "" });
                dialog.current?.close();
                if (r.ok) router.refresh();
              })
            }
          >
            Restore version {version}
          </Button>
        </div>
      </dialog>
      {result ? (
        <div className="mt-2 whitespace-normal">
          <Alert tone={result.ok ? "success" : "error"}>{result.message}</Alert>
        </div>
      ) : null}
    </>
  );
}

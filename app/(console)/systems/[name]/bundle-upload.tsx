"use client";

import { useRouter } from "next/navigation";
import { useState } from "react";
import { Alert } from "@/components/ui/alert";
import { Button, buttonClass } from "@/components/ui/button";
import { Field, Input } from "@/components/ui/field";
import type { BundleSummary } from "@/lib/console/systems";

type Summary = BundleSummary;

/**
 * Applies an offline site's bundle file on its behalf. The file goes to a
 * route handler (not a server action: action bodies are size-limited and a
 * bundle may be 64 MiB) with the session cookie.
 */
export function BundleUpload({ system }: { system: string }) {
  const router = useRouter();
  const [file, setFile] = useState<File | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [summary, setSummary] = useState<Summary | null>(null);

  async function upload() {
    if (!file) return;
    setBusy(true);
    setError(null);
    setSummary(null);
    try {
      const res = await fetch(`/api/console/systems/${encodeURIComponent(system)}/bundles`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: file,
      });
      const body = (await res.json().catch(() => null)) as { summary?: Summary; error?: { message: string } } | null;
      if (!res.ok || !body?.summary) {
        setError(body?.error?.message ?? `The hub answered ${res.status}.`);
        return;
      }
      setSummary(body.summary);
      router.refresh();
    } catch (e) {
      setError(`The upload failed: ${(e as Error).message}`);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div className="flex flex-col gap-3">
      <div className="flex flex-wrap items-end gap-3">
        <div className="min-w-64 flex-1">
          <Field label="Bundle file" hint="The bundle file the site wrote with `concord export` (up to 64 MiB).">
            <Input type="file" accept=".json,application/json" onChange={(e) => setFile(e.target.files?.[0] ?? null)} />
          </Field>
        </div>
        <Button disabled={!file || busy} onClick={() => void upload()}>
          {busy ? "Applying…" : "Apply bundle"}
        </Button>
      </div>
      {error ? <Alert tone="error">{error}</Alert> : null}
      {summary ? (
        <div className="rounded-md border border-emerald-200 bg-emerald-50 p-3 text-sm text-emerald-900" data-testid="bundle-summary">
          <p className="font-medium">
            Applied bundle {summary.bundleId}: {plural(summary.changes, "change")}, {plural(summary.conflicts, "conflict")} (policy version{" "}
            {summary.policyVersion}).
          </p>
          <ul className="mt-1 list-disc pl-5">
            {Object.entries(summary.results).map(([collection, byStatus]) => (
              <li key={collection}>
                {collection}:{" "}
                {Object.entries(byStatus)
                  .map(([status, n]) => `${n} ${status}`)
                  .join(", ")}
              </li>
            ))}
            {Object.entries(summary.pulled).map(([collection, n]) => (
              <li key={`pulled-${collection}`}>
                {collection}: {plural(n, "change")} go back to the site
              </li>
            ))}
          </ul>
          <a
            className={`${buttonClass("secondary", "sm")} mt-2`}
            href={`/api/console/systems/${encodeURIComponent(system)}/bundles/${summary.bundleId}`}
            download
          >
            Download response bundle
          </a>
        </div>
      ) : null}
    </div>
  );
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

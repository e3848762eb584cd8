"use client";

import { useRouter } from "next/navigation";
import { useState, useTransition } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Field, Textarea } from "@/components/ui/field";
import { unstorableReason } from "@/lib/sync/json-safety";
import { describeProblem, parseStrictJson } from "@/lib/sync/strict-json";
import { resolveConflictAction } from "../actions";

/** Keep server, take client, or edit a merge: decided on `expectedVersion`, the record version the page showed. */
export function ResolveForm({ id, expectedVersion, proposal }: { id: number; expectedVersion: number; proposal: string }) {
  const router = useRouter();
  const [pending, start] = useTransition();
  const [editing, setEditing] = useState(false);
  const [text, setText] = useState(proposal);
  const [result, setResult] = useState<{ ok: boolean; message: string } | null>(null);
  const jsonError = editing ? checkJson(text) : null;

  const submit = (resolution: "server" | "client" | "custom") =>
    start(async () => {
      const r = await resolveConflictAction({ id, resolution, expectedVersion, data: resolution === "custom" ? text : undefined });
      setResult({ ok: r.ok, message: r.message ?? "" });
      if (r.ok) router.refresh();
    });

  return (
    <div className="flex flex-col gap-3">
      <p className="text-sm text-slate-600">
        Your decision applies to version {expectedVersion} of the record. If the record changes before you decide, the resolution is refused
        and nothing changes.
      </p>
      <div className="flex flex-wrap gap-2">
        <Button variant="secondary" disabled={pending} onClick={() => submit("server")}>
          Keep server
        </Button>
        <Button variant="secondary" disabled={pending} onClick={() => submit("client")}>
          Take client
        </Button>
        <Button variant={editing ? "ghost" : "secondary"} disabled={pending} onClick={() => setEditing((e) => !e)} aria-expanded={editing}>
          Edit merge
        </Button>
      </div>
      {editing ? (
        <div className="flex flex-col gap-2">
          <Field label="Merged record (JSON)" hint="The whole record as it should be. It starts as the server's copy with the client's changes laid over it.">
            <Textarea value={text} onChange={(e) => setText(e.target.value)} rows={Math.min(24, text.split("\n").length + 2)} spellCheck={false} />
          </Field>
          {jsonError ? (
            <p className="text-sm text-red-700" data-testid="json-error">
              {jsonError}
            </p>
          ) : null}
          <div>
            <Button disabled={pending || jsonError !== null} onClick={() => submit("custom")}>
              Save merge
            </Button>
          </div>
        </div>
      ) : null}
      {result ? <Alert tone={result.ok ? "success" : "error"}>{result.message}</Alert> : null}
    </div>
  );
}

/** The hub's own checks, as the operator types: a record it would refuse is named before it is sent. */
function checkJson(text: string): string | null {
  const parsed = parseStrictJson(text);
  if (!parsed.ok) return parsed.problem.code === "not_json" ? `Not valid JSON: ${parsed.problem.message}` : describeProblem(parsed.problem, "The merged record");
  const value = parsed.value;
  if (typeof value !== "object" || value === null || Array.isArray(value)) return "The merged record must be a JSON object ({ … }).";
  const unstorable = unstorableReason(value, "data");
  return unstorable ? `The hub cannot store this: ${unstorable}.` : null;
}

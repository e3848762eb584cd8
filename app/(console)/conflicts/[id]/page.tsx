import Link from "next/link";
import type { ReactNode } from "react";
import { ThreeWayTable } from "@/components/console/diff-table";
import { JsonView } from "@/components/console/json-view";
import { ConflictStatusBadge } from "@/components/console/status-badge";
import { Alert } from "@/components/ui/alert";
import { Card, PageHeader } from "@/components/ui/card";
import { Time } from "@/components/ui/time";
import { getConflictView } from "@/lib/console/conflicts-view";
import { isServiceError } from "@/lib/errors";
import { conflictIdSchema } from "@/lib/sync/conflicts";
import { requireOperator } from "../../../_server/operator";
import { ResolveForm } from "./resolve-form";
import { VisibleText } from "@/components/console/visible-text";
import { showInvisible } from "@/lib/console/invisible-chars";

export const metadata = { title: "Conflict · Concord" };

const RESOLUTION_TEXT: Record<string, string> = {
  server: "the server's copy",
  client: "the client's change",
  custom: "a merge edited by the operator",
};

function recordHref(collection: string, id: string) {
  return `/records/${collection}/${encodeURIComponent(id)}`;
}

export default async function ConflictPage({ params }: { params: Promise<{ id: string }> }) {
  const { hub, canWrite } = await requireOperator("conflicts");
  const parsedId = conflictIdSchema.safeParse((await params).id);
  if (!parsedId.success) return <Missing message={`"${(await params).id}" is not a conflict id: ${parsedId.error.issues[0]?.message}.`} />;
  let view;
  try {
    view = await getConflictView({ db: hub.db }, parsedId.data);
  } catch (error) {
    if (isServiceError(error) && error.code === "not_found") return <Missing message={error.message} />;
    throw error;
  }
  const { conflict: c, current, rows, highlights, mergeProposal } = view;
  const moved = current !== null && current.version !== c.serverVersion;

  return (
    <>
      <PageHeader
        title={
          <>
            Conflict #{c.id} <ConflictStatusBadge status={c.status} />
          </>
        }
        description={
          <>
            On record{" "}
            <Link className="font-medium text-indigo-700 hover:underline" href={recordHref(c.collection, c.recordId)}>
              <VisibleText text={c.collection} />/<VisibleText text={c.recordId} />
            </Link>
            : <VisibleText text={c.clientSystem} />
            &apos;s change collided with the copy <VisibleText text={c.serverSystem} /> wrote.
          </>
        }
        actions={
          <Link href="/conflicts" className="text-sm text-indigo-700 hover:underline">
            ← Conflict log
          </Link>
        }
      />
      <dl className="mb-6 grid grid-cols-2 gap-x-6 gap-y-3 rounded-lg border border-slate-200 bg-white p-4 text-sm shadow-sm md:grid-cols-4">
        <Fact label="Strategy">{c.strategy}</Fact>
        <Fact label="Outcome" testId="conflict-outcome">
          {c.outcome === "resolved" ? `resolved with ${c.resolution}` : c.outcome}
        </Fact>
        <Fact label="Client system" testId="conflict-client">
          <VisibleText text={c.clientSystem} />
          {/* The number the system's push result gave it (conflict.id), for a system's people to quote. */}
          {c.clientRef !== null ? <span className="text-slate-500"> · its conflict #{c.clientRef}</span> : null}
        </Fact>
        <Fact label="Server system">
          <VisibleText text={c.serverSystem} />
        </Fact>
        <Fact label="Raised">
          <Time value={c.createdAt} />
        </Fact>
        <Fact label="Versions">
          base {c.baseVersion ?? "none"} · server {c.serverVersion}
          {c.resultVersion !== null ? ` · result ${c.resultVersion}` : ""}
        </Fact>
        <Fact label="Resolved by" testId="resolved-by">
          {c.resolvedBy !== null ? (
            <VisibleText text={c.resolvedBy} />
          ) : (
            <span className="text-slate-400">{c.status === "settled" ? "the strategy" : "—"}</span>
          )}
        </Fact>
        <Fact label="Resolved at">
          <Time value={c.resolvedAt} empty="—" />
        </Fact>
      </dl>

      <div className="mb-6 grid grid-cols-1 gap-4 lg:grid-cols-3">
        <Side title={`Base${c.baseVersion !== null ? ` (version ${c.baseVersion})` : ""}`} note="what the client started from">
          <JsonView label="Base" value={c.baseData} marks={highlights.base} empty={c.baseVersion === null ? "No base: the client created the record anew." : "No data (deleted)."} />
        </Side>
        <Side title={`Server (version ${c.serverVersion})`} note={`written by ${showInvisible(c.serverSystem)}`}>
          <JsonView label="Server" value={c.serverDeleted ? null : c.serverData} marks={highlights.server} empty="Deleted on the server." />
        </Side>
        <Side title="Client" note={`sent by ${showInvisible(c.clientSystem)}`}>
          <JsonView label="Client" value={c.clientData} marks={highlights.client} empty="The client deleted the record." />
        </Side>
      </div>
      <p className="-mt-4 mb-6 flex gap-4 text-xs text-slate-600">
        <span>
          <span className="mr-1 inline-block size-3 rounded-sm bg-amber-100 ring-1 ring-amber-300 align-middle" />
          changed since the base
        </span>
        <span>
          <span className="mr-1 inline-block size-3 rounded-sm bg-red-100 ring-1 ring-red-300 align-middle" />
          changed on both sides, differently
        </span>
      </p>

      <section className="mb-6">
        <h2 className="mb-2 text-sm font-semibold text-slate-900">Field differences</h2>
        <ThreeWayTable rows={rows} />
      </section>

      {c.status === "resolved" ? (
        <div className="mb-6" data-testid="resolution">
          <Alert tone="success">
            Resolved by <strong>{c.resolvedBy !== null ? <VisibleText text={c.resolvedBy} /> : null}</strong> at <Time value={c.resolvedAt} /> with {RESOLUTION_TEXT[c.resolution ?? ""] ?? c.resolution}
            {c.resultVersion !== null ? (
              <>
                ; the record is at version {c.resultVersion} after it (
                <Link className="underline" href={`${recordHref(c.collection, c.recordId)}?a=${c.serverVersion}&b=${c.resultVersion}`}>
                  see what changed
                </Link>
                ).
              </>
            ) : (
              "."
            )}
          </Alert>
        </div>
      ) : null}

      {c.status === "pending" ? (
        canWrite ? (
          <Card title="Resolve">
            {current === null ? (
              <Alert tone="error">The record is missing, so this conflict cannot be resolved here.</Alert>
            ) : (
              <>
                {moved ? (
                  <div className="mb-3">
                    <Alert tone="warning">
                      The record has moved on since this conflict: it is at version {current.version}, written by {current.updatedBy} at{" "}
                      <Time value={current.updatedAt} />. Check its history before you decide.
                    </Alert>
                  </div>
                ) : null}
                <ResolveForm id={c.id} expectedVersion={current.version} proposal={JSON.stringify(mergeProposal ?? {}, null, 2)} />
              </>
            )}
          </Card>
        ) : (
          <Alert tone="info">This conflict is pending. An admin can resolve it.</Alert>
        )
      ) : null}
    </>
  );
}

function Fact({ label, children, testId }: { label: string; children: ReactNode; testId?: string }) {
  return (
    <div>
      <dt className="text-xs font-medium uppercase tracking-wide text-slate-500">{label}</dt>
      <dd className="mt-0.5 text-slate-900" data-testid={testId}>
        {children}
      </dd>
    </div>
  );
}

function Side({ title, note, children }: { title: string; note: string; children: ReactNode }) {
  return (
    <section className="min-w-0">
      <h2 className="text-sm font-semibold text-slate-900">{title}</h2>
      <p className="mb-1 text-xs text-slate-500">{note}</p>
      {children}
    </section>
  );
}

function Missing({ message }: { message: string }) {
  return (
    <>
      <PageHeader title="Conflict" />
      <Alert tone="error">{message}</Alert>
      <p className="mt-4 text-sm">
        <Link href="/conflicts" className="text-indigo-700 hover:underline">
          ← Conflict log
        </Link>
      </p>
    </>
  );
}

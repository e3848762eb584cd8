import Link from "next/link";
import { notFound } from "next/navigation";
import { PolicyDiffView } from "@/components/console/policy-diff-view";
import { Badge } from "@/components/ui/badge";
import { Card, PageHeader } from "@/components/ui/card";
import { CopyButton } from "@/components/ui/copy-button";
import { Time } from "@/components/ui/time";
import { getVersionDetail } from "@/lib/console/policy-versions";
import { splitLines } from "@/lib/console/policy-diff";
import { requireOperator } from "../../../../_server/operator";
import { RollbackForm } from "./rollback-form";

export const metadata = { title: "Policy version · Concord" };

export default async function PolicyVersionPage({ params }: { params: Promise<{ n: string }> }) {
  const { hub, canWrite } = await requireOperator("policy");
  const { n } = await params;
  if (!/^[1-9]\d{0,8}$/.test(n)) notFound();
  const detail = await getVersionDetail(hub.db, Number(n));
  if (!detail) notFound();
  const v = detail.version;
  const isActive = v.version === detail.activeVersion;
  const lines = splitLines(v.yaml);
  return (
    <>
      <PageHeader
        title={
          <span className="flex items-center gap-3">
            Policy version {v.version} {isActive ? <Badge tone="green">active</Badge> : null}
          </span>
        }
        description={
          <>
            Activated by {v.activatedBy} at <Time value={v.activatedAt} />, source {v.source}
            {v.rolledBackFrom !== null ? ` (the text of version ${v.rolledBackFrom})` : ""}. {v.comment ? <>Comment: “{v.comment}”</> : "No comment."}
          </>
        }
        actions={
          <Link href="/policies/versions" className="text-sm font-medium text-indigo-700 hover:underline">
            ← All versions
          </Link>
        }
      />
      <div className="flex flex-col gap-6">
        {canWrite && !isActive ? (
          <RollbackForm toVersion={v.version} activeVersion={detail.activeVersion} />
        ) : null}
        <Card title={detail.previous ? `Changes from version ${detail.previous}` : "Changes"}>
          {detail.previous ? (
            <PolicyDiffView diff={detail.diff} oldLabel={`version ${detail.previous}`} newLabel={`version ${v.version}`} />
          ) : (
            <p className="text-sm text-slate-600">This is the first version; there is nothing before it to compare with.</p>
          )}
        </Card>
        <Card title="Text" actions={<CopyButton value={v.yaml} label="Copy YAML" />}>
          <div className="max-h-[32rem] overflow-auto rounded-md border border-slate-200 bg-slate-50">
            <table className="min-w-full font-mono text-xs leading-5" aria-label={`Text of version ${v.version}`}>
              <tbody>
                {lines.map((line, i) => (
                  <tr key={i}>
                    <td className="w-10 select-none border-r border-slate-200 px-2 text-right text-slate-400">{i + 1}</td>
                    <td className="whitespace-pre px-3 text-slate-800">{line || " "}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </Card>
      </div>
    </>
  );
}

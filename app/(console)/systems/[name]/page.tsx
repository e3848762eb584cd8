import type { ReactNode } from "react";
import Link from "next/link";
import { notFound } from "next/navigation";
import { ActivityCharts } from "@/components/console/activity-charts";
import { LagBadge, SystemStateBadge } from "@/components/console/system-state";
import { Badge } from "@/components/ui/badge";
import { buttonClass } from "@/components/ui/button";
import { Card, PageHeader } from "@/components/ui/card";
import { EmptyRow, Table, Td, Th } from "@/components/ui/table";
import { Time } from "@/components/ui/time";
import { operatorMay } from "@/lib/auth/console-rights";
import { getSystemDetail, type Right } from "@/lib/console/systems";
import { systemNameSchema } from "@/lib/http/schemas";
import { getActivePolicy } from "@/lib/policy/store";
import { requireOperator } from "../../../_server/operator";
import { BundleUpload } from "./bundle-upload";
import { IssueKey, RevokeKey } from "./key-panel";

export async function generateMetadata({ params }: { params: Promise<{ name: string }> }) {
  const { name } = await params;
  return { title: `${name} · Systems · Concord` };
}

export default async function SystemPage({ params }: { params: Promise<{ name: string }> }) {
  const { hub, operator } = await requireOperator("systems");
  const parsed = systemNameSchema.safeParse((await params).name);
  if (!parsed.success) notFound();
  const system = parsed.data;
  const policy = await getActivePolicy(hub.db);
  if (!policy.compiled.hasSystem(system)) notFound();
  const detail = await getSystemDetail(hub.db, policy, system);
  const [canIssue, canApply] = await Promise.all([
    operatorMay(operator.role, "keys", "write"),
    operatorMay(operator.role, "bundles", "write"),
  ]);
  const { status } = detail;

  return (
    <>
      <p className="mb-2 text-sm">
        <Link href="/systems" className="text-indigo-700 hover:underline">
          ← Systems
        </Link>
      </p>
      <PageHeader
        title={system}
        description={`${status.displayName} · priority ${detail.priority} · syncs every ${detail.sync.intervalSeconds} s${
          detail.sync.realtime ? " and listens for changes" : ""
        } · policy version ${policy.version}`}
        actions={<SystemStateBadge error={status.error} lastSyncAt={status.lastSyncAt} />}
      />

      <div className="mb-6 grid grid-cols-1 gap-4 md:grid-cols-2 xl:grid-cols-4">
        <Fact label="Last push">
          <Time value={status.lastPushAt} />
        </Fact>
        <Fact label="Last pull">
          <Time value={status.lastPullAt} />
        </Fact>
        <Fact label="Last error">
          {status.error ? (
            <span className="text-red-700" data-testid="last-error">
              {status.error.message}
            </span>
          ) : status.lastErrorAt ? (
            <span className="text-slate-500">
              none since <Time value={status.lastErrorAt} />
            </span>
          ) : (
            <span className="text-slate-400">none</span>
          )}
        </Fact>
        <Fact label="Behind (changes not pulled)" testId="system-lag">
          {status.lag.length === 0 ? <span className="text-slate-400">reads nothing</span> : null}
          {status.lag.map((l) => (
            <LagBadge key={l.collection} collection={l.collection} count={l.behind.count} capped={l.behind.capped} />
          ))}
        </Fact>
      </div>

      <section className="mb-6">
        <h2 className="mb-2 text-sm font-semibold text-slate-900">Effective rights under policy version {policy.version}</h2>
        <Table caption="Effective rights per collection">
          <thead>
            <tr>
              <Th>Collection</Th>
              <Th>Read</Th>
              <Th>Write</Th>
              <Th>Delete</Th>
              <Th>Conflicts</Th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {detail.rights.length === 0 ? <EmptyRow colSpan={5}>No rule gives {system} any collection.</EmptyRow> : null}
            {detail.rights.map((r) => {
              return (
                <tr key={r.collection} data-testid={`rights-${r.collection}`}>
                  <Td className="font-medium">{r.collection}</Td>
                  <Td className="whitespace-normal">
                    <RightCell right={r.read} />
                  </Td>
                  <Td className="whitespace-normal">
                    <RightCell right={r.write} />
                  </Td>
                  <Td className="whitespace-normal">
                    {r.delete ? <Condition where={r.delete.where} /> : <span className="text-slate-400">no</span>}
                  </Td>
                  <Td>
                    <Badge tone="indigo">{r.strategy}</Badge>
                    {r.strategy === "field-merge" ? <span className="ml-1 text-xs text-slate-500">then {r.fallback}</span> : null}
                  </Td>
                </tr>
              );
            })}
          </tbody>
        </Table>
      </section>

      <div className="mb-6 grid grid-cols-1 gap-6">
        <Card title="API keys">
          {canIssue ? (
            <div className="mb-4">
              <IssueKey system={system} />
            </div>
          ) : null}
          <Table caption="API keys">
            <thead>
              <tr>
                <Th>Prefix</Th>
                <Th>Issued</Th>
                <Th>Last used</Th>
                <Th>State</Th>
                <Th className="text-right">{canIssue ? "Actions" : ""}</Th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {detail.keys.length === 0 ? <EmptyRow colSpan={5}>No keys yet.</EmptyRow> : null}
              {detail.keys.map((k) => (
                <tr key={k.prefix} data-testid={`key-${k.prefix}`}>
                  <Td className="font-mono text-xs">{k.prefix}</Td>
                  <Td>
                    <Time value={k.createdAt} /> <span className="text-xs text-slate-500">by {k.createdBy}</span>
                  </Td>
                  <Td>
                    <Time value={k.lastUsedAt} />
                  </Td>
                  <Td>{k.revokedAt ? <Badge tone="gray">revoked</Badge> : <Badge tone="green">active</Badge>}</Td>
                  <Td className="text-right">{canIssue && !k.revokedAt ? <RevokeKey system={system} prefix={k.prefix} /> : null}</Td>
                </tr>
              ))}
            </tbody>
          </Table>
        </Card>

        <Card title="Offline bundles">
          {canApply ? (
            <div className="mb-4">
              <BundleUpload system={system} />
            </div>
          ) : (
            <p className="mb-4 text-sm text-slate-500">Your role may download response bundles, not apply bundles.</p>
          )}
          <Table caption="Bundles applied">
            <thead>
              <tr>
                <Th>Bundle</Th>
                <Th>Applied</Th>
                <Th>By</Th>
                <Th className="text-right">Response</Th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {detail.bundles.length === 0 ? <EmptyRow colSpan={4}>No bundles applied yet.</EmptyRow> : null}
              {detail.bundles.map((b) => (
                <tr key={b.bundleId}>
                  <Td className="font-mono text-xs">{b.bundleId.slice(0, 8)}…</Td>
                  <Td>
                    <Time value={b.appliedAt} />
                  </Td>
                  <Td>{b.appliedBy}</Td>
                  <Td className="text-right">
                    <a className={buttonClass("secondary", "sm")} href={`/api/console/systems/${system}/bundles/${b.bundleId}`} download>
                      Download
                    </a>
                  </Td>
                </tr>
              ))}
            </tbody>
          </Table>
        </Card>
      </div>

      <Card title={`Recent activity of ${system} (UTC)`}>
        <ActivityCharts day={detail.activity.day} hour={detail.activity.hour} />
      </Card>
    </>
  );
}

function Fact({ label, children, testId }: { label: string; children: ReactNode; testId?: string }) {
  return (
    <div className="rounded-lg border border-slate-200 bg-white p-3 text-sm shadow-sm" data-testid={testId}>
      <p className="text-xs font-medium uppercase tracking-wide text-slate-500">{label}</p>
      <div className="mt-1">{children}</div>
    </div>
  );
}

function Condition({ where }: { where: string }) {
  return where === "all" ? <span>every record</span> : <code className="rounded bg-slate-100 px-1 font-mono text-xs">{where}</code>;
}

function RightCell({ right }: { right: Right | null }) {
  if (!right) return <span className="text-slate-400">no</span>;
  return (
    <span className="flex flex-col gap-0.5">
      <Condition where={right.where} />
      <span className="text-xs text-slate-500">
        fields: {right.fields.includes("*") ? "all" : right.fields.join(", ")}
      </span>
    </span>
  );
}

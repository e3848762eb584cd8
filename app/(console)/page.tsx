import Link from "next/link";
import { z } from "zod";
import { ActivityCharts } from "@/components/console/activity-charts";
import { LagBadge, SystemStateBadge } from "@/components/console/system-state";
import { Alert } from "@/components/ui/alert";
import { Card, PageHeader } from "@/components/ui/card";
import { EmptyRow, Table, Td, Th } from "@/components/ui/table";
import { ago, Time } from "@/components/ui/time";
import { CONSOLE_AREAS } from "@/lib/auth/console-rights";
import { formatCount, getOverview } from "@/lib/console/overview";
import { getActivePolicy } from "@/lib/policy/store";
import { requireOperator } from "../_server/operator";

export const metadata = { title: "Overview · Concord" };

const searchSchema = z.object({ denied: z.enum(CONSOLE_AREAS).optional().catch(undefined) });

export default async function OverviewPage({ searchParams }: { searchParams: Promise<Record<string, string | string[] | undefined>> }) {
  const { hub, operator } = await requireOperator("overview");
  const { denied } = searchSchema.parse(await searchParams);
  const policy = await getActivePolicy(hub.db);
  const overview = await getOverview(hub.db, policy);
  const now = overview.generatedAt.getTime();
  const { totals } = overview.charts;
  const failing = overview.systems.filter((s) => s.error).length;

  return (
    <>
      <PageHeader title="Overview" description={`Systems, sync activity and conflicts waiting for an operator. Active policy: version ${overview.policyVersion}.`} />
      {denied ? (
        <div className="mb-4">
          <Alert tone="warning">
            Your role ({operator.role}) may not open {denied}. Ask an admin if you need it.
          </Alert>
        </div>
      ) : null}

      <div className="mb-6 grid grid-cols-2 gap-4 lg:grid-cols-5">
        <Stat label="Systems" value={String(overview.systems.length)} />
        <Stat label="Failing now" value={String(failing)} tone={failing > 0 ? "bad" : undefined} />
        <Stat label="Pushed changes, 24 h" value={totals.pushes.toLocaleString("en-US")} />
        <Stat label="Pulls, 24 h" value={totals.pulls.toLocaleString("en-US")} />
        <Link
          href="/conflicts?status=pending"
          className="rounded-lg border border-slate-200 bg-white p-4 shadow-sm hover:border-indigo-300"
          data-testid="pending-conflicts"
        >
          <p className="text-xs font-medium uppercase tracking-wide text-slate-500">Conflicts waiting</p>
          <p className={`mt-1 text-2xl font-semibold tabular-nums ${overview.pendingConflicts.count > 0 ? "text-amber-600" : "text-slate-900"}`}>
            {formatCount(overview.pendingConflicts)}
          </p>
          <p className="mt-1 text-xs text-indigo-600">Review pending →</p>
        </Link>
      </div>

      <div className="mb-6">
        <Table caption="Systems">
          <thead>
            <tr>
              <Th>System</Th>
              <Th>Last sync</Th>
              <Th>Last push</Th>
              <Th>Last pull</Th>
              <Th>Behind (changes not pulled)</Th>
              <Th>State</Th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {overview.systems.length === 0 ? <EmptyRow colSpan={6}>The active policy declares no systems.</EmptyRow> : null}
            {overview.systems.map((s) => (
              <tr key={s.name} data-testid={`system-row-${s.name}`}>
                <Td className="font-medium">
                  <Link href={`/systems/${s.name}`} className="text-indigo-700 hover:underline">
                    {s.name}
                  </Link>
                  {s.displayName !== s.name ? <span className="ml-2 text-xs text-slate-500">{s.displayName}</span> : null}
                </Td>
                <Td data-testid="last-sync">{ago(s.lastSyncAt, now)}</Td>
                <Td>
                  <Time value={s.lastPushAt} />
                </Td>
                <Td>
                  <Time value={s.lastPullAt} />
                </Td>
                <Td className="whitespace-normal">
                  {s.lag.length === 0 ? <span className="text-slate-400">reads nothing</span> : null}
                  {s.lag.map((l) => (
                    <LagBadge key={l.collection} collection={l.collection} count={l.behind.count} capped={l.behind.capped} />
                  ))}
                </Td>
                <Td className="whitespace-normal">
                  <SystemStateBadge error={s.error} lastSyncAt={s.lastSyncAt} />
                  {s.error ? <p className="mt-1 max-w-48 truncate text-xs text-red-700" title={s.error.message}>{s.error.message}</p> : null}
                </Td>
              </tr>
            ))}
          </tbody>
        </Table>
      </div>

      <Card title="Sync activity (UTC)">
        <ActivityCharts day={overview.charts.day} hour={overview.charts.hour} />
      </Card>
    </>
  );
}

function Stat({ label, value, tone }: { label: string; value: string; tone?: "bad" }) {
  return (
    <div className="rounded-lg border border-slate-200 bg-white p-4 shadow-sm">
      <p className="text-xs font-medium uppercase tracking-wide text-slate-500">{label}</p>
      <p className={`mt-1 text-2xl font-semibold tabular-nums ${tone === "bad" ? "text-red-600" : "text-slate-900"}`}>{value}</p>
    </div>
  );
}

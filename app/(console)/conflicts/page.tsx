import Link from "next/link";
import { ConflictStatusBadge } from "@/components/console/status-badge";
import { ErrorList } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { buttonClass } from "@/components/ui/button";
import { PageHeader } from "@/components/ui/card";
import { Field, Input, Select } from "@/components/ui/field";
import { Pagination } from "@/components/ui/pagination";
import { EmptyRow, Table, Td, Th } from "@/components/ui/table";
import { Time } from "@/components/ui/time";
import { countPendingConflicts, listConflictLog, parseConflictFilters, type ConflictFilters } from "@/lib/console/conflicts-list";
import { queryString, type SearchParams } from "@/lib/console/query";
import { STRATEGIES } from "@/lib/policy/document";
import { getActivePolicy } from "@/lib/policy/store";
import { requireOperator } from "../../_server/operator";
import { VisibleText } from "@/components/console/visible-text";

export const metadata = { title: "Conflicts · Concord" };

/** The filters as they go back into links (dates as typed, in UTC). */
function filterQuery(f: Partial<ConflictFilters>) {
  return {
    status: f.status,
    collection: f.collection,
    system: f.system,
    strategy: f.strategy,
    from: f.from?.toISOString().slice(0, 16),
    to: f.to?.toISOString().slice(0, 16),
  };
}

export default async function ConflictsPage({ searchParams }: { searchParams: Promise<SearchParams> }) {
  const { hub } = await requireOperator("conflicts");
  const { values: filters, errors } = parseConflictFilters(await searchParams);
  const [page, pending, policy] = await Promise.all([
    listConflictLog({ db: hub.db }, filters),
    countPendingConflicts({ db: hub.db }),
    getActivePolicy(hub.db),
  ]);
  const base = filterQuery(filters);
  const collections = policy.compiled.collectionNames();
  const systems = policy.compiled.systemNames();
  const filtered = Object.values(base).some((v) => v !== undefined);

  return (
    <>
      <PageHeader
        title="Conflicts"
        description="Every conflict between systems, however it was settled. Pending ones wait for an admin to decide."
        actions={
          <Link href="/conflicts?status=pending" className="text-sm" data-testid="pending-count">
            <Badge tone={pending > 0 ? "amber" : "gray"}>{pending.toLocaleString("en")} pending</Badge>
          </Link>
        }
      />
      <form method="get" action="/conflicts" className="mb-4 grid grid-cols-2 gap-3 rounded-lg border border-slate-200 bg-white p-4 shadow-sm md:grid-cols-4 md:items-end">
        <Field label="Status">
          <Select name="status" defaultValue={filters.status ?? ""}>
            <option value="">all</option>
            <option value="pending">pending</option>
            <option value="resolved">resolved</option>
            <option value="settled">settled</option>
          </Select>
        </Field>
        <Field label="Collection">
          <Select name="collection" defaultValue={filters.collection ?? ""}>
            <option value="">all</option>
            {collections.map((c) => (
              <option key={c}>{c}</option>
            ))}
          </Select>
        </Field>
        <Field label="System">
          <Select name="system" defaultValue={filters.system ?? ""}>
            <option value="">all</option>
            {systems.map((s) => (
              <option key={s}>{s}</option>
            ))}
            {filters.system && !systems.includes(filters.system) ? <option>{filters.system}</option> : null}
          </Select>
        </Field>
        <Field label="Strategy">
          <Select name="strategy" defaultValue={filters.strategy ?? ""}>
            <option value="">all</option>
            {STRATEGIES.map((s) => (
              <option key={s}>{s}</option>
            ))}
          </Select>
        </Field>
        <Field label="From (UTC)">
          <Input type="datetime-local" name="from" defaultValue={base.from ?? ""} />
        </Field>
        <Field label="To (UTC)">
          <Input type="datetime-local" name="to" defaultValue={base.to ?? ""} />
        </Field>
        <div className="col-span-2 flex gap-2">
          <button type="submit" className={buttonClass("primary")}>
            Filter
          </button>
          {filtered ? (
            <Link href="/conflicts" className={buttonClass("ghost")}>
              Clear
            </Link>
          ) : null}
        </div>
      </form>
      <ErrorList messages={errors} />
      <Table caption="Conflict log">
        <thead>
          <tr>
            <Th>Id</Th>
            <Th>When</Th>
            <Th>Record</Th>
            <Th>Client → server</Th>
            <Th>Strategy</Th>
            <Th>Status</Th>
            <Th>Outcome</Th>
            <Th>Resolved by</Th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {page.rows.length === 0 ? <EmptyRow colSpan={8}>{filtered ? "No conflict matches these filters." : "No conflicts yet."}</EmptyRow> : null}
          {page.rows.map((c) => (
            <tr key={c.id} data-testid="conflict-row">
              <Td className="tabular-nums">
                <Link href={`/conflicts/${c.id}`} className="font-medium text-indigo-700 hover:underline">
                  #{c.id}
                </Link>
              </Td>
              <Td>
                <Time value={c.createdAt} />
              </Td>
              <Td className="max-w-64 truncate">
                <span className="text-slate-500">
                  <VisibleText text={c.collection} />/
                </span>
                <VisibleText text={c.recordId} />
              </Td>
              <Td>
                <VisibleText text={c.clientSystem} /> → <VisibleText text={c.serverSystem} />
              </Td>
              <Td>{c.strategy}</Td>
              <Td>
                <ConflictStatusBadge status={c.status} />
              </Td>
              <Td>{c.outcome === "resolved" ? `resolved: ${c.resolution}` : c.outcome}</Td>
              <Td>{c.resolvedBy !== null ? <VisibleText text={c.resolvedBy} /> : <span className="text-slate-400">—</span>}</Td>
            </tr>
          ))}
        </tbody>
      </Table>
      <Pagination
        summary={page.rows.length > 0 ? `Conflicts #${page.rows[0]!.id} to #${page.rows[page.rows.length - 1]!.id}, newest first` : undefined}
        prevHref={page.newer === null ? null : `/conflicts${queryString({ ...base, after: page.newer })}`}
        nextHref={page.older === null ? null : `/conflicts${queryString({ ...base, before: page.older })}`}
      />
    </>
  );
}

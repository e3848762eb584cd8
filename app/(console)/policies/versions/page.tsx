import Link from "next/link";
import { z } from "zod";
import { Badge } from "@/components/ui/badge";
import { PageHeader } from "@/components/ui/card";
import { Pagination } from "@/components/ui/pagination";
import { EmptyRow, Table, Td, Th } from "@/components/ui/table";
import { Time } from "@/components/ui/time";
import { listVersionsPage } from "@/lib/console/policy-versions";
import { requireOperator } from "../../../_server/operator";

export const metadata = { title: "Policy versions · Concord" };

const PAGE_SIZE = 20;
const cursor = z.coerce.number().int().positive().optional().catch(undefined);
const query = z.object({ before: cursor, after: cursor });

export default async function PolicyVersionsPage({ searchParams }: { searchParams: Promise<Record<string, string | string[] | undefined>> }) {
  const { hub } = await requireOperator("policy");
  const { before, after } = query.parse(await searchParams);
  const page = await listVersionsPage(hub.db, { before, after, pageSize: PAGE_SIZE });
  return (
    <>
      <PageHeader
        title="Policy versions"
        description="Every activated policy, kept forever. The newest is active; open one to see its text, what it changed, and to roll back to it."
        actions={
          <Link href="/policies" className="text-sm font-medium text-indigo-700 hover:underline">
            ← Back to the editor
          </Link>
        }
      />
      <Table caption="Policy versions">
        <thead>
          <tr>
            <Th className="text-right">Version</Th>
            <Th>Activated by</Th>
            <Th>When</Th>
            <Th>Source</Th>
            <Th>Comment</Th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {page.rows.length === 0 ? <EmptyRow colSpan={5}>No versions on this page.</EmptyRow> : null}
          {page.rows.map((v) => (
            <tr key={v.version}>
              <Td className="text-right tabular-nums">
                <Link href={`/policies/versions/${v.version}`} className="font-medium text-indigo-700 hover:underline">
                  {v.version}
                </Link>
                {v.version === page.activeVersion ? (
                  <span className="ml-2">
                    <Badge tone="green">active</Badge>
                  </span>
                ) : null}
              </Td>
              <Td>{v.activatedBy}</Td>
              <Td>
                <Time value={v.activatedAt} />
              </Td>
              <Td>
                <Badge tone={v.source === "rollback" ? "amber" : v.source === "console" ? "indigo" : "gray"}>{v.source}</Badge>
                {v.rolledBackFrom !== null ? <span className="ml-1 text-xs text-slate-500">to v{v.rolledBackFrom}</span> : null}
              </Td>
              <Td className="max-w-md min-w-[16rem] whitespace-normal! text-slate-700">
                {v.comment ?? <span className="text-slate-400">no comment</span>}
              </Td>
            </tr>
          ))}
        </tbody>
      </Table>
      <Pagination
        summary={
          page.rows.length > 0
            ? `Showing versions ${page.rows[page.rows.length - 1]?.version}–${page.rows[0]?.version} of ${page.activeVersion}`
            : undefined
        }
        prevHref={page.newerAfter !== null ? `/policies/versions?after=${page.newerAfter}` : null}
        nextHref={page.olderBefore !== null ? `/policies/versions?before=${page.olderBefore}` : null}
      />
    </>
  );
}

import Link from "next/link";
import { SystemStateBadge } from "@/components/console/system-state";
import { Badge } from "@/components/ui/badge";
import { PageHeader } from "@/components/ui/card";
import { EmptyRow, Table, Td, Th } from "@/components/ui/table";
import { Time } from "@/components/ui/time";
import { listSystems } from "@/lib/console/systems";
import { getActivePolicy } from "@/lib/policy/store";
import { requireOperator } from "../../_server/operator";

export const metadata = { title: "Systems · Concord" };

export default async function SystemsPage() {
  const { hub } = await requireOperator("systems");
  const policy = await getActivePolicy(hub.db);
  const systems = await listSystems(hub.db, policy);
  return (
    <>
      <PageHeader
        title="Systems"
        description={`The business systems the active policy (version ${policy.version}) declares: their rights, keys and sync state. Open one to issue keys or apply an offline bundle.`}
      />
      <Table caption="Systems">
        <thead>
          <tr>
            <Th>System</Th>
            <Th>Name</Th>
            <Th className="text-right">Priority</Th>
            <Th className="text-right">Reads</Th>
            <Th className="text-right">Writes</Th>
            <Th className="text-right">Active keys</Th>
            <Th>Last sync</Th>
            <Th>State</Th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {systems.length === 0 ? <EmptyRow colSpan={8}>The active policy declares no systems.</EmptyRow> : null}
          {systems.map((s) => (
            <tr key={s.name}>
              <Td className="font-medium">
                <Link href={`/systems/${s.name}`} className="text-indigo-700 hover:underline">
                  {s.name}
                </Link>
              </Td>
              <Td>{s.displayName}</Td>
              <Td className="text-right tabular-nums">{s.priority}</Td>
              <Td className="text-right tabular-nums">{plural(s.reads, "collection")}</Td>
              <Td className="text-right tabular-nums">{plural(s.writes, "collection")}</Td>
              <Td className="text-right">
                <Badge tone={s.activeKeys > 0 ? "blue" : "gray"}>{s.activeKeys}</Badge>
              </Td>
              <Td>
                <Time value={s.lastSyncAt} />
              </Td>
              <Td>
                <SystemStateBadge error={s.error} lastSyncAt={s.lastSyncAt} />
              </Td>
            </tr>
          ))}
        </tbody>
      </Table>
    </>
  );
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

import type { FieldDiff, ThreeWayRow } from "@/lib/console/records-diff";
import { Badge, type BadgeTone } from "@/components/ui/badge";
import { EmptyRow, Table, Td, Th } from "@/components/ui/table";
import { JsonValueText } from "./json-view";
import { VisibleText } from "./visible-text";

const KIND_TONE: Record<FieldDiff["kind"], BadgeTone> = { added: "green", removed: "red", changed: "amber" };

/** Field-level differences from version A to version B. */
export function DiffTable({ rows, labelA, labelB, caption }: { rows: FieldDiff[]; labelA: string; labelB: string; caption: string }) {
  return (
    <Table caption={caption}>
      <thead>
        <tr>
          <Th>Field</Th>
          <Th>Change</Th>
          <Th>{labelA}</Th>
          <Th>{labelB}</Th>
        </tr>
      </thead>
      <tbody className="divide-y divide-slate-100">
        {rows.length === 0 ? <EmptyRow colSpan={4}>The two versions hold the same data.</EmptyRow> : null}
        {rows.map((row) => (
          <tr key={row.path} data-testid="diff-row">
            <Td className="font-mono text-xs">
              <VisibleText text={row.path} />
            </Td>
            <Td>
              <Badge tone={KIND_TONE[row.kind]}>{row.kind}</Badge>
            </Td>
            <Td className="whitespace-normal">
              <JsonValueText value={row.before} />
            </Td>
            <Td className="whitespace-normal">
              <JsonValueText value={row.after} />
            </Td>
          </tr>
        ))}
      </tbody>
    </Table>
  );
}

/** A conflict's fields that differ between base, server and client. */
export function ThreeWayTable({ rows }: { rows: ThreeWayRow[] }) {
  return (
    <Table caption="Field differences between base, server and client">
      <thead>
        <tr>
          <Th>Field</Th>
          <Th>Base</Th>
          <Th>Server</Th>
          <Th>Client</Th>
          <Th>Changed by</Th>
        </tr>
      </thead>
      <tbody className="divide-y divide-slate-100">
        {rows.length === 0 ? <EmptyRow colSpan={5}>The three sides hold the same data.</EmptyRow> : null}
        {rows.map((row) => (
          <tr key={row.path} data-testid="field-diff" className={row.conflicting ? "bg-red-50" : undefined}>
            <Td className="font-mono text-xs">
              <VisibleText text={row.path} />
            </Td>
            <Td className="whitespace-normal">
              <JsonValueText value={row.base} />
            </Td>
            <Td className={`whitespace-normal ${row.serverChanged ? "bg-amber-50" : ""}`}>
              <JsonValueText value={row.server} />
            </Td>
            <Td className={`whitespace-normal ${row.clientChanged ? "bg-amber-50" : ""}`}>
              <JsonValueText value={row.client} />
            </Td>
            <Td>
              {row.conflicting ? (
                <Badge tone="red">both, differently</Badge>
              ) : row.serverChanged && row.clientChanged ? (
                <Badge tone="gray">both, the same</Badge>
              ) : row.serverChanged ? (
                <Badge tone="blue">server</Badge>
              ) : row.clientChanged ? (
                <Badge tone="indigo">client</Badge>
              ) : (
                <Badge tone="gray">neither</Badge>
              )}
            </Td>
          </tr>
        ))}
      </tbody>
    </Table>
  );
}

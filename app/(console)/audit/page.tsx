import { Badge, type BadgeTone } from "@/components/ui/badge";
import { buttonClass } from "@/components/ui/button";
import { PageHeader } from "@/components/ui/card";
import { Field, Input, Select } from "@/components/ui/field";
import { Pagination } from "@/components/ui/pagination";
import { EmptyRow, Table, Td, Th } from "@/components/ui/table";
import { Time } from "@/components/ui/time";
import { AUDIT_ACTIONS, auditQuerySchema, describeDetails, listAudit, type AuditQuery } from "@/lib/console/audit";
import { requireOperator } from "../../_server/operator";
import { VisibleText } from "@/components/console/visible-text";
import { showInvisible } from "@/lib/console/invisible-chars";

export const metadata = { title: "Audit log · Concord" };

function toneOf(action: string): BadgeTone {
  if (action === "sign-in.failed") return "red";
  if (action.startsWith("sign-")) return "gray";
  if (action.startsWith("policy.")) return "indigo";
  if (action.startsWith("key.")) return "amber";
  if (action.startsWith("conflict.") || action.startsWith("record.")) return "blue";
  return "green";
}

function href(query: AuditQuery, page: { before?: number; after?: number }): string {
  const params = new URLSearchParams();
  if (query.actor) params.set("actor", query.actor);
  if (query.action) params.set("action", query.action);
  if (page.before !== undefined) params.set("before", String(page.before));
  if (page.after !== undefined) params.set("after", String(page.after));
  const text = params.toString();
  return text ? `/audit?${text}` : "/audit";
}

export default async function AuditPage({ searchParams }: { searchParams: Promise<Record<string, string | string[] | undefined>> }) {
  const { hub } = await requireOperator("audit");
  const raw = await searchParams;
  const query = auditQuerySchema.parse({
    actor: typeof raw.actor === "string" && raw.actor.trim() !== "" ? raw.actor : undefined,
    action: typeof raw.action === "string" && raw.action !== "" ? raw.action : undefined,
    before: typeof raw.before === "string" ? raw.before : undefined,
    after: typeof raw.after === "string" ? raw.after : undefined,
  });
  const page = await listAudit(hub.db, query);

  return (
    <>
      <PageHeader
        title="Audit log"
        description="Every operator action: sign-ins, policy changes, keys, conflict resolutions, restores and bundles, with who did it and when. Newest first."
      />
      <form method="get" action="/audit" className="mb-4 flex flex-wrap items-end gap-3" role="search" aria-label="Filter the audit log">
        <div className="w-56">
          <Field label="Actor">
            <Input name="actor" defaultValue={query.actor ?? ""} placeholder="username or admin-token" autoComplete="off" />
          </Field>
        </div>
        <div className="w-56">
          <Field label="Action">
            <Select name="action" defaultValue={query.action ?? ""}>
              <option value="">every action</option>
              {AUDIT_ACTIONS.map((a) => (
                <option key={a} value={a}>
                  {a}
                </option>
              ))}
            </Select>
          </Field>
        </div>
        <button type="submit" className={buttonClass("primary")}>
          Filter
        </button>
        {query.actor || query.action ? (
          <a href="/audit" className={buttonClass("ghost")}>
            Clear
          </a>
        ) : null}
      </form>
      <Table caption="Audit log">
        <thead>
          <tr>
            <Th>When</Th>
            <Th>Who</Th>
            <Th>Action</Th>
            <Th>Target</Th>
            <Th>Details</Th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {page.entries.length === 0 ? <EmptyRow colSpan={5}>Nothing matches these filters.</EmptyRow> : null}
          {page.entries.map((e) => (
            <tr key={e.id} data-testid="audit-row">
              <Td>
                <Time value={e.at} />
              </Td>
              <Td className="font-medium">
                <VisibleText text={e.actor} />
              </Td>
              <Td>
                <Badge tone={toneOf(e.action)}>{e.action}</Badge>
              </Td>
              <Td className="font-mono text-xs">
                <VisibleText text={e.target ?? ""} />
              </Td>
              <Td className="max-w-md truncate text-xs text-slate-600" title={showInvisible(describeDetails(e.details))}>
                <VisibleText text={describeDetails(e.details)} />
              </Td>
            </tr>
          ))}
        </tbody>
      </Table>
      <Pagination
        prevHref={page.newer !== null ? href(query, { after: page.newer }) : null}
        nextHref={page.older !== null ? href(query, { before: page.older }) : null}
        summary={`${page.entries.length} ${page.entries.length === 1 ? "entry" : "entries"} on this page`}
      />
    </>
  );
}

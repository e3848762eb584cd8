import Link from "next/link";
import { DiffTable } from "@/components/console/diff-table";
import { VisibleText } from "@/components/console/visible-text";
import { JsonView } from "@/components/console/json-view";
import { Alert, ErrorList } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { buttonClass } from "@/components/ui/button";
import { Card, PageHeader } from "@/components/ui/card";
import { Field, Input } from "@/components/ui/field";
import { Pagination } from "@/components/ui/pagination";
import { Table, Td, Th } from "@/components/ui/table";
import { Time } from "@/components/ui/time";
import { showInvisible } from "@/lib/console/invisible-chars";
import { queryString, type SearchParams } from "@/lib/console/query";
import { diffVersions, getRecordDetail, parseRecordPageQuery, recordKeySchema, type VersionDiff } from "@/lib/console/records-history";
import { isServiceError } from "@/lib/errors";
import { requireOperator } from "../../../../_server/operator";
import { RestoreButton } from "./restore-button";

export const metadata = { title: "Record · Concord" };

export default async function RecordPage({
  params,
  searchParams,
}: {
  params: Promise<{ collection: string; id: string }>;
  searchParams: Promise<SearchParams>;
}) {
  const { hub, canWrite } = await requireOperator("records");
  const raw = await params;
  const key = recordKeySchema.safeParse({ collection: raw.collection, id: decodeSegment(raw.id) });
  if (!key.success) return <Missing message={`That is not a record address: ${key.error.issues[0]?.message}.`} />;
  const { collection, id } = key.data;
  const { values: q, errors } = parseRecordPageQuery(await searchParams);

  let detail;
  try {
    detail = await getRecordDetail({ db: hub.db }, { collection, id, before: q.before });
  } catch (error) {
    if (isServiceError(error) && error.code === "not_found") return <Missing message={error.message} />;
    throw error;
  }
  const { record, history } = detail;
  const a = q.a ?? Math.max(1, record.version - 1);
  const b = q.b ?? record.version;
  let diff: VersionDiff | null = null;
  try {
    diff = await diffVersions({ db: hub.db }, { collection, id, a, b });
  } catch (error) {
    if (!(isServiceError(error) && error.code === "not_found")) throw error;
    errors.push(error.message);
  }
  const self = `/records/${collection}/${encodeURIComponent(id)}`;

  return (
    <>
      <PageHeader
        title={
          <>
            <span className="text-slate-500">
              <VisibleText text={collection} />/
            </span>
            <VisibleText text={id} /> {record.deleted ? <Badge tone="red">deleted</Badge> : null}
          </>
        }
        description={
          <>
            Version {record.version}, written by <VisibleText text={record.updatedBy} /> at <Time value={record.updatedAt} />.
          </>
        }
        actions={
          <Link href={`/records${queryString({ collection })}`} className="text-sm text-indigo-700 hover:underline">
            ← <VisibleText text={collection} />
          </Link>
        }
      />
      <ErrorList messages={errors} />
      <div className="grid grid-cols-1 gap-6 xl:grid-cols-[minmax(16rem,1fr)_auto]">
        <Card title={`Current data (version ${record.version})`}>
          <JsonView label="Current data" value={record.data} empty="The record is deleted; restore a version from its history to bring it back." />
        </Card>
        <section className="min-w-0">
          <h2 className="mb-2 text-sm font-semibold text-slate-900">History</h2>
          <Table caption="Version history">
            <thead>
              <tr>
                <Th className="text-right">Version</Th>
                <Th className="whitespace-nowrap">Written by</Th>
                <Th>When</Th>
                <Th>How</Th>
                <Th>
                  <span className="sr-only">Diff</span>
                </Th>
                <Th>
                  <span className="sr-only">Restore</span>
                </Th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {history.versions.map((v) => (
                <tr key={v.version} data-testid="history-row" data-version={v.version}>
                  <Td className="text-right tabular-nums">
                    {v.version}
                    {v.version === record.version ? <span className="ml-1 text-xs text-slate-500">(current)</span> : null}
                  </Td>
                  <Td>
                    <VisibleText text={v.writtenBy} />
                  </Td>
                  <Td>
                    <Time value={v.writtenAt} />
                  </Td>
                  <Td>
                    {v.origin}
                    {v.deleted ? (
                      <span className="ml-2">
                        <Badge tone="red">deleted</Badge>
                      </span>
                    ) : null}
                  </Td>
                  <Td>
                    {v.version > 1 ? (
                      <Link
                        className="text-xs text-indigo-700 hover:underline"
                        href={`${self}${queryString({ a: v.version - 1, b: v.version, before: q.before })}`}
                        aria-label={`Changes in version ${v.version}`}
                      >
                        changes
                      </Link>
                    ) : null}
                  </Td>
                  <Td className="text-right">
                    {canWrite && v.version !== record.version ? (
                      <RestoreButton collection={collection} id={id} version={v.version} current={record.version} deleted={v.deleted} />
                    ) : null}
                  </Td>
                </tr>
              ))}
            </tbody>
          </Table>
          <Pagination
            summary={`${record.version} version${record.version === 1 ? "" : "s"} in all`}
            prevHref={q.before !== undefined ? `${self}${queryString({ a: q.a, b: q.b })}` : null}
            nextHref={history.next !== null ? `${self}${queryString({ a: q.a, b: q.b, before: history.next })}` : null}
          />
        </section>
      </div>

      <section className="mt-8">
        <h2 className="mb-2 text-sm font-semibold text-slate-900">Compare two versions</h2>
        <form method="get" action={self} className="mb-3 flex flex-wrap items-end gap-3">
          <div className="w-32">
            <Field label="Version A">
              <Input type="number" name="a" min={1} max={record.version} defaultValue={a} required />
            </Field>
          </div>
          <div className="w-32">
            <Field label="Version B">
              <Input type="number" name="b" min={1} max={record.version} defaultValue={b} required />
            </Field>
          </div>
          {q.before !== undefined ? <input type="hidden" name="before" value={q.before} /> : null}
          <button type="submit" className={buttonClass("secondary")}>
            Compare
          </button>
        </form>
        {diff ? (
          <DiffTable
            caption={`Differences from version ${a} to version ${b}`}
            rows={diff.rows}
            labelA={`Version ${a}${diff.a.deleted ? " (deleted)" : ""} · ${showInvisible(diff.a.writtenBy)}`}
            labelB={`Version ${b}${diff.b.deleted ? " (deleted)" : ""} · ${showInvisible(diff.b.writtenBy)}`}
          />
        ) : null}
      </section>
    </>
  );
}

/** A path segment as the id it names (ids may hold "/" or spaces, sent percent-encoded). */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function Missing({ message }: { message: string }) {
  return (
    <>
      <PageHeader title="Record" />
      <Alert tone="error">{showInvisible(message)}</Alert>
      <p className="mt-4 text-sm">
        <Link href="/records" className="text-indigo-700 hover:underline">
          ← Records
        </Link>
      </p>
    </>
  );
}

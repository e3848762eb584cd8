import Link from "next/link";
import { Alert, ErrorList } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { buttonClass } from "@/components/ui/button";
import { PageHeader } from "@/components/ui/card";
import { Field, Input, Select } from "@/components/ui/field";
import { EmptyRow, Table, Td, Th } from "@/components/ui/table";
import { Time } from "@/components/ui/time";
import { queryString, type SearchParams } from "@/lib/console/query";
import { listRecords, parseRecordFilters } from "@/lib/console/records-list";
import { getActivePolicy } from "@/lib/policy/store";
import { requireOperator } from "../../_server/operator";
import { VisibleText } from "@/components/console/visible-text";
import { showInvisible } from "@/lib/console/invisible-chars";

export const metadata = { title: "Records · Concord" };

export default async function RecordsPage({ searchParams }: { searchParams: Promise<SearchParams> }) {
  const { hub } = await requireOperator("records");
  const { values: f, errors } = parseRecordFilters(await searchParams);
  const policy = await getActivePolicy(hub.db);
  const collections = policy.compiled.collectionNames();
  const collection = f.collection ?? collections[0];
  const page = collection ? await listRecords({ db: hub.db }, { ...f, collection }) : null;
  const base = { collection, prefix: f.prefix, field: f.field, value: f.value };

  return (
    <>
      <PageHeader title="Records" description="The hub's copy of every record, tombstones included. Open a record for its history." />
      <form method="get" action="/records" className="mb-4 grid grid-cols-2 gap-3 rounded-lg border border-slate-200 bg-white p-4 shadow-sm md:grid-cols-5 md:items-end">
        <Field label="Collection">
          <Select name="collection" defaultValue={collection ?? ""}>
            {collections.map((c) => (
              <option key={c}>{c}</option>
            ))}
            {collection && !collections.includes(collection) ? <option>{collection}</option> : null}
          </Select>
        </Field>
        <Field label="Id starts with">
          <Input name="prefix" defaultValue={f.prefix ?? ""} placeholder="e.g. c10" autoComplete="off" />
        </Field>
        <Field label="Field">
          <Input name="field" defaultValue={f.field ?? ""} placeholder="e.g. status or address.city" autoComplete="off" />
        </Field>
        <Field label="Equals">
          <Input name="value" defaultValue={f.value ?? ""} placeholder='paid, 42, true, "42"' autoComplete="off" />
        </Field>
        <div className="flex gap-2">
          <button type="submit" className={buttonClass("primary")}>
            Search
          </button>
          {f.prefix || f.field ? (
            <Link href={`/records${queryString({ collection })}`} className={buttonClass("ghost")}>
              Clear
            </Link>
          ) : null}
        </div>
      </form>
      <ErrorList messages={errors} />
      {!page || !collection ? (
        <Alert tone="info">The active policy declares no collections.</Alert>
      ) : (
        <>
          <Table caption={`Records of ${collection}`}>
            <thead>
              <tr>
                <Th>Id</Th>
                <Th className="text-right">Version</Th>
                <Th>Updated by</Th>
                <Th>Updated</Th>
                <Th>Data</Th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {page.rows.length === 0 ? (
                <EmptyRow colSpan={5}>{f.prefix || f.field ? "No record matches." : `No records in ${collection} yet.`}</EmptyRow>
              ) : null}
              {page.rows.map((r) => (
                <tr key={r.id} data-testid="record-row">
                  <Td className="max-w-72 truncate">
                    <Link href={`/records/${collection}/${encodeURIComponent(r.id)}`} className="font-medium text-indigo-700 hover:underline">
                      <VisibleText text={r.id} />
                    </Link>
                    {r.deleted ? (
                      <span className="ml-2">
                        <Badge tone="red">deleted</Badge>
                      </span>
                    ) : null}
                  </Td>
                  <Td className="text-right tabular-nums">{r.version}</Td>
                  <Td>
                    <VisibleText text={r.updatedBy} />
                  </Td>
                  <Td>
                    <Time value={r.updatedAt} />
                  </Td>
                  <Td className="max-w-md truncate font-mono text-xs text-slate-600" title={showInvisible(r.preview)}>
                    {r.deleted ? <span className="text-slate-400">(deleted)</span> : <VisibleText text={r.preview} />}
                  </Td>
                </tr>
              ))}
            </tbody>
          </Table>
          <nav aria-label="Pagination" className="mt-3 flex items-center justify-between gap-3 text-sm text-slate-600">
            <span>
              {page.rows.length > 0 ? (
                <>
                  {page.rows.length} records from <VisibleText text={page.rows[0]!.id} />, in id order
                </>
              ) : null}
            </span>
            <span className="flex gap-2">
              {f.after !== undefined ? (
                <Link className={buttonClass("secondary", "sm")} href={`/records${queryString(base)}`}>
                  ← First page
                </Link>
              ) : null}
              {page.next !== null ? (
                <Link className={buttonClass("secondary", "sm")} href={`/records${queryString({ ...base, after: page.next })}`} rel="next">
                  Next →
                </Link>
              ) : null}
            </span>
          </nav>
        </>
      )}
    </>
  );
}

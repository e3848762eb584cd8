"use client";

import { useState, useTransition } from "react";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card } from "@/components/ui/card";
import { Field, Input, Select, Textarea } from "@/components/ui/field";
import { EmptyRow, Table, Td, Th } from "@/components/ui/table";
import type { DraftCheck } from "@/lib/console/policy-draft";
import type { AccessImpact, Decision } from "@/lib/console/policy-simulate";
import { accessImpactAction, simulateAction, type SimulationView } from "./actions";
import { VisibleText } from "@/components/console/visible-text";

type Outcome<T> = { ok: true; value: T } | { ok: false; message: string } | null;

export function PolicySimulator({
  activeVersion,
  activeSystems,
  activeCollections,
  draft,
  draftChanged,
  draftCheck,
}: {
  activeVersion: number;
  activeSystems: string[];
  activeCollections: string[];
  draft: string;
  draftChanged: boolean;
  draftCheck: DraftCheck | null;
}) {
  const [policy, setPolicy] = useState<"active" | "draft">("active");
  const [system, setSystem] = useState(activeSystems[0] ?? "");
  const [collection, setCollection] = useState(activeCollections[0] ?? "");
  const [source, setSource] = useState<"id" | "json">("id");
  const [recordId, setRecordId] = useState("");
  const [recordJson, setRecordJson] = useState("");
  const [result, setResult] = useState<Outcome<SimulationView>>(null);
  const [pending, start] = useTransition();

  const draftUsable = draftChanged && draftCheck?.ok === true;
  const usingDraft = policy === "draft" && draftUsable;
  const systems = usingDraft ? draftCheck.systems : activeSystems;
  const collections = usingDraft ? draftCheck.collections : activeCollections;
  const sys = systems.includes(system) ? system : (systems[0] ?? "");
  const col = collections.includes(collection) ? collection : (collections[0] ?? "");

  return (
    <>
      <Card title="Simulator">
        <p className="mb-3 text-sm text-slate-600">
          What a system may do with one record: decisions by the policy engine (Casbin), fields and conflict strategy from the compiled policy.
        </p>
        <form
          className="grid grid-cols-1 gap-3 md:grid-cols-3"
          aria-label="Simulator"
          onSubmit={(e) => {
            e.preventDefault();
            start(async () => {
              const r = await simulateAction({
                policy: usingDraft ? "draft" : "active",
                yaml: usingDraft ? draft : undefined,
                system: sys,
                collection: col,
                source,
                recordId: source === "id" ? recordId : undefined,
                recordJson: source === "json" ? recordJson : undefined,
              });
              setResult(r);
            });
          }}
        >
          <Field label="Policy" hint={draftUsable ? undefined : "The draft can be simulated once it is changed and valid."}>
            <Select value={usingDraft ? "draft" : "active"} onChange={(e) => setPolicy(e.target.value as "active" | "draft")}>
              <option value="active">Active version {activeVersion}</option>
              <option value="draft" disabled={!draftUsable}>
                Current draft
              </option>
            </Select>
          </Field>
          <Field label="System">
            <Select value={sys} onChange={(e) => setSystem(e.target.value)}>
              {systems.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </Select>
          </Field>
          <Field label="Collection">
            <Select value={col} onChange={(e) => setCollection(e.target.value)}>
              {collections.map((c) => (
                <option key={c} value={c}>
                  {c}
                </option>
              ))}
            </Select>
          </Field>
          <fieldset className="md:col-span-3">
            <legend className="mb-1 text-sm font-medium text-slate-800">Record</legend>
            <div className="flex gap-4 text-sm">
              <label className="flex items-center gap-1.5">
                <input type="radio" name="source" value="id" checked={source === "id"} onChange={() => setSource("id")} />
                A record of the hub, by id
              </label>
              <label className="flex items-center gap-1.5">
                <input type="radio" name="source" value="json" checked={source === "json"} onChange={() => setSource("json")} />
                Pasted JSON
              </label>
            </div>
          </fieldset>
          <div className="md:col-span-3">
            {source === "id" ? (
              <Field label="Record id" hint={`The id of a record in ${col || "the collection"}.`}>
                <Input value={recordId} onChange={(e) => setRecordId(e.target.value)} autoComplete="off" className="max-w-md" />
              </Field>
            ) : (
              <Field label="Record JSON" hint={'A JSON object, e.g. {"region": "north", "name": "Ada"}.'}>
                <Textarea rows={4} value={recordJson} onChange={(e) => setRecordJson(e.target.value)} spellCheck={false} />
              </Field>
            )}
          </div>
          <div className="md:col-span-3">
            <Button type="submit" disabled={pending || !sys || !col}>
              {pending ? "Simulating…" : "Simulate"}
            </Button>
          </div>
        </form>
        {result && !result.ok ? (
          <div className="mt-4">
            <Alert tone="error">{result.message}</Alert>
          </div>
        ) : null}
        {result?.ok ? <SimulationResult sim={result.value} /> : null}
      </Card>
      <AccessImpactCard activeVersion={activeVersion} draft={draft} usable={draftUsable} />
    </>
  );
}

function DecisionBadge({ d }: { d: Decision }) {
  return <Badge tone={d.allowed ? "green" : "red"}>{d.allowed ? "allowed" : "denied"}</Badge>;
}

function fieldText(fields: "*" | string[]): string {
  if (fields === "*") return "all fields";
  return fields.length === 0 ? "none" : fields.join(", ");
}

function SimulationResult({ sim }: { sim: SimulationView }) {
  const c = sim.conflict;
  return (
    <section className="mt-5 flex flex-col gap-4" aria-label="Simulation result" data-testid="simulation-result">
      <h3 className="text-sm font-semibold text-slate-900">
        {sim.system} on {sim.collection}, under {sim.policyLabel}
      </h3>
      <Table caption="Decisions">
        <thead>
          <tr>
            <Th>Action</Th>
            <Th>Decision</Th>
            <Th>Why</Th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {(["read", "write", "delete"] as const).map((a) => (
            <tr key={a} data-action={a}>
              <Td className="font-medium">{a}</Td>
              <Td>
                <DecisionBadge d={sim[a]} />
              </Td>
              <Td className="min-w-[20rem] whitespace-normal! text-slate-600">{sim[a].reason}</Td>
            </tr>
          ))}
        </tbody>
      </Table>
      <dl className="grid grid-cols-1 gap-x-6 gap-y-2 text-sm sm:grid-cols-[max-content_1fr]">
        <dt className="font-medium text-slate-700">Visible fields</dt>
        <dd data-testid="visible-fields">{fieldText(sim.visibleFields)}</dd>
        <dt className="font-medium text-slate-700">Writable fields</dt>
        <dd data-testid="writable-fields">{fieldText(sim.writableFields)}</dd>
        <dt className="font-medium text-slate-700">Conflict strategy</dt>
        <dd data-testid="conflict-strategy">
          {c.strategy}
          {c.fallback ? `, falling back to ${c.fallback} when the same field collides` : ""}
          <span className="text-slate-500"> (system priority {c.priority})</span>
        </dd>
      </dl>
      <details className="text-sm">
        <summary className="cursor-pointer font-medium text-slate-700">Record data evaluated</summary>
        <pre className="mt-2 max-h-60 overflow-auto rounded-md bg-slate-50 p-3 font-mono text-xs text-slate-800"><VisibleText text={JSON.stringify(sim.record, null, 2)} layout />
        </pre>
      </details>
      {sim.fields.length > 0 ? (
        <Table caption="Fields of the record">
          <thead>
            <tr>
              <Th>Field of the record</Th>
              <Th>Readable</Th>
              <Th>Writable</Th>
            </tr>
          </thead>
          <tbody className="divide-y divide-slate-100">
            {sim.fields.map((f) => (
              <tr key={f.name}>
                <Td className="font-mono text-xs">{f.name}</Td>
                <Td>{f.readable ? <Badge tone="green">yes</Badge> : <Badge tone="gray">no</Badge>}</Td>
                <Td>{f.writable ? <Badge tone="green">yes</Badge> : <Badge tone="gray">no</Badge>}</Td>
              </tr>
            ))}
          </tbody>
        </Table>
      ) : null}
    </section>
  );
}

function AccessImpactCard({ activeVersion, draft, usable }: { activeVersion: number; draft: string; usable: boolean }) {
  const [pending, start] = useTransition();
  const [impact, setImpact] = useState<Outcome<{ activeVersion: number; rows: AccessImpact[] }>>(null);
  const [computedFor, setComputedFor] = useState<string | null>(null);
  const changed = impact?.ok ? impact.value.rows.filter((r) => r.gained > 0 || r.lost > 0) : [];
  const unchanged = impact?.ok ? impact.value.rows.length - changed.length : 0;
  return (
    <Card title="Access impact of the draft">
      <p className="mb-3 text-sm text-slate-600">
        Per system and collection, how many records the draft would let it read that it cannot read now, and how many it would stop reading.
        This reads every live record once (about 1.5 s per million records on a small server), so it runs only when you ask.
      </p>
      <div className="flex items-center gap-3">
        <Button
          variant="secondary"
          disabled={pending || !usable}
          onClick={() =>
            start(async () => {
              const r = await accessImpactAction(draft);
              setImpact(r);
              setComputedFor(draft);
            })
          }
        >
          {pending ? "Counting records…" : "Compute access impact"}
        </Button>
        {!usable ? <span className="text-sm text-slate-600">Change the draft and fix any errors first.</span> : null}
        {impact?.ok && computedFor !== draft ? <span className="text-sm text-amber-700">The draft changed since; compute again.</span> : null}
      </div>
      {impact && !impact.ok ? (
        <div className="mt-3">
          <Alert tone="error">{impact.message}</Alert>
        </div>
      ) : null}
      {impact?.ok ? (
        <div className="mt-4" data-testid="access-impact">
          <Table caption={`Access impact against version ${activeVersion}`}>
            <thead>
              <tr>
                <Th>System</Th>
                <Th>Collection</Th>
                <Th className="text-right">Gains read access to</Th>
                <Th className="text-right">Loses read access to</Th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {changed.length === 0 ? <EmptyRow colSpan={4}>The draft changes no system&apos;s read access to any existing record.</EmptyRow> : null}
              {changed.map((r) => (
                <tr key={`${r.system}/${r.collection}`}>
                  <Td className="font-medium">{r.system}</Td>
                  <Td>{r.collection}</Td>
                  <Td className="text-right tabular-nums text-emerald-700">{r.gained > 0 ? `+${r.gained.toLocaleString("en")}` : "0"}</Td>
                  <Td className="text-right tabular-nums text-red-700">{r.lost > 0 ? `−${r.lost.toLocaleString("en")}` : "0"}</Td>
                </tr>
              ))}
            </tbody>
          </Table>
          {changed.length > 0 && unchanged > 0 ? (
            <p className="mt-2 text-sm text-slate-600">
              The other {unchanged} system/collection pair{unchanged === 1 ? "" : "s"} keep exactly the records they read now.
            </p>
          ) : null}
        </div>
      ) : null}
    </Card>
  );
}

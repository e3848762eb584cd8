"use client";

import { yaml as yamlLanguage } from "@codemirror/lang-yaml";
import { lintGutter, setDiagnostics, type Diagnostic } from "@codemirror/lint";
import { EditorView } from "@codemirror/view";
import CodeMirror from "@uiw/react-codemirror";
import { useRouter } from "next/navigation";
import { useCallback, useEffect, useMemo, useRef, useState, useTransition } from "react";
import { PolicyDiffView } from "@/components/console/policy-diff-view";
import { Alert } from "@/components/ui/alert";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card } from "@/components/ui/card";
import { Field, Textarea } from "@/components/ui/field";
import { diffPolicies } from "@/lib/console/policy-diff";
import type { DraftCheck } from "@/lib/console/policy-draft";
import type { PolicyIssue } from "@/lib/policy/validate";
import { activateDraftAction, checkDraftAction } from "./actions";
import { PolicySimulator } from "./policy-simulator";

const VALIDATE_DELAY_MS = 300;

type CheckState = { status: "checking" } | { status: "done"; check: DraftCheck } | { status: "failed"; message: string };
type Checked = { text: string; state: Exclude<CheckState, { status: "checking" }> };

interface Problem extends PolicyIssue {
  severity: "error" | "warning";
}

/** Diagnostics for CodeMirror: from the issue's column to the end of its line. */
function toDiagnostics(view: EditorView, problems: Problem[]): Diagnostic[] {
  const doc = view.state.doc;
  return problems.map((p) => {
    const line = doc.line(Math.min(Math.max(p.line, 1), doc.lines));
    const from = Math.min(line.from + Math.max(p.column - 1, 0), line.to);
    return { from, to: line.to, severity: p.severity, message: p.message, source: "policy" };
  });
}

export function PolicyWorkbench({
  active,
  canWrite,
  activeSystems,
  activeCollections,
  styleNonce,
}: {
  active: { version: number; yaml: string };
  canWrite: boolean;
  activeSystems: string[];
  activeCollections: string[];
  /** The page's CSP nonce: CodeMirror puts it on the <style> elements it adds where constructed stylesheets are missing. */
  styleNonce: string | null;
}) {
  const router = useRouter();
  const [draft, setDraft] = useState(active.yaml);
  // The version the draft was loaded from: activation is refused if another one became active since.
  const [baseVersion, setBaseVersion] = useState(active.version);
  const [checked, setChecked] = useState<Checked | null>(null);
  // The answer counts only for the text it was computed for; until then the draft is being checked.
  const check: CheckState = checked && checked.text === draft ? checked.state : { status: "checking" };
  const viewRef = useRef<EditorView | null>(null);
  const seq = useRef(0);

  const problems = useMemo<Problem[]>(() => {
    if (!checked || checked.state.status !== "done") return [];
    const c = checked.state.check;
    return [
      ...c.errors.map((e) => ({ ...e, severity: "error" as const })),
      ...c.warnings.map((w) => ({ ...w, severity: "warning" as const })),
    ].sort((a, b) => a.line - b.line || a.column - b.column);
  }, [checked]);

  // Validate the draft on the server, 300 ms after the last keystroke; only the latest answer counts.
  useEffect(() => {
    const mine = ++seq.current;
    const text = draft;
    const timer = setTimeout(() => {
      checkDraftAction(text).then(
        (result) => {
          if (mine !== seq.current) return;
          setChecked({ text, state: result.ok ? { status: "done", check: result.value } : { status: "failed", message: result.message } });
        },
        () => {
          if (mine !== seq.current) return;
          setChecked({ text, state: { status: "failed", message: "The server did not answer; check your connection. Validation resumes when you type." } });
        },
      );
    }, VALIDATE_DELAY_MS);
    return () => clearTimeout(timer);
  }, [draft]);

  // Show the latest problems inline, once they belong to the text in the editor.
  useEffect(() => {
    const view = viewRef.current;
    if (!view || !checked || view.state.doc.toString() !== checked.text) return;
    view.dispatch(setDiagnostics(view.state, toDiagnostics(view, problems)));
  }, [problems, checked]);

  const jumpTo = useCallback((p: Problem) => {
    const view = viewRef.current;
    if (!view) return;
    const line = view.state.doc.line(Math.min(Math.max(p.line, 1), view.state.doc.lines));
    const pos = Math.min(line.from + Math.max(p.column - 1, 0), line.to);
    view.dispatch({ selection: { anchor: pos }, effects: EditorView.scrollIntoView(pos, { y: "center" }) });
    view.focus();
  }, []);

  const extensions = useMemo(
    () => [
      yamlLanguage(),
      lintGutter(),
      EditorView.contentAttributes.of({ "aria-label": "Policy YAML", "aria-describedby": "policy-editor-help" }),
      ...(styleNonce ? [EditorView.cspNonce.of(styleNonce)] : []),
    ],
    [styleNonce],
  );
  const diff = useMemo(() => diffPolicies(active.yaml, draft), [active.yaml, draft]);
  // Leaving the page loses the draft: ask the browser to confirm while it differs from the active text.
  const unsaved = canWrite && diff.changed;
  useEffect(() => {
    if (!unsaved) return;
    const warn = (e: BeforeUnloadEvent) => e.preventDefault();
    window.addEventListener("beforeunload", warn);
    return () => window.removeEventListener("beforeunload", warn);
  }, [unsaved]);
  const errors = problems.filter((p) => p.severity === "error").length;
  const warnings = problems.length - errors;
  const valid = check.status === "done" && check.check.ok;

  return (
    <div className="flex flex-col gap-6">
      <Card
        title={canWrite ? "Draft" : `Active policy (version ${active.version})`}
        actions={
          <span className="flex items-center gap-2" data-testid="validation-status" aria-live="polite">
            {check.status === "checking" ? <Badge tone="gray">Checking…</Badge> : null}
            {check.status === "failed" ? <Badge tone="red">Not checked</Badge> : null}
            {check.status === "done" && errors > 0 ? <Badge tone="red">{errors} error{errors === 1 ? "" : "s"}</Badge> : null}
            {check.status === "done" && warnings > 0 ? <Badge tone="amber">{warnings} warning{warnings === 1 ? "" : "s"}</Badge> : null}
            {check.status === "done" && errors === 0 ? <Badge tone="green">Valid</Badge> : null}
            {canWrite && diff.changed ? (
              <Button variant="ghost" size="sm" onClick={() => setDraft(active.yaml)}>
                Discard changes
              </Button>
            ) : null}
          </span>
        }
      >
        <p id="policy-editor-help" className="mb-2 text-xs text-slate-500">
          {canWrite
            ? `Based on version ${baseVersion}. Checked by the hub's policy engine as you type; problems show at their line. Tab moves focus out of the editor.`
            : "Your role (viewer) may read the policy but not change it."}
        </p>
        <div className="overflow-hidden rounded-md border border-slate-300">
          <CodeMirror
            value={draft}
            onChange={(value) => setDraft(value)}
            extensions={extensions}
            editable={canWrite}
            readOnly={!canWrite}
            indentWithTab={false}
            height="26rem"
            onCreateEditor={(view) => {
              viewRef.current = view;
            }}
            basicSetup={{ foldGutter: false, highlightActiveLine: canWrite }}
          />
        </div>
        {check.status === "failed" ? (
          <div className="mt-3">
            <Alert tone="error">{check.message}</Alert>
          </div>
        ) : null}
        <ProblemList problems={problems} onPick={jumpTo} />
      </Card>

      <Card title={`Changes against the active version ${active.version}`}>
        <PolicyDiffView diff={diff} oldLabel={`version ${active.version}`} newLabel="the draft" />
      </Card>

      {canWrite ? (
        <ActivateForm
          draft={draft}
          baseVersion={baseVersion}
          blocked={
            !diff.changed
              ? "The draft is the same as the active version: change something first."
              : check.status === "checking"
                ? "Checking the draft…"
                : !valid
                  ? "Fix the errors above before activating."
                  : null
          }
          onActivated={(version) => {
            setBaseVersion(version);
            router.refresh();
          }}
        />
      ) : null}

      <PolicySimulator
        activeVersion={active.version}
        activeSystems={activeSystems}
        activeCollections={activeCollections}
        draft={draft}
        draftChanged={diff.changed}
        draftCheck={check.status === "done" ? check.check : null}
      />
    </div>
  );
}

function ProblemList({ problems, onPick }: { problems: Problem[]; onPick: (p: Problem) => void }) {
  if (problems.length === 0) return null;
  return (
    <div className="mt-3">
      <h3 className="mb-1 text-sm font-semibold text-slate-800">Problems</h3>
      <ul aria-label="Problems" className="divide-y divide-slate-100 rounded-md border border-slate-200">
        {problems.map((p, i) => (
          <li key={`${p.line}:${p.column}:${i}`}>
            <button
              type="button"
              onClick={() => onPick(p)}
              className="flex w-full items-start gap-3 px-3 py-1.5 text-left text-sm hover:bg-slate-50 focus-visible:bg-indigo-50 focus-visible:outline-none"
            >
              <Badge tone={p.severity === "error" ? "red" : "amber"}>{p.severity}</Badge>
              <span className="shrink-0 tabular-nums text-slate-500">
                line {p.line}, col {p.column}
              </span>
              <span className="text-slate-800">{p.message}</span>
            </button>
          </li>
        ))}
      </ul>
    </div>
  );
}

function ActivateForm({
  draft,
  baseVersion,
  blocked,
  onActivated,
}: {
  draft: string;
  baseVersion: number;
  blocked: string | null;
  onActivated: (version: number) => void;
}) {
  const [comment, setComment] = useState("");
  const [pending, start] = useTransition();
  const [result, setResult] = useState<{ ok: boolean; message: string } | null>(null);
  return (
    <Card title="Activate">
      <form
        className="flex flex-col gap-3"
        onSubmit={(e) => {
          e.preventDefault();
          start(async () => {
            const r = await activateDraftAction({ yaml: draft, baseVersion, comment });
            setResult({ ok: r.ok, message: r.ok ? (r.message ?? "Activated.") : r.message });
            if (r.ok) {
              setComment("");
              onActivated(r.value.version);
            }
          });
        }}
      >
        <Field label="Comment" hint="Required. Say why the policy changes; it is kept with the version and in the audit log.">
          <Textarea
            name="comment"
            rows={2}
            required
            maxLength={500}
            value={comment}
            onChange={(e) => setComment(e.target.value)}
            className="font-sans"
          />
        </Field>
        <div className="flex items-center gap-3">
          <Button type="submit" disabled={pending || blocked !== null || comment.trim() === ""}>
            {pending ? "Activating…" : "Activate draft"}
          </Button>
          {blocked ? <span className="text-sm text-slate-600">{blocked}</span> : null}
        </div>
        {result ? <Alert tone={result.ok ? "success" : "error"}>{result.message}</Alert> : null}
      </form>
    </Card>
  );
}

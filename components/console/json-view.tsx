import { showInvisible } from "@/lib/console/invisible-chars";
import type { FieldMark } from "@/lib/console/records-diff";
import type { JsonObject, JsonValue } from "@/lib/sync/protocol";
import { VisibleText } from "./visible-text";

const MARK_CLASS: Record<FieldMark, string> = {
  changed: "bg-amber-100/80 ring-1 ring-inset ring-amber-300",
  conflict: "bg-red-100 ring-1 ring-inset ring-red-300",
};

/**
 * A record's data as indented JSON, one block per top-level field, with the
 * fields named in `marks` highlighted (changed, or in conflict). Keys keep the
 * record's order; values are shown exactly as stored, with invisible and
 * direction-changing characters marked (VisibleText).
 */
export function JsonView({
  value,
  marks = {},
  empty = "no data",
  label,
}: {
  value: JsonObject | null | undefined;
  marks?: Record<string, FieldMark>;
  empty?: string;
  label?: string;
}) {
  if (!value) {
    return <p className="rounded-md border border-dashed border-slate-300 px-3 py-6 text-center text-sm text-slate-500">{empty}</p>;
  }
  const keys = Object.keys(value);
  return (
    <div
      aria-label={label}
      className="overflow-x-auto rounded-md border border-slate-200 bg-slate-50 p-2 font-mono text-xs leading-5 text-slate-800"
    >
      <div>{"{"}</div>
      {keys.map((key, i) => {
        const mark = marks[key];
        return (
          <div
            key={key}
            data-field={key}
            data-mark={mark}
            className={`whitespace-pre rounded-sm pl-4 ${mark ? MARK_CLASS[mark] : ""}`}
            title={mark === "conflict" ? "changed on both sides, differently" : mark === "changed" ? "changed" : undefined}
          >
            <span className="text-indigo-800">
              <VisibleText text={JSON.stringify(key)} />
            </span>
            {": "}
            {/* Continuation lines start under the key, so the value's own indentation reads right. */}
            <VisibleText text={JSON.stringify(value[key], null, 2)} layout />
            {i < keys.length - 1 ? "," : ""}
          </div>
        );
      })}
      <div>{"}"}</div>
    </div>
  );
}

/** One JSON value inline: `—` when absent, else compact JSON. */
export function JsonValueText({ value }: { value: JsonValue | undefined }) {
  if (value === undefined) return <span className="text-slate-400">—</span>;
  const text = JSON.stringify(value);
  return (
    <code className="whitespace-pre-wrap break-all font-mono text-xs" title={text.length > 200 ? showInvisible(text) : undefined}>
      <VisibleText text={text.length > 400 ? `${text.slice(0, 399)}…` : text} />
    </code>
  );
}

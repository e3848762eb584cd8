import { diffBlocks, type PolicyDiff } from "@/lib/console/policy-diff";

const ROW = {
  same: "text-slate-700",
  removed: "bg-red-50 text-red-900",
  added: "bg-emerald-50 text-emerald-900",
} as const;
const MARK = { same: " ", removed: "−", added: "+" } as const;

/** A line diff of two policy texts: removed lines red, added green, long unchanged runs folded. */
export function PolicyDiffView({ diff, oldLabel, newLabel }: { diff: PolicyDiff; oldLabel: string; newLabel: string }) {
  if (!diff.changed) {
    return <p className="text-sm text-slate-600">No changes: {newLabel} is the same as {oldLabel}.</p>;
  }
  return (
    <div>
      <p className="mb-2 text-sm text-slate-600" data-testid="diff-summary">
        {oldLabel} → {newLabel}: <span className="font-medium text-emerald-700">+{diff.added}</span>{" "}
        <span className="font-medium text-red-700">−{diff.removed}</span> line{diff.added + diff.removed === 1 ? "" : "s"}
      </p>
      <div className="overflow-x-auto rounded-md border border-slate-200 bg-white">
        <table className="min-w-full border-collapse font-mono text-xs leading-5" aria-label={`Changes from ${oldLabel} to ${newLabel}`}>
          <thead className="sr-only">
            <tr>
              <th scope="col">Old line</th>
              <th scope="col">New line</th>
              <th scope="col">Change</th>
              <th scope="col">Text</th>
            </tr>
          </thead>
          <tbody>
            {diffBlocks(diff).map((block, b) =>
              block.kind === "fold" ? (
                <tr key={`f${b}`} className="bg-slate-50 text-slate-500">
                  <td colSpan={4} className="px-3 py-0.5 text-center font-sans">
                    {block.count} unchanged line{block.count === 1 ? "" : "s"}
                  </td>
                </tr>
              ) : (
                block.lines.map((line, i) => (
                  <tr key={`${b}-${i}`} className={ROW[line.kind]} data-diff={line.kind}>
                    <td className="w-10 select-none border-r border-slate-200 px-2 text-right text-slate-400">{line.oldLine ?? ""}</td>
                    <td className="w-10 select-none border-r border-slate-200 px-2 text-right text-slate-400">{line.newLine ?? ""}</td>
                    <td className="w-5 select-none px-1 text-center" aria-label={line.kind === "same" ? "unchanged" : line.kind}>
                      {MARK[line.kind]}
                    </td>
                    <td className="whitespace-pre pr-3">{line.text || " "}</td>
                  </tr>
                ))
              ),
            )}
          </tbody>
        </table>
      </div>
    </div>
  );
}

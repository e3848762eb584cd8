/** A timestamp: readable UTC text, the exact ISO time on hover and for machines. */
export function Time({ value, empty = "never" }: { value: Date | string | null | undefined; empty?: string }) {
  if (!value) return <span className="text-slate-400">{empty}</span>;
  const date = typeof value === "string" ? new Date(value) : value;
  const iso = date.toISOString();
  return (
    <time dateTime={iso} title={iso} className="tabular-nums">
      {iso.slice(0, 19).replace("T", " ")} UTC
    </time>
  );
}

/** "3 min ago" style age, from the server's clock at render time. */
export function ago(value: Date | null | undefined, now = Date.now()): string {
  if (!value) return "never";
  const s = Math.max(0, Math.round((now - value.getTime()) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86_400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86_400)} d ago`;
}

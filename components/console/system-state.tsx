import { Badge } from "@/components/ui/badge";
import { showInvisible } from "@/lib/console/invisible-chars";

/** A system's state at a glance: an error (with its message on hover), never synced, or OK. */
export function SystemStateBadge({
  error,
  lastSyncAt,
}: {
  error: { message: string; at: Date | null } | null;
  lastSyncAt: Date | null;
}) {
  if (error) {
    return (
      <span title={showInvisible(error.message)} data-testid="system-state">
        <Badge tone="red">error</Badge>
      </span>
    );
  }
  if (!lastSyncAt) {
    return (
      <span data-testid="system-state">
        <Badge tone="gray">never synced</Badge>
      </span>
    );
  }
  return (
    <span data-testid="system-state">
      <Badge tone="green">ok</Badge>
    </span>
  );
}

/** "12" or "10,000+" changes behind; green at zero. */
export function LagBadge({ collection, count, capped }: { collection: string; count: number; capped: boolean }) {
  const text = `${count.toLocaleString("en-US")}${capped ? "+" : ""}`;
  return (
    <span className="mr-1 inline-flex items-center gap-1 text-xs" title={`${text} changes of ${collection} not pulled yet`}>
      <span className="text-slate-500">{collection}</span>
      <Badge tone={count === 0 ? "green" : capped ? "red" : "amber"}>{text}</Badge>
    </span>
  );
}

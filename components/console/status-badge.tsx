import { Badge, type BadgeTone } from "@/components/ui/badge";

const STATUS_TONE: Record<string, BadgeTone> = { pending: "amber", resolved: "green", settled: "gray" };

/** A conflict's status: pending (waits for an operator), resolved (an operator decided), settled (the strategy decided). */
export function ConflictStatusBadge({ status }: { status: string }) {
  return <Badge tone={STATUS_TONE[status] ?? "gray"}>{status}</Badge>;
}

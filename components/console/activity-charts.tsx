"use client";

import type { ActivityPoint } from "@/lib/console/overview"; // a type only: nothing of the server is bundled
import { Bar, BarChart, CartesianGrid, Legend, ResponsiveContainer, Tooltip, XAxis, YAxis } from "recharts";


const SYNC_SERIES = [
  { key: "pushes", label: "Pushed changes", color: "#4f46e5" },
  { key: "pulls", label: "Pulls", color: "#0ea5e9" },
  { key: "errors", label: "Errors", color: "#dc2626" },
] as const;

const CONFLICT_SERIES = [
  { key: "client-won", label: "Client won", color: "#16a34a" },
  { key: "server-won", label: "Server won", color: "#64748b" },
  { key: "merged", label: "Merged", color: "#8b5cf6" },
  { key: "pending", label: "Pending", color: "#f59e0b" },
] as const;

function label(iso: string, by: "hour" | "minute"): string {
  // UTC, like every time in the console.
  return by === "hour" ? `${iso.slice(11, 13)}:00` : iso.slice(11, 16);
}

function Chart({
  title,
  data,
  by,
  series,
  stacked,
}: {
  title: string;
  data: ActivityPoint[];
  by: "hour" | "minute";
  series: readonly { key: string; label: string; color: string }[];
  stacked: boolean;
}) {
  const rows = data.map((p) => ({ ...p, label: label(p.at, by) }));
  const total = data.reduce((n, p) => n + series.reduce((m, s) => m + Number(p[s.key as keyof ActivityPoint] ?? 0), 0), 0);
  return (
    <figure className="min-w-0" aria-label={title} data-testid="activity-chart" data-total={total}>
      <figcaption className="mb-1 flex items-baseline justify-between text-xs font-medium text-slate-600">
        <span>{title}</span>
        <span className="tabular-nums text-slate-500">{total.toLocaleString("en-US")} total</span>
      </figcaption>
      <div className="h-44">
        <ResponsiveContainer width="100%" height="100%">
          <BarChart data={rows} margin={{ top: 4, right: 4, bottom: 0, left: -16 }}>
            <CartesianGrid strokeDasharray="3 3" vertical={false} stroke="#e2e8f0" />
            <XAxis dataKey="label" tick={{ fontSize: 10 }} interval={by === "hour" ? 3 : 9} tickLine={false} />
            <YAxis allowDecimals={false} tick={{ fontSize: 10 }} tickLine={false} axisLine={false} />
            <Tooltip labelFormatter={(l) => `${String(l)} UTC`} />
            <Legend wrapperStyle={{ fontSize: 11 }} iconSize={8} />
            {series.map((s) => (
              <Bar key={s.key} dataKey={s.key} name={s.label} fill={s.color} stackId={stacked ? "a" : undefined} isAnimationActive={false} />
            ))}
          </BarChart>
        </ResponsiveContainer>
      </div>
    </figure>
  );
}

/** Pushes, pulls, errors and conflicts by outcome: the last 24 hours by hour and the last hour by minute. */
export function ActivityCharts({ day, hour }: { day: ActivityPoint[]; hour: ActivityPoint[] }) {
  return (
    <div className="grid grid-cols-1 gap-6 lg:grid-cols-2">
      <Chart title="Sync, last 24 hours (per hour)" data={day} by="hour" series={SYNC_SERIES} stacked={false} />
      <Chart title="Conflicts by outcome, last 24 hours (per hour)" data={day} by="hour" series={CONFLICT_SERIES} stacked />
      <Chart title="Sync, last hour (per minute)" data={hour} by="minute" series={SYNC_SERIES} stacked={false} />
      <Chart title="Conflicts by outcome, last hour (per minute)" data={hour} by="minute" series={CONFLICT_SERIES} stacked />
    </div>
  );
}

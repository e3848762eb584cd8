import { and, eq } from "drizzle-orm";
import { issueApiKey } from "@/lib/auth/api-keys";
import { conflicts, type ConflictRow } from "@/lib/db/schema";
import type { Database } from "@/lib/db/client";
import type { PushChange, PushResult } from "@/lib/sync/protocol";
import * as pushRoute from "@/app/api/v1/collections/[collection]/push/route";
import { call } from "./hub";

let counter = 0;

/** A changeId unique within the test run. */
export function changeId(label = "c"): string {
  counter += 1;
  return `${label}-${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** API keys for the given systems of the active policy. */
export async function keysFor(db: Database, ...systems: string[]): Promise<Record<string, string>> {
  const keys: Record<string, string> = {};
  for (const system of systems) keys[system] = (await issueApiKey(db, { system, actor: "test" })).key;
  return keys;
}

type ChangeInput = Omit<PushChange, "changeId"> & { changeId?: string };

/** POSTs a push through the real route handler. */
export async function pushRaw(key: string, collection: string, body: unknown) {
  return call(pushRoute.POST, {
    method: "POST",
    path: `/api/v1/collections/${collection}/push`,
    params: { collection },
    token: key,
    body: typeof body === "string" ? body : (body as object),
  });
}

/** Pushes changes and returns their results (the request must succeed). */
export async function push(key: string, collection: string, changes: ChangeInput[]): Promise<PushResult[]> {
  const res = await pushRaw(key, collection, {
    changes: changes.map((c) => ({ ...c, changeId: c.changeId ?? changeId() })),
  });
  if (res.status !== 200) throw new Error(`push answered ${res.status}: ${JSON.stringify(res.body)}`);
  return (res.body as { results: PushResult[] }).results;
}

/** Pushes one change and returns its result. */
export async function pushOne(key: string, collection: string, change: ChangeInput): Promise<PushResult> {
  const [result] = await push(key, collection, [change]);
  if (!result) throw new Error("no result");
  return result;
}

/**
 * The conflict-log row behind a push result: `conflict.id` is the pushing
 * system's own conflict number (conflicts.client_ref), not the log's id.
 */
export async function conflictLogged(db: Database, system: string, result: PushResult | undefined): Promise<ConflictRow | undefined> {
  const ref = result?.conflict?.id;
  if (ref === undefined) return undefined;
  const [row] = await db
    .select()
    .from(conflicts)
    .where(and(eq(conflicts.clientSystem, system), eq(conflicts.clientRef, ref)));
  return row;
}

/** The conflict log's id (admin API, console) of the conflict a push result reports. */
export async function conflictLogId(db: Database, system: string, result: PushResult | undefined): Promise<number> {
  const row = await conflictLogged(db, system, result);
  if (!row) throw new Error(`no conflict-log row for ${system}'s result ${JSON.stringify(result)}`);
  return row.id;
}

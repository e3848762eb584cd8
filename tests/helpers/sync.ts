import { issueApiKey } from "@/lib/auth/api-keys";
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

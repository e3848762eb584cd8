import { expect, type APIRequestContext } from "@playwright/test";
import { E2E_ADMIN_TOKEN } from "./env";

/**
 * Client systems for console tests: keys issued through the admin API and
 * changes sent through the real /api/v1 push route, as a business system does.
 */
export async function issueKey(request: APIRequestContext, system: string): Promise<string> {
  const res = await request.post(`/api/admin/systems/${system}/keys`, { headers: { authorization: `Bearer ${E2E_ADMIN_TOKEN}` } });
  expect(res.status(), await res.text()).toBe(201);
  return ((await res.json()) as { key: string }).key;
}

export interface PushResultBody {
  id: string;
  status: string;
  version: number;
  conflict?: { id: number; strategy: string };
}

let n = 0;

/** Pushes one change and returns its result. */
export async function pushOne(
  request: APIRequestContext,
  key: string,
  collection: string,
  change: Record<string, unknown>,
): Promise<PushResultBody> {
  n += 1;
  const res = await request.post(`/api/v1/collections/${collection}/push`, {
    headers: { authorization: `Bearer ${key}` },
    data: { changes: [{ changeId: `e2e-${Date.now()}-${n}`, ...change }] },
  });
  expect(res.status(), await res.text()).toBe(200);
  return ((await res.json()) as { results: PushResultBody[] }).results[0]!;
}

/**
 * The conflict log's id (the console's /conflicts/{id}) of the conflict a
 * push result reports: `conflict.id` is the pushing system's own number.
 */
export async function conflictLogId(request: APIRequestContext, system: string, result: PushResultBody): Promise<number> {
  const res = await request.get(`/api/admin/conflicts?system=${system}&ref=${result.conflict?.id ?? 0}`, {
    headers: { authorization: `Bearer ${E2E_ADMIN_TOKEN}` },
  });
  expect(res.status(), await res.text()).toBe(200);
  const [entry] = ((await res.json()) as { conflicts: { id: number }[] }).conflicts;
  if (!entry) throw new Error(`no conflict ${result.conflict?.id} of ${system} in the log`);
  return entry.id;
}

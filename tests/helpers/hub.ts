import { setDatabase, type DatabaseHandle } from "@/lib/db";
import { resetEnvCache } from "@/lib/env";
import { getHub, type Hub } from "@/lib/hub";
import { stopEventBus } from "@/lib/sync/events-bus";
import { openTestDatabase } from "./db";

export const TEST_ADMIN_TOKEN = "test-admin-token-0123456789";

export interface TestHub {
  hub: Hub;
  handle: DatabaseHandle;
  close(): Promise<void>;
}

/**
 * A booted hub on a fresh database, installed as the process's hub so the
 * real route handlers use it. The example policy is active (version 1).
 */
export async function startTestHub(): Promise<TestHub> {
  process.env.ADMIN_TOKEN = TEST_ADMIN_TOKEN;
  delete process.env.CONCORD_DEFAULT_POLICY;
  resetEnvCache();
  const handle = await openTestDatabase();
  setDatabase(handle);
  const hub = await getHub();
  return {
    hub,
    handle,
    async close() {
      await stopEventBus(handle);
      setDatabase(undefined);
      await handle.close();
    },
  };
}

type Handler<P> = (request: Request, args: { params: Promise<P> }) => Promise<Response>;

export interface CallOptions<P> {
  method?: string;
  path?: string;
  params?: P;
  headers?: Record<string, string>;
  body?: string | object;
  token?: string | null;
}

/** Calls a route handler as Next.js would, and reads the JSON answer. */
export async function call<P = Record<string, never>>(
  handler: Handler<P>,
  options: CallOptions<P> = {},
): Promise<{ status: number; headers: Headers; body: unknown }> {
  const headers = new Headers(options.headers);
  const token = options.token === undefined ? TEST_ADMIN_TOKEN : options.token;
  if (token !== null) headers.set("authorization", `Bearer ${token}`);
  let body: string | undefined;
  if (typeof options.body === "string") body = options.body;
  else if (options.body !== undefined) {
    body = JSON.stringify(options.body);
    headers.set("content-type", "application/json");
  }
  const request = new Request(`http://localhost${options.path ?? "/"}`, {
    method: options.method ?? "GET",
    headers,
    body,
  });
  const response = await handler(request, { params: Promise.resolve((options.params ?? {}) as P) });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? (JSON.parse(text) as unknown) : null };
}

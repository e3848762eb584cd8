import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { AuthError, MemoryStore, SyncClient, type FetchLike } from "@/lib/client";
import { issueApiKey, revokeApiKey } from "@/lib/auth/api-keys";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { HUB_URL, inProcessFetch } from "@/tests/helpers/inprocess-fetch";
import { keysFor } from "@/tests/helpers/sync";

/** The background loop of a started SyncClient: a revoked key stops it; its timers do not hold the process. */

let t: TestHub;
let keys: Record<string, string>;
const clients: SyncClient[] = [];

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "crm");
});
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(clients.splice(0).map((c) => c.stop()));
});
afterAll(async () => {
  await t.close();
});

function client(apiKey: string, fetch: FetchLike = inProcessFetch()): SyncClient {
  const c = new SyncClient({ baseUrl: HUB_URL, apiKey, store: new MemoryStore(), fetch, debounceMs: 50, backoff: { baseMs: 50, maxMs: 200 } });
  clients.push(c);
  return c;
}

async function until(check: () => Promise<boolean> | boolean, ms = 5000): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`condition not met within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const ann = { name: "Ann", email: "ann@example.com", phone: "555-0100", region: "north" };

describe("a started client whose key is revoked", () => {
  it("emits one error saying to issue a new key, stops, and sends nothing more", async () => {
    const issued = await issueApiKey(t.hub.db, { system: "crm", actor: "test" });
    let fetches = 0;
    const inner = inProcessFetch();
    const counting: FetchLike = (input, init) => {
      fetches += 1;
      return inner(input, init);
    };
    const revoked = client(issued.key, counting);
    const errors: Error[] = [];
    revoked.on("error", ({ error }) => errors.push(error));
    revoked.start();
    await until(async () => (await revoked.status()).connected);

    await revokeApiKey(t.hub.db, { system: "crm", prefix: issued.prefix, actor: "test" });
    // A change from another client: the event (or the stream's reconnect) makes the revoked one sync, and meet a 401.
    const writer = client(keys.crm as string);
    await writer.put("customers", "auth-1", ann);
    await writer.sync();

    await until(() => errors.length > 0);
    expect(errors[0]).toBeInstanceOf(AuthError);
    expect(errors[0]?.message).toMatch(/background sync has stopped.*issue a new key/);
    await until(async () => (await revoked.status()).state === "stopped");
    expect((await revoked.status()).lastError).toMatch(/issue a new key/);

    // No retries: neither the sync backoff (max 200 ms here) nor the stream's reconnects fetch again.
    const after = fetches;
    await new Promise((r) => setTimeout(r, 1000));
    expect(fetches).toBe(after);
    expect(errors).toHaveLength(1);
    expect((await revoked.status()).connected).toBe(false);
  });
});

describe("timers", () => {
  it("the interval, debounce and reconnect timers of a started client are unref'd", async () => {
    const fromClient: ReturnType<typeof setTimeout>[] = [];
    const real = globalThis.setTimeout;
    vi.spyOn(globalThis, "setTimeout").mockImplementation(((...args: Parameters<typeof setTimeout>) => {
      const timer = real(...args);
      if (new Error().stack?.includes("lib/client/client.ts")) fromClient.push(timer);
      return timer;
    }) as typeof setTimeout);
    const c = client(keys.crm as string);
    c.start();
    await until(async () => (await c.status()).lastSyncAt !== null && (await c.status()).state === "waiting");
    expect(fromClient.length).toBeGreaterThan(0);
    for (const timer of fromClient) expect(timer.hasRef()).toBe(false);
    await c.stop();
  });
});

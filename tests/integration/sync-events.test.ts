import { readFileSync } from "node:fs";
import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GET } from "@/app/api/v1/events/route";
import { issueApiKey, revokeApiKey } from "@/lib/auth/api-keys";
import { openDatabase, type Database, type DatabaseHandle } from "@/lib/db/client";
import { records, type JsonObject } from "@/lib/db/schema";
import { activatePolicy, getActivePolicy } from "@/lib/policy/store";
import { digestOf } from "@/lib/sync/digest";
import { notifyChanges } from "@/lib/sync/events";
import { createEventBus, getEventBus, stopEventBus, type EventBus } from "@/lib/sync/events-bus";
import { openEventStream } from "@/lib/sync/events-stream";
import { checkpointSealer, type CheckpointSealer } from "@/lib/sync/checkpoint";
import { lockRecords, writeVersions, type NewVersion } from "@/lib/sync/versions";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";

const example = readFileSync("policies/example.yaml", "utf8");

// How long to wait for an event that must arrive. Negative checks never wait
// this long: they use a barrier write every client can see (see `settle`).
const ARRIVE_MS = 5_000;

let t: TestHub;
let sealer: CheckpointSealer;
const keys: Record<string, string> = {};

beforeAll(async () => {
  t = await startTestHub();
  sealer = await checkpointSealer(t.hub.db);
  for (const system of ["crm", "webshop", "warehouse", "billing"]) {
    keys[system] = (await issueApiKey(t.hub.db, { system, actor: "test" })).key;
  }
});

afterAll(async () => {
  await stopEventBus(t.handle);
  await t.close();
});

// ---------------------------------------------------------------------------
// A client: the route handler's body, parsed as an EventSource would

interface Received {
  event?: string;
  data?: unknown;
  comment?: string;
  retry?: number;
}

interface Client {
  response: Response;
  received: Received[];
  /** Resolves with the first received entry (from `from` on) that matches, or fails after `ms`. */
  next(match: (r: Received) => boolean, ms?: number): Promise<Received>;
  changes(): { collection: string; checkpoint: string }[];
  ended: Promise<void>;
  abort(): void;
}

/** A tiny text/event-stream parser (WHATWG HTML, "Server-sent events"): fields, comments, dispatch on blank lines. */
function readEvents(body: ReadableStream<Uint8Array>, onEntry: (r: Received) => void): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let event = "";
  let data: string[] = [];
  const line = (text: string) => {
    if (text === "") {
      if (data.length > 0) onEntry({ event: event || "message", data: JSON.parse(data.join("\n")) as unknown });
      event = "";
      data = [];
      return;
    }
    if (text.startsWith(":")) return onEntry({ comment: text.slice(1).trimStart() });
    const colon = text.indexOf(":");
    const field = colon === -1 ? text : text.slice(0, colon);
    let value = colon === -1 ? "" : text.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "retry" && /^[0-9]+$/.test(value)) onEntry({ retry: Number(value) });
  };
  return (async () => {
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true as const, value: undefined }));
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      const parts = buffer.split(/\r\n|\r|\n/);
      buffer = parts.pop() ?? "";
      for (const part of parts) line(part);
    }
  })();
}

function track(response: Response, controller: AbortController): Client {
  const received: Received[] = [];
  const waiters = new Set<() => void>();
  if (!response.body) throw new Error("the response has no body");
  const ended = readEvents(response.body, (entry) => {
    received.push(entry);
    for (const wake of [...waiters]) wake();
  });
  return {
    response,
    received,
    ended,
    abort: () => controller.abort(),
    changes: () =>
      received
        .filter((r) => r.event === "change")
        .map((r) => r.data as { collection: string; checkpoint: string }),
    next(match, ms = ARRIVE_MS) {
      return new Promise<Received>((resolve, reject) => {
        const check = () => {
          const found = received.find(match);
          if (!found) return;
          cleanup();
          resolve(found);
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`no matching event within ${ms} ms; received ${JSON.stringify(received)}`));
        }, ms);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
  };
}

async function connect(system: string | null): Promise<Client> {
  const controller = new AbortController();
  const headers = new Headers();
  if (system) headers.set("authorization", `Bearer ${keys[system]}`);
  const request = new Request("http://localhost/api/v1/events", { headers, signal: controller.signal });
  const response = await GET(request, { params: Promise.resolve({}) });
  return track(response, controller);
}

/** A client on a bus of its own (a second instance), driven through the same verb as the route. */
async function connectTo(bus: EventBus, db: Database, system: string): Promise<Client> {
  const controller = new AbortController();
  const stream = await openEventStream({
    ctx: { db, system, policy: await getActivePolicy(db) },
    bus,
    signal: controller.signal,
  });
  return track(new Response(stream), controller);
}

/**
 * The sequence number a change event's checkpoint seals. Checkpoints are
 * bound to the system they were sent to, so the one that opens it says whose
 * it is; an event sealed for no known system opens to null.
 */
function seqOf(data: { collection: string; checkpoint: string }): number | null {
  for (const system of Object.keys(keys)) {
    const opened = sealer.open({ system, collection: data.collection }, data.checkpoint);
    if (opened.ok && opened.position.run === null) return opened.position.at.seq;
  }
  return null;
}

/** A change event of `collection`; with `seq`, one whose checkpoint is at that sequence number. */
const isChange = (collection: string, seq?: number) => (r: Received) =>
  r.event === "change" &&
  (r.data as { collection: string }).collection === collection &&
  (seq === undefined || seqOf(r.data as { collection: string; checkpoint: string }) === seq);

// ---------------------------------------------------------------------------
// Writes, as the push engine makes them: records + history + notifyChanges in one transaction

async function write(collection: string, changes: { id: string; data: JsonObject }[], db: Database = t.hub.db): Promise<{ from: number; to: number }> {
  return db.transaction(async (tx) => {
    await lockRecords(tx, collection, changes.map((c) => c.id));
    const versions: NewVersion[] = [];
    const next = new Map<string, number>();
    for (const change of changes) {
      let version = next.get(change.id);
      if (version === undefined) {
        const [existing] = await tx
          .select({ version: records.version })
          .from(records)
          .where(and(eq(records.collection, collection), eq(records.id, change.id)));
        version = existing?.version ?? 0;
      }
      next.set(change.id, version + 1);
      versions.push({
        id: change.id,
        version: version + 1,
        data: change.data,
        deleted: false,
        digest: digestOf(change.data),
        origin: "push",
        changeId: null,
        writtenBy: "test",
        modifiedAt: new Date(),
      });
    }
    const seqs = (await writeVersions(tx, collection, versions)).map((p) => p.seq);
    return { from: Math.min(...seqs), to: Math.max(...seqs) };
  });
}

let barrierCount = 0;
/**
 * Every system reads products in full, and the bus handles notifications in
 * commit order: once a client has the change event of a later products
 * write, it has had every event an earlier write would have given it.
 */
async function settle(...clients: Client[]): Promise<void> {
  const { to } = await write("products", [{ id: `barrier-${++barrierCount}`, data: { sku: "b" } }]);
  await Promise.all(clients.map((c) => c.next(isChange("products", to))));
}

function customerEvents(client: Client): number {
  return client.changes().filter((c) => c.collection === "customers").length;
}

// ---------------------------------------------------------------------------

describe("GET /api/v1/events", () => {
  it("answers 401 without a valid key, with the error envelope and no stream", async () => {
    for (const authorization of [null, "Bearer cnc_000000000000_wrongwrongwrongwrongwrongwrongwrongwrongwro"]) {
      const headers = new Headers();
      if (authorization) headers.set("authorization", authorization);
      const response = await GET(new Request("http://localhost/api/v1/events", { headers }), { params: Promise.resolve({}) });
      expect(response.status).toBe(401);
      expect(response.headers.get("content-type")).toMatch(/^application\/json/);
      expect(await response.json()).toEqual({
        error: { code: "unauthenticated", message: expect.any(String), requestId: response.headers.get("x-request-id") },
      });
    }
  });

  it("opens a text/event-stream that says at once it is live", async () => {
    const client = await connect("crm");
    try {
      expect(client.response.status).toBe(200);
      expect(client.response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      expect(client.response.headers.get("cache-control")).toBe("no-cache, no-transform");
      expect(client.response.headers.get("x-accel-buffering")).toBe("no");
      expect(client.response.headers.get("x-policy-version")).toMatch(/^[0-9]+$/);
      await client.next((r) => r.retry === 3000);
      expect(client.received[0]).toEqual({ comment: "connected" });
    } finally {
      client.abort();
    }
  });

  it("sends a change event to readers of the collection, and none to a system that cannot read it", async () => {
    const [crm, webshop, warehouse] = await Promise.all([connect("crm"), connect("webshop"), connect("warehouse")]);
    try {
      const { to } = await write("customers", [{ id: "web-1", data: { name: "Ann", source: "web", region: "north" } }]);
      for (const client of [crm, webshop]) {
        const { data } = await client.next(isChange("customers"));
        expect(data).toEqual({ collection: "customers", checkpoint: expect.stringMatching(/^c2[A-Za-z0-9_-]+$/) });
        expect(seqOf(data as { collection: string; checkpoint: string })).toBe(to);
      }
      // Sealed per system and per event: the two systems' checkpoints differ.
      expect(crm.changes()[0]?.checkpoint).not.toBe(webshop.changes()[0]?.checkpoint);
      await settle(crm, webshop, warehouse);
      expect(customerEvents(warehouse)).toBe(0);
      // Exactly the keys of the protocol: no record data travels with a hint.
      expect(Object.keys(crm.changes()[0] ?? {}).sort()).toEqual(["checkpoint", "collection"]);
    } finally {
      for (const c of [crm, webshop, warehouse]) c.abort();
    }
  });

  it("says nothing to a system whose row scope excludes every written row", async () => {
    const [crm, webshop] = await Promise.all([connect("crm"), connect("webshop")]);
    try {
      await write("customers", [
        { id: "store-1", data: { name: "Bo", source: "store" } },
        { id: "store-2", data: { name: "Cy" } },
      ]);
      await crm.next(isChange("customers"));
      // An update that stays outside the scope is as invisible as a creation.
      await write("customers", [{ id: "store-1", data: { name: "Bo B.", source: "store" } }]);
      await settle(crm, webshop);
      expect(customerEvents(crm)).toBe(2);
      expect(customerEvents(webshop)).toBe(0);
    } finally {
      crm.abort();
      webshop.abort();
    }
  });

  it("tells a system when one row of a larger write is in its scope", async () => {
    const webshop = await connect("webshop");
    try {
      const { to } = await write("customers", [
        { id: "mix-1", data: { source: "store" } },
        { id: "mix-2", data: { source: "web" } },
        { id: "mix-3", data: { source: "phone" } },
      ]);
      await webshop.next(isChange("customers", to));
    } finally {
      webshop.abort();
    }
  });

  it("tells a system when a record leaves its scope, so it can drop its copy", async () => {
    await write("customers", [{ id: "leaver", data: { name: "Di", source: "web" } }]);
    const webshop = await connect("webshop");
    try {
      const { to } = await write("customers", [{ id: "leaver", data: { name: "Di", source: "store" } }]);
      await webshop.next(isChange("customers", to));
    } finally {
      webshop.abort();
    }
  });

  it("judges a record written twice in one transaction by its state before the transaction", async () => {
    await write("customers", [{ id: "twice", data: { source: "web" } }]);
    const webshop = await connect("webshop");
    try {
      // web → store → store in one transaction: version - 1 is out of scope, the state before it was not.
      const { to } = await write("customers", [
        { id: "twice", data: { source: "store" } },
        { id: "twice", data: { source: "store", name: "Ed" } },
      ]);
      await webshop.next(isChange("customers", to));
    } finally {
      webshop.abort();
    }
  });

  it("does not count a new record's missing previous version as in scope (`!=` is true of no data)", async () => {
    const notStore = `version: 1
systems: {crm: {name: CRM}, webshop: {name: Web shop}}
collections: {customers: {}, products: {}}
rules:
  - {who: crm, collection: customers, read: all}
  - {who: webshop, collection: customers, read: "source != 'store'"}
  - {who: "*", collection: products, read: all}
`;
    await activatePolicy(t.hub.db, { yaml: notStore, actor: "test", source: "api" });
    const [crm, webshop] = await Promise.all([connect("crm"), connect("webshop")]);
    try {
      await write("customers", [{ id: "new-store", data: { source: "store" } }]);
      await settle(crm, webshop);
      expect(customerEvents(crm)).toBe(1);
      expect(customerEvents(webshop)).toBe(0);
      const { to } = await write("customers", [{ id: "new-web", data: { source: "web" } }]);
      await webshop.next(isChange("customers", to));
    } finally {
      crm.abort();
      webshop.abort();
      await activatePolicy(t.hub.db, { yaml: example, actor: "test", source: "api" });
    }
  });

  it("uses row scopes with conditions on other collections too (warehouse orders)", async () => {
    const [warehouse, billing] = await Promise.all([connect("warehouse"), connect("billing")]);
    try {
      await write("orders", [{ id: "o-new", data: { status: "new", total: 10 } }]);
      await settle(warehouse, billing);
      expect(warehouse.changes().filter((c) => c.collection === "orders")).toHaveLength(0);
      expect(billing.changes().filter((c) => c.collection === "orders")).toHaveLength(1);
      const { to } = await write("orders", [{ id: "o-new", data: { status: "paid", total: 10 } }]);
      await warehouse.next(isChange("orders", to));
    } finally {
      warehouse.abort();
      billing.abort();
    }
  });

  it("broadcasts a config event with the new version when a policy is activated", async () => {
    const [crm, warehouse] = await Promise.all([connect("crm"), connect("warehouse")]);
    try {
      const { version } = await activatePolicy(t.hub.db, { yaml: example, actor: "test", source: "api" });
      for (const client of [crm, warehouse]) {
        const config = await client.next((r) => r.event === "config");
        expect(config.data).toEqual({ policyVersion: version });
      }
    } finally {
      crm.abort();
      warehouse.abort();
    }
  });

  it("ends the streams of a system the new policy no longer declares, after its config event", async () => {
    const billing = await connect("billing");
    const withoutBilling = `version: 1
systems: {crm: {name: CRM}}
collections: {customers: {}}
rules: [{who: crm, collection: customers, read: all}]
`;
    const crm = await connect("crm");
    try {
      const { version } = await activatePolicy(t.hub.db, { yaml: withoutBilling, actor: "test", source: "api" });
      await billing.next((r) => r.event === "config");
      await billing.ended;
      expect(billing.received.filter((r) => r.event === "config")).toEqual([{ event: "config", data: { policyVersion: version } }]);
      await crm.next((r) => r.event === "config");
    } finally {
      billing.abort();
      crm.abort();
      await activatePolicy(t.hub.db, { yaml: example, actor: "test", source: "api" });
    }
  });

  it("ends the streams of a revoked key at once, and only those", async () => {
    const { key, prefix } = await issueApiKey(t.hub.db, { system: "crm", actor: "test" });
    const controller = new AbortController();
    const request = new Request("http://localhost/api/v1/events", {
      headers: { authorization: `Bearer ${key}` },
      signal: controller.signal,
    });
    const revoked = track(await GET(request, { params: Promise.resolve({}) }), controller);
    const other = await connect("crm");
    try {
      await revokeApiKey(t.hub.db, { system: "crm", prefix, actor: "test" });
      await revoked.ended;
      await write("customers", [{ id: "after-revoke", data: { name: "Z", region: "north" } }]);
      await other.next(isChange("customers"));
      expect(revoked.changes()).toEqual([]);
    } finally {
      revoked.abort();
      other.abort();
    }
  });

  it("sends `: ping` comments at the configured interval", async () => {
    process.env.CONCORD_SSE_PING_MS = "25";
    const client = await connect("webshop").finally(() => {
      delete process.env.CONCORD_SSE_PING_MS;
    });
    try {
      await client.next(() => client.received.filter((r) => r.comment === "ping").length >= 3, 2_000);
    } finally {
      client.abort();
    }
  });

  it("frees the subscription when the client disconnects (abort or cancel)", async () => {
    const bus = getEventBus(t.handle);
    const before = bus.subscriberCount;
    const aborted = await connect("crm");
    expect(bus.subscriberCount).toBe(before + 1);
    aborted.abort();
    await aborted.ended;
    expect(bus.subscriberCount).toBe(before);

    const controller = new AbortController();
    const response = await GET(
      new Request("http://localhost/api/v1/events", { headers: { authorization: `Bearer ${keys.crm}` }, signal: controller.signal }),
      { params: Promise.resolve({}) },
    );
    expect(bus.subscriberCount).toBe(before + 1);
    await response.body?.cancel();
    expect(bus.subscriberCount).toBe(before);
  });

  it("does not buffer without bound for a client that stops reading; the latest change still arrives", async () => {
    const controller = new AbortController();
    const stalled = await GET(
      new Request("http://localhost/api/v1/events", { headers: { authorization: `Bearer ${keys.crm}` }, signal: controller.signal }),
      { params: Promise.resolve({}) },
    );
    const watcher = await connect("crm");
    try {
      let last = 0;
      for (let i = 0; i < 40; i++) last = (await write("customers", [{ id: `burst-${i}`, data: { n: i } }])).to;
      // The watcher reads; once it has the last event, the stalled client has been offered all 40.
      await watcher.next(isChange("customers", last));
      const reading = track(stalled, controller);
      await reading.next(isChange("customers", last));
      expect(reading.changes().length).toBeLessThan(20);
    } finally {
      controller.abort();
      watcher.abort();
    }
  });

  it("reaches clients of another instance: a write through one instance is heard by the other's bus", async () => {
    // On Postgres: a second connection pool to the same database, with its own
    // LISTEN. PGlite is one process, so a second bus over the same handle.
    const other: DatabaseHandle =
      t.handle.kind === "postgres" && t.handle.url ? await openDatabase({ databaseUrl: t.handle.url, maxConnections: 2 }) : t.handle;
    const bus = createEventBus(other);
    try {
      const client = await connectTo(bus, other.db, "crm");
      const { to } = await write("customers", [{ id: "elsewhere", data: { source: "web" } }], t.hub.db);
      await client.next(isChange("customers", to));
      expect(bus.subscriberCount).toBe(1);
      client.abort();
      await client.ended;
      expect(bus.subscriberCount).toBe(0);
    } finally {
      await bus.stop();
      if (other !== t.handle) await other.close();
    }
  });

  it("stopEventBus ends every stream and lets the database close; the next client gets a fresh bus", async () => {
    const client = await connect("crm");
    const old = getEventBus(t.handle);
    await stopEventBus(t.handle);
    await client.ended;
    expect(old.subscriberCount).toBe(0);
    const again = await connect("crm");
    try {
      expect(getEventBus(t.handle)).not.toBe(old);
      const { to } = await write("customers", [{ id: "after-stop", data: { source: "web" } }]);
      await again.next(isChange("customers", to));
    } finally {
      again.abort();
    }
  });
});

describe("notifyChanges", () => {
  it("refuses a malformed range instead of sending a payload every listener would drop", async () => {
    await expect(t.hub.db.transaction((tx) => notifyChanges(tx, "customers", { from: 5, to: 4, xid: "1" }))).rejects.toThrow(RangeError);
    await expect(t.hub.db.transaction((tx) => notifyChanges(tx, "Bad Name", { from: 1, to: 1, xid: "1" }))).rejects.toThrow(RangeError);
  });

  it("delivers nothing when the transaction rolls back", async () => {
    const crm = await connect("crm");
    try {
      await expect(
        t.hub.db.transaction(async (tx) => {
          await notifyChanges(tx, "customers", { from: 1, to: 1, xid: "1" });
          throw new Error("roll back");
        }),
      ).rejects.toThrow("roll back");
      await settle(crm);
      expect(customerEvents(crm)).toBe(0);
    } finally {
      crm.abort();
    }
  });
});

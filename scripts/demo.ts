/**
 * `npm run demo`: three business systems (CRM, billing, web shop) share
 * customers and orders through a Concord hub under policies/example.yaml.
 * They edit overlapping records at the same time through the SDK, then the
 * policy changes mid-run and the web shop loses rows. Prints what happened.
 *
 *   npm run demo                                         starts a hub on a fresh embedded database (PGlite)
 *   npm run demo -- --postgres                           … on a fresh database on the Postgres server of
 *                                                        DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
 *                                                        dropped afterwards; DATABASE_URL alone does the same
 *   npm run demo -- --server URL --admin-token TOKEN     uses a running hub (activates the example policy there)
 *   npm run demo -- --rounds 5                           more rounds of concurrent edits
 */
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { z } from "zod";
import { MemoryStore, SyncClient, type SyncReport } from "../lib/client";
import type { PushResult } from "../lib/sync/protocol";
import { redact } from "../lib/connect/driver";
import { startHubProcess } from "./hub-process";

const USAGE = "usage: npm run demo [-- --server URL --admin-token TOKEN | --postgres] [--rounds N] [--port P]";
const DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres";

function fail(message: string): never {
  process.stderr.write(`demo: ${message}\n`);
  process.exit(1);
}

let args: ReturnType<typeof readArgs>;
function readArgs() {
  const { values } = parseArgs({
    options: {
      server: { type: "string" },
      "admin-token": { type: "string" },
      rounds: { type: "string", default: "3" },
      port: { type: "string", default: "3291" },
      postgres: { type: "boolean", default: false },
    },
  });
  const schema = z
    .object({
      server: z.url({ error: "--server must be a URL such as http://localhost:3000" }).optional(),
      "admin-token": z.string().min(16, "--admin-token must be the hub's admin token (at least 16 characters)").optional(),
      rounds: z.coerce.number().int().min(1).max(20, "--rounds must be 1 to 20"),
      port: z.coerce.number().int().min(1024).max(65535, "--port must be 1024 to 65535"),
      postgres: z.boolean(),
    })
    .refine((v) => (v.server === undefined) === (v["admin-token"] === undefined), "--server and --admin-token go together")
    .refine((v) => !(v.server && v.postgres), "--postgres starts a hub of its own: leave out --server");
  const parsed = schema.safeParse(values);
  if (!parsed.success) fail(`${parsed.error.issues[0]?.message ?? "invalid arguments"}\n${USAGE}`);
  return parsed.data;
}
try {
  args = readArgs();
} catch (error) {
  fail(`${(error as Error).message}\n${USAGE}`);
}

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
const say = (line = "") => process.stdout.write(line + "\n");

// ---------------------------------------------------------------------------
// The hub

interface Hub {
  base: string;
  admin: string;
  stop(): Promise<void>;
}

/** The Postgres server the demo's hub gets a fresh database on, or undefined for embedded PGlite. */
function postgresServer(): string | undefined {
  const url = process.env.DATABASE_URL?.trim();
  return url || (args.postgres ? DEFAULT_POSTGRES : undefined);
}

async function startHub(): Promise<Hub> {
  try {
    const hub = await startHubProcess({ port: args.port, serverUrl: postgresServer(), databasePrefix: "concord_demo_" });
    return { base: hub.base, admin: hub.adminToken, stop: hub.stop };
  } catch (error) {
    fail(`${error instanceof Error ? error.message : String(error)}\n(is port ${args.port} free? try --port)`);
  }
}

async function adminCall<T>(hub: Hub, method: string, route: string, body?: string): Promise<T> {
  const res = await fetch(`${hub.base}/api/admin${route}`, {
    method,
    headers: { authorization: `Bearer ${hub.admin}`, ...(body ? { "content-type": "application/yaml" } : {}) },
    body,
  });
  const text = await res.text();
  if (!res.ok) fail(`${method} /api/admin${route} answered ${res.status}: ${text.slice(0, 400)}`);
  return JSON.parse(text) as T;
}

// ---------------------------------------------------------------------------
// The systems

type System = "crm" | "billing" | "webshop";

interface Tally {
  synced: number;
  conflicts: Map<string, number>;
  quarantined: Map<string, number>;
}

const tallies = new Map<System, Tally>();

function track(system: System, client: SyncClient): void {
  const tally: Tally = { synced: 0, conflicts: new Map(), quarantined: new Map() };
  tallies.set(system, tally);
  client.on("conflict", ({ collection, result }: { collection: string; result: PushResult }) => {
    const label = `${collection}: ${result.status} by ${result.conflict?.strategy ?? "?"}`;
    tally.conflicts.set(label, (tally.conflicts.get(label) ?? 0) + 1);
  });
  client.on("quarantine", ({ entry }) => {
    const label = `${entry.collection}: ${entry.quarantine?.status}: ${entry.quarantine?.reason}`;
    tally.quarantined.set(label, (tally.quarantined.get(label) ?? 0) + 1);
  });
}

function add(system: System, report: SyncReport): void {
  const tally = tallies.get(system);
  if (tally) tally.synced += report.pushed - report.quarantined;
}

async function syncAll(clients: Record<System, SyncClient>): Promise<Record<System, SyncReport>> {
  const systems = Object.keys(clients) as System[];
  const reports = await Promise.all(systems.map((s) => clients[s].sync()));
  const out = {} as Record<System, SyncReport>;
  systems.forEach((s, i) => {
    const report = reports[i] as SyncReport;
    add(s, report);
    out[s] = report;
  });
  return out;
}

const line = (s: System, r: SyncReport) =>
  `    ${s.padEnd(8)} pushed ${r.pushed}, pulled ${r.pulled}, removed ${r.removed}, merged ${r.conflicts.merged}, rejected ${r.conflicts.rejected}, pending ${r.conflicts.pending}, quarantined ${r.quarantined}`;

async function main(): Promise<void> {
  let hub: Hub;
  if (args.server && args["admin-token"]) {
    const base = args.server.replace(/\/+$/, "");
    hub = { base, admin: args["admin-token"], stop: async () => undefined };
    say(`Using the hub at ${base}.`);
  } else {
    const server = postgresServer();
    const where = server ? `a fresh database on the Postgres server ${redact(server, "(DATABASE_URL)")}` : "a fresh embedded database (PGlite)";
    say(`Starting a hub on port ${args.port} with ${where} (builds first if the sources changed)…`);
    hub = await startHub();
    say(`Hub up at ${hub.base} after ${elapsed()}.`);
  }
  try {
    await run(hub);
  } finally {
    await hub.stop();
  }
  say(`\nDone in ${elapsed()}; the hub was ${args.server ? "left running" : "stopped and its data removed"}.`);
}

async function run(hub: Hub): Promise<void> {
  const example = await readFile("policies/example.yaml", "utf8");
  const active = await adminCall<{ version: number; yaml: string }>(hub, "GET", "/policy");
  if (active.yaml !== example) {
    const { version } = await adminCall<{ version: number }>(hub, "PUT", "/policy?comment=demo%3A%20example%20policy", example);
    say(`Activated policies/example.yaml as version ${version}.`);
  } else {
    say(`The example policy is active (version ${active.version}).`);
  }
  const key = async (system: System) => (await adminCall<{ key: string }>(hub, "POST", `/systems/${system}/keys`)).key;
  const make = async (system: System) => {
    const client = new SyncClient({ baseUrl: hub.base, apiKey: await key(system), store: new MemoryStore() });
    track(system, client);
    return client;
  };
  const clients: Record<System, SyncClient> = { crm: await make("crm"), billing: await make("billing"), webshop: await make("webshop") };
  const { crm, billing, webshop } = clients;
  const run = randomBytes(2).toString("hex");
  const cust = (i: number) => `cust-${run}-${i}`;
  const ord = (i: number) => `ord-${run}-${i}`;

  say("\n1. Setup: the CRM creates 6 customers; the web shop creates 6 orders.");
  for (let i = 1; i <= 6; i++) {
    await crm.put("customers", cust(i), { name: `Customer ${i}`, email: `c${i}@example.com`, phone: `555-010${i}`, region: i % 2 ? "north" : "east", segment: "smb" });
    await webshop.put("orders", ord(i), { customer_id: cust(i), status: "new", total: 20 * i, items: ["SKU-1"], shipping_address: `${i} Main St` });
  }
  await crm.sync();
  await webshop.sync();
  await syncAll(clients);
  say(`   billing now holds ${(await billing.list("customers")).length} customers and ${(await billing.list("orders")).length} orders (its fields only).`);

  say(`\n2. ${args.rounds} rounds of concurrent edits, then all three sync at once:`);
  for (let round = 1; round <= args.rounds; round++) {
    for (let i = 1; i <= 6; i++) {
      // CRM and billing touch the same customers: disjoint fields (merge) and, for some, the same record twice.
      if ((i + round) % 2 === 0) await crm.patch("customers", cust(i), { email: `c${i}.r${round}@example.com` });
      if (i % 3 !== 0) await billing.patch("customers", cust(i), { credit_limit: 1000 * round + i });
      if (i === round % 6 + 1) await crm.patch("customers", cust(i), { phone: `555-9${round}0${i}` });
      // The web shop cancels orders while billing marks the same ones paid.
      const order = await webshop.get("orders", ord(i));
      if (order?.status === "new" && (i + round) % 3 === 0) await webshop.patch("orders", ord(i), { status: "cancelled" });
      const seen = await billing.get("orders", ord(i));
      if (seen?.status === "new" && (i + round) % 2 === 1) await billing.patch("orders", ord(i), { status: "paid", paid_at: new Date().toISOString() });
    }
    const reports = await syncAll(clients);
    // A host program decides about refused changes; this one gives them up (the copy goes back to the hub's).
    for (const c of Object.values(clients)) for (const e of await c.quarantined()) await c.discardQuarantined(e.changeId);
    say(`  round ${round}:`);
    for (const s of Object.keys(reports) as System[]) say(line(s, reports[s]));
  }
  await syncAll(clients); // everyone catches up

  say("\n3. Scope change: a policy version where the web shop no longer reads cancelled orders.");
  const variant = example.replace(
    `collection: orders\n    read: all\n    write: "status in ['new', 'cancelled']"`,
    `collection: orders\n    read: "status in ['new', 'paid', 'packed', 'shipped']"\n    write: "status in ['new', 'cancelled']"`,
  );
  if (variant === example) fail("policies/example.yaml changed shape; the demo's scope change no longer applies to it");
  const before = (await webshop.list("orders")).length;
  const { version } = await adminCall<{ version: number }>(hub, "PUT", "/policy?comment=demo%3A%20web%20shop%20loses%20cancelled%20orders", variant);
  const dropped: string[] = [];
  webshop.on("change", ({ collection, ids }) => {
    if (collection === "orders") dropped.push(...ids);
  });
  const reconciled = await webshop.reconcile();
  const after = await webshop.list("orders");
  say(`   activated version ${version}; the web shop's reconcile removed ${reconciled.removed} order(s): ${before} → ${after.length} held locally.`);
  say(`   dropped: ${[...new Set(dropped)].join(", ") || "none"}; kept: ${after.map((o) => `${o.id} (${String(o.data.status)})`).join(", ")}`);
  await adminCall(hub, "PUT", "/policy?comment=demo%3A%20back%20to%20the%20example", example);

  say("\n4. What happened");
  for (const [system, tally] of tallies) {
    say(`   ${system}: ${tally.synced} change(s) synced`);
    for (const [label, n] of [...tally.conflicts].sort()) say(`      ${n} × ${label}`);
    for (const [label, n] of [...tally.quarantined].sort()) say(`      ${n} × quarantined, ${label}`);
  }
  const log = await adminCall<{ conflicts: Array<{ collection: string; strategy: string; outcome: string; clientSystem: string; serverSystem: string }> }>(
    hub,
    "GET",
    "/conflicts?status=all&limit=500",
  );
  const byStrategy = new Map<string, number>();
  for (const c of log.conflicts) {
    const label = `${c.collection}: ${c.clientSystem} vs ${c.serverSystem}, ${c.strategy} → ${c.outcome}`;
    byStrategy.set(label, (byStrategy.get(label) ?? 0) + 1);
  }
  say(`   the hub's conflict log (GET /api/admin/conflicts): ${log.conflicts.length} conflict(s)`);
  for (const [label, n] of [...byStrategy].sort()) say(`      ${n} × ${label}`);
  const pending = log.conflicts.filter((c) => c.outcome === "pending").length;
  if (pending > 0) say(`   ${pending} pending conflict(s) wait for an operator: the console's Conflicts page or POST /api/admin/conflicts/{id}/resolve.`);
  for (const c of Object.values(clients)) await c.stop();
}

await main().catch((error: unknown) => {
  fail(error instanceof Error ? error.message : String(error));
});

import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MemoryStore, SyncClient } from "@/lib/client";
import { parseConnectConfig, type ConnectConfig } from "@/lib/connect/config";
import { openConnector, openDriver, type Connector } from "@/lib/connect/connector";
import type { SqlDriver } from "@/lib/connect/driver";
import { activatePolicy } from "@/lib/policy/store";
import { startTestHub, type TestHub } from "@/tests/helpers/hub";
import { HUB_URL, inProcessFetch } from "@/tests/helpers/inprocess-fetch";
import { keysFor } from "@/tests/helpers/sync";
import { createDatabase } from "@/scripts/fresh-database";

/**
 * Each test uses its own record ids: the hub (and its history) is shared by the file.
 *
 * `concord connect` against the real hub (route handlers in this process)
 * with a business system's own database: a real SQLite file always, and a
 * real PostgreSQL database whenever the tests run against the server
 * (DATABASE_URL). The CRM's customers live in a table; billing is a plain
 * SDK client that may read every field and write only credit_limit.
 */
const POLICY = `version: 1
systems: {crm: {name: CRM}, billing: {name: Billing}}
collections:
  customers: {conflict: server-wins}
  orders: {conflict: field-merge, fallback: server-wins}
rules:
  - {who: crm, collection: customers, read: "region != 'secret'", write: "region != 'secret'"}
  - {who: billing, collection: customers, read: all, write: {fields: [credit_limit, region]}}
  - {who: "*", collection: orders, read: all, write: all}
`;

interface Engine {
  name: string;
  /** A fresh database with the CRM's table; returns its config `database:` value and a way to drop it. */
  create(dir: string): Promise<{ database: string; drop(): Promise<void> }>;
  /** DDL of the customers table. */
  ddl: string;
}

const ENGINES: Engine[] = [
  {
    name: "SQLite",
    ddl: `create table customers (id integer primary key, name text not null, email_address text, region text, credit_limit numeric,
      vip boolean, signed_up date, notes json, photo blob)`,
    async create(dir) {
      const file = path.join(dir, "crm.db");
      const Database = (await import("better-sqlite3")).default;
      new Database(file).close();
      return { database: `sqlite:${file}`, drop: async () => undefined };
    },
  },
];
if (process.env.DATABASE_URL) {
  const serverUrl = process.env.DATABASE_URL;
  ENGINES.push({
    name: "PostgreSQL",
    ddl: `create table customers (id integer primary key, name text not null, email_address text, region text, credit_limit numeric(12,2),
      vip boolean, signed_up date, notes jsonb, photo bytea)`,
    async create() {
      const db = await createDatabase(serverUrl, "concord_crm_");
      return { database: db.url, drop: () => db.drop() };
    },
  });
}

describe.each(ENGINES)("concord connect on $name", (engine) => {
  let t: TestHub;
  let keys: Record<string, string>;
  let dir: string;
  let database: { database: string; drop(): Promise<void> };
  let config: ConnectConfig;
  let connector: Connector;
  let sql: SqlDriver;
  let billing: SyncClient;

  beforeAll(async () => {
    t = await startTestHub();
    await activatePolicy(t.handle.db, { yaml: POLICY, actor: "test", source: "api" });
    keys = await keysFor(t.handle.db, "crm", "billing");
  });
  afterAll(async () => {
    await t.close();
  });

  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "concord-connect-"));
    database = await engine.create(dir);
    const file = path.join(dir, "connect.yaml");
    const text = `hub: ${HUB_URL}\nkey: \${CRM_KEY}\ndatabase: ${database.database}\ncollections:\n  customers:\n    table: customers\n    columns: {email: email_address}\n`;
    await writeFile(file, text);
    config = parseConnectConfig(text, file, { CRM_KEY: keys.crm });
    sql = await openDriver(config);
    await sql.all(engine.ddl);
    billing = new SyncClient({ baseUrl: HUB_URL, apiKey: keys.billing as string, store: new MemoryStore(), fetch: inProcessFetch() });
  });
  afterEach(async () => {
    await connector?.close();
    await billing.stop();
    await sql.close();
    await database.drop();
    await rm(dir, { recursive: true, force: true });
  });

  const open = async () => {
    connector = await openConnector(config, { fetch: inProcessFetch() });
    return connector;
  };
  const rows = async () => (await sql.all(`select id, name, email_address, region, credit_limit from customers order by id`)).map((r) => ({ ...r, id: Number(r.id), credit_limit: r.credit_limit === null ? null : Number(r.credit_limit) }));

  it("syncs both ways: table rows reach the hub, hub records land in the table, edits and deletes flow back and forth", async () => {
    await sql.all(`insert into customers (id, name, email_address, region, credit_limit) values (1, 'Ann', 'ann@example.com', 'north', 100), (2, 'Bob', null, 'east', null)`);
    const c = await open();
    const first = await c.once();
    expect(first.report.pushed).toBe(2);
    expect(first.problems).toEqual([]);

    await billing.sync();
    expect(await billing.get("customers", "1")).toEqual({ name: "Ann", email: "ann@example.com", region: "north", credit_limit: 100 });
    expect(await billing.get("customers", "2")).toEqual({ name: "Bob", region: "east" });

    // The hub's edits (billing may write credit_limit) and a second cycle that changes nothing locally.
    await billing.patch("customers", "1", { credit_limit: 250 });
    await billing.sync();
    const second = await c.once();
    expect(second.report.pushed).toBe(0);
    expect(await rows()).toEqual([
      { id: 1, name: "Ann", email_address: "ann@example.com", region: "north", credit_limit: 250 },
      { id: 2, name: "Bob", email_address: null, region: "east", credit_limit: null },
    ]);
    // Applying the hub's version is not a local change.
    expect((await c.once()).report.pushed).toBe(0);

    // Local edit and local delete in the table.
    await sql.all(`update customers set email_address = 'bob@example.com' where id = 2`);
    await sql.all(`delete from customers where id = 1`);
    const third = await c.once();
    expect(third.report.pushed).toBe(2);
    await billing.sync();
    expect(await billing.get("customers", "1")).toBeUndefined();
    expect(await billing.get("customers", "2")).toEqual({ name: "Bob", email: "bob@example.com", region: "east" });

    // A delete on the hub leaves the table.
    await c.client.delete("customers", "2").catch(() => undefined);
    expect((await c.once()).report.pushed).toBeGreaterThanOrEqual(0);
    expect(await rows()).toEqual([]);
  });

  it("keeps what it may not read out of the table, and a row moved out of scope leaves it", async () => {
    const c = await open();
    await c.once();
    await billing.putMany("customers", [
      { id: "10", data: { name: "Open", region: "north" } },
      { id: "11", data: { name: "Hidden", region: "secret" } },
    ]);
    // billing may not create records with names: it writes only credit_limit and region, so these are refused.
    const refused = await billing.sync();
    expect(refused.quarantined).toBe(2);
    // So the CRM creates them, and billing moves one out of the CRM's scope.
    await sql.all(`insert into customers (id, name, region) values (10, 'Open', 'north'), (11, 'Soon hidden', 'west')`);
    await c.once();
    const b2 = new SyncClient({ baseUrl: HUB_URL, apiKey: keys.billing as string, store: new MemoryStore(), fetch: inProcessFetch() });
    await b2.sync();
    await b2.patch("customers", "11", { region: "secret" });
    await b2.sync();
    await b2.stop();
    await c.once();
    expect((await rows()).map((r) => r.id)).toEqual([10]);
  });

  it("reports a row it cannot map with its id and column, and syncs the others", async () => {
    const photo = engine.name === "SQLite" ? `x'00ff'` : `'\\x00ff'::bytea`;
    await sql.all(`insert into customers (id, name, region, photo) values (21, 'Ann', 'north', null), (22, 'Pic', 'north', ${photo})`);
    const c = await open();
    const { report, problems } = await c.once();
    expect(report.pushed).toBe(1);
    expect(problems).toEqual([expect.objectContaining({ collection: "customers", id: "22", column: "photo" })]);
    await billing.sync();
    expect(await billing.get("customers", "21")).toEqual({ name: "Ann", region: "north" });
    expect(await billing.get("customers", "22")).toBeUndefined();
  });

  it("maps types: numbers, exact decimals, booleans, dates and JSON, and writes them back unchanged", async () => {
    await sql.all(
      `insert into customers (id, name, region, credit_limit, vip, signed_up, notes) values (31, 'Ann', 'north', 12.5, ${engine.name === "SQLite" ? 1 : "true"}, '2026-03-04', '{"tags": ["a", "b"], "n": 1}')`,
    );
    const c = await open();
    await c.once();
    await billing.sync();
    expect(await billing.get("customers", "31")).toEqual({ name: "Ann", region: "north", credit_limit: 12.5, vip: true, signed_up: "2026-03-04", notes: { tags: ["a", "b"], n: 1 } });
    await billing.patch("customers", "31", { credit_limit: 99.25 });
    await billing.sync();
    await c.once();
    // Nothing changed locally since: a cycle pushes nothing.
    expect((await c.once()).report.pushed).toBe(0);
    const [row] = await sql.all(`select credit_limit from customers where id = 31`);
    expect(Number(row?.credit_limit)).toBe(99.25);
  });

  it("a field-limited system pushes only what it changed, and an edit of a field it may not write is quarantined with the reason", async () => {
    await sql.all(`insert into customers (id, name, region, credit_limit) values (41, 'Fay', 'north', 10)`);
    const crm = await open();
    await crm.once();
    await crm.close();
    // Billing connects to a table of its own with the same columns.
    const billingDb = await engine.create(await mkdtemp(path.join(tmpdir(), "concord-billing-")));
    const billingFile = path.join(dir, "billing.yaml");
    const billingText = `hub: ${HUB_URL}\nkey: ${keys.billing}\ndatabase: ${billingDb.database}\ncollections:\n  customers: {table: customers, columns: {email: email_address}}\n`;
    const billingConfig = parseConnectConfig(billingText, billingFile);
    const billingSql = await openDriver(billingConfig);
    await billingSql.all(engine.ddl);
    const b = await openConnector(billingConfig, { fetch: inProcessFetch() });
    try {
      await b.once();
      expect((await billingSql.all(`select name from customers where id = 41`))[0]?.name).toBe("Fay");
      await billingSql.all(`update customers set credit_limit = 500 where id = 41`);
      const edited = await b.once();
      expect(edited.report).toMatchObject({ pushed: 1, quarantined: 0 });
      await billingSql.all(`update customers set name = 'Fay Renamed' where id = 41`);
      const refused = await b.once();
      expect(refused.report.quarantined).toBe(1);
      const [entry] = await b.client.quarantined();
      expect(entry?.quarantine).toMatchObject({ status: "forbidden" });
      expect(entry?.quarantine?.reason).toMatch(/name/);
      // The CRM's table has billing's credit limit, not the refused name.
      const again = await open();
      await again.once();
      expect((await rows()).find((r) => r.id === 41)).toMatchObject({ name: "Fay", credit_limit: 500 });
    } finally {
      await b.close();
      await billingSql.close();
      await billingDb.drop();
    }
  });

  it("settles collisions by the collection's strategy: server-wins keeps the hub's copy in the table, field-merge combines disjoint edits", async () => {
    await sql.all(`create table orders (id text primary key, status text, total numeric, note text)`);
    const file = path.join(dir, "both.yaml");
    const text = `hub: ${HUB_URL}\nkey: ${keys.crm}\ndatabase: ${database.database}\ncollections:\n  customers: {table: customers, columns: {email: email_address}}\n  orders: {table: orders}\n`;
    config = parseConnectConfig(text, file);
    await sql.all(`insert into customers (id, name, region, credit_limit) values (51, 'Gus', 'north', 1)`);
    await sql.all(`insert into orders (id, status, total, note) values ('o-51', 'new', 20, null)`);
    const c = await open();
    await c.once();
    const other = new SyncClient({ baseUrl: HUB_URL, apiKey: keys.billing as string, store: new MemoryStore(), fetch: inProcessFetch() });
    try {
      await other.sync();
      // Both sides edit while apart.
      await other.patch("customers", "51", { credit_limit: 2 });
      await other.patch("orders", "o-51", { status: "paid" });
      await other.sync();
      await sql.all(`update customers set credit_limit = 3 where id = 51`);
      await sql.all(`update orders set note = 'gift wrap' where id = 'o-51'`);
      const { report } = await c.once();
      expect(report.conflicts.rejected).toBe(1);
      expect(report.conflicts.merged).toBe(1);
      expect((await rows()).find((r) => r.id === 51)?.credit_limit).toBe(2);
      const [order] = await sql.all(`select status, note from orders where id = 'o-51'`);
      expect(order).toEqual({ status: "paid", note: "gift wrap" });
      // Settled: nothing left to push.
      expect((await c.once()).report.pushed).toBe(0);
    } finally {
      await other.stop();
    }
  });

  it("a policy change that takes rows out of the system's scope removes them from its table", async () => {
    await sql.all(`insert into customers (id, name, region) values (61, 'Hal', 'north'), (62, 'Ida', 'south')`);
    const c = await open();
    await c.once();
    await activatePolicy(t.handle.db, { yaml: POLICY.replace(`read: "region != 'secret'"`, `read: "region != 'south'"`), actor: "test", source: "api" });
    try {
      await c.once();
      const ids = (await rows()).map((r) => r.id);
      expect(ids).toContain(61);
      expect(ids).not.toContain(62);
    } finally {
      await activatePolicy(t.handle.db, { yaml: POLICY, actor: "test", source: "api" });
    }
  });

  it("capture: trigger finds changes through installed triggers (idempotent install and uninstall), after one full look at the table", async () => {
    await sql.all(`insert into customers (id, name, region) values (71, 'Jo', 'north')`);
    const tables = [{ collection: "customers", schema: null, table: "customers", idColumn: "id" }];
    await sql.setup();
    await sql.installCapture(tables);
    await sql.installCapture(tables);
    expect(await sql.hasCapture(tables[0] as (typeof tables)[0])).toBe(true);
    config = { ...config, capture: "trigger" };
    const c = await open();
    // A row written before the connector first ran is found by its first full look.
    expect((await c.once()).report.pushed).toBe(1);
    await sql.all(`update customers set name = 'Jo Jr' where id = 71`);
    await sql.all(`insert into customers (id, name, region) values (72, 'Kim', 'east')`);
    const captured = await sql.all(`select id from ${sql.own("captured")} order by id`);
    expect(captured.map((r) => String(r.id))).toEqual(["71", "72"]);
    expect((await c.once()).report.pushed).toBe(2);
    // The hub's changes written into the table are not captured as local changes.
    await billing.sync();
    await billing.patch("customers", "72", { credit_limit: 7 });
    await billing.sync();
    await c.once();
    expect((await rows()).find((r) => r.id === 72)?.credit_limit).toBe(7);
    expect((await c.once()).report.pushed).toBe(0);
    expect(await sql.all(`select id from ${sql.own("captured")}`)).toEqual([]);
    await c.close();
    await sql.uninstallCapture(tables);
    await sql.uninstallCapture(tables);
    expect(await sql.hasCapture(tables[0] as (typeof tables)[0])).toBe(false);
    // Without the trigger, capture: trigger refuses to start and says what to do.
    await expect(openConnector(config, { fetch: inProcessFetch() })).rejects.toThrow(/--install/);
  });

  it("one connector per database: a second one is refused while the first runs, and may start once it has stopped", async () => {
    const c = await open();
    await expect(openConnector(config, { fetch: inProcessFetch() })).rejects.toThrow(/already running/);
    // Reading its status alongside is fine.
    const status = await openConnector(config, { fetch: inProcessFetch(), claim: false });
    await status.close();
    await c.close();
    const next = await openConnector(config, { fetch: inProcessFetch() });
    await next.close();
  });

  it("sends a column named __proto__ as the field it is: the hub's refusal is quarantined with the reason, never dropped silently", async () => {
    await sql.all(`create table orders (id text primary key, "__proto__" text, status text)`);
    const file = path.join(dir, "proto.yaml");
    config = parseConnectConfig(`hub: ${HUB_URL}\nkey: ${keys.crm}\ndatabase: ${database.database}\ncollections:\n  orders: {table: orders}\n`, file);
    await sql.all(`insert into orders (id, "__proto__", status) values ('o-proto', 'odd', 'new')`);
    const c = await open();
    expect((await c.once()).report.quarantined).toBe(1);
    const [entry] = await c.client.quarantined();
    expect(entry?.record && Object.entries(entry.record)).toEqual([
      ["__proto__", "odd"],
      ["status", "new"],
    ]);
    expect(entry?.quarantine?.reason).toMatch(/__proto__/);
  });
});

import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHubProcess, type HubProcess } from "@/scripts/hub-process";

/**
 * The `concord` CLI against a real hub: `next start` (built first when the
 * sources changed, once for all test files) on a fresh database — a new
 * Postgres database when DATABASE_URL is set, else a PGlite folder — with the
 * CLI run as a child process through bin/concord.js. Hubs of this file use
 * ports 3525–3549.
 */

const ROOT = path.resolve(import.meta.dirname, "../..");
const BIN = path.join(ROOT, "bin", "concord.js");
const PORT = 3525 + (process.pid % 25);
let BASE: string;
let ADMIN: string;

let hub: HubProcess | undefined;
let dir: string;
let key: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "concord-cli-"));
  hub = await startHubProcess({ port: PORT, databasePrefix: "concord_cli_" });
  BASE = hub.base;
  ADMIN = hub.adminToken;
  const health = (await (await fetch(`${BASE}/api/health`)).json()) as { database: string };
  expect(health.database).toBe(process.env.DATABASE_URL ? "postgres" : "pglite");
  const res = await fetch(`${BASE}/api/admin/systems/crm/keys`, { method: "POST", headers: { authorization: `Bearer ${ADMIN}` } });
  key = ((await res.json()) as { key: string }).key;
}, 600_000);

afterAll(async () => {
  await hub?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function concord(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn("node", [BIN, ...args], { cwd: path.join(dir, "site"), env: { ...process.env, CONCORD_CONFIG: "" } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

async function ok(...args: string[]): Promise<string> {
  const r = await concord(...args);
  if (r.code !== 0) throw new Error(`concord ${args.join(" ")} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

// Each scenario runs the CLI a dozen times (a Node start each, about 1-2 s on a busy 2-core machine): minutes, not the default minute.
describe("the concord CLI against a real hub", () => {
  it("init, put, sync, get, status, export/import", async () => {
    mkdirSync(path.join(dir, "site"), { recursive: true });

    expect(await ok("init", "--server", BASE, "--key", key)).toMatch(/Connected to .* as system "crm" \(policy version 1\)/);
    const config = JSON.parse(readFileSync(path.join(dir, "site", ".concord", "config.json"), "utf8")) as Record<string, string>;
    expect(config).toEqual({ server: BASE, key, store: "store" });

    const ann = { name: "Ann", email: "ann@example.com", region: "north" };
    await ok("put", "customers", "cli-1", JSON.stringify(ann));
    const synced = await ok("sync");
    expect(synced).toMatch(/pushed\s+1/);
    expect(synced).toMatch(/quarantined\s+0/);
    expect(JSON.parse(await ok("get", "customers", "cli-1"))).toEqual(ann);

    const status = await ok("status");
    expect(status).toMatch(/system: crm\s+policy version: 1/);
    expect(status).toMatch(/pending changes\s+0/);
    expect(status).not.toMatch(/last sync\s+never/);

    // Offline bundle: a change exported to a file, applied by the hub, the answer imported.
    writeFileSync(path.join(dir, "site", "bob.json"), JSON.stringify({ ...ann, name: "Bob" }));
    await ok("put", "customers", "cli-2", "@bob.json");
    expect(await ok("export", "bundle.json")).toMatch(/Wrote bundle .* \(1 change\(s\)/);
    const answer = await fetch(`${BASE}/api/v1/bundles`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}` },
      body: readFileSync(path.join(dir, "site", "bundle.json"), "utf8"),
    });
    expect(answer.status).toBe(200);
    writeFileSync(path.join(dir, "site", "response.json"), await answer.text());
    expect(await ok("import", "response.json")).toMatch(/pushed\s+1/);
    const record = await fetch(`${BASE}/api/admin/records/customers/cli-2`, { headers: { authorization: `Bearer ${ADMIN}` } });
    expect(await record.json()).toMatchObject({ data: { name: "Bob" } });
    expect(await ok("status")).toMatch(/pending changes\s+0/);

    // A tampered response is refused, with what to do.
    writeFileSync(path.join(dir, "site", "bad.json"), readFileSync(path.join(dir, "site", "response.json"), "utf8").replace("Bob", "Rob"));
    const tampered = await concord("import", "bad.json");
    expect(tampered.code).toBe(1);
    expect(tampered.stderr).toMatch(/checksum does not match/);
  }, 180_000);

  it("names what is wrong in bad input, and shows the hub's refusals", async () => {
    const badCollection = await concord("put", "Customers", "x", "{}");
    expect(badCollection.code).toBe(2);
    expect(badCollection.stderr).toMatch(/"Customers" is not a collection name/);
    const notObject = await concord("put", "customers", "x", "[1]");
    expect(notObject.code).toBe(2);
    expect(notObject.stderr).toMatch(/The data must be a JSON object/);
    const missing = await concord("get", "customers", "nope");
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/no local copy of customers\/nope; run `concord sync` first/);

    // The CRM may not write customers in the south: the hub refuses, the change is quarantined with the hub's reason.
    await ok("put", "customers", "cli-south", JSON.stringify({ name: "Sue", region: "south" }));
    expect(await ok("sync")).toMatch(/quarantined\s+1/);
    expect(await ok("status")).toMatch(/customers\/cli-south .*forbidden: /);

    const wrongKey = await concord("--config", "other/config.json", "init", "--server", BASE, "--key", `cnc_000000000000_${"A".repeat(43)}`);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/answered 401: .*Check the API key/);
  }, 180_000);

  it("watch shows another system's change as it happens, and exits 0 on Ctrl-C", async () => {
    const issued = await fetch(`${BASE}/api/admin/systems/webshop/keys`, { method: "POST", headers: { authorization: `Bearer ${ADMIN}` } });
    const shopKey = ((await issued.json()) as { key: string }).key;

    const child = spawn("node", [BIN, "watch"], { cwd: path.join(dir, "site"), env: { ...process.env, CONCORD_CONFIG: "" } });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    const waitFor = async (pattern: RegExp, ms: number) => {
      const deadline = Date.now() + ms;
      while (!pattern.test(output)) {
        if (child.exitCode !== null || Date.now() > deadline) throw new Error(`watch never printed ${pattern}:\n${output}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    };
    try {
      // Connected: the first sync is done and the event stream is open.
      await waitFor(/synced; waiting/, 30_000);
      await new Promise((r) => setTimeout(r, 1000));

      const push = await fetch(`${BASE}/api/v1/collections/customers/push`, {
        method: "POST",
        headers: { authorization: `Bearer ${shopKey}`, "content-type": "application/json" },
        body: JSON.stringify({ changes: [{ changeId: `watch-${process.pid}`, id: "cli-web-1", baseVersion: null, data: { name: "Web Wendy", email: "w@example.com", source: "web" } }] }),
      });
      expect(((await push.json()) as { results: { status: string }[] }).results[0]?.status).toBe("applied");
      // Real time: the change arrives long before the 60 s interval.
      await waitFor(/change customers: cli-web-1/, 10_000);

      const signalled = Date.now();
      child.kill("SIGINT");
      expect(await exited).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(5000);
      expect(output).toMatch(/stopped\.\s*$/);
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
    expect(JSON.parse(await ok("get", "customers", "cli-web-1"))).toMatchObject({ name: "Web Wendy" });
  });

  it("connect --once syncs a SQLite table with no code; a bad connector file is named with line and column", async () => {
    const site = path.join(dir, "connect");
    mkdirSync(site, { recursive: true });
    const Database = (await import("better-sqlite3")).default;
    const db = new Database(path.join(site, "crm.db"));
    db.exec(`create table customers (id text primary key, name text, email_address text, region text)`);
    db.prepare(`insert into customers values (?, ?, ?, ?)`).run("conn-1", "Carla", "carla@example.com", "north");
    db.close();
    writeFileSync(
      path.join(site, "connect.yaml"),
      `hub: ${BASE}\nkey: \${CRM_KEY}\ndatabase: sqlite:./crm.db\ncollections:\n  customers:\n    table: customers\n    columns: {email: email_address}\n`,
    );
    const run = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const child = spawn("node", [BIN, ...args], { cwd: site, env: { ...process.env, CONCORD_CONFIG: "", CRM_KEY: key } });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
      });

    // A record the hub already has, written by another client of the same system.
    const pushed = await fetch(`${BASE}/api/v1/collections/customers/push`, {
      method: "POST",
      headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      body: JSON.stringify({ changes: [{ changeId: `conn-${process.pid}`, id: "conn-hub-1", baseVersion: null, data: { name: "Hub Hank", region: "east" } }] }),
    });
    expect(pushed.status).toBe(200);

    const first = await run("connect", "--config", "connect.yaml", "--once");
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/connect cycle done:/);
    expect(first.stdout).toMatch(/pushed\s+1/);
    const pulled = await fetch(`${BASE}/api/v1/collections/customers/changes`, { headers: { authorization: `Bearer ${key}` } });
    const page = (await pulled.json()) as { changes: { id: string; data?: Record<string, unknown> }[] };
    expect(page.changes.find((c) => c.id === "conn-1")?.data).toEqual({ name: "Carla", email: "carla@example.com", region: "north" });
    // The hub's records came into the table.
    const check = new Database(path.join(site, "crm.db"), { readonly: true });
    const hank = check.prepare(`select name, email_address, region from customers where id = ?`).get("conn-hub-1");
    check.close();
    expect(hank).toEqual({ name: "Hub Hank", email_address: null, region: "east" });

    const status = await run("connect", "--config", "connect.yaml", "--status");
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/pending changes\s+0/);

    // Trigger capture: installed twice (idempotent), then a table change goes out in one cycle, then removed.
    for (let i = 0; i < 2; i++) {
      const installed = await run("connect", "--config", "connect.yaml", "--install");
      expect(installed.code, installed.stderr).toBe(0);
      expect(installed.stdout).toMatch(/Installed the capture triggers on customers/);
    }
    writeFileSync(path.join(site, "trigger.yaml"), readFileSync(path.join(site, "connect.yaml"), "utf8") + "capture: trigger\n");
    const edit = new Database(path.join(site, "crm.db"));
    edit.prepare(`update customers set region = 'west' where id = ?`).run("conn-1");
    edit.close();
    const triggered = await run("connect", "--config", "trigger.yaml", "--once");
    expect(triggered.code, triggered.stderr).toBe(0);
    expect(triggered.stdout).toMatch(/pushed\s+1/);
    expect((await run("connect", "--config", "connect.yaml", "--uninstall")).code).toBe(0);
    const refused = await run("connect", "--config", "trigger.yaml", "--once");
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/no capture trigger; run `concord connect --config FILE --install` first/);

    writeFileSync(path.join(site, "bad.yaml"), `hub: ${BASE}\nkey: \${NOT_SET_ANYWHERE}\ndatabase: mysql://x\ncollections: {}\n`);
    const bad = await run("connect", "--config", "bad.yaml", "--once");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/line 2, column 6: \$\{NOT_SET_ANYWHERE\} is not set in the environment/);
  }, 180_000);

  it("connect survives kill -9 mid-cycle: after a clean cycle every row is on the hub once, at version 1, and every hub record in the table", async () => {
    // Sized so that a cycle takes a few seconds here and each kill lands inside one.
    const ROWS = 1500;
    const site = path.join(dir, "killed");
    mkdirSync(site, { recursive: true });
    const Database = (await import("better-sqlite3")).default;
    const db = new Database(path.join(site, "crm.db"));
    db.exec(`create table customers (id text primary key, name text, region text)`);
    const insert = db.prepare(`insert into customers values (?, ?, ?)`);
    db.transaction(() => {
      for (let i = 0; i < ROWS; i++) insert.run(`k-${i}`, `Row ${i}`, "north");
    })();
    db.close();
    // Records the hub has for the table to receive, pushed by the same system elsewhere.
    for (let batch = 0; batch < 1; batch++) {
      const changes = Array.from({ length: 500 }, (_, j) => ({ changeId: `kh-${process.pid}-${batch}-${j}`, id: `kh-${batch * 500 + j}`, baseVersion: null, data: { name: `Hub ${j}`, region: "east" } }));
      const res = await fetch(`${BASE}/api/v1/collections/customers/push`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ changes }),
      });
      expect(res.status).toBe(200);
    }
    writeFileSync(path.join(site, "connect.yaml"), `hub: ${BASE}\nkey: ${key}\ndatabase: sqlite:./crm.db\ncollections: {customers: {table: customers}}\n`);
    const start = () => {
      const child = spawn("node", [BIN, "connect", "--config", "connect.yaml", "--once"], { cwd: site, env: { ...process.env, CONCORD_CONFIG: "" } });
      let output = "";
      child.stdout.on("data", (d: Buffer) => (output += d.toString()));
      child.stderr.on("data", (d: Buffer) => (output += d.toString()));
      // Listened to from the start: a cycle may end before the kill.
      const closed = new Promise<{ code: number | null; output: () => string }>((resolve) => child.once("close", (code) => resolve({ code, output: () => output })));
      return { child, closed };
    };
    const run = (...args: string[]) =>
      new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        const child = spawn("node", [BIN, ...args], { cwd: site, env: { ...process.env, CONCORD_CONFIG: "" } });
        let stdout = "";
        let stderr = "";
        // A cycle that does not end is a failure with its output, not a silent test timeout.
        const timer = setTimeout(() => {
          stderr += "\n(killed by the test after 200 s)";
          child.kill("SIGKILL");
        }, 200_000);
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("close", (code) => {
          clearTimeout(timer);
          resolve({ code: code ?? -1, stdout, stderr });
        });
      });
    // Killed at different points of its cycles.
    let killed = 0;
    for (const delay of [700, 1200, 1700, 2400]) {
      const { child, closed } = start();
      await new Promise((r) => setTimeout(r, delay));
      child.kill("SIGKILL");
      const ended = await closed;
      // Killed (no exit code), or a cycle that finished first (0); anything else is a failure to show.
      expect(ended.code === null || ended.code === 0, ended.output()).toBe(true);
      if (ended.code === null) killed += 1;
    }
    expect(killed).toBeGreaterThan(0);
    // The clean cycle, with its output kept for the failure message.
    const last = await run("connect", "--config", "connect.yaml", "--once");
    expect(last.code, `${last.stdout}\n${last.stderr}`).toBe(0);

    const versions = new Map<string, number>();
    let after: string | null = null;
    do {
      const url = `${BASE}/api/v1/collections/customers/manifest?limit=10000${after ? `&after=${encodeURIComponent(after)}` : ""}`;
      const page = (await (await fetch(url, { headers: { authorization: `Bearer ${key}` } })).json()) as { entries: { id: string; version: number }[]; next: string | null };
      for (const e of page.entries) versions.set(e.id, e.version);
      after = page.next;
    } while (after !== null);
    const mine = [...versions].filter(([id]) => id.startsWith("k-"));
    expect(mine).toHaveLength(ROWS);
    // Applied once each: a change sent again after a crash is answered from its receipt, not written twice.
    expect(mine.every(([, v]) => v === 1)).toBe(true);
    const check = new Database(path.join(site, "crm.db"), { readonly: true });
    const count = (check.prepare(`select count(*) as n from customers where id like 'kh-%'`).get() as { n: number }).n;
    const outbox = (check.prepare(`select count(*) as n from concord_outbox`).get() as { n: number }).n;
    check.close();
    expect(count).toBe(500);
    expect(outbox).toBe(0);
  }, 300_000);
});

/**
 * `concord`: the command-line client of a Concord hub (issue 5, item 3). A
 * thin shell over the SDK (lib/client) with a durable PGlite store; run it
 * through bin/concord.js (`npx concord …`).
 */
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { SingleBar } from "cli-progress";
import { Command, CommanderError } from "commander";
import { z } from "zod";
import {
  ConcordError,
  exportBundle,
  exportedBundles,
  importBundle,
  SyncClient,
  type LocalStore,
  type SyncProgress,
  type SyncReport,
} from "../lib/client";
import { PgliteStore } from "../lib/client/pglite-store";
import { takeLockFile } from "../lib/connect/lock-file";
import type { Problem } from "../lib/connect/table-store";
import { isJsonObject, type JsonObject, type PushResult } from "../lib/sync/protocol";
import { describeProblem, parseStrictJson } from "../lib/sync/strict-json";
import {
  collectionSchema,
  configPath,
  keySchema,
  readConfig,
  recordIdSchema,
  serverSchema,
  storeDir,
  UsageError,
  valid,
  writeConfig,
  type CliConfig,
} from "./config";

const LAST_SYNC_META = "cli.lastSync";

interface Session {
  config: CliConfig;
  store: LocalStore;
  client: SyncClient;
  close(): Promise<void>;
}

/** Opens the store (one concord process per store: PGlite has no lock of its own) and a client on it. */
async function openSession(configOption: string | undefined, given?: CliConfig): Promise<Session> {
  const file = configPath(configOption);
  const config = given ?? (await readConfig(file));
  const dir = storeDir(file, config);
  await mkdir(path.dirname(dir), { recursive: true });
  const lock = `${dir}.lock`;
  await takeLock(lock);
  let store: LocalStore;
  try {
    store = await PgliteStore.open(dir);
  } catch (error) {
    await rm(lock, { force: true });
    throw new ConcordError(`Could not open the local store at ${dir} (${String(error)}); check the folder, or run \`concord init --store DIR\` with another one.`);
  }
  const client = new SyncClient({ baseUrl: config.server, apiKey: config.key, store });
  return {
    config,
    store,
    client,
    async close() {
      await client.stop();
      await store.close();
      await rm(lock, { force: true });
    },
  };
}

async function takeLock(lock: string): Promise<void> {
  await takeLockFile(
    lock,
    (pid) => new ConcordError(`Another concord process (pid ${pid}) is using the local store; stop it (e.g. end \`concord watch\`) and try again.`),
    () => new ConcordError(`Could not lock the local store (${lock}); remove that file if no concord process is running.`),
  );
}

async function withSession<T>(configOption: string | undefined, work: (session: Session) => Promise<T>): Promise<T> {
  const session = await openSession(configOption);
  try {
    return await work(session);
  } finally {
    await session.close();
  }
}

// ---------------------------------------------------------------------------
// Output

function table(rows: Array<[string, string | number]>): string {
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(width)}  ${v}`).join("\n");
}

function reportTable(report: SyncReport): string {
  return table([
    ["pushed", report.pushed],
    ["pulled", report.pulled],
    ["removed", report.removed],
    ["unchanged", report.unchanged],
    ["conflicts merged", report.conflicts.merged],
    ["conflicts rejected", report.conflicts.rejected],
    ["conflicts pending", report.conflicts.pending],
    ["quarantined", report.quarantined],
  ]);
}

function describeConflict(collection: string, result: PushResult): string {
  const strategy = result.conflict ? ` by ${result.conflict.strategy} (conflict #${result.conflict.id})` : "";
  return `  ${collection}/${result.id}: ${result.status}${strategy}`;
}

const out = (line = "") => process.stdout.write(line + "\n");

/** A progress bar for pulls that take more than one page (stderr, only on a terminal). */
function progressBar(): { onProgress: (p: SyncProgress) => void; stop: () => void } {
  let bar: SingleBar | null = null;
  return {
    onProgress(p) {
      if (!bar && p.hasMore) {
        bar = new SingleBar({ format: "pulling {collection} [{bar}] {value} records, {pages} pages", hideCursor: true, clearOnComplete: true });
        bar.start(p.pulled * 2 + 1, p.pulled, { collection: p.collection, pages: p.pages });
      }
      if (!bar) return;
      bar.setTotal(p.hasMore ? Math.max(p.pulled * 2, p.pulled + 1) : p.pulled);
      bar.update(p.pulled, { collection: p.collection, pages: p.pages });
      if (!p.hasMore) {
        bar.stop();
        bar = null;
      }
    },
    stop() {
      bar?.stop();
    },
  };
}

// ---------------------------------------------------------------------------
// Input

const jsonObjectSchema = z.custom<JsonObject>(isJsonObject, "must be a JSON object such as {\"name\": \"Ann\"}");

async function readJsonArgument(arg: string): Promise<JsonObject> {
  let text = arg;
  if (arg.startsWith("@")) {
    const file = arg.slice(1);
    try {
      text = await readFile(file, "utf8");
    } catch {
      throw new UsageError(`Could not read ${file}; give a JSON object, or @FILE naming a readable file.`);
    }
  }
  // Strict, as the hub reads it: a key given twice or a number that would lose digits is named, not silently changed.
  const parsed = parseStrictJson(text);
  if (!parsed.ok) {
    const { problem } = parsed;
    throw new UsageError(
      problem.code === "not_json"
        ? `The data is not valid JSON (${problem.message}); give a JSON object, or @FILE.`
        : describeProblem(problem, "The data"),
    );
  }
  return valid(jsonObjectSchema, parsed.value, "The data");
}

function key(collection: string, id: string): { collection: string; id: string } {
  return { collection: valid(collectionSchema, collection, `"${collection}"`), id: valid(recordIdSchema, id, "The record id") };
}

// ---------------------------------------------------------------------------
// Commands

const program = new Command()
  .name("concord")
  .description("Sync a local copy with a Concord hub: records, offline bundles, status.")
  .option("-c, --config <file>", "configuration file (default .concord/config.json, or CONCORD_CONFIG)")
  .version("0.1.0")
  .showHelpAfterError("(run concord --help for usage)")
  .exitOverride();

const globalConfig = (): string | undefined => program.opts<{ config?: string }>().config;

program
  .command("init")
  .description("connect this folder to a hub: checks GET /api/v1/config, then writes the configuration")
  .requiredOption("--server <url>", "the hub's address, e.g. http://localhost:3000")
  .requiredOption("--key <key>", "this system's API key (cnc_…)")
  .option("--store <dir>", "local store folder, relative to the configuration's folder", "store")
  .option("--force", "replace an existing configuration")
  .action(async (options: { server: string; key: string; store: string; force?: boolean }) => {
    const server = valid(serverSchema, options.server, "--server");
    const apiKey = valid(keySchema, options.key, "--key");
    const storeOption = valid(z.string().trim().min(1, "must name a folder"), options.store, "--store");
    const file = configPath(globalConfig());
    if (existsSync(file) && !options.force) {
      throw new UsageError(`${file} exists already; pass --force to replace it.`);
    }
    const config: CliConfig = { server, key: apiKey, store: storeOption };
    const freshStore = !existsSync(storeDir(file, config));
    const session = await openSession(globalConfig(), config);
    let connected = false;
    try {
      const hub = await session.client.init();
      await writeConfig(file, config);
      out(`Connected to ${server} as system "${hub.system}" (policy version ${hub.policyVersion}).`);
      for (const [name, c] of Object.entries(hub.collections)) {
        out(`  ${name}: ${c.read ? "read" : "no read"}, ${c.write ? "write" : "no write"}, conflicts: ${c.conflict.strategy}`);
      }
      out(`Configuration: ${file}; local store: ${storeDir(file, config)}. Next: concord sync`);
      connected = true;
    } finally {
      await session.close();
      if (!connected && freshStore) await rm(storeDir(file, config), { recursive: true, force: true });
    }
  });

program
  .command("status")
  .description("pending and quarantined changes, checkpoints, policy version, last sync (no network)")
  .action(() =>
    withSession(globalConfig(), async ({ client, store, config }) => {
      const status = await client.status();
      const hub = await store.getMeta("config");
      const policyVersion = isJsonObject(hub) && typeof hub.policyVersion === "number" ? hub.policyVersion : null;
      const system = isJsonObject(hub) && typeof hub.system === "string" ? hub.system : "?";
      const last = await store.getMeta(LAST_SYNC_META);
      const lastAt = isJsonObject(last) && typeof last.at === "string" ? last.at : "never";
      out(`hub: ${config.server}  system: ${system}  policy version: ${policyVersion ?? "unknown (never synced)"}`);
      out(table([
        ["pending changes", status.pendingChanges],
        ["quarantined", status.quarantined],
        ["last sync", lastAt],
      ]));
      const quarantined = await client.quarantined();
      if (quarantined.length > 0) {
        out("quarantined changes (the hub refused them; fix the policy or the record, then sync):");
        for (const e of quarantined) out(`  ${e.collection}/${e.id} ${e.changeId}: ${e.quarantine?.status}: ${e.quarantine?.reason}`);
      }
      const collections = await store.collections();
      if (collections.length > 0) {
        out("checkpoints:");
        for (const c of collections) out(`  ${c}: ${(await store.checkpoint(c)) ?? "none (next pull starts from the beginning)"}`);
      }
      const waiting = (await exportedBundles(client)).filter((b) => b.importedAt === null);
      if (waiting.length > 0) out(`bundles exported and not imported yet: ${waiting.map((b) => b.bundleId).join(", ")}`);
    }),
  );

program
  .command("sync")
  .description("push local changes, pull the hub's, and print a summary")
  .action(() =>
    withSession(globalConfig(), async ({ client, store }) => {
      const conflicts: string[] = [];
      client.on("conflict", ({ collection, result }) => conflicts.push(describeConflict(collection, result)));
      const bar = progressBar();
      let report: SyncReport;
      try {
        report = await client.sync({ onProgress: bar.onProgress });
      } finally {
        bar.stop();
      }
      await store.write({ meta: { [LAST_SYNC_META]: { at: new Date().toISOString(), report: { ...report, conflicts: { ...report.conflicts } } } } });
      out("sync done:");
      out(reportTable(report));
      if (conflicts.length > 0) {
        out("conflicts:");
        for (const line of conflicts) out(line);
      }
      if (report.quarantined > 0) out("Some changes were refused by the hub; `concord status` shows why.");
    }),
  );

program
  .command("watch")
  .description("sync now, then in real time and at the hub's interval, printing events until Ctrl-C")
  .action(async () => {
    const session = await openSession(globalConfig());
    const { client } = session;
    const stamp = () => new Date().toISOString().slice(11, 19);
    client.on("change", ({ collection, ids }) => out(`${stamp()} change ${collection}: ${ids.slice(0, 10).join(", ")}${ids.length > 10 ? ` (+${ids.length - 10})` : ""}`));
    client.on("conflict", ({ collection, result }) => out(`${stamp()} conflict${describeConflict(collection, result).trimStart().replace(/^/, " ")}`));
    client.on("quarantine", ({ entry }) => out(`${stamp()} quarantined ${entry.collection}/${entry.id}: ${entry.quarantine?.reason}`));
    client.on("config", ({ config }) => out(`${stamp()} config: policy version ${config.policyVersion}, every ${config.sync.intervalSeconds} s, realtime ${config.sync.realtime}`));
    client.on("error", ({ error }) => out(`${stamp()} error: ${error.message}`));
    client.on("status", ({ state }) => {
      if (state === "waiting") out(`${stamp()} synced; waiting`);
    });
    out(`Watching ${session.config.server}; Ctrl-C to stop.`);
    // The client's timers do not keep the process alive on their own (they are unref'd): this does, until a signal.
    const keepAlive = setInterval(() => undefined, 2 ** 30);
    let ended = false;
    let halted = false;
    client.start();
    await new Promise<void>((resolve) => {
      const stop = () => {
        ended = true;
        resolve();
      };
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
      // The client stops by itself when the hub refuses the key (the `error` event above says what to do).
      client.on("status", ({ state }) => {
        if (state === "stopped" && !ended) {
          halted = true;
          stop();
        }
      });
    });
    clearInterval(keepAlive);
    await session.close();
    out("stopped.");
    if (halted) process.exitCode = 1;
  });

program
  .command("get <collection> <id>")
  .description("print the local copy of a record as JSON")
  .action((collection: string, id: string) => {
    const k = key(collection, id);
    return withSession(globalConfig(), async ({ client }) => {
      const data = await client.get(k.collection, k.id);
      if (data === undefined) throw new ConcordError(`There is no local copy of ${k.collection}/${k.id}; run \`concord sync\` first, or check the collection and id.`);
      out(JSON.stringify(data, null, 2));
    });
  });

program
  .command("put <collection> <id> <json>")
  .description("create or replace a record locally (JSON object, or @file); sent at the next sync")
  .action(async (collection: string, id: string, json: string) => {
    const k = key(collection, id);
    const data = await readJsonArgument(json);
    return withSession(globalConfig(), async ({ client }) => {
      await client.put(k.collection, k.id, data);
      out(`Stored ${k.collection}/${k.id} locally; run \`concord sync\` to send it.`);
    });
  });

program
  .command("delete <collection> <id>")
  .description("delete a record locally; the deletion is sent at the next sync")
  .action((collection: string, id: string) => {
    const k = key(collection, id);
    return withSession(globalConfig(), async ({ client }) => {
      if ((await client.get(k.collection, k.id)) === undefined) {
        throw new ConcordError(`There is no local copy of ${k.collection}/${k.id} to delete; run \`concord sync\` first, or check the id.`);
      }
      await client.delete(k.collection, k.id);
      out(`Deleted ${k.collection}/${k.id} locally; run \`concord sync\` to send the deletion.`);
    });
  });

program
  .command("export <file>")
  .description("write an offline bundle of pending changes and checkpoints, to carry to the hub")
  .option("--collection <name...>", "only these collections")
  .option("--force", "overwrite the file")
  .action((file: string, options: { collection?: string[]; force?: boolean }) =>
    withSession(globalConfig(), async ({ client, config }) => {
      const collections = options.collection?.map((c) => valid(collectionSchema, c, `--collection "${c}"`));
      if (existsSync(file) && !options.force) throw new UsageError(`${file} exists already; choose another file or pass --force.`);
      const bundle = await exportBundle(client, collections ? { collections } : {});
      await writeFile(file, bundle.text);
      const total = Object.values(bundle.changes).reduce((a, b) => a + b, 0);
      out(`Wrote bundle ${bundle.bundleId} (${total} change(s), ${Object.keys(bundle.checkpoints).length} collection(s) to pull) to ${file}.`);
      out(`At the hub: curl -X POST -H "Authorization: Bearer <key>" --data-binary @${file} ${config.server}/api/v1/bundles > response.json`);
      out("Then here: concord import response.json");
    }),
  );

program
  .command("import <file>")
  .description("apply the hub's response bundle to the local copy")
  .action((file: string) =>
    withSession(globalConfig(), async ({ client }) => {
      let text: string;
      try {
        text = await readFile(file, "utf8");
      } catch {
        throw new UsageError(`Could not read ${file}; give the response bundle the hub returned for your export.`);
      }
      const result = await importBundle(client, text);
      out(`Imported the response to bundle ${result.bundleId} (hub policy version ${result.policyVersion}):`);
      out(reportTable(result.report));
      if (result.skipped.length > 0) out(`Pulled changes skipped for ${result.skipped.join(", ")}: this store synced online since the export.`);
    }),
  );

program
  .command("reconcile")
  .description("re-read the configuration and compare the local copy with the hub's manifest")
  .action(() =>
    withSession(globalConfig(), async ({ client }) => {
      const report = await client.reconcile();
      out("reconcile done:");
      out(table([
        ["pulled", report.pulled],
        ["removed", report.removed],
      ]));
    }),
  );

program
  .command("connect")
  .description("keep tables of this system's own database (PostgreSQL or SQLite) in sync with the hub, as a connector file says")
  .option("--once", "run one full cycle (push the table's changes, pull the hub's), print a summary and exit")
  .option("--status", "print pending and quarantined changes and rows that cannot be mapped (no network)")
  .option("--install", "install the triggers of capture: trigger on the configured tables (idempotent), then exit")
  .option("--uninstall", "remove those triggers (idempotent), then exit")
  .action(async (options: { once?: boolean; status?: boolean; install?: boolean; uninstall?: boolean }) => {
    // Loaded here: the other commands start without the connector's database drivers.
    const { openConnector, openDriver, readConnectConfig } = await import("../lib/connect/connector");
    const file = globalConfig();
    if (!file) throw new UsageError("concord connect needs --config FILE: the connector's YAML file (see README, \"Connect a business system\").");
    let config;
    try {
      config = await readConnectConfig(path.resolve(file));
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    if (options.install || options.uninstall) {
      const driver = await openDriver(config);
      try {
        await driver.setup();
        const tables = config.collections.map((c) => ({ collection: c.collection, schema: c.schema, table: c.table, idColumn: c.idColumn }));
        if (options.install) await driver.installCapture(tables);
        else await driver.uninstallCapture(tables);
      } finally {
        await driver.close();
      }
      out(`${options.install ? "Installed" : "Removed"} the capture triggers on ${config.collections.map((c) => (c.schema ? `${c.schema}.${c.table}` : c.table)).join(", ")}.`);
      if (options.install && config.capture !== "trigger") out("Set `capture: trigger` in the connector file to use them.");
      return;
    }
    const connector = await openConnector(config, { claim: !options.status });
    const { client, store } = connector;
    const stamp = () => new Date().toISOString().slice(11, 19);
    const printProblems = (problems: Problem[]) => {
      if (problems.length === 0) return;
      out("rows that cannot be mapped (left as they are; fix them in the table):");
      for (const p of problems) out(`  ${p.collection}/${p.id} ${p.message}`);
    };
    try {
      if (options.status) {
        const status = await client.status();
        out(`hub: ${config.hub}  database: ${config.database.engine}  tables: ${config.collections.map((c) => `${c.collection}=${c.schema ? `${c.schema}.` : ""}${c.table}`).join(", ")}`);
        out(table([
          ["pending changes", status.pendingChanges],
          ["quarantined", status.quarantined],
        ]));
        const quarantined = await client.quarantined();
        if (quarantined.length > 0) {
          out("quarantined changes (the hub refused them; fix the row or the policy):");
          for (const e of quarantined) out(`  ${e.collection}/${e.id}: ${e.quarantine?.status}: ${e.quarantine?.reason}`);
        }
        printProblems(store.problems());
        return;
      }
      if (options.once) {
        const { report, problems } = await connector.once();
        out("connect cycle done:");
        out(reportTable(report));
        printProblems(problems);
        if (report.quarantined > 0) out("Some changes were refused by the hub; `concord connect --config FILE --status` shows why.");
        return;
      }
      // Continuously: a cycle now, then at the hub's interval and when the hub tells of a change.
      client.on("change", ({ collection, ids }) => out(`${stamp()} ${collection}: ${ids.length} row(s) written from the hub`));
      client.on("conflict", ({ collection, result }) => out(`${stamp()} conflict${describeConflict(collection, result).trimStart().replace(/^/, " ")}`));
      client.on("quarantine", ({ entry }) => out(`${stamp()} quarantined ${entry.collection}/${entry.id}: ${entry.quarantine?.reason}`));
      client.on("error", ({ error }) => out(`${stamp()} error: ${error.message}`));
      const first = await connector.once();
      out(`${stamp()} connected: pushed ${first.report.pushed}, pulled ${first.report.pulled}; Ctrl-C to stop.`);
      printProblems(first.problems);
      const keepAlive = setInterval(() => undefined, 2 ** 30);
      client.start();
      // capture: trigger: a change in the table starts a cycle at once (PostgreSQL NOTIFY; SQLite: a look every 250 ms).
      const stopWatching = config.capture === "trigger" ? await connector.watchTables(() => client.syncSoon()) : null;
      await new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
        client.on("status", ({ state }) => {
          if (state === "stopped") resolve();
        });
      });
      await stopWatching?.();
      clearInterval(keepAlive);
      out("stopped.");
    } finally {
      await connector.close();
    }
  });

async function main(): Promise<number> {
  try {
    await program.parseAsync(process.argv);
    return 0;
  } catch (error) {
    if (error instanceof CommanderError) {
      // Commander printed the problem already; --help and --version end with code 0.
      return error.exitCode === 0 ? 0 : 2;
    }
    if (error instanceof UsageError) {
      process.stderr.write(`concord: ${error.message}\n`);
      return 2;
    }
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`concord: ${message}\n`);
    return 1;
  }
}

process.exitCode = await main();

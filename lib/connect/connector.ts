import { readFile } from "node:fs/promises";
import path from "node:path";
import { SyncClient, type Logger, type SyncReport } from "../client";
import type { FetchLike } from "../client/transport";
import { parseConnectConfig, type ConnectConfig } from "./config";
import { openPostgresDriver, openSqliteDriver, type SqlDriver } from "./driver";
import { TableStore, type Problem } from "./table-store";

/**
 * `concord connect`: a business system's own tables kept in sync with the
 * hub, no code. The SDK's engine (lib/client) runs on a TableStore over the
 * system's database; this module wires them from a configuration file.
 */
export interface Connector {
  config: ConnectConfig;
  client: SyncClient;
  store: TableStore;
  /** One full cycle: push local changes, pull the hub's. */
  once(): Promise<{ report: SyncReport; problems: Problem[] }>;
  /** capture: trigger: calls `onChange` when a trigger recorded a change (NOTIFY, or a look every 250 ms); resolves to a stop function. */
  watchTables(onChange: () => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

/** Reads the configuration file; throws ConnectConfigError (every problem with line and column) or a plain Error. */
export async function readConnectConfig(file: string, environment: Record<string, string | undefined> = process.env): Promise<ConnectConfig> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch {
    throw new Error(`Could not read the connector configuration ${file}; give its path with --config FILE.`);
  }
  return parseConnectConfig(text, file, environment);
}

export async function openDriver(config: ConnectConfig): Promise<SqlDriver> {
  if (config.database.engine === "postgres") return openPostgresDriver(config.database.url);
  return openSqliteDriver(path.resolve(path.dirname(config.file), config.database.path));
}

/**
 * Opens the connector on its database. `claim` (default true) takes the
 * database for this process (driver.claim); `--status` reads alongside a
 * running connector and does not.
 */
export async function openConnector(config: ConnectConfig, options: { fetch?: FetchLike; logger?: Logger; claim?: boolean } = {}): Promise<Connector> {
  const driver = await openDriver(config);
  let store: TableStore;
  try {
    if (options.claim !== false) await driver.claim();
    store = await TableStore.open(driver, config.collections, config.capture);
  } catch (error) {
    await driver.close();
    throw error;
  }
  const client = new SyncClient({
    baseUrl: config.hub,
    apiKey: config.key,
    store,
    fetch: options.fetch,
    logger: options.logger,
    // A trigger's change goes out at once (the SDK's default waits 200 ms to merge hub events).
    debounceMs: config.capture === "trigger" ? 5 : undefined,
    // Only the collections that have a table: the others would be pulled for nothing.
    collections: config.collections.map((c) => c.collection),
  });
  return {
    config,
    client,
    store,
    async once() {
      // A row's record form depends on the fields the system may read: know them before the first push.
      if ((await store.getMeta("config")) === undefined) await client.init();
      const report = await client.sync();
      return { report, problems: store.problems() };
    },
    async watchTables(onChange) {
      const unlisten = await driver.listen(onChange);
      if (unlisten) return unlisten;
      let last = "";
      const timer = setInterval(() => {
        void driver
          .all(`select coalesce(max(seq), 0) as seq from ${driver.own("captured")}`)
          .then(([row]) => {
            const seq = String(row?.seq ?? "0");
            if (seq !== last) {
              if (last !== "") onChange();
              last = seq;
            }
          })
          .catch(() => undefined);
      }, 250);
      timer.unref();
      return async () => clearInterval(timer);
    },
    async close() {
      await client.stop();
      await store.close();
    },
  };
}

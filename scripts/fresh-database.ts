import { randomBytes } from "node:crypto";
import postgres from "postgres";

/**
 * A new, empty database on the Postgres server of `serverUrl`, for one test
 * file, hub process or benchmark; `drop()` removes it. (e2e has its own plain
 * Node copy, e2e/support/fresh-database.mjs, which runs before anything is
 * compiled and also sweeps old runs' databases.)
 */
export async function createDatabase(serverUrl: string, prefix = "concord_hub_"): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}${process.pid}_${randomBytes(4).toString("hex")}`;
  const admin = postgres(serverUrl, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
  try {
    await admin.unsafe(`create database "${name}"`);
  } finally {
    await admin.end({ timeout: 5 });
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      const dropper = postgres(serverUrl, { max: 1, onnotice: () => undefined, connect_timeout: 10 });
      try {
        await dropper.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await dropper.end({ timeout: 5 });
      }
    },
  };
}

import { readFileSync } from "node:fs";
import { drizzle as drizzlePglite } from "drizzle-orm/pglite";
import { drizzle as drizzlePostgres } from "drizzle-orm/postgres-js";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database, DatabaseHandle } from "@/lib/db/client";
import * as schema from "@/lib/db/schema";
import { auditLog } from "@/lib/db/schema";
import { activatePolicy, getActivePolicy, listPolicyVersions, rollbackPolicy } from "@/lib/policy/store";
import { openTestDatabase } from "@/tests/helpers/db";

const example = readFileSync("policies/example.yaml", "utf8");
const other = `version: 1
systems: {erp: {}}
collections: {items: {}}
rules: [{who: erp, collection: items, read: all}]
`;

let handle: DatabaseHandle;
/** A second "instance": its own drizzle handle (and, on Postgres, its own connections), so its own cache. */
let second: Database;
let closeSecond: () => Promise<void> = async () => undefined;

beforeAll(async () => {
  handle = await openTestDatabase();
  if (handle.kind === "postgres") {
    const client = postgres(handle.url ?? "", { max: 2, onnotice: () => undefined });
    second = drizzlePostgres({ client, schema }) as unknown as Database;
    closeSecond = async () => client.end({ timeout: 5 });
  } else {
    if (!handle.pglite) throw new Error("expected a PGlite handle");
    second = drizzlePglite({ client: handle.pglite, schema }) as unknown as Database;
  }
});
afterAll(async () => {
  await closeSecond();
  await handle.close();
});

describe("policy versions", () => {
  it("numbers activations consecutively, keeps every one, and audits them", async () => {
    const first = await activatePolicy(handle.db, { yaml: example, actor: "alice", source: "api" });
    const next = await activatePolicy(handle.db, { yaml: other, actor: "bob", source: "console", comment: "erp only" });
    expect(next.version).toBe(first.version + 1);
    const versions = await listPolicyVersions(handle.db);
    expect(versions.map((v) => [v.version, v.activatedBy, v.source, v.comment])).toEqual([
      [next.version, "bob", "console", "erp only"],
      [first.version, "alice", "api", null],
    ]);
    const audit = await handle.db.select().from(auditLog);
    expect(audit.map((a) => [a.actor, a.action, a.target])).toEqual([
      ["alice", "policy.activate", `policy:${first.version}`],
      ["bob", "policy.activate", `policy:${next.version}`],
    ]);
  });

  it("concurrent activations get distinct consecutive versions", async () => {
    const before = (await getActivePolicy(handle.db)).version;
    const results = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        activatePolicy(i % 2 ? handle.db : second, { yaml: i % 2 ? example : other, actor: `op${i}`, source: "api" }),
      ),
    );
    expect(results.map((r) => r.version).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6].map((n) => before + n));
  });

  it("only-if-none does nothing once a policy exists", async () => {
    const result = await activatePolicy(handle.db, { yaml: example, actor: "concord", source: "default", onlyIfNone: true });
    expect(result).toBeNull();
  });
});

describe("the active policy cache", () => {
  it("reloads on another instance as soon as a newer version is activated", async () => {
    await activatePolicy(handle.db, { yaml: example, actor: "alice", source: "api" });
    const onSecond = await getActivePolicy(second);
    expect(onSecond.compiled.hasSystem("crm")).toBe(true);
    expect(await getActivePolicy(second)).toBe(onSecond); // cached: same compiled object

    const activated = await activatePolicy(handle.db, { yaml: other, actor: "alice", source: "api" });
    const reloaded = await getActivePolicy(second);
    expect(reloaded.version).toBe(activated.version);
    expect(reloaded.compiled.hasSystem("crm")).toBe(false);
    expect(reloaded.compiled.hasSystem("erp")).toBe(true);
  });

  it("rolls back by activating an old version's text as a new version", async () => {
    const versions = await listPolicyVersions(handle.db);
    const oldest = versions.at(-1);
    const newest = versions[0];
    if (!oldest || !newest) throw new Error("expected versions");
    const result = await rollbackPolicy(handle.db, { toVersion: oldest.version, actor: "carol" });
    expect(result.version).toBe(newest.version + 1);
    const active = await getActivePolicy(second);
    expect(active.version).toBe(result.version);
    expect(active.yaml).toBe(example);
    await expect(rollbackPolicy(handle.db, { toVersion: 9999, actor: "carol" })).rejects.toThrow(/no policy version 9999/);
  });
});

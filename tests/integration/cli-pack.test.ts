import { execFile, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHubProcess, type HubProcess } from "@/scripts/hub-process";

/**
 * The `concord` CLI as a published package: `npm pack` (its prepack bundles
 * cli/ into dist/concord.mjs) and the tarball unpacked into a folder whose
 * node_modules holds only the runtime dependencies the bundle imports — no
 * tsx, no TypeScript, no sources. Then --help, --version, a hub that cannot be
 * reached, and init/put/sync/get against a real hub (Postgres when
 * DATABASE_URL is set, else PGlite; ports 3500–3524).
 */

const ROOT = path.resolve(import.meta.dirname, "../..");
const run = promisify(execFile);
const PORT = 3500 + (process.pid % 25);

let dir: string;
let bin: string;
let hub: HubProcess | undefined;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), "concord-pack-"));
  const { stdout } = await run("npm", ["pack", "--json", "--pack-destination", dir], { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 });
  const packed = JSON.parse(stdout.slice(stdout.indexOf("["))) as { filename: string; files: { path: string }[] }[];
  const files = packed[0]?.files.map((f) => f.path).sort() ?? [];
  expect(files).toEqual(expect.arrayContaining(["bin/concord.js", "dist/concord.mjs", "package.json"]));
  expect(files.filter((f) => !/^(bin|dist)\/|^package\.json$|^README\.md$|^LICENSE/.test(f))).toEqual([]);
  await run("tar", ["-xzf", path.join(dir, packed[0]!.filename), "-C", dir]);

  // Only what the bundle imports, linked from the repository's node_modules (their own dependencies resolve there).
  const bundle = readFileSync(path.join(dir, "package", "dist", "concord.mjs"), "utf8");
  const imported = new Set([...bundle.matchAll(/^import .*? from "([^"]+)";$/gm)].map((m) => m[1] as string).filter((s) => !s.startsWith("node:")));
  const packages = new Set([...imported].map((s) => (s.startsWith("@") ? s.split("/").slice(0, 2).join("/") : (s.split("/")[0] as string))));
  expect(packages.has("tsx")).toBe(false);
  for (const name of packages) {
    const target = path.join(dir, "package", "node_modules", name);
    mkdirSync(path.dirname(target), { recursive: true });
    symlinkSync(path.join(ROOT, "node_modules", name), target, "dir");
  }
  bin = path.join(dir, "package", "bin", "concord.js");
  hub = await startHubProcess({ port: PORT, databasePrefix: "concord_clipack_" });
}, 600_000);

afterAll(async () => {
  await hub?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function concord(cwd: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    // A PATH without the repository's node_modules/.bin, and no loader options: nothing can bring tsx in.
    const env = { ...process.env, PATH: (process.env.PATH ?? "").split(path.delimiter).filter((p) => !p.includes("node_modules")).join(path.delimiter), NODE_OPTIONS: "", CONCORD_CONFIG: "" };
    const child = spawn(process.execPath, [bin, ...args], { cwd, env });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe("the packed concord CLI (dist/concord.mjs, no tsx)", () => {
  it("the package holds no sources, and tsx cannot be loaded from it", () => {
    expect(readdirSync(path.join(dir, "package")).sort()).toEqual(expect.arrayContaining(["bin", "dist", "node_modules", "package.json"]));
    expect(readdirSync(path.join(dir, "package"))).not.toContain("cli");
    expect(readdirSync(path.join(dir, "package", "node_modules"))).not.toContain("tsx");
  });

  it("--version and --help", async () => {
    const version = await concord(dir, "--version");
    expect(version).toMatchObject({ code: 0, stdout: "0.1.0\n" });
    const help = await concord(dir, "--help");
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Usage: concord/);
    expect(help.stdout).toMatch(/init/);
  });

  it("a hub that cannot be reached: exit 1 with what to check", async () => {
    const site = path.join(dir, "unreachable");
    mkdirSync(site);
    const r = await concord(site, "init", "--server", "http://127.0.0.1:9", "--key", `cnc_000000000000_${"A".repeat(43)}`);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/Could not reach the hub at http:\/\/127\.0\.0\.1:9 .*check the network and the baseUrl/);
  });

  it("init, put, sync and get against a real hub", async () => {
    const issued = await fetch(`${hub!.base}/api/admin/systems/crm/keys`, { method: "POST", headers: { authorization: `Bearer ${hub!.adminToken}` } });
    const { key } = (await issued.json()) as { key: string };
    const site = path.join(dir, "site");
    mkdirSync(site);
    const ok = async (...args: string[]) => {
      const r = await concord(site, ...args);
      if (r.code !== 0) throw new Error(`concord ${args.join(" ")} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    expect(await ok("init", "--server", hub!.base, "--key", key)).toMatch(/as system "crm" \(policy version 1\)/);
    const ann = { name: "Packed Ann", email: "ann@example.com", region: "north" };
    await ok("put", "customers", "pack-1", JSON.stringify(ann));
    expect(await ok("sync")).toMatch(/pushed\s+1/);
    expect(JSON.parse(await ok("get", "customers", "pack-1"))).toEqual(ann);
    const record = await fetch(`${hub!.base}/api/admin/records/customers/pack-1`, { headers: { authorization: `Bearer ${hub!.adminToken}` } });
    expect(await record.json()).toMatchObject({ version: 1, data: ann });
  });
});

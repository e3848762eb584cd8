import { spawn } from "node:child_process";
import path from "node:path";
import { describe, expect, it } from "vitest";

/**
 * `npm run demo` end to end: it starts its own hub (Postgres when
 * DATABASE_URL is set — a fresh database, dropped afterwards — else PGlite;
 * ports 3550–3599), runs three systems through the SDK and a policy change,
 * and stops the hub.
 */

const ROOT = path.resolve(import.meta.dirname, "../..");
const PORT = 3550 + (process.pid % 50);

function demo(...args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, "node_modules", "tsx", "dist", "cli.mjs"), "scripts/demo.ts", ...args], { cwd: ROOT, env: process.env });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("close", (code) => resolve({ code: code ?? -1, output }));
  });
}

describe("npm run demo", () => {
  it("runs end to end on a hub of its own and stops it", async () => {
    const { code, output } = await demo("--port", String(PORT), "--rounds", "2");
    if (code !== 0) throw new Error(`the demo exited ${code}:\n${output}`);
    const engine = process.env.DATABASE_URL ? /a fresh database on the Postgres server/ : /a fresh embedded database \(PGlite\)/;
    expect(output).toMatch(engine);
    expect(output).toMatch(/2 rounds of concurrent edits/);
    expect(output).toMatch(/activated version \d+; the web shop's reconcile removed \d+ order\(s\)/);
    expect(output).toMatch(/the hub's conflict log .*: \d+ conflict\(s\)/);
    expect(output).toMatch(/Done in .*; the hub was stopped and its data removed\./);
    // Stopped: nothing listens on its port any more.
    await expect(fetch(`http://127.0.0.1:${PORT}/api/health`)).rejects.toThrow();
  }, 600_000);

  it("refuses --postgres together with --server, saying why", async () => {
    const { code, output } = await demo("--postgres", "--server", "http://127.0.0.1:1", "--admin-token", "x".repeat(20));
    expect(code).toBe(1);
    expect(output).toMatch(/--postgres starts a hub of its own: leave out --server/);
  });
});

import { eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as policyRoute from "@/app/api/admin/policy/route";
import * as keysRoute from "@/app/api/admin/systems/[system]/keys/route";
import { operatorMay } from "@/lib/auth/console-rights";
import {
  changeOperatorRole,
  countOperators,
  createFirstAdmin,
  createOperator,
  disableOperator,
  operatorForSession,
  setupFirstAdmin,
  signIn,
  signInDelayMs,
  signOut,
  SIGN_IN_MAX_FAILURES,
} from "@/lib/auth/operators";
import { hashPassword, verifyPassword } from "@/lib/auth/passwords";
import { auditLog, operators, operatorSessions } from "@/lib/db/schema";
import { call, startTestHub, TEST_ADMIN_TOKEN, type TestHub } from "@/tests/helpers/hub";

let t: TestHub;
beforeAll(async () => {
  t = await startTestHub();
});
afterAll(async () => {
  await t.close();
});

describe("passwords", () => {
  it("are stored as salted scrypt hashes that verify only the right password", async () => {
    const a = await hashPassword("correct horse battery");
    const b = await hashPassword("correct horse battery");
    expect(a).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(a).not.toBe(b);
    expect(await verifyPassword("correct horse battery", a)).toBe(true);
    expect(await verifyPassword("correct horse batterx", a)).toBe(false);
    expect(await verifyPassword("anything", "not-a-hash")).toBe(false);
  });
});

describe("console rights (Casbin)", () => {
  it("lets admins read and write every area and viewers only read", async () => {
    for (const area of ["policy", "keys", "conflicts", "records", "operators"] as const) {
      expect(await operatorMay("admin", area, "write")).toBe(true);
      expect(await operatorMay("admin", area, "read")).toBe(true);
      expect(await operatorMay("viewer", area, "read")).toBe(true);
      expect(await operatorMay("viewer", area, "write")).toBe(false);
      expect(await operatorMay("root", area, "read")).toBe(false);
    }
  });
});

describe("the first admin", () => {
  it("needs the admin token on the setup page, and only one is ever created", async () => {
    await expect(setupFirstAdmin(t.hub.db, { adminToken: "wrong-token-wrong", username: "ann", password: "ann-password-1" }, TEST_ADMIN_TOKEN)).rejects.toThrow(
      /not the admin token/,
    );
    expect(await countOperators(t.hub.db)).toBe(0);
    const racers = await Promise.all(
      ["ann", "bob", "cid"].map((username) => createFirstAdmin(t.hub.db, { username, password: `${username}-password-1` }, "setup")),
    );
    expect(racers.filter((r) => r !== null)).toHaveLength(1);
    expect(await countOperators(t.hub.db)).toBe(1);
    await expect(setupFirstAdmin(t.hub.db, { adminToken: TEST_ADMIN_TOKEN, username: "dan", password: "dan-password-1" }, TEST_ADMIN_TOKEN)).rejects.toThrow(
      /already has operators/,
    );
  });
});

describe("sign-in and sessions", () => {
  it("signs in with the right password, audits it, and the session names the operator until sign-out", async () => {
    await createOperator(t.hub.db, { username: "erin", password: "erin-password-1", role: "viewer" }, "test");
    const result = await signIn(t.hub.db, { username: "Erin ", password: "erin-password-1" });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect((await operatorForSession(t.hub.db, result.token))?.username).toBe("erin");
    // Only the hash of the token is stored.
    const stored = await t.hub.db.select().from(operatorSessions);
    expect(stored.some((s) => s.tokenHash === result.token)).toBe(false);
    await signOut(t.hub.db, result.token);
    expect(await operatorForSession(t.hub.db, result.token)).toBeNull();
    const actions = (await t.hub.db.select().from(auditLog).where(eq(auditLog.target, "erin"))).map((r) => r.action);
    expect(actions).toEqual(expect.arrayContaining(["operator.create", "sign-in", "sign-out"]));
  });

  it("refuses wrong passwords with one message for unknown users and wrong passwords, slows down, then locks", async () => {
    await createOperator(t.hub.db, { username: "fred", password: "fred-password-1", role: "admin" }, "test");
    const unknown = await signIn(t.hub.db, { username: "nobody", password: "whatever-123" });
    const wrong = await signIn(t.hub.db, { username: "fred", password: "not-freds-password" });
    expect(unknown.ok || wrong.ok).toBe(false);
    if (unknown.ok || wrong.ok) return;
    expect(unknown.message).toBe(wrong.message);
    expect(signInDelayMs(0)).toBe(0);
    expect(signInDelayMs(3)).toBe(1000);
    expect(signInDelayMs(50)).toBe(8000);
    for (let i = 1; i < SIGN_IN_MAX_FAILURES; i++) await signIn(t.hub.db, { username: "fred", password: `guess-${i}-guess` });
    const locked = await signIn(t.hub.db, { username: "fred", password: "fred-password-1" });
    expect(locked.ok).toBe(false);
    if (!locked.ok) expect(locked.message).toMatch(/Too many failed sign-ins/);
  });

  it("ends a disabled operator's sessions and keeps at least one admin", async () => {
    await createOperator(t.hub.db, { username: "gina", password: "gina-password-1", role: "admin" }, "test");
    const s = await signIn(t.hub.db, { username: "gina", password: "gina-password-1" });
    await disableOperator(t.hub.db, "gina", "test");
    expect(s.ok && (await operatorForSession(t.hub.db, s.token))).toBeFalsy();
    const admins = await t.hub.db.select().from(operators).where(eq(operators.role, "admin"));
    // Demote every admin but one; the last refuses.
    const active = admins.filter((a) => a.disabledAt === null).map((a) => a.username);
    for (const name of active.slice(1)) await changeOperatorRole(t.hub.db, name, "viewer", "test");
    await expect(changeOperatorRole(t.hub.db, active[0]!, "viewer", "test")).rejects.toThrow(/last active admin/);
    await expect(disableOperator(t.hub.db, active[0]!, "test")).rejects.toThrow(/last active admin/);
    await changeOperatorRole(t.hub.db, "fred", "admin", "test");
  });

  it("rejects weak passwords and odd usernames with a sentence that says what to fix", async () => {
    await expect(createOperator(t.hub.db, { username: "hal", password: "short", role: "viewer" }, "t")).rejects.toThrow(/at least 10 characters/);
    await expect(createOperator(t.hub.db, { username: "Hal Smith!", password: "long-enough-1", role: "viewer" }, "t")).rejects.toThrow(/username/);
    await expect(createOperator(t.hub.db, { username: "hal", password: "long-enough-1", role: "root" }, "t")).rejects.toThrow(/admin" or "viewer/);
    await expect(createOperator(t.hub.db, { username: "erin", password: "long-enough-1", role: "viewer" }, "t")).rejects.toThrow(/already exists/);
  });
});

describe("admin routes with a console session", () => {
  async function sessionOf(username: string, password: string): Promise<string> {
    const r = await signIn(t.hub.db, { username, password });
    if (!r.ok) throw new Error(r.message);
    return `concord_session=${r.token}`;
  }

  it("let a viewer read, refuse a viewer's writes with 403, and let an admin write from the hub's own origin only", async () => {
    await createOperator(t.hub.db, { username: "ivy", password: "ivy-password-1", role: "viewer" }, "test");
    await createOperator(t.hub.db, { username: "jon", password: "jon-password-1", role: "admin" }, "test");
    const viewer = await sessionOf("ivy", "ivy-password-1");
    const admin = await sessionOf("jon", "jon-password-1");
    const origin = "http://localhost";

    expect((await call(policyRoute.GET, { token: null, headers: { cookie: viewer } })).status).toBe(200);
    const denied = await call(keysRoute.POST, { method: "POST", params: { system: "crm" }, token: null, headers: { cookie: viewer, origin } });
    expect(denied.status).toBe(403);
    expect(JSON.stringify(denied.body)).toContain("viewer role");

    const crossSite = await call(keysRoute.POST, { method: "POST", params: { system: "crm" }, token: null, headers: { cookie: admin, origin: "https://evil.example" } });
    expect(crossSite.status).toBe(403);
    const allowed = await call(keysRoute.POST, { method: "POST", params: { system: "crm" }, token: null, headers: { cookie: admin, origin } });
    expect(allowed.status).toBe(201);
    const audit = await t.hub.db.select().from(auditLog).where(eq(auditLog.action, "key.issue"));
    expect(audit.some((a) => a.actor === "jon")).toBe(true);

    expect((await call(policyRoute.GET, { token: null, headers: { cookie: "concord_session=forged" } })).status).toBe(401);
  });
});

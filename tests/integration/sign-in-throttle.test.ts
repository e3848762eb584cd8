import { and, eq } from "drizzle-orm";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as lockRoute from "@/app/api/admin/sign-in-locks/[username]/route";
import * as locksRoute from "@/app/api/admin/sign-in-locks/route";
import { clearSignInLock, createOperator, signIn, type SignInResult } from "@/lib/auth/operators";
import { SIGN_IN_LIMITS, SIGN_IN_WINDOW_MINUTES, signInLocks } from "@/lib/auth/sign-in-throttle";
import { auditLog, signInThrottle } from "@/lib/db/schema";
import { call, startTestHub, type TestHub } from "@/tests/helpers/hub";

let t: TestHub;
beforeAll(async () => {
  t = await startTestHub();
});
afterAll(async () => {
  await t.close();
});

const ATTACKER = "203.0.113.7";
const OFFICE = "198.51.100.20";

async function audited(action: string, target: string): Promise<number> {
  const rows = await t.hub.db.select().from(auditLog).where(and(eq(auditLog.action, action), eq(auditLog.target, target)));
  return rows.length;
}

function refused(results: SignInResult[]): string[] {
  return results.flatMap((r) => (r.ok ? [] : [r.message]));
}

describe("the sign-in throttle", () => {
  it("counts 30 concurrent wrong passwords one by one: exactly the budget is checked, the rest refused unchecked", async () => {
    await createOperator(t.hub.db, { username: "root-admin", password: "root-admin-password-1", role: "admin" }, "test");
    const results = await Promise.all(
      Array.from({ length: 30 }, (_, i) => signIn(t.hub.db, { username: "root-admin", password: `guess-${i}-guess`, address: ATTACKER })),
    );
    expect(results.every((r) => !r.ok)).toBe(true);
    const messages = refused(results);
    expect(messages.filter((m) => m.includes("not right"))).toHaveLength(SIGN_IN_LIMITS.pair);
    expect(messages.filter((m) => m.includes("Too many failed sign-ins"))).toHaveLength(30 - SIGN_IN_LIMITS.pair);
    // Only the attempts inside the budget reached the password check, and the lock is audited once.
    expect(await audited("sign-in.failed", "root-admin")).toBe(SIGN_IN_LIMITS.pair);
    expect(await audited("sign-in.locked", "root-admin")).toBe(1);
    const [pair] = await t.hub.db
      .select()
      .from(signInThrottle)
      .where(and(eq(signInThrottle.kind, "pair"), eq(signInThrottle.username, "root-admin")));
    expect(pair?.attempts).toBe(30);
    // The right password from the attacker's address is refused too, without saying whether it was right.
    const right = await signIn(t.hub.db, { username: "root-admin", password: "root-admin-password-1", address: ATTACKER });
    expect(right.ok).toBe(false);
    if (!right.ok) expect(right.message).toMatch(/from this address\. Wait 1[45] minutes, or ask an admin/);
  });

  it("does not lock the operator out from another address: refused attempts never reach the username's ceiling", async () => {
    const fromOffice = await signIn(t.hub.db, { username: "root-admin", password: "root-admin-password-1", address: OFFICE });
    expect(fromOffice.ok).toBe(true);
    const [user] = await t.hub.db
      .select()
      .from(signInThrottle)
      .where(and(eq(signInThrottle.kind, "user"), eq(signInThrottle.username, "root-admin")));
    // 10 wrong guesses counted; the success gave its own slot back.
    expect(user?.attempts).toBe(SIGN_IN_LIMITS.pair);
    expect(await signInLocks(t.hub.db)).toEqual([
      expect.objectContaining({ username: "root-admin", kind: "pair", address: ATTACKER, attempts: 31 }),
    ]);
  });

  it("counts concurrent attempts exactly on the per-address budget too (one address guessing many usernames)", async () => {
    const sprayer = "192.0.2.99";
    const results = await Promise.all(
      Array.from({ length: SIGN_IN_LIMITS.address + 10 }, (_, i) =>
        signIn(t.hub.db, { username: `spray-${i}`, password: "Winter2026!!", address: sprayer }),
      ),
    );
    const messages = refused(results);
    expect(messages.filter((m) => m.includes("not right"))).toHaveLength(SIGN_IN_LIMITS.address);
    expect(messages.filter((m) => m === `Too many failed sign-ins from this address. Wait 15 minutes before trying again.`)).toHaveLength(10);
    // Another address is not affected.
    const other = await signIn(t.hub.db, { username: "spray-0", password: "Winter2026!!", address: "192.0.2.100" });
    expect(!other.ok && other.message).toMatch(/not right/);
  });

  it("counts an IPv6 client by its /64, so rotating addresses inside it gains nothing", async () => {
    await createOperator(t.hub.db, { username: "v6-admin", password: "v6-admin-password-1", role: "admin" }, "test");
    for (let i = 0; i < SIGN_IN_LIMITS.pair; i++) {
      await signIn(t.hub.db, { username: "v6-admin", password: "wrong-wrong", address: `2001:db8:1:2::${(i + 1).toString(16)}` });
    }
    const rotated = await signIn(t.hub.db, { username: "v6-admin", password: "wrong-wrong", address: "2001:db8:1:2:ffff::1" });
    expect(!rotated.ok && rotated.message).toMatch(/Too many failed sign-ins for "v6-admin" from this address/);
    const elsewhere = await signIn(t.hub.db, { username: "v6-admin", password: "v6-admin-password-1", address: "2001:db8:1:3::1" });
    expect(elsewhere.ok).toBe(true);
  });

  it("stops guessing spread over many addresses at the username's ceiling, until an admin clears it", async () => {
    await createOperator(t.hub.db, { username: "popular", password: "popular-password-1", role: "viewer" }, "test");
    const addresses = Array.from({ length: SIGN_IN_LIMITS.user / SIGN_IN_LIMITS.pair }, (_, i) => `198.18.0.${i + 1}`);
    for (const address of addresses) {
      await Promise.all(
        Array.from({ length: SIGN_IN_LIMITS.pair }, (_, i) => signIn(t.hub.db, { username: "popular", password: `nope-${i}-nope`, address })),
      );
    }
    const fresh = await signIn(t.hub.db, { username: "popular", password: "popular-password-1", address: "198.18.1.1" });
    expect(fresh.ok).toBe(false);
    if (!fresh.ok) expect(fresh.message).toMatch(/from many addresses\. Wait \d+ minutes, or ask an admin to clear the lock/);
    expect(await audited("sign-in.failed", "popular")).toBe(SIGN_IN_LIMITS.user);

    // The admin token clears it through the admin API; the listing shows it first.
    const listed = await call(locksRoute.GET);
    expect(listed.status).toBe(200);
    expect(JSON.stringify(listed.body)).toContain('"username":"popular","kind":"user"');
    const cleared = await call(lockRoute.DELETE, { method: "DELETE", params: { username: "Popular" } });
    expect(cleared).toMatchObject({ status: 200, body: { username: "popular" } });
    expect((cleared.body as { cleared: number }).cleared).toBeGreaterThan(1);
    expect(await audited("sign-in.unlock", "popular")).toBe(1);
    const after = await signIn(t.hub.db, { username: "popular", password: "popular-password-1", address: "198.18.1.1" });
    expect(after.ok).toBe(true);
  });

  it("starts afresh after a successful sign-in and after the window has passed", async () => {
    await createOperator(t.hub.db, { username: "forgetful", password: "forgetful-password-1", role: "viewer" }, "test");
    const address = "100.64.0.5";
    for (let i = 0; i < SIGN_IN_LIMITS.pair - 1; i++) await signIn(t.hub.db, { username: "forgetful", password: "not-it-at-all", address });
    expect((await signIn(t.hub.db, { username: "forgetful", password: "forgetful-password-1", address })).ok).toBe(true);
    for (let i = 0; i < SIGN_IN_LIMITS.pair; i++) await signIn(t.hub.db, { username: "forgetful", password: "not-it-at-all", address });
    expect((await signIn(t.hub.db, { username: "forgetful", password: "forgetful-password-1", address })).ok).toBe(false);

    // Move the window into the past: the next attempt opens a new one.
    await t.hub.db
      .update(signInThrottle)
      .set({ windowStartedAt: new Date(Date.now() - (SIGN_IN_WINDOW_MINUTES + 1) * 60_000) })
      .where(eq(signInThrottle.username, "forgetful"));
    expect((await signIn(t.hub.db, { username: "forgetful", password: "forgetful-password-1", address })).ok).toBe(true);
  });

  it("lets an admin clear a lock from the console's library function, audited with the admin's name", async () => {
    for (let i = 0; i < SIGN_IN_LIMITS.pair + 1; i++) await signIn(t.hub.db, { username: "forgetful", password: "still-not-it", address: "100.64.0.6" });
    expect((await signInLocks(t.hub.db)).some((l) => l.username === "forgetful")).toBe(true);
    await clearSignInLock(t.hub.db, "forgetful", "root-admin");
    expect((await signInLocks(t.hub.db)).some((l) => l.username === "forgetful")).toBe(false);
    const [row] = await t.hub.db.select().from(auditLog).where(and(eq(auditLog.action, "sign-in.unlock"), eq(auditLog.target, "forgetful")));
    expect(row?.actor).toBe("root-admin");
  });

  it("takes a name no operator can have (U+0000, a lone surrogate, a control character) as one blank name: refused, never a crash", async () => {
    for (const username of ["\u0000admin", "a\ud800b", "root\u0007", "x".repeat(500)]) {
      const result = await signIn(t.hub.db, { username, password: "whatever-password-1", address: "192.0.2.99" });
      expect(result.ok, username).toBe(false);
    }
    const unlock = await call<{ username: string }>(lockRoute.DELETE, {
      method: "DELETE",
      path: "/api/admin/sign-in-locks/%00",
      params: { username: "\u0000" },
    });
    expect(unlock.status).toBe(400);
    await expect(clearSignInLock(t.hub.db, "\u0000", "root-admin")).rejects.toMatchObject({ code: "invalid_request" });
  });
});

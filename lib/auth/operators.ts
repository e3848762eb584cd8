import { and, asc, count, eq, gt, isNull, lt, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { auditLog, operators, operatorSessions, type OperatorRow } from "../db/schema";
import { ServiceError } from "../errors";
import { verifyAdminToken } from "./admin-token";
import { isOperatorRole, type OperatorRole } from "./console-rights";
import { dummyPasswordHash, hashPassword, passwordProblem, verifyPassword } from "./passwords";
import { digestsEqual, randomToken, sha256Hex } from "./secrets";
import { UNKNOWN_ADDRESS } from "../http/client-address";
import {
  clearSignInThrottle,
  releaseSignInAttempt,
  reserveSignInAttempt,
  SIGN_IN_LIMITS,
  SIGN_IN_WINDOW_MINUTES,
  type ThrottleKind,
} from "./sign-in-throttle";

/** Operators, their sessions, and the sign-in slow-down. Used by the console and the admin API. */

export interface Operator {
  id: number;
  username: string;
  role: OperatorRole;
  createdAt: Date;
  disabledAt: Date | null;
}

export const SESSION_COOKIE = "concord_session";
export const SESSION_HOURS = 12;
const USERNAME = /^[a-z0-9][a-z0-9._-]{1,62}$/;

/** Whether a text can be an operator's username at all (what sign-in and unlock accept). */
export function isUsername(text: string): boolean {
  return USERNAME.test(text);
}

function toOperator(row: OperatorRow): Operator {
  return {
    id: row.id,
    username: row.username,
    role: isOperatorRole(row.role) ? row.role : "viewer",
    createdAt: row.createdAt,
    disabledAt: row.disabledAt,
  };
}

function checkNewOperator(username: string, password: string, role: string): asserts role is OperatorRole {
  if (!USERNAME.test(username)) {
    throw new ServiceError(
      "invalid_request",
      "A username is 2 to 63 characters: lowercase letters, digits, dot, dash or underscore, starting with a letter or digit.",
    );
  }
  const problem = passwordProblem(password);
  if (problem) throw new ServiceError("invalid_request", problem);
  if (!isOperatorRole(role)) throw new ServiceError("invalid_request", `The role must be "admin" or "viewer", not "${role}".`);
}

export async function countOperators(db: Database): Promise<number> {
  const [row] = await db.select({ n: count() }).from(operators);
  return row?.n ?? 0;
}

export async function listOperators(db: Database): Promise<Operator[]> {
  const rows = await db.select().from(operators).orderBy(asc(operators.username));
  return rows.map(toOperator);
}

/** Creates an operator (by an admin, or the first admin at setup). Usernames are unique. */
export async function createOperator(
  db: Database,
  input: { username: string; password: string; role: string },
  actor: string,
): Promise<Operator> {
  const username = input.username.trim().toLowerCase();
  checkNewOperator(username, input.password, input.role);
  const passwordHash = await hashPassword(input.password);
  return db.transaction(async (tx) => {
    const [row] = await tx
      .insert(operators)
      .values({ username, passwordHash, role: input.role })
      .onConflictDoNothing()
      .returning();
    if (!row) throw new ServiceError("conflict", `An operator named "${username}" already exists; choose another username.`);
    await tx.insert(auditLog).values({ actor, action: "operator.create", target: username, details: { role: input.role } });
    return toOperator(row);
  });
}

/**
 * The first admin, once: only while no operator exists. Either from the
 * environment at start (CONCORD_ADMIN_USERNAME/CONCORD_ADMIN_PASSWORD) or from
 * the setup page, which also asks for the admin token so that whoever reaches
 * a fresh hub first cannot claim it. Concurrent attempts agree on one winner.
 */
export async function createFirstAdmin(
  db: Database,
  input: { username: string; password: string },
  actor: string,
): Promise<Operator | null> {
  const username = input.username.trim().toLowerCase();
  checkNewOperator(username, input.password, "admin");
  const passwordHash = await hashPassword(input.password);
  return db.transaction(async (tx) => {
    // Serialises first-admin creation across processes and instances.
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext('concord.first_admin'))`);
    const [existing] = await tx.select({ n: count() }).from(operators);
    if ((existing?.n ?? 0) > 0) return null;
    const [row] = await tx.insert(operators).values({ username, passwordHash, role: "admin" }).returning();
    await tx.insert(auditLog).values({ actor, action: "operator.create", target: username, details: { role: "admin", first: true } });
    return row ? toOperator(row) : null;
  });
}

/** The setup page's check: the admin token is required to create the first admin. */
export async function setupFirstAdmin(
  db: Database,
  input: { adminToken: string; username: string; password: string },
  envAdminToken: string | undefined,
): Promise<Operator> {
  if (!(await verifyAdminToken(db, envAdminToken, input.adminToken))) {
    throw new ServiceError(
      "unauthenticated",
      "That is not the admin token. Use ADMIN_TOKEN, or the token the hub printed at its first start.",
    );
  }
  const created = await createFirstAdmin(db, input, "setup");
  if (!created) throw new ServiceError("conflict", "The hub already has operators; sign in instead, or ask an admin for an account.");
  return created;
}

export async function changeOperatorRole(db: Database, username: string, role: string, actor: string): Promise<void> {
  if (!isOperatorRole(role)) throw new ServiceError("invalid_request", `The role must be "admin" or "viewer", not "${role}".`);
  await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext('concord.operators'))`);
    const [row] = await tx.select().from(operators).where(eq(operators.username, username));
    if (!row) throw new ServiceError("not_found", `There is no operator named "${username}".`);
    if (row.role === "admin" && role !== "admin") await keepOneAdmin(tx, row.id);
    await tx.update(operators).set({ role }).where(eq(operators.id, row.id));
    await tx.insert(auditLog).values({ actor, action: "operator.role", target: username, details: { from: row.role, to: role } });
  });
}

/** Disables an operator and ends their sessions. The last active admin cannot be disabled. */
export async function disableOperator(db: Database, username: string, actor: string): Promise<void> {
  await db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(hashtext('concord.operators'))`);
    const [row] = await tx.select().from(operators).where(eq(operators.username, username));
    if (!row) throw new ServiceError("not_found", `There is no operator named "${username}".`);
    if (row.disabledAt) return;
    if (row.role === "admin") await keepOneAdmin(tx, row.id);
    await tx.update(operators).set({ disabledAt: new Date() }).where(eq(operators.id, row.id));
    await tx.delete(operatorSessions).where(eq(operatorSessions.operatorId, row.id));
    await tx.insert(auditLog).values({ actor, action: "operator.disable", target: username });
  });
}

async function keepOneAdmin(tx: Pick<Database, "select">, leavingId: number): Promise<void> {
  const [row] = await tx
    .select({ n: count() })
    .from(operators)
    .where(and(eq(operators.role, "admin"), isNull(operators.disabledAt), sql`${operators.id} <> ${leavingId}`));
  if ((row?.n ?? 0) === 0) {
    throw new ServiceError("conflict", "This is the last active admin; make another operator admin first.");
  }
}

// ---------------------------------------------------------------------------
// Sign-in

/** Attempts for one username from one address within the window before sign-in is refused for a while. */
export const SIGN_IN_MAX_FAILURES = SIGN_IN_LIMITS.pair;
export { SIGN_IN_WINDOW_MINUTES };

/**
 * Delay before answering a sign-in, after `failures` recent failures for this
 * username: nothing for the first two, then doubling from 0.5 s to 8 s. The
 * scrypt hash itself already costs ~50-100 ms per attempt.
 */
export function signInDelayMs(failures: number): number {
  if (failures < 2) return 0;
  return Math.min(8000, 500 * 2 ** (failures - 2));
}

export type SignInResult =
  | { ok: true; operator: Operator; token: string; expiresAt: Date }
  | { ok: false; message: string; delayMs: number };

/**
 * Checks a username and password. Each attempt first takes a slot of the
 * sign-in throttle (lib/auth/sign-in-throttle.ts), atomically, so concurrent
 * guesses are counted one by one; a spent budget refuses without checking the
 * password. Failures are audited; after several the caller must wait
 * (`delayMs`) before answering. The message never says whether the username
 * exists.
 */
export async function signIn(
  db: Database,
  input: { username: string; password: string; address?: string },
): Promise<SignInResult> {
  // A name no operator can have is throttled and audited as one blank name: it cannot be anyone's,
  // and text such as U+0000 could not even be stored.
  const typed = input.username.trim().toLowerCase();
  const username = USERNAME.test(typed) ? typed : "";
  const address = input.address ?? UNKNOWN_ADDRESS;
  const reservation = await reserveSignInAttempt(db, username, address);
  if (!reservation.ok) {
    if (reservation.justLocked) {
      await db.insert(auditLog).values({
        actor: username || "(blank)",
        action: "sign-in.locked",
        target: username,
        details: { address, budget: reservation.kind, minutes: Math.ceil(reservation.retryAfterSeconds / 60) },
      });
    }
    return { ok: false, message: lockedMessage(username, reservation.kind, reservation.retryAfterSeconds), delayMs: signInDelayMs(reservation.attempt - 1) };
  }
  const [row] = username ? await db.select().from(operators).where(eq(operators.username, username)) : [];
  const valid = await verifyPassword(input.password, row?.passwordHash ?? (await dummyPasswordHash()));
  if (!row || !valid || row.disabledAt) {
    await db.insert(auditLog).values({
      actor: username || "(blank)",
      action: "sign-in.failed",
      target: username,
      details: { address, reason: !row ? "unknown user" : row.disabledAt ? "disabled" : "wrong password" },
    });
    return {
      ok: false,
      message: "The username or password is not right. Check both and try again.",
      delayMs: signInDelayMs(reservation.attempt),
    };
  }
  await releaseSignInAttempt(db, username, address);
  const token = randomToken(32);
  const expiresAt = new Date(Date.now() + SESSION_HOURS * 3600_000);
  await db.transaction(async (tx) => {
    await tx.insert(operatorSessions).values({ tokenHash: sha256Hex(token), operatorId: row.id, expiresAt });
    await tx.insert(auditLog).values({ actor: username, action: "sign-in", target: username, details: { address } });
    // Sessions that ran out are of no use to anyone.
    await tx.delete(operatorSessions).where(lt(operatorSessions.expiresAt, new Date()));
  });
  return { ok: true, operator: toOperator(row), token, expiresAt };
}

/**
 * Lifts every sign-in lock on a username (an admin's unlock, for an operator
 * who cannot wait for the window to pass). Audited; says how many budgets were
 * cleared (0: nothing was locked or counted).
 */
export async function clearSignInLock(db: Database, username: string, actor: string): Promise<{ cleared: number }> {
  const name = username.trim().toLowerCase();
  if (!USERNAME.test(name)) {
    throw new ServiceError("invalid_request", "Name the username whose sign-in lock to clear (2 to 63 lowercase letters, digits, dot, dash or underscore).");
  }
  const cleared = await clearSignInThrottle(db, name);
  await db.insert(auditLog).values({ actor, action: "sign-in.unlock", target: name, details: { cleared } });
  return { cleared };
}

function lockedMessage(username: string, budget: ThrottleKind, retryAfterSeconds: number): string {
  const minutes = Math.max(1, Math.ceil(retryAfterSeconds / 60));
  const wait = `Wait ${minutes} minute${minutes === 1 ? "" : "s"}`;
  const unlock = "or ask an admin to clear the lock on the Operators page";
  switch (budget) {
    case "pair":
      return `Too many failed sign-ins for "${username}" from this address. ${wait}, ${unlock}.`;
    case "user":
      return `Too many failed sign-ins for "${username}" from many addresses. ${wait}, ${unlock}.`;
    case "address":
      return `Too many failed sign-ins from this address. ${wait} before trying again.`;
  }
}

/** The operator a session cookie belongs to, or null (unknown, expired, disabled). */
export async function operatorForSession(db: Database, token: string | undefined | null): Promise<Operator | null> {
  if (!token || token.length > 128) return null;
  const hash = sha256Hex(token);
  const [row] = await db
    .select({ operator: operators, tokenHash: operatorSessions.tokenHash })
    .from(operatorSessions)
    .innerJoin(operators, eq(operators.id, operatorSessions.operatorId))
    .where(and(eq(operatorSessions.tokenHash, hash), gt(operatorSessions.expiresAt, new Date()), isNull(operators.disabledAt)));
  if (!row || !digestsEqual(row.tokenHash, hash)) return null;
  return toOperator(row.operator);
}

export async function signOut(db: Database, token: string | undefined | null): Promise<void> {
  if (!token) return;
  const [row] = await db
    .delete(operatorSessions)
    .where(eq(operatorSessions.tokenHash, sha256Hex(token)))
    .returning({ operatorId: operatorSessions.operatorId });
  if (row) {
    const [op] = await db.select({ username: operators.username }).from(operators).where(eq(operators.id, row.operatorId));
    if (op) await db.insert(auditLog).values({ actor: op.username, action: "sign-out", target: op.username });
  }
}

export async function changeOwnPassword(
  db: Database,
  operator: Operator,
  input: { current: string; next: string },
): Promise<void> {
  const [row] = await db.select().from(operators).where(eq(operators.id, operator.id));
  if (!row || !(await verifyPassword(input.current, row.passwordHash))) {
    throw new ServiceError("invalid_request", "The current password is not right.");
  }
  const problem = passwordProblem(input.next);
  if (problem) throw new ServiceError("invalid_request", problem);
  await db.transaction(async (tx) => {
    await tx.update(operators).set({ passwordHash: await hashPassword(input.next) }).where(eq(operators.id, row.id));
    await tx.insert(auditLog).values({ actor: row.username, action: "operator.password", target: row.username });
  });
}

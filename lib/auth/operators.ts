import { and, asc, count, eq, gt, isNull, lt, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { auditLog, operators, operatorSessions, type OperatorRow } from "../db/schema";
import { ServiceError } from "../errors";
import { verifyAdminToken } from "./admin-token";
import { isOperatorRole, type OperatorRole } from "./console-rights";
import { dummyPasswordHash, hashPassword, passwordProblem, verifyPassword } from "./passwords";
import { digestsEqual, randomToken, sha256Hex } from "./secrets";

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

/** Failed sign-ins per username within the window before sign-in is refused for a while. */
export const SIGN_IN_WINDOW_MINUTES = 15;
export const SIGN_IN_MAX_FAILURES = 10;

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

async function recentFailures(db: Database, username: string): Promise<number> {
  const [row] = await db
    .select({ n: count() })
    .from(auditLog)
    .where(
      and(
        eq(auditLog.action, "sign-in.failed"),
        eq(auditLog.target, username),
        gt(auditLog.at, sql`now() - make_interval(mins => ${SIGN_IN_WINDOW_MINUTES})`),
      ),
    );
  return row?.n ?? 0;
}

/**
 * Checks a username and password. Failures are audited; after several the
 * caller must wait (`delayMs`) before answering, and after SIGN_IN_MAX_FAILURES
 * in the window sign-in for that username is refused until the window passes.
 * The message never says whether the username exists.
 */
export async function signIn(
  db: Database,
  input: { username: string; password: string; address?: string },
): Promise<SignInResult> {
  const username = input.username.trim().toLowerCase().slice(0, 64);
  const failures = await recentFailures(db, username);
  if (failures >= SIGN_IN_MAX_FAILURES) {
    return {
      ok: false,
      message: `Too many failed sign-ins for "${username}". Wait ${SIGN_IN_WINDOW_MINUTES} minutes, or ask an admin to check the audit log.`,
      delayMs: signInDelayMs(failures),
    };
  }
  const [row] = username ? await db.select().from(operators).where(eq(operators.username, username)) : [];
  const valid = await verifyPassword(input.password, row?.passwordHash ?? (await dummyPasswordHash()));
  if (!row || !valid || row.disabledAt) {
    await db.insert(auditLog).values({
      actor: username || "(blank)",
      action: "sign-in.failed",
      target: username,
      details: { address: input.address ?? null, reason: !row ? "unknown user" : row.disabledAt ? "disabled" : "wrong password" },
    });
    return {
      ok: false,
      message: "The username or password is not right. Check both and try again.",
      delayMs: signInDelayMs(failures + 1),
    };
  }
  const token = randomToken(32);
  const expiresAt = new Date(Date.now() + SESSION_HOURS * 3600_000);
  await db.transaction(async (tx) => {
    await tx.insert(operatorSessions).values({ tokenHash: sha256Hex(token), operatorId: row.id, expiresAt });
    await tx.insert(auditLog).values({ actor: username, action: "sign-in", target: username, details: { address: input.address ?? null } });
    // Sessions that ran out are of no use to anyone.
    await tx.delete(operatorSessions).where(lt(operatorSessions.expiresAt, new Date()));
  });
  return { ok: true, operator: toOperator(row), token, expiresAt };
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

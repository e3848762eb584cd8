import { and, asc, eq, gt, lt, sql } from "drizzle-orm";
import type { Database } from "../db/client";
import { signInThrottle } from "../db/schema";
import { addressBucket, UNKNOWN_ADDRESS } from "../http/client-address";

/**
 * The sign-in throttle: every attempt takes a slot from three budgets before
 * any password is checked, each slot taken by one atomic
 * `INSERT … ON CONFLICT DO UPDATE … RETURNING` so N concurrent attempts take N
 * slots on every instance (the counts live in the shared database).
 *
 * - `address`: one client address (an IPv6 /64), every username — stops one
 *   machine from guessing across many accounts.
 * - `pair`: one username from one address — the lock an attacker runs into.
 * - `user`: one username from every address — a ceiling against guessing
 *   spread over many addresses.
 *
 * The budgets are taken in that order and the first one that is spent
 * refuses, so attempts refused for the pair never reach the username's
 * ceiling: one attacker address cannot lock the username out for the
 * operator's own address (that takes more than USER / PAIR addresses). A
 * window starts at its first attempt and lasts SIGN_IN_WINDOW_MINUTES; a
 * successful sign-in gives its slots back and clears its pair. There is no
 * hub-wide ceiling: it would let anyone lock every operator out at once.
 */

export const SIGN_IN_WINDOW_MINUTES = 15;
export const SIGN_IN_LIMITS = { address: 50, pair: 10, user: 100 } as const;
export type ThrottleKind = keyof typeof SIGN_IN_LIMITS;

export type Reservation =
  | { ok: true; /** This attempt's number for the username from this address in the window (1 = first). */ attempt: number }
  | {
      ok: false;
      kind: ThrottleKind;
      attempt: number;
      /** Seconds until the spent budget's window ends. */
      retryAfterSeconds: number;
      /** Whether this attempt was the first refused in the window (to audit the lock once). */
      justLocked: boolean;
    };

interface Budget {
  kind: ThrottleKind;
  username: string;
  address: string;
}

function budgets(username: string, address: string): Budget[] {
  const bucket = addressBucket(address);
  const list: Budget[] = [];
  // Callers of unknown address share one bucket; counting it per address would lock them all out together.
  if (bucket !== UNKNOWN_ADDRESS) list.push({ kind: "address", username: "", address: bucket });
  list.push({ kind: "pair", username, address: bucket });
  list.push({ kind: "user", username, address: "" });
  return list;
}

const windowEnded = sql`${signInThrottle.windowStartedAt} <= now() - make_interval(mins => ${SIGN_IN_WINDOW_MINUTES})`;

/** Takes one slot of a budget: starts a new window when the last one ran out. */
async function take(db: Database, budget: Budget): Promise<{ attempts: number; windowStartedAt: Date }> {
  const [row] = await db
    .insert(signInThrottle)
    .values({ ...budget, windowStartedAt: sql`now()`, attempts: 1 })
    .onConflictDoUpdate({
      target: [signInThrottle.username, signInThrottle.address, signInThrottle.kind],
      set: {
        attempts: sql`case when ${windowEnded} then 1 else ${signInThrottle.attempts} + 1 end`,
        windowStartedAt: sql`case when ${windowEnded} then now() else ${signInThrottle.windowStartedAt} end`,
      },
    })
    .returning({ attempts: signInThrottle.attempts, windowStartedAt: signInThrottle.windowStartedAt });
  if (!row) throw new Error("the sign-in throttle returned no row");
  return { attempts: row.attempts, windowStartedAt: new Date(row.windowStartedAt) };
}

/**
 * Takes a slot for one sign-in attempt, before the password is checked.
 * Refused when a budget is spent; then no later budget is touched.
 */
export async function reserveSignInAttempt(db: Database, username: string, address: string): Promise<Reservation> {
  let attempt = 0;
  for (const budget of budgets(username, address)) {
    const { attempts, windowStartedAt } = await take(db, budget);
    if (budget.kind === "pair") attempt = attempts;
    if (budget.kind === "address" && attempts === 1) await sweep(db);
    const limit = SIGN_IN_LIMITS[budget.kind];
    if (attempts > limit) {
      const endsAt = windowStartedAt.getTime() + SIGN_IN_WINDOW_MINUTES * 60_000;
      return {
        ok: false,
        kind: budget.kind,
        attempt,
        retryAfterSeconds: Math.max(1, Math.ceil((endsAt - Date.now()) / 1000)),
        justLocked: attempts === limit + 1,
      };
    }
  }
  return { ok: true, attempt };
}

/** After a successful sign-in: the pair starts afresh and the other budgets get their slot back. */
export async function releaseSignInAttempt(db: Database, username: string, address: string): Promise<void> {
  for (const budget of budgets(username, address)) {
    const where = and(
      eq(signInThrottle.username, budget.username),
      eq(signInThrottle.address, budget.address),
      eq(signInThrottle.kind, budget.kind),
    );
    if (budget.kind === "pair") await db.delete(signInThrottle).where(where);
    else await db.update(signInThrottle).set({ attempts: sql`greatest(${signInThrottle.attempts} - 1, 0)` }).where(where);
  }
}

/** Windows that ran out hold no information; an attacker's many addresses should not pile up rows. */
async function sweep(db: Database): Promise<void> {
  await db.delete(signInThrottle).where(lt(signInThrottle.windowStartedAt, sql`now() - make_interval(mins => ${SIGN_IN_WINDOW_MINUTES})`));
}

export interface SignInLock {
  username: string;
  /** `pair`: from one address (named); `user`: from every address. */
  kind: "pair" | "user";
  address: string | null;
  attempts: number;
  until: Date;
}

/** Usernames refused right now, for the operators page. */
export async function signInLocks(db: Database): Promise<SignInLock[]> {
  const rows = await db
    .select()
    .from(signInThrottle)
    .where(
      and(
        gt(signInThrottle.windowStartedAt, sql`now() - make_interval(mins => ${SIGN_IN_WINDOW_MINUTES})`),
        sql`${signInThrottle.kind} in ('pair', 'user')`,
        sql`(${signInThrottle.kind} = 'pair' and ${signInThrottle.attempts} > ${SIGN_IN_LIMITS.pair}) or (${signInThrottle.kind} = 'user' and ${signInThrottle.attempts} > ${SIGN_IN_LIMITS.user})`,
      ),
    )
    .orderBy(asc(signInThrottle.username), asc(signInThrottle.address));
  return rows.map((row) => ({
    username: row.username,
    kind: row.kind === "user" ? "user" : "pair",
    address: row.kind === "pair" ? row.address : null,
    attempts: row.attempts,
    until: new Date(new Date(row.windowStartedAt).getTime() + SIGN_IN_WINDOW_MINUTES * 60_000),
  }));
}

/** Clears every budget of a username (an admin's unlock). Returns how many were cleared. */
export async function clearSignInThrottle(db: Database, username: string): Promise<number> {
  const rows = await db
    .delete(signInThrottle)
    .where(eq(signInThrottle.username, username))
    .returning({ kind: signInThrottle.kind });
  return rows.length;
}

import type { JsonObject } from "./protocol";
import type { FallbackStrategy, Strategy } from "../policy/document";
import { threeWayMerge } from "./merge";

/**
 * A conflict (method.md, claim 4, last case): the client's change was based on
 * an older version than the server's. Both sides are whole records as the
 * server stores them; `null` means deleted (or, for the base, no base).
 */
export interface ConflictCase {
  base: JsonObject | null;
  server: JsonObject | null;
  client: JsonObject | null;
  clientSystem: string;
  serverSystem: string;
  clientPriority: number;
  /** Null when an operator wrote the server's copy: an operator's decision is not overridden by priority. */
  serverPriority: number | null;
  clientModifiedAt: Date;
  serverModifiedAt: Date;
  fallback: FallbackStrategy;
}

export type Settlement =
  /** Keep the server's copy; the client's change goes to the conflict log. */
  | { winner: "server"; details: JsonObject }
  /** The client's change is applied over the server's copy. */
  | { winner: "client"; details: JsonObject }
  /** A combination of both sides becomes the new version. */
  | { winner: "merged"; data: JsonObject; details: JsonObject }
  /** Held for an operator; the server's copy stays. */
  | { winner: "pending"; details: JsonObject };

type StrategyFn = (c: ConflictCase) => Settlement;

const serverWins: StrategyFn = () => ({ winner: "server", details: {} });
const clientWins: StrategyFn = () => ({ winner: "client", details: {} });
const manual: StrategyFn = () => ({ winner: "pending", details: {} });

/**
 * Later modification wins. The client's `modifiedAt` is capped at the time the
 * server received the change (see effectiveModifiedAt), so a fast clock cannot
 * win every conflict. A tie keeps the server's copy: it is deterministic and
 * writes nothing.
 */
const lastWriterWins: StrategyFn = (c) => {
  const details = { clientModifiedAt: c.clientModifiedAt.toISOString(), serverModifiedAt: c.serverModifiedAt.toISOString() };
  return c.clientModifiedAt.getTime() > c.serverModifiedAt.getTime()
    ? { winner: "client", details }
    : { winner: "server", details };
};

/** The higher system priority wins; a tie, or an operator's copy, keeps the server's copy. */
const priority: StrategyFn = (c) => {
  const details = { clientPriority: c.clientPriority, serverPriority: c.serverPriority };
  return c.serverPriority !== null && c.clientPriority > c.serverPriority
    ? { winner: "client", details }
    : { winner: "server", details };
};

/**
 * Three-way merge against the base. Disjoint changes combine; colliding fields
 * (and delete-versus-update, which has no fields to combine) go to the
 * fallback. With a `manual` fallback the whole change waits for an operator,
 * since half of a change cannot be applied and half held.
 */
const fieldMerge: StrategyFn = (c) => {
  const fallback = STRATEGIES[c.fallback];
  if (c.server === null || c.client === null) {
    const settled = fallback(c);
    const details = { ...settled.details, fallback: c.fallback, reason: "delete-versus-update" };
    return settled.winner === "merged" ? { ...settled, details } : { winner: settled.winner, details };
  }
  const trial = threeWayMerge(c.base ?? {}, c.server, c.client, "server");
  if (trial.collisions.length === 0) {
    return { winner: "merged", data: trial.merged, details: { collisions: [] } };
  }
  const decided = fallback(c);
  const details = { ...decided.details, fallback: c.fallback, collisions: trial.collisions };
  if (decided.winner === "pending") return { winner: "pending", details };
  const prefer = decided.winner === "client" ? "client" : "server";
  const { merged } = prefer === "server" ? trial : threeWayMerge(c.base ?? {}, c.server, c.client, "client");
  return { winner: "merged", data: merged, details: { ...details, collisionsWonBy: prefer } };
};

/** The strategies of policy.md, by name: each a small pure function. */
export const STRATEGIES: Record<Strategy, StrategyFn> = {
  "server-wins": serverWins,
  "client-wins": clientWins,
  "last-writer-wins": lastWriterWins,
  priority,
  "field-merge": fieldMerge,
  manual,
};

/** A change's modification time for last-writer-wins: its `modifiedAt`, never later than its arrival. */
export function effectiveModifiedAt(modifiedAt: string | undefined, receivedAt: Date): Date {
  if (!modifiedAt) return receivedAt;
  const claimed = new Date(modifiedAt);
  return claimed.getTime() > receivedAt.getTime() ? receivedAt : claimed;
}

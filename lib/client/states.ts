/**
 * The client's states and the transitions between them, in one table the
 * compiler checks: adding a state without saying where it may go (or naming a
 * state that does not exist) is a type error.
 *
 * - `idle`: created, not started; `sync()` may still be called by hand.
 * - `syncing`: a sync (push, pull, maybe reconcile) is running.
 * - `waiting`: started; waiting for the interval, a `change` event or a call.
 * - `backoff`: started; the last sync or the event stream failed, a retry is scheduled.
 * - `stopped`: `stop()` was called; nothing runs until `start()` or `sync()`.
 */
export const CLIENT_STATES = ["idle", "syncing", "waiting", "backoff", "stopped"] as const;
export type ClientState = (typeof CLIENT_STATES)[number];

export const TRANSITIONS = {
  idle: ["syncing", "waiting", "stopped"],
  syncing: ["idle", "waiting", "backoff", "stopped"],
  waiting: ["syncing", "backoff", "stopped"],
  backoff: ["syncing", "waiting", "stopped"],
  stopped: ["syncing", "waiting", "idle"],
} as const satisfies Record<ClientState, readonly ClientState[]>;

export function canTransition(from: ClientState, to: ClientState): boolean {
  return from === to || (TRANSITIONS[from] as readonly ClientState[]).includes(to);
}

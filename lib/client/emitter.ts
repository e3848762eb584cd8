import type { ConfigResponse, PushResult } from "../sync/protocol";
import type { ClientState } from "./states";
import type { OutboxEntry } from "./store";

/** What the client tells the host program. */
export interface ClientEvents {
  /** Remote changes applied to the local copy (pulled, or adopted from a push result). */
  change: { collection: string; ids: string[] };
  /** A push met a conflict; `result.status` is `merged`, `rejected`, `pending` (or `applied` when the change won). */
  conflict: { collection: string; result: PushResult };
  /** A change the hub answered `forbidden` or `invalid`: kept aside, see quarantined(). */
  quarantine: { entry: OutboxEntry };
  /** A new configuration was read (policy version changed, or init()). */
  config: { config: ConfigResponse };
  /** A background sync or the event stream failed; the client retries with backoff. */
  error: { error: Error };
  /** The client's state changed. */
  status: { state: ClientState; previous: ClientState };
}

export type ClientEventName = keyof ClientEvents;
export type Handler<E extends ClientEventName> = (payload: ClientEvents[E]) => void;

/** A typed emitter; a throwing handler is reported to `onHandlerError`, never to the sync that emitted. */
export class Emitter {
  private readonly handlers: { [E in ClientEventName]: Set<Handler<E>> } = {
    change: new Set(),
    conflict: new Set(),
    quarantine: new Set(),
    config: new Set(),
    error: new Set(),
    status: new Set(),
  };

  constructor(private readonly onHandlerError: (error: unknown) => void) {}

  on<E extends ClientEventName>(event: E, handler: Handler<E>): () => void {
    const set = this.handlers[event] as Set<Handler<E>>;
    set.add(handler);
    return () => set.delete(handler);
  }

  emit<E extends ClientEventName>(event: E, payload: ClientEvents[E]): void {
    for (const handler of this.handlers[event] as Set<Handler<E>>) {
      try {
        handler(payload);
      } catch (error) {
        this.onHandlerError(error);
      }
    }
  }
}

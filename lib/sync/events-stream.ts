import { z } from "zod";
import type { SyncContext } from "./context";
import type { SyncEvent } from "./events";
import type { EventFeed, EventSubscriber } from "./events-bus";
import { formatComment, formatEvent, formatRetry } from "./events-sse";

/** Headers of GET /api/v1/events: no caching, no transformation, no proxy buffering. */
export const EVENT_STREAM_HEADERS = {
  "content-type": "text/event-stream; charset=utf-8",
  "cache-control": "no-cache, no-transform",
  "x-accel-buffering": "no",
  connection: "keep-alive",
} as const;

/** How long an EventSource waits before reconnecting after the stream drops. */
export const RECONNECT_MS = 3000;
/** protocol.md promises a comment at least every 25 s. */
export const MAX_PING_MS = 25_000;
export const DEFAULT_PING_MS = 20_000;
/**
 * Chunks the stream holds for a client that is not reading (Next.js stops
 * pulling when the socket's buffer is full). Beyond it, events wait and are
 * coalesced per collection: a change event is only a hint to pull, so the
 * latest one per collection says everything the dropped ones said. Events
 * delivered in the same tick are coalesced the same way and leave as one
 * chunk.
 */
export const STREAM_QUEUE_BLOCKS = 16;
/** Coalesced events kept per client: at most one per collection (and one config), and never more than this. */
const MAX_PENDING_COLLECTIONS = 256;
/** The pending key of the config event (no collection name can be empty). */
const CONFIG_KEY = "";

const pingMsSchema = z
  .string()
  .regex(/^[1-9][0-9]{0,5}$/, "must be a whole number of milliseconds")
  .transform(Number)
  .refine((ms) => ms <= MAX_PING_MS, `must be at most ${MAX_PING_MS} (protocol.md: a comment at least every 25 s)`);

/** CONCORD_SSE_PING_MS, or 20 s. */
export function pingIntervalFromEnv(source: Record<string, string | undefined> = process.env): number {
  const raw = source.CONCORD_SSE_PING_MS?.trim();
  if (!raw) return DEFAULT_PING_MS;
  const parsed = pingMsSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`CONCORD_SSE_PING_MS ${parsed.error.issues[0]?.message ?? "is invalid"} (got "${raw}").`);
  }
  return parsed.data;
}

export interface OpenEventStreamInput {
  ctx: SyncContext;
  /** The process's bus (getEventBus(handle)), or any feed in tests. */
  bus: EventFeed;
  /** The request's signal: the stream ends and unsubscribes when the client goes away. */
  signal?: AbortSignal;
  /** Interval of `: ping` comments; default CONCORD_SSE_PING_MS or 20 s. */
  pingMs?: number;
}

/**
 * GET /api/v1/events for the calling system: a text/event-stream of `config`
 * and `change` events and `: ping` comments. Resolves once the bus is
 * listening, so a client that connects and then pulls misses no change made
 * after its pull. The stream ends when the client disconnects (the signal
 * aborts or the body is cancelled), freeing its subscription and timer.
 */
export async function openEventStream(input: OpenEventStreamInput): Promise<ReadableStream<Uint8Array>> {
  const pingMs = input.pingMs ?? pingIntervalFromEnv();
  if (!Number.isSafeInteger(pingMs) || pingMs < 1 || pingMs > MAX_PING_MS) {
    throw new RangeError(`pingMs must be a whole number from 1 to ${MAX_PING_MS} (got ${pingMs}).`);
  }
  await input.bus.start();
  return new EventStream(input.ctx.system, input.ctx.keyPrefix, input.bus, pingMs, input.signal).readable;
}

const encoder = new TextEncoder();

/** One client's stream: the bus delivers to it, it writes SSE blocks as the client reads. */
class EventStream implements EventSubscriber {
  readonly readable: ReadableStream<Uint8Array>;
  private controller: ReadableStreamDefaultController<Uint8Array> | null = null;
  private closed = false;
  /**
   * Events waiting to be written, one per key: the latest policy version
   * (key CONFIG_KEY) and the latest checkpoint per collection, in the order
   * of those latest events. An event is a hint to pull or to reload the
   * configuration, so the latest one of each kind says everything earlier
   * ones said.
   */
  private readonly pending = new Map<string, SyncEvent>();
  /** Whether a flush is already scheduled for the end of this tick. */
  private flushScheduled = false;
  private readonly timer: ReturnType<typeof setInterval>;
  // A bus that is stopping closes a new subscriber inside subscribe(), before this is assigned.
  private unsubscribe: () => void = () => undefined;
  private readonly onAbort = () => this.close();

  constructor(
    readonly system: string,
    readonly keyPrefix: string | undefined,
    bus: EventFeed,
    pingMs: number,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.readable = new ReadableStream<Uint8Array>(
      {
        start: (controller) => {
          this.controller = controller;
        },
        pull: () => this.flush(),
        cancel: () => {
          this.dispose();
        },
      },
      new CountQueuingStrategy({ highWaterMark: STREAM_QUEUE_BLOCKS }),
    );
    this.timer = setInterval(() => {
      // A client with unread blocks already has traffic waiting; a ping would only add to it.
      if (this.hasRoom()) this.write(formatComment("ping"));
    }, pingMs);
    // An idle stream must not keep the process (or a test run) alive.
    this.timer.unref();
    // Sent at once so the client (and any proxy) sees the stream is live.
    this.write(formatComment("connected") + formatRetry(RECONNECT_MS));
    this.unsubscribe = bus.subscribe(this);
    if (signal?.aborted) this.close();
    else signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  /**
   * Queues an event and writes it at the end of the current tick: the bus
   * tells a batch of changes in one go, and they leave as one chunk (one
   * write to the socket per client and batch, not one per event).
   */
  deliver(event: SyncEvent): void {
    if (this.closed) return;
    const key = event.type === "config" ? CONFIG_KEY : event.collection;
    const previous = this.pending.get(key);
    if (previous || this.pending.size < MAX_PENDING_COLLECTIONS) {
      // Re-inserted so that events leave in the order of the latest ones.
      this.pending.delete(key);
      this.pending.set(key, previous?.type === "config" && event.type === "config" && previous.policyVersion > event.policyVersion ? previous : event);
    }
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  /** Ends the stream from the server side; the client reads what is queued, then the end. */
  close(): void {
    // Events of this tick (e.g. the config event before a removed system's stream ends) still go out.
    if (!this.closed) this.flush(true);
    if (!this.dispose()) return;
    try {
      this.controller?.close();
    } catch {
      // The client cancelled the body first: nothing left to close.
    }
  }

  /** Frees the subscription and the timer; false when already done. */
  private dispose(): boolean {
    if (this.closed) return false;
    this.closed = true;
    clearInterval(this.timer);
    this.unsubscribe();
    this.signal?.removeEventListener("abort", this.onAbort);
    this.pending.clear();
    return true;
  }

  private hasRoom(): boolean {
    return !this.closed && (this.controller?.desiredSize ?? 0) > 0;
  }

  /** Writes every waiting event, as one chunk, when the client has room for it (or the stream is ending). */
  private flush(ending = false): void {
    if (this.pending.size === 0 || !(ending || this.hasRoom())) return;
    let blocks = "";
    for (const event of this.pending.values()) {
      blocks +=
        event.type === "config"
          ? formatEvent("config", { policyVersion: event.policyVersion })
          : formatEvent("change", { collection: event.collection, checkpoint: event.checkpoint });
    }
    this.pending.clear();
    this.write(blocks);
  }

  private write(block: string): void {
    if (this.closed || !this.controller) return;
    try {
      this.controller.enqueue(encoder.encode(block));
    } catch {
      // The stream was cancelled or errored under us: treat it as a disconnect.
      this.dispose();
    }
  }
}

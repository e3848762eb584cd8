import { describe, expect, it } from "vitest";
import type { ActivePolicy } from "@/lib/policy/store";
import type { Database } from "@/lib/db/client";
import type { SyncEvent } from "@/lib/sync/events";
import type { EventFeed, EventSubscriber } from "@/lib/sync/events-bus";
import { formatComment, formatEvent, formatRetry } from "@/lib/sync/events-sse";
import { DEFAULT_PING_MS, openEventStream, pingIntervalFromEnv, STREAM_QUEUE_BLOCKS } from "@/lib/sync/events-stream";

describe("formatEvent", () => {
  it("writes the event name, one data line of JSON and a blank line", () => {
    expect(formatEvent("change", { collection: "customers", checkpoint: "s42" })).toBe(
      'event: change\ndata: {"collection":"customers","checkpoint":"s42"}\n\n',
    );
    expect(formatEvent("config", { policyVersion: 7 })).toBe('event: config\ndata: {"policyVersion":7}\n\n');
  });

  it("keeps line breaks inside the data escaped, so the data stays one field", () => {
    const block = formatEvent("note", { text: "a\nb\r\nc\rd" });
    expect(block.split("\n")).toEqual(["event: note", 'data: {"text":"a\\nb\\r\\nc\\rd"}', "", ""]);
    expect(block).not.toMatch(/\r/);
  });

  it.each(["", "a\nb", "a\rb", "change\r\ndata: x"])("refuses the event name %j", (name) => {
    expect(() => formatEvent(name, {})).toThrow(RangeError);
  });
});

describe("formatComment and formatRetry", () => {
  it("prefixes every line of a comment with a colon", () => {
    expect(formatComment("ping")).toBe(": ping\n\n");
    expect(formatComment("two\nlines\r\nhere")).toBe(": two\n: lines\n: here\n\n");
  });

  it("writes a reconnection time in milliseconds", () => {
    expect(formatRetry(3000)).toBe("retry: 3000\n\n");
    expect(() => formatRetry(-1)).toThrow(RangeError);
    expect(() => formatRetry(1.5)).toThrow(RangeError);
  });
});

describe("pingIntervalFromEnv", () => {
  it("defaults to 20 s and accepts up to the 25 s the protocol promises", () => {
    expect(pingIntervalFromEnv({})).toBe(DEFAULT_PING_MS);
    expect(pingIntervalFromEnv({ CONCORD_SSE_PING_MS: " 50 " })).toBe(50);
    expect(pingIntervalFromEnv({ CONCORD_SSE_PING_MS: "25000" })).toBe(25_000);
  });

  it.each(["0", "-5", "1.5", "abc", "25001"])("refuses %j naming the variable", (value) => {
    expect(() => pingIntervalFromEnv({ CONCORD_SSE_PING_MS: value })).toThrow(/CONCORD_SSE_PING_MS/);
  });
});

// ---------------------------------------------------------------------------
// One client's stream over a fake feed: no database needed

class FakeFeed implements EventFeed {
  readonly subscribers = new Set<EventSubscriber>();
  async start(): Promise<void> {}
  subscribe(subscriber: EventSubscriber): () => void {
    this.subscribers.add(subscriber);
    return () => this.subscribers.delete(subscriber);
  }
  send(event: SyncEvent): void {
    for (const s of this.subscribers) s.deliver(event);
  }
}

const ctx = { db: {} as Database, system: "crm", policy: {} as ActivePolicy };
const decoder = new TextDecoder();

async function readAll(stream: ReadableStream<Uint8Array>): Promise<string> {
  let text = "";
  for await (const chunk of stream) text += decoder.decode(chunk, { stream: true });
  return text;
}

describe("openEventStream", () => {
  it("starts with a comment and a retry time, then writes delivered events", async () => {
    const feed = new FakeFeed();
    const controller = new AbortController();
    const stream = await openEventStream({ ctx, bus: feed, signal: controller.signal, pingMs: 25_000 });
    feed.send({ type: "change", collection: "customers", checkpoint: "s3" });
    feed.send({ type: "config", policyVersion: 2 });
    controller.abort();
    expect(await readAll(stream)).toBe(
      ': connected\n\nretry: 3000\n\nevent: change\ndata: {"collection":"customers","checkpoint":"s3"}\n\nevent: config\ndata: {"policyVersion":2}\n\n',
    );
    expect(feed.subscribers.size).toBe(0);
  });

  it("writes the events of one tick as one chunk, the latest per collection, in the order of the latest", async () => {
    const feed = new FakeFeed();
    const controller = new AbortController();
    const stream = await openEventStream({ ctx, bus: feed, signal: controller.signal, pingMs: 25_000 });
    const reader = stream.getReader();
    expect(decoder.decode((await reader.read()).value)).toBe(": connected\n\nretry: 3000\n\n");
    // A batch of the bus: all delivered in one tick.
    feed.send({ type: "change", collection: "customers", checkpoint: "s1" });
    feed.send({ type: "change", collection: "orders", checkpoint: "s2" });
    feed.send({ type: "config", policyVersion: 3 });
    feed.send({ type: "change", collection: "customers", checkpoint: "s4" });
    expect(decoder.decode((await reader.read()).value)).toBe(
      'event: change\ndata: {"collection":"orders","checkpoint":"s2"}\n\n' +
        'event: config\ndata: {"policyVersion":3}\n\n' +
        'event: change\ndata: {"collection":"customers","checkpoint":"s4"}\n\n',
    );
    // A later config event never announces an older policy version than one still waiting.
    feed.send({ type: "config", policyVersion: 6 });
    feed.send({ type: "config", policyVersion: 5 });
    expect(decoder.decode((await reader.read()).value)).toBe('event: config\ndata: {"policyVersion":6}\n\n');
    controller.abort();
  });

  it("coalesces events per collection once an unread client's queue is full", async () => {
    const feed = new FakeFeed();
    const controller = new AbortController();
    const stream = await openEventStream({ ctx, bus: feed, signal: controller.signal, pingMs: 25_000 });
    // One event per tick, as separate bus batches would tell them.
    for (let i = 1; i <= 100; i++) {
      feed.send({ type: "change", collection: i % 2 ? "customers" : "orders", checkpoint: `s${i}` });
      await Promise.resolve();
    }
    feed.send({ type: "config", policyVersion: 4 });
    await Promise.resolve();
    feed.send({ type: "config", policyVersion: 5 });
    await Promise.resolve();
    const reader = stream.getReader();
    const chunks: string[] = [];
    // Read what is queued, then end the stream: the coalesced events come out as the client reads.
    for (let i = 0; i < STREAM_QUEUE_BLOCKS + 1; i++) {
      const { value } = await reader.read();
      chunks.push(decoder.decode(value));
    }
    controller.abort();
    const rest = await reader.read();
    expect(rest.done).toBe(true);
    // The connect chunk and 15 change events filled the queue (s1…s15); the
    // rest waited and left as one chunk: the latest per collection and the
    // latest config, in the order of those latest events.
    expect(chunks.slice(1, STREAM_QUEUE_BLOCKS)).toEqual(
      Array.from({ length: STREAM_QUEUE_BLOCKS - 1 }, (_, i) =>
        formatEvent("change", { collection: (i + 1) % 2 ? "customers" : "orders", checkpoint: `s${i + 1}` }),
      ),
    );
    expect(chunks[STREAM_QUEUE_BLOCKS]).toBe(
      'event: change\ndata: {"collection":"customers","checkpoint":"s99"}\n\n' +
        'event: change\ndata: {"collection":"orders","checkpoint":"s100"}\n\n' +
        'event: config\ndata: {"policyVersion":5}\n\n',
    );
  });

  it("ends and unsubscribes when the client cancels, and when the feed closes it", async () => {
    const feed = new FakeFeed();
    const cancelled = await openEventStream({ ctx, bus: feed, pingMs: 25_000 });
    const closed = await openEventStream({ ctx, bus: feed, pingMs: 25_000 });
    expect(feed.subscribers.size).toBe(2);
    await cancelled.cancel();
    expect(feed.subscribers.size).toBe(1);
    for (const s of [...feed.subscribers]) s.close();
    expect(await readAll(closed)).toBe(": connected\n\nretry: 3000\n\n");
    expect(feed.subscribers.size).toBe(0);
  });

  it("does not subscribe for a request that is already gone", async () => {
    const feed = new FakeFeed();
    const stream = await openEventStream({ ctx, bus: feed, signal: AbortSignal.abort(), pingMs: 25_000 });
    expect(feed.subscribers.size).toBe(0);
    expect(await readAll(stream)).toBe(": connected\n\nretry: 3000\n\n");
  });

  it("sends pings at the interval while the client reads", async () => {
    const feed = new FakeFeed();
    const controller = new AbortController();
    const stream = await openEventStream({ ctx, bus: feed, signal: controller.signal, pingMs: 10 });
    const reader = stream.getReader();
    await reader.read();
    expect(decoder.decode((await reader.read()).value)).toBe(": ping\n\n");
    controller.abort();
  });

  it("refuses a ping interval the protocol does not allow", async () => {
    await expect(openEventStream({ ctx, bus: new FakeFeed(), pingMs: 30_000 })).rejects.toThrow(RangeError);
  });
});

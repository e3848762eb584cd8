import { createParser, type EventSourceMessage } from "eventsource-parser";

/**
 * Reads a text/event-stream body until it ends, handing each event to
 * `onEvent` (comments such as `: ping` only prove the stream is alive:
 * `onActivity`). Resolves when the stream ends or `signal` aborts; rejects if
 * reading fails. Aborting cancels the body itself: a fetch implementation
 * that ignores the request's signal once the answer has started (an
 * in-process hub, some polyfills) would otherwise leave the read pending and
 * the connection open for good.
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  onEvent: (message: EventSourceMessage) => void,
  onActivity: () => void,
  signal?: AbortSignal,
): Promise<void> {
  const parser = createParser({ onEvent, onComment: onActivity });
  const decoder = new TextDecoder();
  const reader = body.getReader();
  const cancel = () => {
    reader.cancel().catch(() => undefined);
  };
  if (signal?.aborted) cancel();
  else signal?.addEventListener("abort", cancel, { once: true });
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      onActivity();
      parser.feed(decoder.decode(value, { stream: true }));
    }
  } finally {
    signal?.removeEventListener("abort", cancel);
    reader.releaseLock();
  }
}

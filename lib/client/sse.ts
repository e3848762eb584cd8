import { createParser, type EventSourceMessage } from "eventsource-parser";

/**
 * Reads a text/event-stream body until it ends, handing each event to
 * `onEvent` (comments such as `: ping` only prove the stream is alive:
 * `onActivity`). Resolves when the stream ends; rejects if reading fails.
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  onEvent: (message: EventSourceMessage) => void,
  onActivity: () => void,
): Promise<void> {
  const parser = createParser({ onEvent, onComment: onActivity });
  const decoder = new TextDecoder();
  const reader = body.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      onActivity();
      parser.feed(decoder.decode(value, { stream: true }));
    }
  } finally {
    reader.releaseLock();
  }
}

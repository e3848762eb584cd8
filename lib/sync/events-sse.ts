import type { JsonValue } from "./protocol";

/**
 * Server-Sent Events framing (WHATWG HTML, "Server-sent events", the
 * text/event-stream format). Pure functions; each returns one complete block
 * ending in a blank line, so blocks can be written to a stream in any order.
 * A blank line after a comment or a `retry:` field dispatches nothing: the
 * parser only dispatches when the data buffer is not empty.
 */

/** CR, LF or CRLF end a line in an event stream. */
const LINE_BREAK = /\r\n|\r|\n/;

/**
 * `event: <name>` and `data: <json>`. JSON text never contains a raw CR or LF
 * (JSON.stringify escapes them inside strings), so the data is always one line.
 */
export function formatEvent(name: string, data: JsonValue): string {
  if (name.length === 0 || LINE_BREAK.test(name)) {
    // A line break in the name would end the field early and let the rest be read as other fields.
    throw new RangeError(`An SSE event name must be non-empty and on one line (got ${JSON.stringify(name)}).`);
  }
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A comment (`: text`), which clients ignore: keeps idle connections and proxies alive. */
export function formatComment(text: string): string {
  return `${text
    .split(LINE_BREAK)
    .map((line) => `: ${line}`)
    .join("\n")}\n\n`;
}

/** `retry: <ms>`: how long the client's EventSource waits before reconnecting. */
export function formatRetry(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 0) throw new RangeError(`retry must be a whole number of milliseconds (got ${ms}).`);
  return `retry: ${ms}\n\n`;
}

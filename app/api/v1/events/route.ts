import { withSystem } from "@/lib/http/handlers";
import { getHub } from "@/lib/hub";
import { getEventBus } from "@/lib/sync/events-bus";
import { EVENT_STREAM_HEADERS, openEventStream } from "@/lib/sync/events-stream";

// A stream per request, kept open: never prerendered, never on the edge runtime
// (the bus needs the process's database connection).
export const dynamic = "force-dynamic";
export const runtime = "nodejs";

/** Real-time hints for the calling system: `config` and `change` events (protocol.md, GET /api/v1/events). */
export const GET = withSystem<Record<string, never>>(async (ctx, request) => {
  const { handle } = await getHub();
  const stream = await openEventStream({ ctx, bus: getEventBus(handle), signal: request.signal });
  return new Response(stream, { headers: EVENT_STREAM_HEADERS });
});

import { describe, expect, it } from "vitest";
import { MemoryStore, NetworkError, SyncClient, type FetchLike } from "@/lib/client";
import { readEventStream } from "@/lib/client/sse";

/** Transport robustness without a hub: a reset connection is retried once; an aborted event stream ends. */

const CONFIG = {
  system: "crm",
  policyVersion: 1,
  collections: { customers: { read: { where: "true", fields: ["*"] }, write: { where: "true", fields: ["*"] }, conflict: { strategy: "server-wins", fallback: "manual" } } },
  sync: { intervalSeconds: 60, realtime: true },
  serverTime: "2026-11-26T00:00:00.000Z",
};

function reset(code: string): TypeError {
  return new TypeError("fetch failed", { cause: Object.assign(new Error(code === "UND_ERR_SOCKET" ? "other side closed" : `connect ${code}`), { code }) });
}

/** Fails the first `failures` calls with `error`, then answers /config; records every call. */
function failing(failures: number, error: () => Error, calls: string[]): FetchLike {
  return async (input, init) => {
    calls.push(`${init?.method ?? "GET"} ${new URL(input).pathname}`);
    if (calls.length <= failures) throw error();
    return Response.json(CONFIG, { headers: { "x-policy-version": "1" } });
  };
}

const client = (fetch: FetchLike) => new SyncClient({ baseUrl: "http://hub.test", apiKey: "k", store: new MemoryStore(), fetch });

describe("the transport retries once when the hub gave no answer", () => {
  it("a connection closed under the request (a stale keep-alive socket) is sent again at once", async () => {
    const calls: string[] = [];
    await expect(client(failing(1, () => reset("UND_ERR_SOCKET"), calls)).init()).resolves.toMatchObject({ system: "crm" });
    expect(calls).toEqual(["GET /api/v1/config", "GET /api/v1/config"]);
  });

  it("only once: two resets in a row are a NetworkError", async () => {
    const calls: string[] = [];
    await expect(client(failing(2, () => reset("ECONNRESET"), calls)).init()).rejects.toBeInstanceOf(NetworkError);
    expect(calls).toHaveLength(2);
  });

  it("a refused connection or an unknown host is not retried", async () => {
    for (const code of ["ECONNREFUSED", "ENOTFOUND"]) {
      const calls: string[] = [];
      await expect(client(failing(1, () => reset(code), calls)).init()).rejects.toThrow(/Could not reach the hub at http:\/\/hub.test/);
      expect(calls).toHaveLength(1);
    }
  });

  it("an HTTP error answer is an answer: not retried", async () => {
    const calls: string[] = [];
    const fetch: FetchLike = async (input) => {
      calls.push(new URL(input).pathname);
      return Response.json({ error: { code: "internal", message: "boom" } }, { status: 500 });
    };
    await expect(client(fetch).init()).rejects.toThrow(/answered 500/);
    expect(calls).toHaveLength(1);
  });
});

describe("readEventStream", () => {
  it("ends when its signal aborts, even if the body never ends, and cancels the body", async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('event: change\ndata: {"collection":"customers"}\n\n'));
      },
      cancel() {
        cancelled = true;
      },
    });
    const abort = new AbortController();
    const events: string[] = [];
    const reading = readEventStream(body, (m) => events.push(m.event ?? ""), () => undefined, abort.signal);
    await new Promise((r) => setTimeout(r, 50));
    abort.abort();
    await expect(reading).resolves.toBeUndefined();
    expect(events).toEqual(["change"]);
    expect(cancelled).toBe(true);
  });

  it("a stream opened after the abort is cancelled at once", async () => {
    const abort = new AbortController();
    abort.abort();
    const body = new ReadableStream<Uint8Array>({ start() {} });
    await expect(readEventStream(body, () => undefined, () => undefined, abort.signal)).resolves.toBeUndefined();
  });

  it("stop() of a started client returns although the hub's stream ignores the abort", async () => {
    let cancelled = false;
    const fetch: FetchLike = async (input) => {
      const url = new URL(input);
      if (url.pathname === "/api/v1/events") {
        // Ignores init.signal, as an in-process handler or a polyfill may.
        return new Response(new ReadableStream<Uint8Array>({ cancel: () => void (cancelled = true) }), { headers: { "content-type": "text/event-stream" } });
      }
      if (url.pathname === "/api/v1/config") return Response.json(CONFIG);
      return Response.json({ changes: [], checkpoint: "0", hasMore: false });
    };
    const c = client(fetch);
    c.start();
    const deadline = Date.now() + 5000;
    while (!(await c.status()).connected) {
      if (Date.now() > deadline) throw new Error("never connected");
      await new Promise((r) => setTimeout(r, 20));
    }
    const stopped = Date.now();
    await c.stop();
    expect(Date.now() - stopped).toBeLessThan(1000);
    expect(cancelled).toBe(true);
  });
});

import type { z } from "zod";
import {
  API_BASE,
  MAX_PAGE_LIMIT,
  POLICY_VERSION_HEADER,
  type ChangesResponse,
  type ConfigResponse,
  type ManifestResponse,
  type PushChange,
  type PushResponse,
} from "../sync/protocol";
import { AuthError, HttpError, NetworkError, ProtocolError } from "./errors";
import { changesResponseSchema, configResponseSchema, errorBodySchema, manifestResponseSchema, pushResponseSchema } from "./wire";

/** The part of `fetch` the SDK uses: inject one for tests, proxies or an in-process hub. */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface TransportOptions {
  baseUrl: string;
  apiKey: string;
  fetch: FetchLike;
  /** Called with X-Policy-Version of every answer (errors included). */
  onPolicyVersion: (version: number) => void;
}

/** protocol.md's routes as typed calls. Knows HTTP; knows nothing of stores or sync rules. */
export class Transport {
  private readonly root: string;
  /** The hub's last answer said it reads gzip request bodies (see `send`). */
  private hubReadsGzip = false;

  constructor(private readonly options: TransportOptions) {
    this.root = options.baseUrl.replace(/\/+$/, "") + API_BASE;
  }

  config(): Promise<ConfigResponse> {
    return this.json("GET", "/config", configResponseSchema);
  }

  changes(collection: string, since: string | null, limit = MAX_PAGE_LIMIT): Promise<ChangesResponse> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (since !== null) query.set("since", since);
    return this.json("GET", `/collections/${encodeURIComponent(collection)}/changes?${query}`, changesResponseSchema);
  }

  manifest(collection: string, after: string | null, limit = MAX_PAGE_LIMIT): Promise<ManifestResponse> {
    const query = new URLSearchParams({ limit: String(limit) });
    if (after !== null) query.set("after", after);
    return this.json("GET", `/collections/${encodeURIComponent(collection)}/manifest?${query}`, manifestResponseSchema);
  }

  push(collection: string, changes: readonly PushChange[]): Promise<PushResponse> {
    // Safe to re-send: the hub answers a re-sent changeId with its first result and applies it once.
    return this.json("POST", `/collections/${encodeURIComponent(collection)}/push`, pushResponseSchema, { changes });
  }

  /** Opens GET /events; the caller reads (and cancels) the body. */
  async events(signal: AbortSignal): Promise<ReadableStream<Uint8Array>> {
    const response = await this.send("GET", "/events", undefined, signal, "text/event-stream");
    if (!response.body) throw new ProtocolError("The hub answered GET /api/v1/events without a body; check that no proxy buffers or strips the event stream.");
    return response.body;
  }

  private async json<S extends z.ZodType>(method: string, path: string, schema: S, body?: unknown): Promise<z.infer<S>> {
    const response = await this.send(method, path, body);
    let parsed: unknown;
    try {
      parsed = await response.json();
    } catch (error) {
      throw new ProtocolError(`The hub's answer to ${method} ${path} is not JSON; check that baseUrl points at a Concord hub.`, { cause: error });
    }
    const result = schema.safeParse(parsed);
    if (!result.success) {
      throw new ProtocolError(
        `The hub's answer to ${method} ${path} does not follow sync protocol v1 (${result.error.issues[0]?.path.join(".") ?? ""}: ${result.error.issues[0]?.message ?? "invalid"}); check that the hub and this SDK are compatible.`,
      );
    }
    return result.data;
  }

  /**
   * One request. A request that got no answer at all (the connection was
   * reset or closed under it, e.g. a keep-alive socket the hub had just
   * closed) is sent once more at once: every call here is idempotent (GETs,
   * and pushes by changeId). The event stream is not: its loop has its own
   * backoff. A refused connection or an unknown host is not retried.
   *
   * JSON answers are asked for compressed (`Accept-Encoding: br, gzip`; Node's
   * fetch decodes them); the event stream uncompressed, so that no proxy
   * holds events back to fill a compression block. A body of 1 KiB or more
   * is sent gzip-compressed once the hub has said it reads gzip bodies
   * (`Accept-Encoding` on its answers, RFC 7694); should a compressed body be
   * refused with 400 or 415 (an older hub behind the same address), it is
   * sent again uncompressed at once.
   */
  private async send(method: string, path: string, body: unknown, signal?: AbortSignal, accept = "application/json"): Promise<Response> {
    const events = accept === "text/event-stream";
    const headers: Record<string, string> = { authorization: `Bearer ${this.options.apiKey}`, accept, "accept-encoding": events ? "identity" : ACCEPT_ENCODING };
    if (body !== undefined) headers["content-type"] = "application/json";
    const text = body === undefined ? undefined : JSON.stringify(body);
    const gzipped = text !== undefined && this.hubReadsGzip && text.length >= MIN_COMPRESS_BYTES ? await gzip(new TextEncoder().encode(text)) : undefined;
    let response = await this.exchange(method, path, gzipped === undefined ? { headers, body: text } : { headers: { ...headers, "content-encoding": "gzip" }, body: gzipped }, signal);
    if (gzipped !== undefined && (response.status === 400 || response.status === 415)) {
      await response.body?.cancel().catch(() => undefined);
      this.hubReadsGzip = false;
      response = await this.exchange(method, path, { headers, body: text }, signal);
    }
    this.hubReadsGzip = readsGzip(response.headers.get("accept-encoding"));
    const policyVersion = Number(response.headers.get(POLICY_VERSION_HEADER));
    if (Number.isSafeInteger(policyVersion) && policyVersion > 0) this.options.onPolicyVersion(policyVersion);
    if (!response.ok) throw await httpError(method, path, response);
    return response;
  }

  /** Sends one request, once more at once when it got no answer at all (see `send`). */
  private async exchange(method: string, path: string, request: { headers: Record<string, string>; body: string | Uint8Array | undefined }, signal?: AbortSignal): Promise<Response> {
    const attempt = () => this.options.fetch(this.root + path, { method, headers: request.headers, body: request.body as BodyInit | undefined, signal });
    try {
      try {
        return await attempt();
      } catch (error) {
        if (signal !== undefined || !noAnswer(error)) throw error;
        return await attempt();
      }
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new NetworkError(
        `Could not reach the hub at ${this.options.baseUrl} (${errorText(error)}). Local changes stay queued and are sent with the same changeIds on the next sync; check the network and the baseUrl.`,
        { cause: error },
      );
    }
  }
}

/** What the SDK asks for: the hub prefers brotli, and Node's fetch decodes both. */
const ACCEPT_ENCODING = "br, gzip";

/** Smaller request bodies are sent as they are: compressing them saves less than a header line. */
const MIN_COMPRESS_BYTES = 1024;

/** Whether an answer's Accept-Encoding (RFC 7694: the codings the server reads in request bodies) names gzip. */
function readsGzip(header: string | null): boolean {
  if (header === null) return false;
  return header.split(",").some((part) => {
    const [name, ...params] = part.split(";");
    const q = params.map((p) => /^\s*q\s*=\s*([0-9.]+)\s*$/i.exec(p)?.[1]).find((v) => v !== undefined);
    return name?.trim().toLowerCase() === "gzip" && (q === undefined || Number(q) > 0);
  });
}

/** gzip with the platform's CompressionStream (Node 18+, browsers): no Node-only import in the SDK. */
async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function httpError(method: string, path: string, response: Response): Promise<HttpError | NetworkError> {
  let text = "";
  try {
    text = await response.text();
  } catch {
    // The body is gone; the status still says what happened.
  }
  let envelope: z.infer<typeof errorBodySchema> | undefined;
  try {
    const parsed = errorBodySchema.safeParse(JSON.parse(text));
    if (parsed.success) envelope = parsed.data;
  } catch {
    // Not JSON: a proxy or a server that is not Concord.
  }
  const code = envelope?.error.code ?? `http_${response.status}`;
  const said = envelope?.error.message ?? (text.slice(0, 200) || response.statusText);
  const what = `${method} ${API_BASE}${path.split("?")[0]} answered ${response.status}`;
  const retryAfterMs = retryAfter(response.headers.get("retry-after"));
  if (response.status === 503) {
    // The hub is there but cannot serve (its database is unreachable), or a proxy has no hub behind it: offline, for now.
    return new NetworkError(`${what}: ${said} Local changes stay queued and are sent with the same changeIds on the next sync.`, { retryAfterMs });
  }
  if (response.status === 401) {
    return new AuthError(response.status, code, `${what}: ${said} Check the API key given to SyncClient; ask an operator for a new one if it was revoked.`, envelope?.error.details);
  }
  const next =
    response.status === 429 || response.status >= 500
      ? " The hub is busy or failing; the SDK retries with backoff, and nothing local is lost."
      : response.status === 403
        ? " This system lacks the right; an operator can change the policy."
        : "";
  return new HttpError(response.status, code, `${what}: ${said}${next}`, envelope?.error.details, retryAfterMs);
}

/** Retry-After in seconds (the hub's form) as milliseconds; an HTTP date or nonsense is ignored. */
function retryAfter(header: string | null): number | undefined {
  if (header === null || !/^\d{1,6}$/.test(header.trim())) return undefined;
  return Number(header.trim()) * 1000;
}

/** Codes (Node's undici and sockets) that say the hub is not there at all: sending again at once cannot help. */
const UNREACHABLE = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"]);

/** A fetch that failed without an answer, and not because the hub is unreachable or the caller aborted. */
function noAnswer(error: unknown): boolean {
  if (!(error instanceof Error) || error.name === "AbortError" || error.name === "TimeoutError") return false;
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && UNREACHABLE.has(code)) return false;
  }
  return true;
}

function errorText(error: unknown): string {
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : "";
    return `${error.message}${cause}`;
  }
  return String(error);
}

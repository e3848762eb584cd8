import { ServerResponse } from "node:http";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { promisify } from "node:util";
import zlib from "node:zlib";
import { env } from "../env";
import { ServiceError } from "../errors";
import { log } from "../log";

/**
 * Content codings of the hub's JSON answers and of request bodies (issue 12,
 * "Fewer bytes"). The route adapters (./handlers.ts) pass every answer
 * through `encodeResponse`; `readText` (./body.ts) decodes request bodies with
 * `decodeRequestBody`. Next.js's own `compress` stays off (next.config.js).
 *
 * Levels, chosen by measurement (`npx tsx bench/compression-levels.ts --runs
 * 21`, Node 20 on the 2-core machine; CPU time to compress, size):
 *
 * | body                          | identity | gzip 1          | gzip 6          | br 1            | br 4            | br 5           |
 * | ----------------------------- | -------- | --------------- | --------------- | --------------- | --------------- | -------------- |
 * | pull page, 10,000 records     | 3.18 MB  | 13.3 ms, 614 KB | 20.4 ms, 569 KB | 6.6 ms, 517 KB  | 19.5 ms, 484 KB | 81 ms, 512 KB  |
 * | manifest page, 10,000 entries | 1.11 MB  | 13.4 ms, 430 KB | 15.8 ms, 406 KB | 4.1 ms, 386 KB  | 12.1 ms, 368 KB | 30 ms, 402 KB  |
 * | pull of a 100-edit round      | 32.9 KB  | 0.07 ms, 7.2 KB | 0.14 ms, 6.7 KB | 0.06 ms, 6.6 KB | 0.19 ms, 6.3 KB | 0.33 ms, 6.2 KB |
 * | push result of 100 changes    | 15.9 KB  | 0.04 ms, 4.7 KB | 0.06 ms, 4.5 KB | 0.04 ms, 4.9 KB | 0.12 ms, 4.3 KB | 0.13 ms, 4.5 KB |
 *
 * Brotli 1 beats every gzip level on both size and CPU; brotli 5 and above
 * cost 4× brotli 4 on a big page and come out larger. On a big page, brotli 4
 * over brotli 1 saves 33 KB for 13 ms more CPU: that pays only on links
 * slower than ~20 Mbit/s, and the hub's CPU is what limits a full pull on a
 * small machine. On a body of a few dozen KB every level costs well under a
 * millisecond, and the request's own handling dwarfs it. So: bodies up to
 * SMALL_BODY_BYTES get brotli 4 / gzip 6 (fewest bytes for a sync round),
 * larger ones brotli 1 / gzip 1 (fewest CPU ms per byte saved; brotli 1
 * still shrinks a pull page 6×, breaking even only on links above ~2 Gbit/s).
 * (Brotli 0 would save a fifth of brotli 1's CPU for 35 % more bytes.)
 * Compression runs on libuv's pool (the async zlib calls), so the event loop
 * keeps serving while a page is compressed.
 *
 * End to end (`npx tsx bench/compression.ts`, `next start` on PostgreSQL,
 * 100,000 records of ~200 bytes, bytes on the socket both ways): a full pull
 * moves 31.9 MB uncompressed for 570 ms of hub CPU, 5.18 MB with brotli for
 * 636 ms (+12 %), 6.15 MB with gzip for 726 ms (+27 %; Next's own gzip at
 * level 6 cost 30 % of pull throughput); 100-edit round 77.5 KB → 15.0 KB
 * (with the SDK's gzip push body); a no-op sync stays uncompressed: 900
 * bytes, 921 with the request's `Accept-Encoding: br`.
 *
 * Next.js 16 drops Content-Encoding and Content-Length from every route
 * handler's Response (next/dist/server/send-response.js, FORBIDDEN_HEADERS: a
 * body fetched from elsewhere may have been decoded on the way). So the hub
 * also sends them as X-Concord-Content-Encoding and -Length, and
 * `installEncodingHeaders` (called from instrumentation.ts) puts them back
 * under their own names just before the head is written; clients never see
 * the X- names. The same hook drops the Vary entries Next.js adds for its
 * pages' client router from these answers.
 */

export type ContentCoding = "br" | "zstd" | "gzip";

/**
 * Bodies smaller than this are sent as they are (unless the client refuses
 * `identity`): the saving is a few hundred bytes at most, less than the
 * headers a request carries anyway.
 */
export const MIN_COMPRESS_BYTES = 1024;

/** Bodies up to this size are compressed harder (see above); larger ones at the cheapest level. */
export const SMALL_BODY_BYTES = 64 * 1024;

/** zstd is in node:zlib from Node 22.15 / 23.8 on; the hub offers it only where it exists. */
interface ZstdZlib {
  zstdCompress?: (input: Uint8Array, options: { params: Record<number, number> }, callback: (error: Error | null, result: Buffer) => void) => void;
  createZstdDecompress?: () => NodeJS.ReadWriteStream;
  constants: { ZSTD_c_compressionLevel?: number };
}
const zstd = zlib as unknown as ZstdZlib;
const ZSTD_LEVEL_PARAM = zstd.constants.ZSTD_c_compressionLevel;
export const ZSTD_AVAILABLE = typeof zstd.zstdCompress === "function" && typeof zstd.createZstdDecompress === "function" && ZSTD_LEVEL_PARAM !== undefined;

/**
 * The codings the hub speaks, in its order of preference among codings a
 * client likes equally: brotli was measured smallest and cheapest; zstd (not
 * measured here, Node 20 lacks it) before gzip.
 */
export const CODINGS: readonly ContentCoding[] = ZSTD_AVAILABLE ? ["br", "zstd", "gzip"] : ["br", "gzip"];

/** The codings the hub reads in request bodies, for `Accept-Encoding` on its answers (RFC 7694). */
export const REQUEST_CODINGS_HEADER = CODINGS.join(", ");

const gzip = promisify(zlib.gzip);
const brotliCompress = promisify(zlib.brotliCompress);

/** The body compressed with `coding`, harder when it is small (see the table above). */
export async function compress(body: Uint8Array, coding: ContentCoding): Promise<Buffer> {
  const small = body.byteLength <= SMALL_BODY_BYTES;
  switch (coding) {
    case "gzip":
      return gzip(body, { level: small ? 6 : 1 });
    case "br":
      return brotliCompress(body, {
        params: {
          [zlib.constants.BROTLI_PARAM_QUALITY]: small ? 4 : 1,
          [zlib.constants.BROTLI_PARAM_MODE]: zlib.constants.BROTLI_MODE_TEXT,
          [zlib.constants.BROTLI_PARAM_SIZE_HINT]: body.byteLength,
        },
      });
    case "zstd": {
      const zstdCompress = zstd.zstdCompress;
      if (!zstdCompress || ZSTD_LEVEL_PARAM === undefined) throw new Error("zstd is not available in this Node.js");
      return new Promise((resolve, reject) =>
        // Not measured here (Node 20 has no zstd): its default level, and its fastest for big bodies.
        zstdCompress(body, { params: { [ZSTD_LEVEL_PARAM]: small ? 3 : 1 } }, (error, result) => (error ? reject(error) : resolve(result))),
      );
    }
  }
}

/**
 * Accept-Encoding as a map of coding → q-value (RFC 9110 §12.5.3), names in
 * lower case, `x-gzip` as `gzip`. An entry with a malformed q-value is
 * ignored; a coding named twice keeps its highest q.
 */
export function parseAcceptEncoding(header: string): Map<string, number> {
  const prefs = new Map<string, number>();
  for (const part of header.split(",")) {
    const [rawName, ...params] = part.split(";");
    let name = (rawName ?? "").trim().toLowerCase();
    if (!name) continue;
    if (name === "x-gzip") name = "gzip";
    let q = 1;
    let valid = true;
    for (const param of params) {
      const eq = param.indexOf("=");
      if (eq < 0 || param.slice(0, eq).trim().toLowerCase() !== "q") continue;
      const value = param.slice(eq + 1).trim();
      if (!/^(0(\.\d{0,3})?|1(\.0{0,3})?)$/.test(value)) valid = false;
      else q = Number(value);
    }
    if (valid) prefs.set(name, Math.max(q, prefs.get(name) ?? 0));
  }
  return prefs;
}

/**
 * The coding for an answer of `size` bytes, or null to send it as it is.
 * No Accept-Encoding (or an empty one): as it is. Otherwise the coding with
 * the highest q the client gave (ties: the hub's order, CODINGS), unless the
 * client names `identity` with a higher q or the body is under
 * MIN_COMPRESS_BYTES.
 * A client that refuses `identity` (`identity;q=0`, or `*;q=0` without
 * naming it) gets a compressed answer whatever its size; one that accepts
 * nothing the hub speaks gets the body as it is (an answer it can read is
 * better than a 406).
 */
export function chooseCoding(acceptEncoding: string | null, size: number): ContentCoding | null {
  if (acceptEncoding === null || acceptEncoding.trim() === "") return null;
  const prefs = parseAcceptEncoding(acceptEncoding);
  const star = prefs.get("*");
  let best: ContentCoding | null = null;
  let bestQ = 0;
  for (const coding of CODINGS) {
    const q = prefs.get(coding) ?? star ?? 0;
    if (q > bestQ) {
      best = coding;
      bestQ = q;
    }
  }
  if (best === null) return null;
  const identity = prefs.get("identity");
  if (identity === 0 || (identity === undefined && star === 0)) return best;
  // Unnamed, identity is acceptable but not preferred: `br;q=0.2` still asks for brotli.
  if (size < MIN_COMPRESS_BYTES || (identity !== undefined && identity > bestQ)) return null;
  return best;
}

/** JSON answers are compressed; event streams and everything else pass untouched. */
function compressible(response: Response): boolean {
  const type = (response.headers.get("content-type") ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
  return type === "application/json" || type.endsWith("+json");
}

function addVary(headers: Headers, name: string): void {
  const vary = headers.get("vary");
  if (!vary) headers.set("vary", name);
  else if (!vary.split(",").some((v) => v.trim().toLowerCase() === name.toLowerCase() || v.trim() === "*")) headers.set("vary", `${vary}, ${name}`);
}

/** Content-Encoding and Content-Length under names Next.js passes on (see the top of this file). */
export const ENCODING_PASS_HEADER = "x-concord-content-encoding";
export const LENGTH_PASS_HEADER = "x-concord-content-length";

const installed = Symbol.for("concord.encodingHeaders");

/** What Next.js puts in Vary for its pages' client router; meaningless on a JSON answer. */
const NEXT_PAGE_VARY = new Set(["rsc", "next-router-state-tree", "next-router-prefetch", "next-router-segment-prefetch", "next-url"]);

/**
 * Makes this process's HTTP responses send ENCODING_PASS_HEADER and
 * LENGTH_PASS_HEADER as Content-Encoding and Content-Length: every head is
 * written by ServerResponse.writeHead (Node calls it for an implicit head
 * too), after Next.js has copied the route's headers. Called once from
 * instrumentation.ts; calling it again does nothing.
 */
export function installEncodingHeaders(): void {
  const prototype = ServerResponse.prototype as ServerResponse & { [installed]?: true };
  if (prototype[installed]) return;
  const writeHead = prototype.writeHead;
  prototype.writeHead = function restoreEncodingHeaders(this: ServerResponse, ...args: unknown[]) {
    const coding = this.getHeader(ENCODING_PASS_HEADER);
    const length = this.getHeader(LENGTH_PASS_HEADER);
    if (coding !== undefined || length !== undefined) {
      this.removeHeader(ENCODING_PASS_HEADER);
      this.removeHeader(LENGTH_PASS_HEADER);
      // Only onto a head Next.js left without framing of its own.
      if (!this.hasHeader("content-encoding") && !this.hasHeader("content-length") && !this.hasHeader("transfer-encoding")) {
        if (coding !== undefined) this.setHeader("content-encoding", coding);
        if (length !== undefined) this.setHeader("content-length", length);
      }
      // A JSON answer does not vary by the headers of Next.js's page router (`rsc`, `next-router-*`):
      // ~100 bytes on every answer, a tenth of a no-op sync.
      const vary = this.getHeader("vary");
      if (vary !== undefined) {
        const kept = [vary]
          .flat()
          .flatMap((v) => String(v).split(","))
          .map((v) => v.trim())
          .filter((v) => v !== "" && !NEXT_PAGE_VARY.has(v.toLowerCase()));
        if (kept.length > 0) this.setHeader("vary", [...new Set(kept)].join(", "));
        else this.removeHeader("vary");
      }
    }
    return Reflect.apply(writeHead, this, args) as ServerResponse;
  } as typeof writeHead;
  prototype[installed] = true;
}

/**
 * The bytes of answers built from a buffer the hub holds (respond.ts json()),
 * so encodeResponse need not read them back through the body stream: a 10,000
 * record page is 2 MB, and reading it back cost as much as serialising it.
 */
const knownBodies = new WeakMap<Response, Buffer>();

/** A response whose body is exactly `bytes` (which must not change afterwards), known to encodeResponse. */
export function responseOfBytes(bytes: Buffer, init: ResponseInit): Response {
  const response = new Response(bytes as Uint8Array<ArrayBuffer>, init);
  knownBodies.set(response, bytes);
  return response;
}

/**
 * A JSON answer in the coding the request asks for (`chooseCoding`), with
 * `Content-Encoding`, `Vary: Accept-Encoding` and the Content-Length of the
 * bytes sent; every answer also names the codings the hub reads in request
 * bodies (`Accept-Encoding`, RFC 7694), so a client may compress what it
 * pushes. Other answers (event streams, files) and answers already encoded
 * pass untouched, as does everything when CONCORD_COMPRESS=0.
 */
export async function encodeResponse(request: Request, response: Response): Promise<Response> {
  if (!env().CONCORD_COMPRESS || response.body === null || !compressible(response) || response.headers.has("content-encoding")) return response;
  const bytes = knownBodies.get(response) ?? Buffer.from(await response.arrayBuffer());
  const headers = new Headers(response.headers);
  addVary(headers, "Accept-Encoding");
  headers.set("accept-encoding", REQUEST_CODINGS_HEADER);
  const acceptEncoding = request.headers.get("accept-encoding");
  const coding = chooseCoding(acceptEncoding, bytes.byteLength);
  let body: Buffer = bytes;
  if (coding !== null) {
    try {
      const compressed = await compress(bytes, coding);
      // A body that does not shrink goes as it is, unless the client refused that.
      if (compressed.byteLength < bytes.byteLength || chooseCoding(acceptEncoding, 0) !== null) {
        body = compressed;
        headers.set("content-encoding", coding);
        headers.set(ENCODING_PASS_HEADER, coding);
      }
    } catch (error) {
      log.warn(`could not ${coding}-compress an answer of ${bytes.byteLength} bytes; sent it uncompressed (${error instanceof Error ? error.message : String(error)})`);
    }
  }
  headers.set("content-length", String(body.byteLength));
  headers.set(LENGTH_PASS_HEADER, String(body.byteLength));
  // zlib's Buffers are backed by plain ArrayBuffers (never shared), which is all a Response needs.
  return new Response(body as Uint8Array<ArrayBuffer>, { status: response.status, statusText: response.statusText, headers });
}

/**
 * The coding of a request body from its Content-Encoding, or null for none.
 * `identity` is none; anything but one coding the hub reads is refused with
 * 415 `unsupported_encoding`, naming the codings it reads.
 */
export function requestCoding(contentEncoding: string | null): ContentCoding | null {
  if (contentEncoding === null) return null;
  const codings = contentEncoding
    .split(",")
    .map((c) => c.trim().toLowerCase())
    .filter((c) => c !== "" && c !== "identity")
    .map((c) => (c === "x-gzip" ? "gzip" : c));
  if (codings.length === 0) return null;
  const [only] = codings;
  if (codings.length === 1 && (CODINGS as readonly string[]).includes(only ?? "")) return only as ContentCoding;
  throw new ServiceError(
    "unsupported_encoding",
    `The request body's Content-Encoding ${JSON.stringify(contentEncoding.slice(0, 100))} is not one the hub reads: send the body uncompressed, or compressed once with ${CODINGS.join(" or ")}.`,
    { contentEncoding: contentEncoding.slice(0, 100), accepted: [...CODINGS] },
  );
}

function decompressor(coding: ContentCoding): NodeJS.ReadWriteStream {
  switch (coding) {
    case "gzip":
      return zlib.createGunzip();
    case "br":
      return zlib.createBrotliDecompress();
    case "zstd": {
      if (!zstd.createZstdDecompress) throw new Error("zstd is not available in this Node.js");
      return zstd.createZstdDecompress();
    }
  }
}

/**
 * The decoded bytes of a compressed request body. Both the compressed and the
 * decoded size are held to `limit`: a body that inflates beyond it is cut off
 * as soon as it does (never inflated whole — a decompression bomb costs at most
 * `limit` bytes of memory) and refused with `tooLarge()`. Data that is not
 * valid `coding` is refused with 400.
 */
export async function decodeRequestBody(body: ReadableStream<Uint8Array>, coding: ContentCoding, limit: number, tooLarge: () => ServiceError): Promise<Buffer> {
  let compressedSize = 0;
  let decodedSize = 0;
  const chunks: Buffer[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      decodedSize += chunk.byteLength;
      if (decodedSize > limit) return callback(tooLarge());
      chunks.push(chunk);
      callback();
    },
  });
  async function* counted(): AsyncGenerator<Uint8Array> {
    for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
      compressedSize += chunk.byteLength;
      if (compressedSize > limit) throw tooLarge();
      yield chunk;
    }
  }
  try {
    await pipeline(counted, decompressor(coding), sink);
  } catch (error) {
    if (error instanceof ServiceError) throw error;
    throw new ServiceError(
      "invalid_request",
      `The request body is not valid ${coding} data, though its Content-Encoding says so (${error instanceof Error ? error.message : String(error)}); send it uncompressed or compress it again.`,
    );
  }
  return Buffer.concat(chunks, decodedSize);
}

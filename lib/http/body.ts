import type { z } from "zod";
import { ServiceError } from "../errors";
import { findUnstorable, textProblem } from "../sync/json-safety";
import { describeProblem, MAX_DOCUMENT_DEPTH, parseStrictJson } from "../sync/strict-json";
import { decodeRequestBody, requestCoding } from "./compression";
import { invalidRequest } from "./respond";

/**
 * Reads a request body as UTF-8 text, refusing it with 413 as soon as it
 * exceeds `limit` bytes: an oversized body is never buffered or parsed whole.
 * A body sent with `Content-Encoding: gzip` or `br` (./compression.ts) is
 * decoded first, and `limit` holds for the decoded bytes too (a small body
 * that inflates beyond it is refused with 413 as soon as it does); any other
 * Content-Encoding is refused with 415 `unsupported_encoding`.
 */
export async function readText(request: Request, limit: number): Promise<string> {
  const coding = requestCoding(request.headers.get("content-encoding"));
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  if (!request.body) return "";
  const bytes = coding === null ? await readBytes(request.body, limit) : await decodeRequestBody(request.body, coding, limit, () => tooLarge(limit, coding));
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ServiceError("invalid_request", `The request body is not valid UTF-8${coding === null ? "" : ` once ${coding}-decoded`}.`);
  }
}

async function readBytes(body: ReadableStream<Uint8Array>, limit: number): Promise<Buffer> {
  const reader = body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel().catch(() => undefined);
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

export interface ReadJsonOptions {
  /**
   * `body` (the default): a string or key anywhere in the body that the hub
   * cannot store (U+0000, a lone surrogate) refuses the request with 400,
   * naming its path. `per-change`: the route checks its records itself and
   * answers for each one (push: a bad record is `invalid`, the others are
   * applied).
   */
  values?: "body" | "per-change";
}

/**
 * Reads, parses and validates a JSON body. Refused with 400 `invalid_request`
 * before the schema sees it: text that is not UTF-8 or not JSON, a key given
 * twice in one object, a number literal a double cannot hold (see
 * ../sync/strict-json), nesting deeper than MAX_DOCUMENT_DEPTH, and (unless
 * the route checks per change) unstorable text. Each message names the path.
 */
export async function readJson<T extends z.ZodType>(
  request: Request,
  schema: T,
  limit: number,
  options: ReadJsonOptions = {},
): Promise<z.infer<T>> {
  const text = await readText(request, limit);
  const parsed = parseStrictJson(text);
  if (!parsed.ok) {
    throw new ServiceError("invalid_request", describeProblem(parsed.problem, "The request body"), [
      { path: parsed.problem.path, message: parsed.problem.message },
    ]);
  }
  if ((options.values ?? "body") === "body") {
    const unstorable = findUnstorable(parsed.value, "", MAX_DOCUMENT_DEPTH);
    if (unstorable) {
      throw new ServiceError("invalid_request", `The request body is refused: ${unstorable.message}.`, [
        { path: unstorable.path, message: unstorable.message },
      ]);
    }
  }
  const validated = validate(schema, parsed.value);
  if (!validated.success) throw invalidRequest(validated.error, "request body");
  return validated.data;
}

function validate<T extends z.ZodType>(schema: T, value: unknown): z.ZodSafeParseResult<z.infer<T>> {
  try {
    return schema.safeParse(value);
  } catch (error) {
    // The document depth is bounded, so a schema's recursion cannot overflow; should one still, it is the body's fault.
    if (error instanceof RangeError) throw new ServiceError("invalid_request", "The request body nests too deeply to be checked; flatten it.");
    throw error;
  }
}

/** Validates query-string parameters against a schema of strings. */
export function readQuery<T extends z.ZodType>(request: Request, schema: T): z.infer<T> {
  const params = Object.fromEntries(new URL(request.url).searchParams);
  // %00 decodes to U+0000, which no text column can hold: refuse it here rather than in the database.
  for (const [name, value] of Object.entries(params)) {
    const problem = textProblem(name) ?? textProblem(value);
    if (problem) throw new ServiceError("invalid_request", `The query parameter ${JSON.stringify(name)} ${problem}.`);
  }
  const parsed = schema.safeParse(params);
  if (!parsed.success) throw invalidRequest(parsed.error, "query string");
  return parsed.data;
}

function tooLarge(limit: number, coding?: string): ServiceError {
  return new ServiceError(
    "payload_too_large",
    coding === undefined
      ? `The request body is larger than the limit of ${formatBytes(limit)}; send fewer or smaller changes per request.`
      : `The request body, ${coding}-decoded, is larger than the limit of ${formatBytes(limit)} (the limit holds for the decoded body); send fewer or smaller changes per request. Nothing was changed.`,
  );
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(0)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

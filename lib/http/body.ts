import type { z } from "zod";
import { ServiceError } from "../errors";
import { invalidRequest } from "./respond";

/**
 * Reads a request body as UTF-8 text, refusing it with 413 as soon as it
 * exceeds `limit` bytes: an oversized body is never buffered or parsed whole.
 */
export async function readText(request: Request, limit: number): Promise<string> {
  const declared = Number(request.headers.get("content-length") ?? NaN);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  if (!request.body) return "";
  const reader = request.body.getReader();
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
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new ServiceError("invalid_request", "The request body is not valid UTF-8.");
  }
}

/** Reads, parses and validates a JSON body. */
export async function readJson<T extends z.ZodType>(request: Request, schema: T, limit: number): Promise<z.infer<T>> {
  const text = await readText(request, limit);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new ServiceError("invalid_request", `The request body is not valid JSON: ${(error as Error).message}.`);
  }
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw invalidRequest(parsed.error, "request body");
  return parsed.data;
}

/** Validates query-string parameters against a schema of strings. */
export function readQuery<T extends z.ZodType>(request: Request, schema: T): z.infer<T> {
  const params = Object.fromEntries(new URL(request.url).searchParams);
  const parsed = schema.safeParse(params);
  if (!parsed.success) throw invalidRequest(parsed.error, "query string");
  return parsed.data;
}

function tooLarge(limit: number): ServiceError {
  return new ServiceError(
    "payload_too_large",
    `The request body is larger than the limit of ${formatBytes(limit)}; send fewer or smaller changes per request.`,
  );
}

function formatBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(0)} MiB` : `${(n / 1024).toFixed(0)} KiB`;
}

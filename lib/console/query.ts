import type { z } from "zod";

/**
 * Console filters arrive in the query string, where anyone can type anything.
 * Each field is validated on its own: a bad value is reported in a sentence
 * and left out, the good ones still apply, and the page never fails on it.
 */

export type SearchParams = Record<string, string | string[] | undefined>;

export interface ParsedFilters<T> {
  values: Partial<T>;
  /** One sentence per rejected field. */
  errors: string[];
}

/** The first value of a query parameter, trimmed; empty means absent. */
export function param(params: SearchParams, name: string): string | undefined {
  const raw = params[name];
  const value = (Array.isArray(raw) ? raw[0] : raw)?.trim();
  return value === undefined || value === "" ? undefined : value;
}

export function parseFilters<S extends Record<string, z.ZodType>>(
  params: SearchParams,
  shape: S,
  labels: Partial<Record<keyof S, string>> = {},
): ParsedFilters<{ [K in keyof S]: z.infer<S[K]> }> {
  const values: Partial<{ [K in keyof S]: z.infer<S[K]> }> = {};
  const errors: string[] = [];
  for (const name of Object.keys(shape) as (keyof S & string)[]) {
    const raw = param(params, name);
    if (raw === undefined) continue;
    const parsed = shape[name]!.safeParse(raw);
    if (parsed.success) values[name] = parsed.data as z.infer<S[typeof name]>;
    else errors.push(`${labels[name] ?? name} "${clip(raw)}" was ignored: ${parsed.error.issues[0]?.message ?? "not a valid value"}.`);
  }
  return { values, errors };
}

function clip(value: string): string {
  return value.length > 60 ? `${value.slice(0, 57)}…` : value;
}

/** A query string from the given values, leaving out empty ones. */
export function queryString(values: Record<string, string | number | undefined | null>): string {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(values)) if (v !== undefined && v !== null && v !== "") qs.set(k, String(v));
  const s = qs.toString();
  return s ? `?${s}` : "";
}

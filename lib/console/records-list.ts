import { and, asc, eq, gt, gte, lt, sql, type SQL } from "drizzle-orm";
import { z } from "zod";
import { rowsOf } from "../db/client";
import { records } from "../db/schema";
import type { ReadContext } from "../sync/history";
import { textProblem, unstorableReason } from "../sync/json-safety";
import { collectionNameSchema, recordIdSchema, type JsonObject, type JsonValue } from "../sync/protocol";
import { parseStrictJson } from "../sync/strict-json";
import { parseFilters, type ParsedFilters, type SearchParams } from "./query";

/**
 * The console's record browser: one collection at a time, an id prefix, a
 * "field = value" filter, keyset pages in id order. Ids compare by code point
 * (COLLATE "C"), so a prefix is a range of the (collection, id) primary key.
 */

export const RECORD_PAGE_SIZE = 50;

/**
 * How many rows, in id order, the field filter first looks through before it
 * asks the GIN index. A common value (status = paid) fills a page within the
 * first few hundred rows of the primary key; a rare one (email = …) is found
 * through the GIN index, which then returns few rows. Between the two, a value
 * with at least DENSE_HITS matches in the window keeps walking the primary
 * key; one with fewer matches about DENSE_HITS / FILTER_WINDOW (0.2 %) of the
 * rows or less, so the GIN path fetches and sorts at most that share.
 */
export const FILTER_WINDOW = 5000;

/** Matches in the first window that make a value common enough to keep walking the primary key. */
const DENSE_HITS = 10;
/** The longest second walk (about 25 ms on the measuring machine). */
const MAX_SECOND_WINDOW = 50_000;

/** `address.city`: object keys separated by dots (a key with a dot cannot be filtered on). */
const fieldPathSchema = z
  .string()
  .max(200, "a field path is at most 200 characters")
  .regex(/^[^.]+(?:\.[^.]+)*$/, "write a field name such as status, or a path such as address.city")
  .refine((p) => p.split(".").length <= 16, "a field path has at most 16 parts")
  .refine((p) => !p.split(".").includes("__proto__"), "a field cannot be named __proto__")
  .refine((p) => textProblem(p) === null, "a field name has no U+0000 and no lone surrogates");

export const recordFilterShape = {
  collection: collectionNameSchema,
  prefix: z.string().max(256, "an id prefix is at most 256 characters").regex(/^[^\p{Cc}\p{Cs}]*$/u, "an id has no control characters"),
  field: fieldPathSchema,
  value: z
    .string()
    .max(10_000, "a value is at most 10,000 characters")
    // No stored record holds such a value, and the database refuses it in a query.
    .refine((v) => unstorableReason(filterValue(v), "value") === null, "a value has no U+0000 and no lone surrogates"),
  after: recordIdSchema,
};

export type RecordFilters = { [K in keyof typeof recordFilterShape]: z.infer<(typeof recordFilterShape)[K]> };

export function parseRecordFilters(params: SearchParams): ParsedFilters<RecordFilters> {
  const parsed = parseFilters(params, recordFilterShape, {
    collection: "Collection",
    prefix: "Id prefix",
    field: "Field",
    value: "Value",
    after: "Page cursor",
  });
  if ((parsed.values.field === undefined) !== (parsed.values.value === undefined)) {
    if (parsed.values.field !== undefined) parsed.errors.push("Field filter ignored: give a value too (it matches field = value).");
    else if (parsed.values.value !== undefined) parsed.errors.push("Value ignored: give the field it applies to.");
    delete parsed.values.field;
    delete parsed.values.value;
  }
  return parsed;
}

/**
 * What the operator typed as a value: JSON when it is JSON (42, true, null,
 * "42" for the string, ["a"]), otherwise the text itself (paid → "paid").
 */
export function filterValue(text: string): JsonValue {
  const parsed = parseStrictJson(text);
  return parsed.ok ? (parsed.value as JsonValue) : text;
}

/** `{"address": {"city": "Oslo"}}` for address.city = Oslo: the containment the GIN index answers. */
export function containmentFor(path: string, value: JsonValue): JsonObject {
  const keys = path.split(".");
  let node: JsonValue = value;
  for (let i = keys.length - 1; i >= 0; i--) node = { [keys[i]!]: node };
  return node as JsonObject;
}

/**
 * The smallest string above every string that starts with `prefix`, in code
 * point order (which is UTF-8 byte order, so COLLATE "C" order): the prefix
 * with its last code point incremented. Null when there is none (all U+10FFFF).
 */
export function prefixUpperBound(prefix: string): string | null {
  const points = [...prefix].map((c) => c.codePointAt(0)!);
  while (points.length > 0) {
    let last = points.pop()! + 1;
    if (last === 0xd800) last = 0xe000; // surrogates are not characters
    if (last <= 0x10ffff) return String.fromCodePoint(...points, last);
  }
  return null;
}

export interface RecordListRow {
  id: string;
  version: number;
  deleted: boolean;
  updatedBy: string;
  updatedAt: Date;
  /** The start of the data as JSON text. */
  preview: string;
}

export interface RecordListPage {
  rows: RecordListRow[];
  /** `after` for the next page, or null on the last one. */
  next: string | null;
  /** How the field filter was answered (for tests and the measurements in the README). */
  plan: "primary-key" | "window" | "gin";
}

const PREVIEW_CHARS = 160;

interface RawRow {
  id: string;
  version: number | string;
  deleted: boolean;
  updated_by: string;
  updated_at: Date | string;
  preview: string;
}

function toRow(r: RawRow): RecordListRow {
  return {
    id: r.id,
    version: Number(r.version),
    deleted: r.deleted,
    updatedBy: r.updated_by,
    updatedAt: new Date(r.updated_at),
    preview: r.preview,
  };
}

/** One page of a collection's records in id order (tombstones included, marked deleted). */
export async function listRecords(
  ctx: ReadContext,
  input: { collection: string; prefix?: string; field?: string; value?: string; after?: string },
  limit = RECORD_PAGE_SIZE,
): Promise<RecordListPage> {
  const upper = input.prefix ? prefixUpperBound(input.prefix) : null;
  const keyRange: (SQL | undefined)[] = [
    eq(records.collection, input.collection),
    input.prefix ? gte(records.id, input.prefix) : undefined,
    upper === null ? undefined : lt(records.id, upper),
    input.after === undefined ? undefined : gt(records.id, input.after),
  ];
  const preview = sql<string>`left(${records.data}::text, ${PREVIEW_CHARS})`;
  const finish = (rows: RecordListRow[], plan: RecordListPage["plan"]): RecordListPage => {
    const hasMore = rows.length > limit;
    const page = hasMore ? rows.slice(0, limit) : rows;
    return { rows: page, next: hasMore ? (page[page.length - 1]?.id ?? null) : null, plan };
  };
  const select = {
    id: records.id,
    version: records.version,
    deleted: records.deleted,
    updatedBy: records.updatedBy,
    updatedAt: records.updatedAt,
    preview,
  };

  if (input.field === undefined || input.value === undefined) {
    const rows = await ctx.db.select(select).from(records).where(and(...keyRange)).orderBy(asc(records.id)).limit(limit + 1);
    return finish(rows, "primary-key");
  }

  const containment = JSON.stringify(containmentFor(input.field, filterValue(input.value)));
  const want = limit + 1;

  /**
   * Matches among the next `size` rows of the key range after `from`, in
   * primary-key order, and whether those rows ran to the end of the range.
   * The outer LIMIT stops the scan as soon as `need` rows match, so a common
   * value reads a few dozen rows; only matches pay for the preview.
   */
  const scanWindow = async (from: string | undefined, size: number, need: number) => {
    const range = and(...keyRange, from === undefined ? undefined : gt(records.id, from));
    const found = rowsOf<RawRow>(
      await ctx.db.execute(sql`
        select id, version, deleted, updated_by, updated_at, left(data::text, ${PREVIEW_CHARS}) as preview from (
          select ${records.id} as id, ${records.version} as version, ${records.deleted} as deleted,
                 ${records.updatedBy} as updated_by, ${records.updatedAt} as updated_at, ${records.data} as data
          from ${records} where ${range}
          order by ${records.id} limit ${size}
        ) w where data @> ${containment}::jsonb order by id limit ${need}`),
    ).map(toRow);
    if (found.length >= need) return { found, ended: false, last: undefined };
    // Not enough: how far did the window reach, and did the range end inside it? (an index-only scan)
    const [reach] = rowsOf<{ n: number | string; last: string | null }>(
      await ctx.db.execute(sql`
        select count(*) as n, max(id) as last from (
          select ${records.id} as id from ${records} where ${range} order by ${records.id} limit ${size}
        ) k`),
    );
    return { found, ended: Number(reach?.n ?? size) < size, last: reach?.last ?? undefined };
  };

  const first = await scanWindow(input.after, FILTER_WINDOW, want);
  if (first.found.length >= want || first.ended) return finish(first.found, "window");

  // Some matches but not a page: the value is not rare (at least 1 in
  // FILTER_WINDOW / DENSE_HITS rows), so keep walking the primary key for about
  // twice the rows this density needs, rather than fetching every match
  // through the GIN index and sorting them.
  if (first.found.length >= DENSE_HITS && first.last !== undefined) {
    const need = want - first.found.length;
    const size = Math.min(MAX_SECOND_WINDOW, Math.ceil((2 * need * FILTER_WINDOW) / first.found.length));
    const second = await scanWindow(first.last, size, need);
    const rows = [...first.found, ...second.found];
    if (rows.length >= want || second.ended) return finish(rows, "window");
  }

  // A rare value: the GIN index (jsonb_path_ops) finds its few rows.
  const rows = await ctx.db
    .select(select)
    .from(records)
    .where(and(...keyRange, sql`${records.data} @> ${containment}::jsonb`))
    .orderBy(asc(records.id))
    .limit(limit + 1);
  return finish(rows, "gin");
}


import { sql, type SQL } from "drizzle-orm";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  compilePredicate,
  conditionToSql,
  parseCondition,
  printCondition,
  type Condition,
} from "@/lib/policy/condition";
import { conditionArbitraries, literalsOf } from "@/tests/helpers/conditions";
import { openTestDatabase } from "@/tests/helpers/db";

// A plain table, not TEMP: on Postgres the handle is a pool, and a temporary
// table is visible only to the connection that created it. The database is
// created for this file and dropped on close.
const TABLE = sql.raw("condition_sql_probe");

const PATHS: ReadonlyArray<readonly string[]> = [["a"], ["b"], ["a", "b"], ["a", "c"], ["b", "a"], ["a", "in"], ["__proto__"], ["toString"]];
const KEYS = ["a", "b", "c", "in", "__proto__", "toString"];

// Only text Postgres can store: no U+0000, no unpaired surrogates.
const STRINGS = ["", "a", "b", "A", "north", "r.b", "$&", "'", "\\", "'; drop table x; --", "😀", "\uE000", "\uFFFF", "\uD7FF", "é", "e\u0301", "\n", "\u0001", "\u{10FFFF}", "1", "ab", "a😀", "a\uFFFF"];
const NUMBERS = [0, -0, 1, -1, 2, 1.5, -3.5, 0.1, 0.2, 0.30000000000000004, 42, 1e21, -1e21, 1e-7, 5e-324, Number.MAX_VALUE, -Number.MAX_VALUE, 2 ** 53, 2 ** 53 + 2];

const storableChar = fc.oneof(
  fc.constantFrom("a", "b", "é", "😀", "\uE000", "\uFFFF", "'", "\\", "$", ".", " "),
  fc
    .integer({ min: 1, max: 0x10ffff })
    .filter((c) => c < 0xd800 || c > 0xdfff)
    .map((c) => String.fromCodePoint(c)),
);
const stringArb = fc.oneof(fc.constantFrom(...STRINGS), fc.string({ unit: storableChar, maxLength: 4 }));
const numberArb = fc.oneof(fc.constantFrom(...NUMBERS), fc.integer({ min: -3, max: 3 }), fc.double({ noNaN: true, noDefaultInfinity: true }));
const { condition: conditionArb } = conditionArbitraries({
  paths: PATHS,
  strings: stringArb,
  numbers: numberArb,
  maxExtraOperands: 1,
});

const { object: recordArb } = fc.letrec<{ value: unknown; object: Record<string, unknown> }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.oneof(stringArb, numberArb, fc.boolean(), fc.constant(null)),
    fc.array(tie("value"), { maxLength: 3 }),
    tie("object"),
  ),
  object: fc
    .uniqueArray(fc.tuple(fc.constantFrom(...KEYS), tie("value")), { selector: ([key]) => key, maxLength: 5 })
    .map((entries) => Object.fromEntries(entries)),
}));

describe(`conditionToSql agrees with compilePredicate (${process.env.DATABASE_URL ? "postgres" : "pglite"})`, () => {
  let handle: Awaited<ReturnType<typeof openTestDatabase>>;

  async function rows(query: SQL): Promise<unknown[]> {
    const result: unknown = await handle.db.execute(query);
    // postgres.js answers with an array, PGlite with { rows }.
    if (Array.isArray(result)) return result;
    if (typeof result === "object" && result !== null && "rows" in result && Array.isArray(result.rows)) return result.rows;
    throw new Error("unexpected result shape from db.execute");
  }

  async function load(texts: ReadonlyArray<string | null>): Promise<void> {
    await rows(sql`delete from ${TABLE}`);
    if (texts.length === 0) return;
    const values = texts.map((text, id) => sql`(${id}, ${text}::jsonb)`);
    await rows(sql`insert into ${TABLE} (id, data) values ${sql.join(values, sql`, `)}`);
  }

  async function matchingIds(ast: Condition): Promise<number[]> {
    const found = await rows(sql`select id from ${TABLE} where ${conditionToSql(ast, sql`data`)} order by id`);
    return found.map((row) => (typeof row === "object" && row !== null && "id" in row ? Number(row.id) : Number.NaN));
  }

  function expectedIds(ast: Condition, records: ReadonlyArray<Record<string, unknown>>): number[] {
    const predicate = compilePredicate(ast);
    return records.flatMap((record, id) => (predicate(record) ? [id] : []));
  }

  beforeAll(async () => {
    handle = await openTestDatabase();
    await rows(sql`create table ${TABLE} (id int primary key, data jsonb)`);
  });

  afterAll(async () => {
    await handle?.close();
  });

  it("on generated records and conditions", async () => {
    let hits = 0;
    let total = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(conditionArb(3), { minLength: 5, maxLength: 5 }).chain((conditions) => {
          // Seed records with the conditions' literals so equality and order tests hit.
          const own = conditions.flatMap(literalsOf);
          const seeded = own.length > 0 ? fc.constantFrom(...own) : fc.constant("a");
          const record = fc
            .uniqueArray(fc.tuple(fc.constantFrom(...KEYS), fc.oneof(seeded, seeded.map((v) => ({ b: v, c: v, in: v })), recordArb)), {
              selector: ([key]) => key,
              maxLength: 5,
            })
            .map((entries) => Object.fromEntries(entries));
          return fc.tuple(fc.constant(conditions), fc.array(fc.oneof(record, recordArb), { minLength: 50, maxLength: 50 }));
        }),
        async ([conditions, generated]) => {
          // What the database stores and hands back: JSON text (so -0 is 0).
          const texts = generated.map((record) => JSON.stringify(record));
          const records = texts.map((text) => JSON.parse(text) as Record<string, unknown>);
          await load(texts);
          for (const ast of conditions) {
            const expected = expectedIds(ast, records);
            const actual = await matchingIds(ast);
            hits += expected.length;
            total += records.length;
            if (JSON.stringify(actual) !== JSON.stringify(expected)) {
              const differing = records.filter((_, id) => actual.includes(id) !== expected.includes(id));
              throw new Error(`disagree on ${printCondition(ast)}\nrecords: ${JSON.stringify(differing.slice(0, 3))}`);
            }
          }
        },
      ),
      { numRuns: 200 },
    );
    expect(hits).toBeGreaterThan(0.15 * total);
    expect(hits).toBeLessThan(0.85 * total);
  });

  it("on hand-picked JSON the generators rarely produce", async () => {
    const texts: Array<string | null> = [
      null,
      "null",
      "[1, 2]",
      '"a"',
      "5",
      "{}",
      '{"a": null}',
      '{"a": 1}',
      '{"a": 1.0}',
      '{"a": 1.000}',
      '{"a": 1e0}',
      '{"a": -0}',
      '{"a": 0.1}',
      '{"a": 1e21}',
      '{"a": 5e-324}',
      '{"a": 1.7976931348623157e308}',
      '{"a": "1"}',
      '{"a": true}',
      '{"a": false}',
      '{"a": [1]}',
      '{"a": {"b": 1}}',
      '{"a": {"b": null}}',
      '{"a": {"b": "😀"}}',
      '{"a": [{"b": 1}]}',
      '{"a": "😀"}',
      '{"a": "\\uE000"}',
      '{"a": "\\uFFFF"}',
      '{"a": "a"}',
      '{"a": "B"}',
      '{"a": "é"}',
      '{"a": "e\\u0301"}',
      '{"a": ""}',
      '{"a": {"toString": 1, "valueOf": 2}}',
      '{"__proto__": 1, "toString": "x"}',
      '{"a": "1", "a": 2}',
    ];
    const conditions = [
      "a == 1",
      "a != 1",
      "a == '1'",
      "a == null",
      "a != null",
      "exists(a)",
      "not exists(a)",
      "a < 2",
      "a <= 1",
      "not a < 2",
      "a > 0.1",
      "a >= 5e-324",
      "a > 1e21",
      "a == 1.7976931348623157e308",
      "a == true",
      "a != false",
      "a < '\uE000'",
      "a > '\uE000'",
      "a >= '😀'",
      "a < 'é'",
      "a > 'e'",
      "a < ''",
      "a >= ''",
      "a.b == 1",
      "a.b == null",
      "exists(a.b)",
      "a.b > '\uFFFF'",
      "a in [1, '1', null]",
      "a not in [1, '1', null]",
      "a in []",
      "a not in []",
      "__proto__ == 1",
      "toString == 'x'",
      "toString == null",
      "a.toString == 1",
      "a == -0",
      "not (a == 1 or a == '1') and exists(a)",
    ];
    await load(texts);
    const records = texts.map((text) => (text === null ? {} : (JSON.parse(text) as Record<string, unknown>)));
    for (const text of conditions) {
      const parsed = parseCondition(text);
      if (!parsed.ok) throw new Error(`${text}: ${parsed.error.message}`);
      expect([text, await matchingIds(parsed.ast)]).toEqual([text, expectedIds(parsed.ast, records)]);
    }
  });
});

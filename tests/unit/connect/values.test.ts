import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  fromPostgresText,
  fromSqliteValue,
  postgresKind,
  sqliteKind,
  toPostgresText,
  toSqliteValue,
  UnmappableValue,
  type ColumnInfo,
  type ColumnKind,
} from "@/lib/connect/values";

const col = (kind: ColumnKind, sqlType: string = kind): ColumnInfo => ({ name: "c", kind, sqlType });

describe("column kinds", () => {
  it.each([
    ["text", "text"],
    ["character varying(20)", "text"],
    ["uuid", "text"],
    ["bigint", "integer"],
    ["double precision", "float"],
    ["numeric(12,2)", "decimal"],
    ["boolean", "boolean"],
    ["date", "date"],
    ["timestamp without time zone", "timestamp"],
    ["timestamp(3) with time zone", "timestamptz"],
    ["jsonb", "json"],
    ["bytea", "unsupported"],
    ["integer[]", "unsupported"],
  ])("PostgreSQL %s is %s", (type, kind) => expect(postgresKind(type)).toBe(kind));

  it.each([
    ["INTEGER", "integer"],
    ["VARCHAR(10)", "text"],
    ["", "text"],
    ["BOOLEAN", "boolean"],
    ["JSON", "json"],
    ["DATETIME", "timestamp"],
    ["DATE", "date"],
    ["REAL", "float"],
    ["DECIMAL(10,2)", "decimal"],
    ["BLOB", "unsupported"],
  ])("SQLite %s is %s", (type, kind) => expect(sqliteKind(type)).toBe(kind));
});

describe("PostgreSQL text forms", () => {
  it("reads numbers exactly: a decimal that a double cannot hold stays a string", () => {
    expect(fromPostgresText("12.50", col("decimal"))).toBe(12.5);
    expect(fromPostgresText("0.1", col("decimal"))).toBe(0.1);
    expect(fromPostgresText("12345678901234567890.12", col("decimal"))).toBe("12345678901234567890.12");
    expect(fromPostgresText("9007199254740993", col("integer"))).toBe("9007199254740993");
    expect(fromPostgresText("42", col("integer"))).toBe(42);
    expect(() => fromPostgresText("NaN", col("decimal"))).toThrow(UnmappableValue);
  });

  it("reads booleans, dates, timestamps (UTC) and JSON; NULL is an absent field", () => {
    expect(fromPostgresText("t", col("boolean"))).toBe(true);
    expect(fromPostgresText("f", col("boolean"))).toBe(false);
    expect(fromPostgresText("2026-03-04", col("date"))).toBe("2026-03-04");
    expect(fromPostgresText("2026-03-04 05:06:07.123456", col("timestamp"))).toBe("2026-03-04T05:06:07.123456");
    expect(fromPostgresText("2026-03-04 05:06:07+00", col("timestamptz"))).toBe("2026-03-04T05:06:07Z");
    expect(fromPostgresText('{"a": [1, 2]}', col("json"))).toEqual({ a: [1, 2] });
    expect(fromPostgresText(null, col("text"))).toBeUndefined();
    expect(() => fromPostgresText("\\x00", col("unsupported", "bytea"))).toThrow(/bytea/);
  });

  it("writes back the values it reads (property)", () => {
    const cases: [ColumnKind, fc.Arbitrary<string>][] = [
      ["integer", fc.bigInt({ min: -(2n ** 62n), max: 2n ** 62n }).map(String)],
      ["decimal", fc.tuple(fc.integer(), fc.nat(999_999)).map(([i, f]) => `${i}.${String(f).padStart(6, "0")}`)],
      ["boolean", fc.constantFrom("t", "f")],
      ["text", fc.string()],
    ];
    for (const [kind, texts] of cases) {
      fc.assert(
        fc.property(texts, (text) => {
          const value = fromPostgresText(text, col(kind));
          const back = toPostgresText(value, col(kind)) as string;
          // The database reads the text back as the same value.
          expect(fromPostgresText(kind === "boolean" ? (back === "true" ? "t" : "f") : back, col(kind))).toEqual(value);
        }),
      );
    }
  });

  it("refuses a JSON value that does not fit the column", () => {
    expect(() => toPostgresText({ a: 1 }, col("integer", "integer"))).toThrow(/object does not fit a integer column/);
    expect(() => toPostgresText("yes", col("boolean"))).toThrow(UnmappableValue);
    expect(() => toPostgresText(true, col("decimal"))).toThrow(UnmappableValue);
    expect(toPostgresText({ a: 1 }, col("json"))).toBe('{"a":1}');
    expect(toPostgresText(undefined, col("text"))).toBeNull();
  });
});

describe("SQLite values", () => {
  it("reads 0/1 as booleans, JSON text as JSON, and refuses blobs and bad JSON", () => {
    expect(fromSqliteValue(1, col("boolean"))).toBe(true);
    expect(fromSqliteValue('{"x":1}', col("json"))).toEqual({ x: 1 });
    expect(() => fromSqliteValue("{nope", col("json"))).toThrow(/not JSON/);
    expect(() => fromSqliteValue(Buffer.from([1]), col("text"))).toThrow(/BLOB/);
    expect(() => fromSqliteValue(2, col("boolean"))).toThrow(UnmappableValue);
    expect(fromSqliteValue(null, col("text"))).toBeUndefined();
  });

  it("writes booleans as 0/1 and JSON as text", () => {
    expect(toSqliteValue(true, col("boolean"))).toBe(1);
    expect(toSqliteValue([1, 2], col("json"))).toBe("[1,2]");
    expect(toSqliteValue(12.5, col("decimal"))).toBe(12.5);
    expect(() => toSqliteValue([1], col("text"))).toThrow(UnmappableValue);
  });
});

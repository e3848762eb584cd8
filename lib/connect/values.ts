import type { JsonValue } from "../sync/protocol";

/**
 * Column values ↔ JSON, the connector's type mapping (README, "Connect a
 * business system"). Pure: both engines hand their values over as the
 * adapters read them (PostgreSQL: every column as its text form; SQLite:
 * the stored value), and take back what these functions produce.
 *
 * | column | JSON |
 * | --- | --- |
 * | text, varchar, char, uuid | string |
 * | integer kinds | number (bigint beyond 2^53: string, exact) |
 * | real, double | number |
 * | numeric, decimal | number when it converts exactly, else string (exact) |
 * | boolean | true / false |
 * | date | "YYYY-MM-DD" |
 * | timestamp | "YYYY-MM-DDTHH:MM:SS[.ffffff]" (no zone) |
 * | timestamptz | "YYYY-MM-DDTHH:MM:SS[.ffffff]Z" (UTC) |
 * | json, jsonb | the object, array or value |
 * | NULL | the field is absent |
 *
 * Anything else (bytea, blobs, geometric types, …) cannot be mapped: the row
 * is reported with its id and column and left out, and the others go on.
 */
export type ColumnKind = "text" | "integer" | "float" | "decimal" | "boolean" | "date" | "timestamp" | "timestamptz" | "json" | "unsupported";

export interface ColumnInfo {
  name: string;
  kind: ColumnKind;
  /** The database's own type name (PostgreSQL: format_type; SQLite: the declared type). */
  sqlType: string;
}

/** Why a value cannot be mapped, naming what was found. */
export class UnmappableValue extends Error {}

/** The kind of a PostgreSQL column from its type name (format_type, or udt_name for arrays). */
export function postgresKind(type: string): ColumnKind {
  const t = type.toLowerCase();
  if (t.endsWith("[]")) return "unsupported";
  if (/^(text|character varying|varchar|character|char|bpchar|uuid|citext|name)\b/.test(t)) return "text";
  if (/^(smallint|integer|bigint|int2|int4|int8)$/.test(t)) return "integer";
  if (/^(real|double precision|float4|float8)$/.test(t)) return "float";
  if (/^(numeric|decimal)\b/.test(t)) return "decimal";
  if (t === "boolean") return "boolean";
  if (t === "date") return "date";
  if (/^timestamp\b.*with time zone$/.test(t)) return "timestamptz";
  if (/^timestamp\b/.test(t)) return "timestamp";
  if (t === "json" || t === "jsonb") return "json";
  return "unsupported";
}

/** The kind of a SQLite column from its declared type (the affinity rules, plus the names people use for booleans, dates and JSON). */
export function sqliteKind(declared: string): ColumnKind {
  const t = declared.toUpperCase();
  if (t.includes("BOOL")) return "boolean";
  if (t.includes("JSON")) return "json";
  if (t.includes("TIMESTAMP") || t.includes("DATETIME")) return "timestamp";
  if (t === "DATE") return "date";
  if (t.includes("INT")) return "integer";
  if (t.includes("CHAR") || t.includes("CLOB") || t.includes("TEXT") || t === "") return "text";
  if (t.includes("BLOB")) return "unsupported";
  if (t.includes("REAL") || t.includes("FLOA") || t.includes("DOUB")) return "float";
  return "decimal"; // NUMERIC affinity: DECIMAL, NUMERIC, …
}

/** A PostgreSQL column's text form as JSON (null: SQL NULL). */
export function fromPostgresText(text: string | null, column: ColumnInfo): JsonValue | undefined {
  if (text === null) return undefined;
  switch (column.kind) {
    case "text":
      return text;
    case "integer":
      return exactNumber(text);
    case "float": {
      const n = Number(text);
      if (!Number.isFinite(n)) throw new UnmappableValue(`${text} is not a finite number`);
      return n;
    }
    case "decimal":
      if (text === "NaN" || /Infinity/.test(text)) throw new UnmappableValue(`${text} is not a finite number`);
      return exactNumber(text);
    case "boolean":
      return text === "t" || text === "true";
    case "date":
      return text;
    case "timestamp":
      return text.replace(" ", "T");
    case "timestamptz":
      // The session runs in UTC with ISO dates: "2026-01-02 03:04:05.123456+00".
      return text.replace(" ", "T").replace(/\+00(:00)?$/, "Z");
    case "json":
      return JSON.parse(text) as JsonValue;
    case "unsupported":
      throw new UnmappableValue(`type ${column.sqlType} has no JSON form`);
  }
}

/** A SQLite value as JSON (null: SQL NULL). */
export function fromSqliteValue(value: unknown, column: ColumnInfo): JsonValue | undefined {
  if (value === null || value === undefined) return undefined;
  if (typeof value === "bigint") return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  if (value instanceof Uint8Array) throw new UnmappableValue(`a BLOB has no JSON form`);
  switch (column.kind) {
    case "boolean":
      if (value === 0 || value === 1) return value === 1;
      if (value === "true" || value === "false") return value === "true";
      throw new UnmappableValue(`${JSON.stringify(value)} is not a boolean (0 or 1)`);
    case "json": {
      if (typeof value !== "string") return value as JsonValue;
      try {
        return JSON.parse(value) as JsonValue;
      } catch {
        throw new UnmappableValue(`the text is not JSON`);
      }
    }
    case "unsupported":
      throw new UnmappableValue(`type ${column.sqlType} has no JSON form`);
    default:
      if (typeof value === "number" && !Number.isFinite(value)) throw new UnmappableValue(`${value} is not a finite number`);
      return value as JsonValue;
  }
}

/** A JSON value as the text PostgreSQL reads into the column (cast in the statement), or null. */
export function toPostgresText(value: JsonValue | undefined, column: ColumnInfo): string | null {
  if (value === undefined || value === null) return null;
  if (column.kind === "json") return JSON.stringify(value);
  if (column.kind === "unsupported") throw new UnmappableValue(`type ${column.sqlType} cannot be written from JSON`);
  if (typeof value === "object") throw new UnmappableValue(`a JSON ${Array.isArray(value) ? "array" : "object"} does not fit a ${column.sqlType} column`);
  if (column.kind === "boolean" && typeof value !== "boolean") throw new UnmappableValue(`${JSON.stringify(value)} is not a boolean`);
  if ((column.kind === "integer" || column.kind === "float" || column.kind === "decimal") && typeof value === "boolean") {
    throw new UnmappableValue(`${value} is not a number`);
  }
  return String(value);
}

/** A JSON value as SQLite stores it in the column, or null. */
export function toSqliteValue(value: JsonValue | undefined, column: ColumnInfo): string | number | null {
  if (value === undefined || value === null) return null;
  if (column.kind === "json") return JSON.stringify(value);
  if (column.kind === "unsupported") throw new UnmappableValue(`type ${column.sqlType} cannot be written from JSON`);
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "object") throw new UnmappableValue(`a JSON ${Array.isArray(value) ? "array" : "object"} does not fit a ${column.sqlType} column`);
  return value;
}

/** A decimal text as a number when the number prints back to the same value, else the exact text. */
function exactNumber(text: string): number | string {
  const n = Number(text);
  if (!Number.isFinite(n)) return text;
  return sameDecimal(String(n), text) ? n : text;
}

/** Whether two decimal texts denote the same value ("12.50" and "12.5", "-0" and "0"). */
function sameDecimal(a: string, b: string): boolean {
  const norm = (s: string) => {
    let [int = "", frac = ""] = s.replace(/^\+/, "").split(".");
    const negative = int.startsWith("-");
    int = int.replace(/^-/, "").replace(/^0+(?=\d)/, "");
    frac = frac.replace(/0+$/, "");
    const zero = /^0*$/.test(int) && frac === "";
    return `${negative && !zero ? "-" : ""}${int}${frac ? `.${frac}` : ""}`;
  };
  if (/e/i.test(a) || /e/i.test(b)) return Number(a) === Number(b) && !/e/i.test(b);
  return norm(a) === norm(b);
}

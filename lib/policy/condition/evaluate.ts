import type { Condition, FieldPath, Literal, OrderingOp } from "./ast";
import { compareCodePoints, lookupKey, lookupPath } from "./value";

export type RecordPredicate = (data: Record<string, unknown>) => boolean;

type Getter = (data: unknown) => unknown;

/**
 * Compiles a condition into a closure tree once, so evaluating a record is a
 * few direct calls with no dispatch on node kinds. Semantics: see ast.ts.
 */
export function compilePredicate(ast: Condition): RecordPredicate {
  return compile(ast);
}

function compile(ast: Condition): RecordPredicate {
  switch (ast.kind) {
    case "cmp": {
      const get = getter(ast.path);
      switch (ast.op) {
        case "==":
          return equals(get, ast.value);
        case "!=": {
          const eq = equals(get, ast.value);
          return (data) => !eq(data);
        }
        default:
          return ordering(get, ast.op, ast.value);
      }
    }
    case "in": {
      const test = membership(getter(ast.path), ast.values);
      return ast.negated ? (data) => !test(data) : test;
    }
    case "exists": {
      const get = getter(ast.path);
      return (data) => get(data) !== undefined;
    }
    case "not": {
      const inner = compile(ast.expr);
      return (data) => !inner(data);
    }
    case "and": {
      const parts = ast.operands.map(compile);
      const [a, b] = parts;
      if (parts.length === 2 && a && b) return (data) => a(data) && b(data);
      return (data) => parts.every((part) => part(data));
    }
    case "or": {
      const parts = ast.operands.map(compile);
      const [a, b] = parts;
      if (parts.length === 2 && a && b) return (data) => a(data) || b(data);
      return (data) => parts.some((part) => part(data));
    }
  }
}

function getter(path: FieldPath): Getter {
  const [k1, k2] = path;
  if (path.length === 1 && k1 !== undefined) return (data) => lookupKey(data, k1);
  if (path.length === 2 && k1 !== undefined && k2 !== undefined) return (data) => lookupKey(lookupKey(data, k1), k2);
  return (data) => lookupPath(data, path);
}

function equals(get: Getter, value: Literal): RecordPredicate {
  if (value === null) {
    return (data) => get(data) == null;
  }
  // A literal is a primitive, so `===` is already "same JSON type and equal";
  // for numbers it is numeric (and 0 === -0, as in jsonb).
  return (data) => get(data) === value;
}

function ordering(get: Getter, op: OrderingOp, value: string | number): RecordPredicate {
  if (typeof value === "number") {
    switch (op) {
      case "<":
        return (data) => {
          const v = get(data);
          return typeof v === "number" && v < value;
        };
      case "<=":
        return (data) => {
          const v = get(data);
          return typeof v === "number" && v <= value;
        };
      case ">":
        return (data) => {
          const v = get(data);
          return typeof v === "number" && v > value;
        };
      case ">=":
        return (data) => {
          const v = get(data);
          return typeof v === "number" && v >= value;
        };
    }
  }
  const accept = ORDER_ACCEPTS[op];
  return (data) => {
    const v = get(data);
    return typeof v === "string" && accept(compareCodePoints(v, value));
  };
}

const ORDER_ACCEPTS: Readonly<Record<OrderingOp, (order: number) => boolean>> = {
  "<": (order) => order < 0,
  "<=": (order) => order <= 0,
  ">": (order) => order > 0,
  ">=": (order) => order >= 0,
};

function membership(get: Getter, values: readonly Literal[]): RecordPredicate {
  const matchesNull = values.includes(null);
  // Set.has uses SameValueZero: for primitive literals that is `===`
  // (no literal is NaN), and an object or array value is never a member.
  const members = new Set<unknown>(values.filter((value) => value !== null));
  if (members.size === 0) return matchesNull ? (data) => get(data) == null : () => false;
  if (!matchesNull) return (data) => members.has(get(data));
  return (data) => {
    const v = get(data);
    return v == null || members.has(v);
  };
}

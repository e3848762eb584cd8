import { and, eq, sql } from "drizzle-orm";
import { rowsOf, type Database } from "../db/client";
import { records, type JsonObject } from "../db/schema";
import { ServiceError } from "../errors";
import { fieldsFor, scopeSql, type CompiledPolicy, type Scope } from "../policy/compile";
import type { FallbackStrategy, Strategy } from "../policy/document";
import { checkWrite } from "../sync/write-check";

/**
 * The policy simulator: what one system may do with one record under a
 * policy (the active one or a draft). Decisions come from Casbin, the
 * reference meaning of the policy; fields and the delete rule come from the
 * same compiled scopes and write check the sync path uses.
 */
export interface Decision {
  allowed: boolean;
  /** Why, in words an operator can check against the YAML. */
  reason: string;
}

export interface Simulation {
  system: string;
  collection: string;
  read: Decision;
  write: Decision;
  delete: Decision;
  /** "*" for every field, else the field names; empty when the record is not readable. */
  visibleFields: "*" | string[];
  writableFields: "*" | string[];
  conflict: { strategy: Strategy; fallback: FallbackStrategy | null; priority: number };
  /** Per field of the record: may the system read it, may it write it. */
  fields: { name: string; readable: boolean; writable: boolean }[];
}

export function simulateRecord(
  compiled: CompiledPolicy,
  input: { system: string; collection: string; record: JsonObject },
): Simulation {
  const { system, collection, record } = input;
  if (!compiled.hasSystem(system)) {
    throw new ServiceError("invalid_request", `This policy declares no system "${system}"; choose one of ${compiled.systemNames().join(", ")}.`);
  }
  if (!compiled.hasCollection(collection)) {
    throw new ServiceError(
      "invalid_request",
      `This policy declares no collection "${collection}"; choose one of ${compiled.collectionNames().join(", ")}.`,
    );
  }
  const readScope = compiled.scope(system, collection, "read");
  const writeScope = compiled.scope(system, collection, "write");

  const mayRead = compiled.decide(system, collection, "read", record);
  const mayWrite = compiled.decide(system, collection, "write", record);
  const readFields = mayRead ? fieldsFor(readScope, record) : null;
  const writeFields = mayWrite ? fieldsFor(writeScope, record) : null;
  const deletion = checkWrite(writeScope, record, null, []);

  const recordFields = Object.keys(record).sort();
  const has = (set: "*" | Set<string> | null, field: string) => set === "*" || (set !== null && set.has(field));
  const setting = compiled.conflict(system, collection);
  return {
    system,
    collection,
    read: {
      allowed: mayRead,
      reason: mayRead
        ? `covered by a read rule (${ranges(readScope, record)})`
        : readScope.grants.length === 0
          ? `no rule gives ${system} read access to ${collection}`
          : `outside every read range (${ranges(readScope)})`,
    },
    write: {
      allowed: mayWrite,
      reason: mayWrite
        ? `covered by a write rule (${ranges(writeScope, record)}); a change must keep the record in range`
        : writeScope.grants.length === 0
          ? `no rule gives ${system} write access to ${collection}`
          : `outside every write range (${ranges(writeScope)})`,
    },
    delete: {
      allowed: deletion.ok,
      reason: deletion.ok
        ? "a write rule covering this record allows every field"
        : mayWrite
          ? deletion.reason
          : `deleting is a write: ${writeScope.grants.length === 0 ? `no rule gives ${system} write access to ${collection}` : `the record is outside every write range (${ranges(writeScope)})`}`,
    },
    visibleFields: listFields(readFields),
    writableFields: listFields(writeFields),
    conflict: {
      strategy: setting.strategy,
      fallback: setting.strategy === "field-merge" ? setting.fallback : null,
      priority: compiled.priority(system),
    },
    fields: recordFields.map((name) => ({ name, readable: has(readFields, name), writable: has(writeFields, name) })),
  };
}

function listFields(fields: "*" | Set<string> | null): "*" | string[] {
  if (fields === "*") return "*";
  return fields === null ? [] : [...fields].sort();
}

/** The conditions of a scope's grants, only those covering `record` when given. */
function ranges(scope: Scope, record?: JsonObject): string {
  const grants = record ? scope.grants.filter((g) => g.covers(record)) : scope.grants;
  const texts = [...new Set(grants.map((g) => g.whereText ?? "all records"))];
  return texts.length === 1 ? `where ${texts[0]}` : texts.map((t) => `(${t})`).join(" or ");
}

/** A record of the hub by id, for the simulator; a deleted record is refused with a clear message. */
export async function loadRecordData(db: Database, collection: string, id: string): Promise<JsonObject> {
  const [row] = await db
    .select({ data: records.data, deleted: records.deleted })
    .from(records)
    .where(and(eq(records.collection, collection), eq(records.id, id)));
  if (!row) {
    throw new ServiceError("not_found", `There is no record "${id}" in collection "${collection}". Check the id, or paste the record as JSON.`);
  }
  if (row.deleted) {
    throw new ServiceError("not_found", `Record "${id}" in "${collection}" is deleted; paste its data as JSON to simulate it.`);
  }
  return row.data;
}

// ---------------------------------------------------------------------------
// Access impact of a draft

export interface AccessImpact {
  system: string;
  collection: string;
  /** Live records the system could read under the draft but not under the active policy. */
  gained: number;
  /** Live records it could read under the active policy but no longer under the draft. */
  lost: number;
}

/**
 * Per system and collection (of either policy), how many live records a
 * policy change adds to or removes from the system's read scope. Counts come
 * from the compiled SQL scopes of both policies, one scan per collection with
 * every system's two predicates side by side. It reads every live record
 * once (measured on 2 cores: 1,000,000 customers with 4 systems in 1.2-1.6 s
 * on Postgres, 200,000 in 0.3 s on PGlite), so the console runs it only on
 * request.
 */
export async function accessImpact(db: Database, before: CompiledPolicy, after: CompiledPolicy): Promise<AccessImpact[]> {
  const systems = union(before.systemNames(), after.systemNames());
  const collections = union(before.collectionNames(), after.collectionNames());
  const result: AccessImpact[] = [];
  for (const collection of collections) {
    const pairs = systems.map((system) => ({
      system,
      old: before.hasSystem(system) && before.hasCollection(collection) ? before.scope(system, collection, "read") : null,
      next: after.hasSystem(system) && after.hasCollection(collection) ? after.scope(system, collection, "read") : null,
    }));
    const columns = pairs.flatMap(({ old, next }, i) => {
      const o = old ? scopeSql(old, sql`r.data`) : sql`false`;
      const n = next ? scopeSql(next, sql`r.data`) : sql`false`;
      return [
        sql`count(*) filter (where (${n}) and not (${o})) as ${sql.identifier(`g${i}`)}`,
        sql`count(*) filter (where (${o}) and not (${n})) as ${sql.identifier(`l${i}`)}`,
      ];
    });
    if (columns.length === 0) continue;
    const [row] = rowsOf<Record<string, number | string>>(
      await db.execute(sql`select ${sql.join(columns, sql`, `)} from ${records} r where r.collection = ${collection} and not r.deleted`),
    );
    pairs.forEach(({ system }, i) => {
      result.push({ system, collection, gained: Number(row?.[`g${i}`] ?? 0), lost: Number(row?.[`l${i}`] ?? 0) });
    });
  }
  return result;
}

function union(a: string[], b: string[]): string[] {
  return [...new Set([...a, ...b])];
}

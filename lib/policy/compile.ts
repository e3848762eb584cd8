import { newEnforcer, newModelFromString, type Enforcer } from "casbin";
import { sql, type SQL } from "drizzle-orm";
import type { JsonObject } from "../db/schema";
import {
  casbinConditionFunctions,
  compilePredicate,
  conditionToCasbin,
  conditionToSql,
  type ConditionAst,
} from "./condition";
import type { FallbackStrategy, Strategy } from "./document";
import type { Policy, Right, Rule, SyncSchedule } from "./validate";

export type Action = "read" | "write";

/**
 * The Casbin model: a request asks whether subject `sub` may do `act` on field
 * `fld` (or on the record as a whole, when `fld` is "") of a record `rec` of
 * collection `col`. Groups and "*" are Casbin roles; conditions are ABAC
 * expressions over `r.rec`, evaluated by Casbin's `eval()`.
 */
export const CASBIN_MODEL = `
[request_definition]
r = sub, col, act, fld, rec

[policy_definition]
p = sub, col, act, fld, cond

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && r.col == p.col && r.act == p.act && (r.fld == "" || p.fld == "*" || p.fld == r.fld) && eval(p.cond)
`;

/** One rule's grant for one action, in fast form. */
export interface Grant {
  rule: Rule;
  /** The condition, or null for every record. */
  where: ConditionAst | null;
  whereText: string | null;
  /** In-process predicate: does the grant cover this record? */
  covers: (data: JsonObject) => boolean;
  fields: "*" | ReadonlySet<string>;
}

/** Everything one system may do with one collection under one action. */
export interface Scope {
  system: string;
  collection: string;
  action: Action;
  grants: readonly Grant[];
}

export interface ConflictSetting {
  strategy: Strategy;
  fallback: FallbackStrategy;
}

/**
 * A validated policy compiled for the sync path: per (system, collection,
 * action) the grants Casbin's role model gives, as predicates and SQL, plus the
 * enforcer itself for reference decisions (simulator, agreement tests).
 */
export class CompiledPolicy {
  private readonly scopes = new Map<string, Scope>();
  private readonly conflictSettings = new Map<string, ConflictSetting>();

  private constructor(
    readonly policy: Policy,
    readonly enforcer: Enforcer,
    readonly subjects: ReadonlyMap<string, readonly string[]>,
  ) {
    const predicates = new Map<ConditionAst, (data: JsonObject) => boolean>();
    const toGrant = (rule: Rule, right: Right): Grant => {
      let covers: (data: JsonObject) => boolean = () => true;
      if (right.where) {
        covers = predicates.get(right.where) ?? compilePredicate(right.where);
        predicates.set(right.where, covers);
      }
      return {
        rule,
        where: right.where,
        whereText: right.whereText,
        covers,
        fields: right.fields === "*" ? "*" : new Set(right.fields),
      };
    };
    // A grant depends on its rule alone: every system the rule reaches shares it.
    const grantsByRule = new Map<Rule, Partial<Record<Action, Grant>>>();
    const grantOf = (rule: Rule, action: Action): Grant | undefined => {
      const right = rule[action];
      if (!right) return undefined;
      let made = grantsByRule.get(rule);
      if (!made) grantsByRule.set(rule, (made = {}));
      return (made[action] ??= toGrant(rule, right));
    };
    // Rules by collection, so each system looks only at the rules of each
    // collection (a large policy would otherwise cost systems × collections ×
    // rules). Pairs no rule reaches keep no entry: scope() and conflict()
    // answer them with no grants and the collection's own strategy.
    const rulesByCollection = new Map<string, Rule[]>();
    for (const rule of policy.rules) {
      if (!Object.hasOwn(policy.collections, rule.collection)) continue;
      const list = rulesByCollection.get(rule.collection);
      if (list) list.push(rule);
      else rulesByCollection.set(rule.collection, [rule]);
    }
    for (const system of Object.keys(policy.systems)) {
      const who = new Set(subjects.get(system) ?? [system]);
      for (const [collection, collectionRules] of rulesByCollection) {
        const rules = collectionRules.filter((r) => who.has(r.who));
        if (rules.length === 0) continue;
        for (const action of ["read", "write"] as const) {
          const grants = rules.flatMap((rule) => {
            const grant = grantOf(rule, action);
            return grant ? [grant] : [];
          });
          this.scopes.set(key(system, collection, action), { system, collection, action, grants });
        }
        // A rule may override the strategy, the fallback, or both; validation
        // guarantees the rules reaching one system agree on each.
        const base = policy.collections[collection];
        if (base) {
          this.conflictSettings.set(key(system, collection), {
            strategy: rules.find((r) => r.conflict !== null)?.conflict ?? base.conflict,
            fallback: rules.find((r) => r.fallback !== null)?.fallback ?? base.fallback,
          });
        }
      }
    }
  }

  static async create(policy: Policy): Promise<CompiledPolicy> {
    const enforcer = await newEnforcer(newModelFromString(CASBIN_MODEL));
    for (const [name, fn] of Object.entries(casbinConditionFunctions)) {
      await enforcer.addFunction(name, fn);
    }
    const systems = Object.keys(policy.systems);
    for (const system of systems) await enforcer.addGroupingPolicy(system, "*");
    for (const [group, members] of Object.entries(policy.groups)) {
      for (const member of members) await enforcer.addGroupingPolicy(member, `group:${group}`);
    }
    const lines: string[][] = [];
    for (const rule of policy.rules) {
      for (const action of ["read", "write"] as const) {
        const right = rule[action];
        if (!right) continue;
        const cond = right.where ? conditionToCasbin(right.where) : "true";
        for (const field of right.fields === "*" ? ["*"] : right.fields) {
          lines.push([rule.who, rule.collection, action, field, cond]);
        }
      }
    }
    if (lines.length > 0) await enforcer.addPolicies(lines);

    // Which rule subjects reach each system is Casbin's RBAC answer.
    const subjects = new Map<string, string[]>();
    for (const system of systems) {
      const roles = await enforcer.getImplicitRolesForUser(system);
      subjects.set(system, [system, ...roles]);
    }
    return new CompiledPolicy(policy, enforcer, subjects);
  }

  hasSystem(system: string): boolean {
    return Object.hasOwn(this.policy.systems, system);
  }

  hasCollection(collection: string): boolean {
    return Object.hasOwn(this.policy.collections, collection);
  }

  systemNames(): string[] {
    return Object.keys(this.policy.systems);
  }

  collectionNames(): string[] {
    return Object.keys(this.policy.collections);
  }

  scope(system: string, collection: string, action: Action): Scope {
    return (
      this.scopes.get(key(system, collection, action)) ?? { system, collection, action, grants: [] }
    );
  }

  conflict(system: string, collection: string): ConflictSetting {
    const set = this.conflictSettings.get(key(system, collection));
    if (set) return set;
    const base = Object.hasOwn(this.policy.collections, collection) ? this.policy.collections[collection] : undefined;
    return base ? { strategy: base.conflict, fallback: base.fallback } : { strategy: "server-wins", fallback: "manual" };
  }

  priority(system: string): number {
    return this.policy.systems[system]?.priority ?? 0;
  }

  sync(system: string): SyncSchedule {
    return this.policy.sync.systems[system] ?? this.policy.sync.default;
  }

  /**
   * Casbin's own answer, one enforce() per question: the reference meaning of
   * the policy. Too slow for the sync path (see the README); the compiled
   * scopes must agree with it, and tests check that they do.
   */
  decide(system: string, collection: string, action: Action, record: JsonObject, field = ""): boolean {
    return this.enforcer.enforceSync(system, collection, action, field, record);
  }
}

function key(...parts: string[]): string {
  return parts.join("\u0000");
}

// ---------------------------------------------------------------------------
// Fast decisions over a compiled scope

/** Whether any grant of the scope covers the record. */
export function covers(scope: Scope, data: JsonObject): boolean {
  return scope.grants.some((g) => g.covers(data));
}

/**
 * The fields the scope exposes or allows for this record: the union of the
 * fields of every grant that covers it; "*" for all, null when none covers it.
 */
export function fieldsFor(scope: Scope, data: JsonObject): "*" | Set<string> | null {
  let result: Set<string> | null = null;
  for (const grant of scope.grants) {
    if (!grant.covers(data)) continue;
    if (grant.fields === "*") return "*";
    result ??= new Set();
    for (const f of grant.fields) result.add(f);
  }
  return result;
}

/** Whether every grant exposes every field (so no projection is ever needed). */
export function allFields(scope: Scope): boolean {
  return scope.grants.every((g) => g.fields === "*");
}

/**
 * The scope's row filter as a parameterised SQL predicate over `dataColumn`:
 * the OR of its grants' conditions; `false` for an empty scope.
 */
export function scopeSql(scope: Scope, dataColumn: SQL): SQL {
  if (scope.grants.length === 0) return sql`false`;
  if (scope.grants.some((g) => g.where === null)) return sql`true`;
  const parts = scope.grants.map((g) => sql`(${conditionToSql(g.where as ConditionAst, dataColumn)})`);
  return sql`(${sql.join(parts, sql` or `)})`;
}

/** A scope in the shape of protocol.md's /config: combined condition and fields. */
export function describeScope(scope: Scope): { where: string; fields: string[] } | null {
  if (scope.grants.length === 0) return null;
  const whereAll = scope.grants.some((g) => g.whereText === null);
  const texts = [...new Set(scope.grants.map((g) => g.whereText).filter((t): t is string => t !== null))];
  const where = whereAll ? "all" : texts.length === 1 ? (texts[0] as string) : texts.map((t) => `(${t})`).join(" or ");
  const fields = scope.grants.some((g) => g.fields === "*")
    ? ["*"]
    : [...new Set(scope.grants.flatMap((g) => [...(g.fields as ReadonlySet<string>)]))].sort();
  return { where, fields };
}

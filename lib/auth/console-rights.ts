import { newEnforcer, newModelFromString, type Enforcer } from "casbin";

/**
 * What operators may do in the console and the admin API, decided by Casbin
 * like the rest of the product's rights. Roles are fixed: `admin` changes
 * things, `viewer` reads. Every page, server action and admin route asks
 * `operatorMay(role, area, action)` on the server.
 */
export const OPERATOR_ROLES = ["admin", "viewer"] as const;
export type OperatorRole = (typeof OPERATOR_ROLES)[number];

/** The parts of the hub an operator acts on. */
export const CONSOLE_AREAS = [
  "overview",
  "systems",
  "keys",
  "bundles",
  "policy",
  "conflicts",
  "records",
  "audit",
  "operators",
] as const;
export type ConsoleArea = (typeof CONSOLE_AREAS)[number];
export type ConsoleAction = "read" | "write";

const MODEL = `
[request_definition]
r = sub, obj, act

[policy_definition]
p = sub, obj, act

[role_definition]
g = _, _

[policy_effect]
e = some(where (p.eft == allow))

[matchers]
m = g(r.sub, p.sub) && (p.obj == "*" || r.obj == p.obj) && r.act == p.act
`;

/** Role grants: a viewer reads everything; an admin also writes. */
const GRANTS: readonly (readonly [string, string, ConsoleAction])[] = [
  ["role:viewer", "*", "read"],
  ["role:admin", "*", "write"],
];
const INHERITS: readonly (readonly [string, string])[] = [
  ["admin", "role:admin"],
  ["admin", "role:viewer"],
  ["viewer", "role:viewer"],
];

let enforcer: Promise<Enforcer> | undefined;

function consoleEnforcer(): Promise<Enforcer> {
  enforcer ??= (async () => {
    const e = await newEnforcer(newModelFromString(MODEL));
    for (const grant of GRANTS) await e.addPolicy(...grant);
    for (const [role, group] of INHERITS) await e.addGroupingPolicy(role, group);
    return e;
  })();
  return enforcer;
}

export function isOperatorRole(value: string): value is OperatorRole {
  return (OPERATOR_ROLES as readonly string[]).includes(value);
}

/** Whether an operator with this role may do `action` on `area`. Unknown roles may do nothing. */
export async function operatorMay(role: string, area: ConsoleArea, action: ConsoleAction): Promise<boolean> {
  if (!isOperatorRole(role)) return false;
  return (await consoleEnforcer()).enforceSync(role, area, action);
}

import { createHash, randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ERROR_CODES } from "@/lib/errors";
import { activatePolicy } from "@/lib/policy/store";
import { FORMAT, sealBundle } from "@/lib/sync/bundle-format";
import { fingerprint, type Fingerprint } from "@/tests/helpers/fingerprint";
import { startTestHub, TEST_ADMIN_TOKEN, type TestHub } from "@/tests/helpers/hub";
import { keysFor, pushOne } from "@/tests/helpers/sync";

/**
 * Every public route handler (app/api/**\/route.ts, every exported method)
 * gets hostile input: raw bytes (invalid UTF-8), truncated JSON, huge and
 * tiny numbers, deep nesting, duplicate keys, U+0000 and lone surrogates,
 * wrong types, extra fields, odd path segments and query strings — with a
 * valid system key or admin token, so the input gets past authentication.
 * Whatever comes in: never 5xx; X-Request-Id on every answer; the error
 * envelope (with the same requestId) on every non-2xx; and a refused request
 * changes nothing in the database (tests/helpers/fingerprint.ts).
 */

const RUNS = Number(process.env.FUZZ_RUNS ?? 30);
const example = readFileSync("policies/example.yaml", "utf8");

type Handler = (request: Request, args: { params: Promise<Record<string, string>> }) => Promise<Response>;

interface Route {
  /** e.g. /api/v1/collections/[collection]/push */
  pattern: string;
  method: string;
  handler: Handler;
  segments: string[];
}

const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"] as const;

function routeFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return routeFiles(full);
    return entry.name === "route.ts" ? [full] : [];
  });
}

async function loadRoutes(): Promise<Route[]> {
  const routes: Route[] = [];
  for (const file of routeFiles("app/api").sort()) {
    const pattern = "/" + path.dirname(file).split(path.sep).slice(1).join("/");
    const mod = (await import(path.resolve(file))) as Record<string, unknown>;
    for (const method of METHODS) {
      const handler = mod[method];
      if (typeof handler === "function") {
        routes.push({ pattern: `/${pattern.slice(1)}`, method, handler: handler as Handler, segments: [...pattern.matchAll(/\[(\w+)\]/g)].map((m) => m[1] as string) });
      }
    }
  }
  return routes;
}

let t: TestHub;
let keys: Record<string, string>;
let routes: Route[];
let conflictId = 1;
const seeded = { order: "fuzz-order", bundleId: randomUUID() };
const sealedBundles: string[] = [];

beforeAll(async () => {
  t = await startTestHub();
  keys = await keysFor(t.hub.db, "webshop", "billing", "warehouse");
  routes = await loadRoutes();
  // Something for the routes to find: a record with two versions, a pending conflict, an applied bundle.
  const order = { customer_id: "c1", items: ["A"], total: 40, status: "new", shipping_address: "Main St 1" };
  await pushOne(keys.webshop as string, "orders", { id: seeded.order, baseVersion: null, data: order });
  await pushOne(keys.billing as string, "orders", { id: seeded.order, baseVersion: 1, patch: { status: "paid", paid_at: "2026-11-25" } });
  await pushOne(keys.billing as string, "orders", { id: seeded.order, baseVersion: 2, patch: { paid_at: "2026-11-26" } });
  const held = await pushOne(keys.warehouse as string, "orders", { id: seeded.order, baseVersion: 2, patch: { status: "packed" } });
  conflictId = held.conflict?.id ?? 1;
  for (let i = 0; i < 3; i++) sealedBundles.push(await bundle(i === 0 ? seeded.bundleId : randomUUID(), i));
});
afterAll(async () => {
  await t.close();
});

const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

async function bundle(bundleId: string, i: number): Promise<string> {
  return JSON.stringify(
    await sealBundle(
      {
        format: FORMAT,
        bundleId,
        system: "webshop",
        createdAt: new Date().toISOString(),
        policyVersion: 1,
        checkpoints: { orders: null },
        changes: { orders: [{ changeId: randomUUID(), id: `fuzz-bundle-${i}`, baseVersion: null, data: { status: "new", total: i } }] },
      },
      sha256,
    ),
  );
}

// ---------------------------------------------------------------------------
// Hostile input

const nest = (levels: number, open: string, close: string, leaf = "1") => open.repeat(levels) + leaf + close.repeat(levels);

const badNumbers = fc.constantFrom("1e400", "-1e400", "1e-400", "9007199254740993", "123456789012345678901234567890", "-0", "1E+308", "0.0000001e-330");
const badStrings = fc.constantFrom('"\\u0000"', '"a\\ud800b"', '"\\udfff"', '"\u0000"', '"\ud800"', '""', '"' + "x".repeat(5000) + '"');
const anyJson = fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null");

/** A body the route would accept, as a starting point for mutations. */
/** Text a record may not hold, and ordinary text. */
const recordText = fc.oneof(
  { weight: 3, arbitrary: fc.string({ maxLength: 12 }) },
  { weight: 1, arbitrary: fc.constantFrom("a\u0000b", "\u0000", "x\ud800", "\udc00y", "😀") },
);

/** A record of the web shop's orders: usually fine, with odd keys, values and nesting mixed in. */
const record = fc
  .tuple(
    fc.constantFrom("new", "paid"),
    fc.dictionary(recordText, fc.oneof(recordText, fc.jsonValue({ maxDepth: 2 })), { maxKeys: 3 }),
    fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 60, max: 70 }) }),
  )
  .map(([status, extra, depth]) => {
    let deep: unknown = 1;
    for (let i = 0; i < depth; i++) deep = { a: deep };
    return { status, ...extra, ...(depth > 0 ? { deep } : {}) };
  });

function seedBodies(route: Route): fc.Arbitrary<string> {
  if (route.pattern.endsWith("/push")) {
    return fc
      .array(fc.record({ id: fc.constantFrom("fz-1", "fz-2", seeded.order), baseVersion: fc.constantFrom(null, 1, 2, 3), data: record }), { minLength: 1, maxLength: 3 })
      .map((changes) => JSON.stringify({ changes: changes.map((c) => ({ changeId: randomUUID(), ...c })) }));
  }
  if (route.pattern.endsWith("/bundles")) return fc.constantFrom(...sealedBundles);
  if (route.pattern.endsWith("/resolve")) {
    return fc.oneof(
      fc.constant(JSON.stringify({ resolution: "server" })),
      record.map((data) => JSON.stringify({ resolution: "custom", data, expectedVersion: 3 })),
    );
  }
  if (route.pattern.endsWith("/restore")) return fc.integer({ min: -2, max: 5 }).map((version) => JSON.stringify({ version }));
  if (route.pattern.endsWith("/rollback")) return fc.integer({ min: 0, max: 3 }).map((version) => JSON.stringify({ version, comment: "fuzz" }));
  if (route.pattern === "/api/admin/policy") return fc.constant(example);
  return anyJson;
}

/** Replaces the n-th JSON value-ish token (a number, string, true/false/null) of the text. */
function replaceToken(text: string, n: number, replacement: string): string {
  const tokens = [...text.matchAll(/"(?:[^"\\]|\\.)*"(?!\s*:)|-?\d[\d.eE+-]*|true|false|null/g)];
  if (tokens.length === 0) return replacement;
  const m = tokens[n % tokens.length] as RegExpMatchArray;
  return text.slice(0, m.index) + replacement + text.slice((m.index ?? 0) + m[0].length);
}

function hostileBodies(route: Route): fc.Arbitrary<string | Uint8Array> {
  const seed = seedBodies(route);
  return fc.oneof(
    seed,
    fc.uint8Array({ maxLength: 300 }),
    seed.map((s) => Uint8Array.from([...Buffer.from(s.slice(0, 200), "utf8"), 0xff, 0xc3])),
    fc.tuple(seed, fc.nat()).map(([s, n]) => s.slice(0, n % Math.max(1, s.length))),
    fc.tuple(seed, fc.nat(), badNumbers).map(([s, n, bad]) => replaceToken(s, n, bad)),
    fc.tuple(seed, fc.nat(), badStrings).map(([s, n, bad]) => replaceToken(s, n, bad)),
    fc.tuple(seed, fc.nat(), anyJson).map(([s, n, value]) => replaceToken(s, n, value)),
    // A duplicate of the first key, with another value.
    fc.tuple(seed, anyJson).map(([s, value]) => s.replace(/^\{\s*("(?:[^"\\]|\\.)*")\s*:/, (_m, k: string) => `{${k}: ${value}, ${k}:`)),
    // An extra field.
    fc.tuple(seed, fc.string({ maxLength: 8 }), anyJson).map(([s, k, v]) => s.replace(/^\{/, `{${JSON.stringify(k)}: ${v},`)),
    fc.integer({ min: 60, max: 100_000 }).map((n) => nest(n, "[", "]")),
    fc.integer({ min: 60, max: 2_000 }).map((n) => nest(n, '{"a":', "}")),
    fc.string({ unit: "binary", maxLength: 100 }),
    anyJson,
  );
}

const oddText = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.constantFrom("", "\u0000", "\ud800", "a\u0000b", "..", "../../etc", "%00", "9007199254740993", "1e400", "-1", "0", "s1", "x".repeat(300)),
);

/** A path segment: usually a good one, so the body and query are reached; sometimes anything. */
function segmentValue(name: string): fc.Arbitrary<string> {
  const good: Record<string, string[]> = {
    collection: ["orders", "customers", "products"],
    id: [seeded.order, "fz-1"],
    system: ["webshop", "crm"],
    prefix: ["0123456789ab"],
    bundleId: [seeded.bundleId],
    version: ["1", "2"],
  };
  return fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...(good[name] ?? ["x"])) }, { weight: 1, arbitrary: oddText });
}

const queryNames = ["since", "limit", "after", "before", "status", "collection", "system", "strategy", "until", "bundleId", "dryRun", "comment", "x"];

/** A raw query string: names and values percent-encoded byte by byte (so %00 and invalid UTF-8 arrive as sent). */
const queryStrings = fc
  .array(
    fc.tuple(
      fc.oneof(fc.constantFrom(...queryNames), fc.string({ maxLength: 5 })),
      fc.oneof(oddText.map((s) => Buffer.from(s, "utf8")), fc.uint8Array({ maxLength: 12 }).map((b) => Buffer.from(b))),
    ),
    { maxLength: 3 },
  )
  .map((pairs) =>
    pairs.map(([name, value]) => `${encodeURIComponent(name.replace(/[\ud800-\udfff]/g, ""))}=${[...value].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("")}`).join("&"),
  );

/** Mostly no query string, so that the body is reached. */
const queries = fc.oneof({ weight: 2, arbitrary: fc.constant("") }, { weight: 1, arbitrary: queryStrings });

function tokenFor(route: Route): string {
  return route.pattern.startsWith("/api/v1/") ? (keys.webshop as string) : TEST_ADMIN_TOKEN;
}

// ---------------------------------------------------------------------------

async function send(route: Route, params: Record<string, string>, query: string, body: string | Uint8Array | undefined): Promise<Response> {
  const abort = new AbortController();
  const url = `http://localhost${route.pattern.replace(/\[(\w+)\]/g, (_m, name: string) => encodeURIComponent((params[name] ?? "").replace(/[\ud800-\udfff]/g, "")))}${query ? `?${query}` : ""}`;
  const request = new Request(url, {
    method: route.method,
    headers: { authorization: `Bearer ${tokenFor(route)}`, "content-type": "application/json" },
    body: route.method === "GET" || body === undefined ? undefined : typeof body === "string" ? body : Uint8Array.from(body),
    signal: abort.signal,
  });
  const response = await route.handler(request, { params: Promise.resolve(params) });
  if (response.headers.get("content-type")?.startsWith("text/event-stream")) {
    // The event stream stays open: this test only needs its status.
    abort.abort();
    await response.body?.cancel().catch(() => undefined);
  }
  return response;
}

let last: Fingerprint | undefined;

async function check(route: Route, response: Response): Promise<void> {
  const where = `${route.method} ${route.pattern}`;
  expect(response.status, where).toBeLessThan(500);
  const requestId = response.headers.get("x-request-id");
  expect(requestId, `${where}: X-Request-Id`).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  if (response.ok) {
    await response.body?.cancel().catch(() => undefined);
    last = await fingerprint(t.hub.db);
    return;
  }
  const body = (await response.json()) as { error?: { code?: unknown; message?: unknown; requestId?: unknown } };
  expect(ERROR_CODES as readonly unknown[], where).toContain(body.error?.code);
  expect(typeof body.error?.message === "string" && body.error.message.length > 10, `${where}: message`).toBe(true);
  expect(body.error?.requestId, `${where}: requestId`).toBe(requestId);
  // A refused request changes nothing.
  expect(await fingerprint(t.hub.db), `${where} answered ${response.status} and must not have written`).toEqual(last);
}

describe("every public route handler, under hostile input", () => {
  it("enumerates the routes", () => {
    const names = routes.map((r) => `${r.method} ${r.pattern}`);
    expect(names).toEqual(expect.arrayContaining(["POST /api/v1/collections/[collection]/push", "GET /api/health", "POST /api/console/systems/[system]/bundles"]));
    expect(routes.length).toBe(routeFiles("app/api").length + 3); // three files export two methods
  });

  it("never 5xx, always X-Request-Id, the envelope on refusals, nothing written by a refused request", async () => {
    last = await fingerprint(t.hub.db);
    // The policy route last: an accepted policy changes what every other route answers.
    const ordered = [...routes].sort((a, b) => Number(a.pattern === "/api/admin/policy") - Number(b.pattern === "/api/admin/policy"));
    for (const route of ordered) {
      const params = fc.record(Object.fromEntries(route.segments.map((s) => [s, segmentValue(s)])) as Record<string, fc.Arbitrary<string>>);
      await fc.assert(
        fc.asyncProperty(params, queries, hostileBodies(route), async (p, query, body) => {
          const resolved = { ...p, ...(route.segments.includes("id") && route.pattern.includes("conflicts") && p.id === seeded.order ? { id: String(conflictId) } : {}) };
          await check(route, await send(route, resolved, query, body));
        }),
        { numRuns: RUNS },
      );
    }
    await activatePolicy(t.hub.db, { yaml: example, actor: "test", source: "api", comment: null });
  });
});

import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as bundlesRoute from "@/app/api/v1/bundles/route";
import * as changesRoute from "@/app/api/v1/collections/[collection]/changes/route";
import * as manifestRoute from "@/app/api/v1/collections/[collection]/manifest/route";
import * as pushRoute from "@/app/api/v1/collections/[collection]/push/route";
import * as configRoute from "@/app/api/v1/config/route";
import * as eventsRoute from "@/app/api/v1/events/route";
import { issueApiKey } from "@/lib/auth/api-keys";
import { setDatabase, type DatabaseHandle } from "@/lib/db";
import type { JsonObject } from "@/lib/db/schema";
import { resetEnvCache } from "@/lib/env";
import { getHub } from "@/lib/hub";
import { compilePredicate, type Condition } from "@/lib/policy/condition";
import { covers, fieldsFor, type CompiledPolicy } from "@/lib/policy/compile";
import { compilePolicy } from "@/lib/policy";
import { activatePolicy } from "@/lib/policy/store";
import { FORMAT, sealBundle } from "@/lib/sync/bundle-format";
import { sha256Hex } from "@/lib/sync/bundles";
import { stopEventBus } from "@/lib/sync/events-bus";
import { validatePolicy } from "@/lib/policy/validate";
import { openTestDatabase } from "@/tests/helpers/db";
import { TEST_ADMIN_TOKEN } from "@/tests/helpers/hub";
import { writeRecord } from "@/tests/helpers/records";

/**
 * Noninterference (protocol.md, "Information flow"): two databases that
 * differ only in what system S may not read give S the same answers, on every
 * route S can call.
 *
 * Each run generates a policy (S's read and write rules, its conflict
 * strategy, and a second policy it switches to midway), a world built by two
 * other systems' writes, and a second world that differs from the first only
 * outside S's read scope under both policies:
 *
 * - a version S can read (under either policy) keeps its version number,
 *   writer, time and every field S can read; the fields it cannot read get
 *   other values, as long as every condition of both policies tests the same
 *   (what the policy lets S learn: that a record is in its scope);
 * - a version S cannot read under either policy gets other data it cannot
 *   read either — records that are never in scope differ freely, in content
 *   and in their number of versions;
 * - the second world has extra records S can never read, written in between
 *   (so every global sequence number differs between the worlds).
 *
 * Then S sends the same generated requests to both: pushes (to records it
 * can read, to hidden ids, to new ids; stale, current and future base
 * versions; data that guesses hidden values, patches, deletes; re-sent and
 * reused changeIds), pulls and manifest pages, bundles and their stored
 * responses, /config, interleaved with the other systems' writes and a policy
 * change. Every answer — status, X-Policy-Version and body — must be
 * identical, and so must the set of collections its event stream is told
 * about after each step. Checkpoints are sealed with a random IV, so each is
 * compared by position (the n-th checkpoint S received) and then used in
 * later requests of its own world.
 *
 * The one thing S may learn about a record outside its scope is that its id
 * is taken (by trying to create it); the worlds keep the same hidden ids, and
 * a separate test shows that this is all a create reveals.
 */

const FIELDS = ["k", "n", "x", "y", "z"] as const;
type Field = (typeof FIELDS)[number];
const DOMAIN: Record<Field, readonly (string | number | boolean)[]> = {
  k: ["a", "b"],
  n: [0, 1, 2, 3],
  x: [0, 1],
  y: ["p", "q"],
  z: [true, false],
};
const STRATEGIES = ["server-wins", "client-wins", "last-writer-wins", "priority", "field-merge", "manual"] as const;
const FALLBACKS = ["server-wins", "client-wins", "last-writer-wins", "priority", "manual"] as const;
const VISIBLE_IDS = ["r0", "r1", "r2", "r3"];
const HIDDEN_IDS = ["h0", "h1"];
const TARGET_IDS = [...VISIBLE_IDS, ...HIDDEN_IDS, "n0", "n1"];
// NONINTERFERENCE_RUNS=n runs more (or fewer); NONINTERFERENCE_REASONS=1 also tallies the reasons given;
// NI_SEED and NI_PATH replay one failing case (the seed and path fast-check prints).
const NUM_RUNS = Number(process.env.NONINTERFERENCE_RUNS ?? 40);

// ---------------------------------------------------------------------------
// Generators

const dataArb: fc.Arbitrary<JsonObject> = fc.record(
  Object.fromEntries(FIELDS.map((f) => [f, fc.constantFrom(...DOMAIN[f])])) as Record<Field, fc.Arbitrary<string | number | boolean>>,
  { requiredKeys: [], noNullPrototype: true },
) as fc.Arbitrary<JsonObject>;

const ATOMS: Record<Field, readonly string[]> = {
  k: ["k == 'a'", "k != 'b'", "k in ['a']"],
  n: ["n > 1", "n <= 2", "n == 0"],
  x: ["x == 1", "exists(x)"],
  y: ["y == 'p'", "exists(y)"],
  z: ["z == true", "z != false"],
};

/** A condition over the given fields: an atom, or and/or/not of smaller ones. */
function conditionArb(fields: readonly Field[]): fc.Arbitrary<string> {
  const atom = fc.constantFrom(...fields.flatMap((f) => ATOMS[f]));
  return fc.oneof(
    { weight: 3, arbitrary: atom },
    { weight: 1, arbitrary: fc.tuple(atom, atom).map(([a, b]) => `(${a}) and (${b})`) },
    { weight: 1, arbitrary: fc.tuple(atom, atom).map(([a, b]) => `(${a}) or (${b})`) },
    { weight: 1, arbitrary: atom.map((a) => `not (${a})`) },
  );
}

const fieldListArb = fc.oneof(
  { weight: 2, arbitrary: fc.constant<"*">("*") },
  { weight: 3, arbitrary: fc.subarray([...FIELDS], { minLength: 1 }) },
);

interface Grant {
  where: string | null;
  fields: "*" | Field[];
}

interface SPolicy {
  reads: Grant[];
  write: Grant | null;
  strategy: (typeof STRATEGIES)[number];
  fallback: (typeof FALLBACKS)[number];
  priority: number;
}

const readGrantArb: fc.Arbitrary<Grant> = fc.record({ where: fc.option(conditionArb(FIELDS), { nil: null, freq: 2 }), fields: fieldListArb });

/** S's rules; a write condition tests only fields S can read in every record it can read (policy validation requires it). */
const sPolicyArb: fc.Arbitrary<SPolicy> = fc
  .array(readGrantArb, { minLength: 0, maxLength: 2 })
  .chain((reads) => {
    const common = reads.reduce<"*" | Field[]>(
      (acc, g) => (g.fields === "*" ? acc : acc === "*" ? g.fields : acc.filter((f) => (g.fields as Field[]).includes(f))),
      "*",
    );
    const testable: readonly Field[] = reads.length === 0 || common === "*" ? FIELDS : common;
    const writeArb: fc.Arbitrary<Grant> = fc.record({
      where: testable.length === 0 ? fc.constant(null) : fc.option(conditionArb(testable), { nil: null, freq: 2 }),
      fields: fc.oneof({ weight: 3, arbitrary: fc.constant<"*">("*") }, { weight: 2, arbitrary: fc.subarray([...FIELDS], { minLength: 1 }) }),
    });
    return fc.record({
      reads: fc.constant(reads),
      write: fc.option(writeArb, { nil: null, freq: 4 }),
      strategy: fc.constantFrom(...STRATEGIES),
      fallback: fc.constantFrom(...FALLBACKS),
      priority: fc.constantFrom(0, 10, 20),
    });
  })
  .filter((p) => p.reads.length > 0 || p.write !== null);

interface WorldOp {
  id: string;
  by: "w" | "v";
  /** null: a delete. */
  data: JsonObject | null;
}

const worldOpArb = (ids: readonly string[]): fc.Arbitrary<WorldOp> =>
  fc.record({
    id: fc.constantFrom(...ids),
    by: fc.constantFrom("w" as const, "v" as const),
    data: fc.oneof({ weight: 6, arbitrary: dataArb }, { weight: 1, arbitrary: fc.constant(null) }),
  });

type Body =
  | { data: JsonObject }
  | { patch: JsonObject }
  | { deleted: true }
  /** S's copy as it last saw it, sent back unchanged. */
  | { same: true }
  /** S's copy with one field set (or removed, for null): a field it cannot read makes this a guess. */
  | { edit: Field; value: string | number | boolean | null };

/** The base version, resolved against what S last saw of the record (the same in both worlds). */
type Base = "known" | "stale" | "ahead" | null | number;

interface GenChange {
  /** Reuse the changeId of the n-th change sent so far (with this new body): a client bug the hub must refuse. */
  reuse: number | null;
  id: string;
  base: Base;
  body: Body;
  modifiedAt: string | undefined;
}

const patchArb: fc.Arbitrary<JsonObject> = fc.record(
  Object.fromEntries(FIELDS.map((f) => [f, fc.oneof(fc.constantFrom(...DOMAIN[f]), fc.constant(null))])) as Record<
    Field,
    fc.Arbitrary<string | number | boolean | null>
  >,
  { requiredKeys: [], noNullPrototype: true },
) as fc.Arbitrary<JsonObject>;

const editArb: fc.Arbitrary<Body> = fc
  .constantFrom(...FIELDS)
  .chain((f) => fc.record({ edit: fc.constant(f), value: fc.oneof(fc.constantFrom(...DOMAIN[f]), fc.constant(null)) }, { noNullPrototype: true }));

const changeArb: fc.Arbitrary<GenChange> = fc.record(
  {
    reuse: fc.oneof({ weight: 10, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: fc.nat(20) }),
    id: fc.oneof(
      { weight: 6, arbitrary: fc.constantFrom(...VISIBLE_IDS) },
      { weight: 1, arbitrary: fc.constantFrom(...HIDDEN_IDS) },
      { weight: 1, arbitrary: fc.constantFrom("n0", "n1") },
    ),
    base: fc.oneof(
      { weight: 6, arbitrary: fc.constant<Base>("known") },
      { weight: 2, arbitrary: fc.constant<Base>("stale") },
      { weight: 1, arbitrary: fc.constant<Base>("ahead") },
      { weight: 2, arbitrary: fc.constant<Base>(null) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 5 }) },
    ),
    body: fc.oneof(
      { weight: 2, arbitrary: dataArb.map((data): Body => ({ data })) },
      { weight: 2, arbitrary: patchArb.map((patch): Body => ({ patch })) },
      { weight: 1, arbitrary: fc.constant<Body>({ deleted: true }) },
      { weight: 1, arbitrary: fc.constant<Body>({ same: true }) },
      { weight: 4, arbitrary: editArb },
    ),
    modifiedAt: fc.option(fc.constantFrom("2020-01-01T00:00:00.000Z", "2030-01-01T00:00:00.000Z"), { nil: undefined }),
  },
  { noNullPrototype: true },
);

type Step =
  | { kind: "push"; changes: GenChange[] }
  | { kind: "resend"; which: number }
  | { kind: "changes"; since: number | null; limit: number }
  | { kind: "manifest"; after: string | null; limit: number }
  | { kind: "bundle"; changes: GenChange[]; since: number | null }
  | { kind: "bundleAgain"; which: number }
  | { kind: "config" }
  | { kind: "world"; op: WorldOp }
  | { kind: "policy" };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  { weight: 6, arbitrary: fc.array(changeArb, { minLength: 1, maxLength: 3 }).map((changes): Step => ({ kind: "push", changes })) },
  { weight: 1, arbitrary: fc.nat(20).map((which): Step => ({ kind: "resend", which })) },
  {
    weight: 3,
    arbitrary: fc
      .record({ since: fc.option(fc.nat(20), { nil: null }), limit: fc.constantFrom(1, 2, 1000) })
      .map((q): Step => ({ kind: "changes", ...q })),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ after: fc.option(fc.constantFrom(...TARGET_IDS), { nil: null }), limit: fc.constantFrom(1, 2, 1000) })
      .map((q): Step => ({ kind: "manifest", ...q })),
  },
  {
    weight: 1,
    arbitrary: fc
      .record({ changes: fc.array(changeArb, { maxLength: 2 }), since: fc.option(fc.nat(20), { nil: null }) })
      .map((b): Step => ({ kind: "bundle", ...b })),
  },
  { weight: 1, arbitrary: fc.nat(5).map((which): Step => ({ kind: "bundleAgain", which })) },
  { weight: 1, arbitrary: fc.constant<Step>({ kind: "config" }) },
  { weight: 5, arbitrary: worldOpArb(VISIBLE_IDS).map((op): Step => ({ kind: "world", op })) },
  { weight: 1, arbitrary: fc.constant<Step>({ kind: "policy" }) },
);

interface Scenario {
  first: SPolicy;
  second: SPolicy;
  ops: WorldOp[];
  steps: Step[];
  /** Seeds for the second world's choices: other hidden values, extra hidden records. */
  seed: number;
}

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  first: sPolicyArb,
  second: sPolicyArb,
  ops: fc.array(worldOpArb([...VISIBLE_IDS, ...HIDDEN_IDS]), { minLength: 2, maxLength: 10 }),
  steps: fc.array(stepArb, { minLength: 4, maxLength: 16 }),
  seed: fc.integer(),
});

// ---------------------------------------------------------------------------
// Policies

function grantYaml(g: Grant): string {
  const parts: string[] = [];
  if (g.where !== null) parts.push(`where: ${JSON.stringify(g.where)}`);
  parts.push(`fields: ${g.fields === "*" ? "['*']" : `[${g.fields.join(", ")}]`}`);
  return `{${parts.join(", ")}}`;
}

function policyYaml(run: string, p: SPolicy): string {
  const s = `s_${run}`;
  const rules = [
    `  - {who: w_${run}, collection: c_${run}, read: all, write: all}`,
    `  - {who: v_${run}, collection: c_${run}, read: all, write: all}`,
    ...p.reads.map((g) => `  - {who: ${s}, collection: c_${run}, read: ${grantYaml(g)}}`),
    ...(p.write ? [`  - {who: ${s}, collection: c_${run}, write: ${grantYaml(p.write)}}`] : []),
    `  - {who: ${s}, collection: b_${run}, read: all}`,
  ];
  return `version: 1
systems:
  ${s}: {priority: ${p.priority}}
  w_${run}: {priority: 10}
  v_${run}: {priority: 0}
collections:
  c_${run}: {conflict: ${p.strategy}, fallback: ${p.fallback}}
  b_${run}: {conflict: server-wins}
rules:
${rules.join("\n")}
`;
}

/** Every atom of S's conditions in both policies: the truths the second world must keep. */
function atomsOf(yamls: string[], system: string): ((d: JsonObject) => boolean)[] {
  const atoms: ((d: JsonObject) => boolean)[] = [];
  const visit = (c: Condition): void => {
    if (c.kind === "and" || c.kind === "or") c.operands.forEach(visit);
    else if (c.kind === "not") visit(c.expr);
    else atoms.push(compilePredicate(c));
  };
  for (const yaml of yamls) {
    const result = validatePolicy(yaml);
    if (!result.ok) throw new Error(`generated policy is invalid: ${JSON.stringify(result.errors)}\n${yaml}`);
    for (const rule of result.policy.rules) {
      if (rule.who !== system) continue;
      if (rule.read?.where) visit(rule.read.where);
      if (rule.write?.where) visit(rule.write.where);
    }
  }
  return atoms;
}

// ---------------------------------------------------------------------------
// The second world

/** A small deterministic generator for the second world's choices. */
function random(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
}

function pick<T>(rand: () => number, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)] as T;
}

function randomData(rand: () => number): JsonObject {
  const data: JsonObject = {};
  for (const f of FIELDS) if (rand() < 0.7) data[f] = pick(rand, DOMAIN[f]);
  return data;
}

interface Views {
  scopes: { policy: CompiledPolicy; system: string; collection: string }[];
  atoms: ((d: JsonObject) => boolean)[];
}

function readableUnion(views: Views, data: JsonObject): "*" | Set<string> | null {
  let union: Set<string> | null = null;
  for (const { policy, system, collection } of views.scopes) {
    const fields = fieldsFor(policy.scope(system, collection, "read"), data);
    if (fields === "*") return "*";
    if (fields) union = new Set([...(union ?? []), ...fields]);
  }
  return union;
}

function signature(views: Views, data: JsonObject): string {
  return views.atoms.map((a) => (a(data) ? "1" : "0")).join("");
}

/**
 * The second world's version of `data`: for a version S can read under
 * either policy, other values in the fields it cannot read, keeping every
 * condition's truth; for a version it cannot read, other data it cannot read
 * either. Falls back to the same data when no other choice qualifies.
 */
function otherHidden(views: Views, data: JsonObject, rand: () => number): JsonObject {
  const readable = mayRevealByWriting(views, data) ?? readableUnion(views, data);
  for (let attempt = 0; attempt < 20; attempt++) {
    if (readable === null) {
      const other = randomData(rand);
      if (readableUnion(views, other) === null) return other;
      continue;
    }
    if (readable === "*") return data;
    const other: JsonObject = {};
    for (const f of FIELDS) {
      if (readable.has(f)) {
        if (f in data) other[f] = data[f] as JsonObject[string];
      } else if (rand() < 0.7) {
        other[f] = pick(rand, DOMAIN[f]);
      }
    }
    if (signature(views, other) === signature(views, data)) return other;
  }
  return data;
}

/**
 * For a record S can read and may write: every field some read grant exposes,
 * whatever its condition. S's own write may make another grant's condition
 * true (a blind write of `x` into `where x == 1, fields *`), and then the
 * policy lets it read those fields: only fields no grant ever exposes stay
 * hidden from it. Undefined when that does not apply.
 */
function mayRevealByWriting(views: Views, data: JsonObject): "*" | Set<string> | undefined {
  if (readableUnion(views, data) === null) return undefined;
  const writes = views.scopes.some(({ policy, system, collection }) => policy.scope(system, collection, "write").grants.length > 0);
  if (!writes) return undefined;
  const fields = new Set<string>();
  for (const { policy, system, collection } of views.scopes) {
    for (const grant of policy.scope(system, collection, "read").grants) {
      if (grant.fields === "*") return "*";
      for (const f of grant.fields) fields.add(f);
    }
  }
  return fields;
}

/** Data no read rule of S covers under either policy, or null when S can read every record. */
function hiddenData(views: Views, rand: () => number): JsonObject | null {
  for (let attempt = 0; attempt < 30; attempt++) {
    const data = randomData(rand);
    if (views.scopes.every(({ policy, system, collection }) => !covers(policy.scope(system, collection, "read"), data))) return data;
  }
  return null;
}

// ---------------------------------------------------------------------------
// Driving both worlds

interface World {
  name: "A" | "B";
  handle: DatabaseHandle;
  key: string;
  checkpoints: string[];
  bundleIds: string[];
  events: Set<string>;
  stream: { abort: () => void; received: { event: string; data: unknown }[]; wait: (collection: string) => Promise<void> } | null;
}

let worlds: [World, World];
const seenCheckpoints = new Set<string>();
let worldSeq = 0;

beforeAll(async () => {
  process.env.ADMIN_TOKEN = TEST_ADMIN_TOKEN;
  delete process.env.CONCORD_DEFAULT_POLICY;
  resetEnvCache();
  const open = async (name: "A" | "B"): Promise<World> => {
    const handle = await openTestDatabase();
    setDatabase(handle);
    await getHub();
    return { name, handle, key: "", checkpoints: [], bundleIds: [], events: new Set(), stream: null };
  };
  worlds = [await open("A"), await open("B")];
});

afterAll(async () => {
  for (const w of worlds ?? []) {
    w.stream?.abort();
    await stopEventBus(w.handle);
    await w.handle.close();
  }
  setDatabase(undefined);
});

/** Runs `work` with the world's database installed as the hub's (route handlers use it). */
async function inWorld<T>(world: World, work: () => Promise<T>): Promise<T> {
  setDatabase(world.handle);
  return work();
}

type Handler = (request: Request, args: { params: Promise<Record<string, string>> }) => Promise<Response>;

interface Answer {
  status: number;
  policyVersion: string | null;
  body: unknown;
}

async function send(
  world: World,
  handler: Handler,
  path: string,
  init: { method?: string; body?: string; params?: Record<string, string>; replay?: boolean } = {},
): Promise<Answer> {
  return inWorld(world, async () => {
    const headers = new Headers({ authorization: `Bearer ${world.key}` });
    if (init.body !== undefined) headers.set("content-type", "application/json");
    const request = new Request(`http://localhost${path}`, { method: init.method ?? "GET", headers, body: init.body });
    const response = await handler(request, { params: Promise.resolve(init.params ?? {}) });
    const text = await response.text();
    const body: unknown = text ? JSON.parse(text) : null;
    return { status: response.status, policyVersion: response.headers.get("x-policy-version"), body: normalise(world, body, "", init.replay === true) };
  });
}

/**
 * What may differ without telling S anything: checkpoints (sealed with a
 * random IV: each is kept for the world's later requests and compared by
 * position), the hub's clock, request ids, and a bundle's checksum (over those).
 */
function normalise(world: World, value: unknown, key = "", replay = false): unknown {
  if (typeof value === "string" && (key === "checkpoint" || key === "checkpoints")) {
    // Sealed (fixed length, random IV): never seen before in either world, so it cannot encode a position
    // (a stored bundle response given again repeats its own).
    expect(value, "a checkpoint is sealed").toMatch(/^c2[A-Za-z0-9_-]{103}$/);
    if (!replay) expect(seenCheckpoints.has(value), `checkpoint ${value} was issued twice`).toBe(false);
    seenCheckpoints.add(value);
    world.checkpoints.push(value);
    return `<checkpoint ${world.checkpoints.length}>`;
  }
  if (Array.isArray(value)) return value.map((v) => normalise(world, v, "", replay));
  if (typeof value !== "object" || value === null) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === "serverTime" || k === "createdAt" || k === "checksum" || k === "requestId") out[k] = `<${k}>`;
    else if (k === "checkpoints" && typeof v === "object" && v !== null) {
      out[k] = Object.fromEntries(Object.entries(v).map(([c, cp]) => [c, normalise(world, cp, "checkpoint", replay)]));
    } else out[k] = normalise(world, v, k, replay);
  }
  return out;
}

async function openStream(world: World, run: string): Promise<void> {
  const controller = new AbortController();
  const response = await inWorld(world, () =>
    (eventsRoute.GET as unknown as Handler)(
      new Request("http://localhost/api/v1/events", { headers: { authorization: `Bearer ${world.key}` }, signal: controller.signal }),
      { params: Promise.resolve({}) },
    ),
  );
  if (response.status !== 200 || !response.body) throw new Error(`events answered ${response.status}`);
  const received: { event: string; data: unknown }[] = [];
  const waiters = new Set<() => void>();
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  void (async () => {
    let buffer = "";
    for (;;) {
      const { done, value } = await reader.read().catch(() => ({ done: true, value: undefined }));
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end: number;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) {
          received.push({ event, data: JSON.parse(data) as unknown });
          for (const wake of [...waiters]) wake();
        }
      }
    }
  })();
  world.stream = {
    abort: () => controller.abort(),
    received,
    wait: (collection) =>
      new Promise<void>((resolve, reject) => {
        const seen = () => received.some((r) => r.event === "change" && (r.data as { collection: string }).collection === collection);
        if (seen()) return resolve();
        const timer = setTimeout(() => reject(new Error(`world ${world.name}: no event for ${collection} (run ${run})`)), 10_000);
        const wake = () => {
          if (!seen()) return;
          clearTimeout(timer);
          waiters.delete(wake);
          resolve();
        };
        waiters.add(wake);
      }),
  };
}

/**
 * The collections S's stream was told about since the last call. A barrier
 * write S can see (in its own barrier collection) is written, and once its
 * event arrives every earlier notification has been handled (the bus handles
 * them in order).
 */
async function drainEvents(world: World, run: string, barrier: number): Promise<string[]> {
  const stream = world.stream;
  if (!stream) return [];
  const collection = `b_${run}`;
  await writeRecord(world.handle.db, { collection, id: `barrier-${barrier}`, data: { n: barrier }, by: "test" });
  await stream.wait(collection);
  const told = new Set<string>();
  for (const r of stream.received.splice(0)) {
    if (r.event === "config") told.add(`config ${(r.data as { policyVersion: number }).policyVersion}`);
    else if ((r.data as { collection: string }).collection !== collection) told.add((r.data as { collection: string }).collection);
  }
  return [...told].sort();
}

async function worldWrite(world: World, run: string, op: WorldOp, at: Date): Promise<void> {
  const collection = `c_${run}`;
  await writeRecord(
    world.handle.db,
    op.data === null ? { collection, id: op.id, by: `${op.by}_${run}`, deleted: true, modifiedAt: at } : { collection, id: op.id, by: `${op.by}_${run}`, data: op.data, modifiedAt: at },
  );
}

/** What S knows of each record: the last version and data its answers gave it (the same in both worlds). */
type Knowledge = Map<string, { version: number; data: JsonObject | null }>;

function changeBodies(run: string, changes: GenChange[], sent: { changeId: string; change: JsonObject }[], known: Knowledge): JsonObject[] {
  return changes.map((c) => {
    const reused = c.reuse !== null && sent.length > 0 ? sent[c.reuse % sent.length] : undefined;
    const changeId = reused?.changeId ?? `${run}-ch-${sent.length}`;
    const copy = known.get(c.id);
    const version = copy?.version ?? null;
    const baseVersion =
      c.base === "known" ? version : c.base === "stale" ? (version === null ? null : Math.max(1, version - 1)) : c.base === "ahead" ? (version ?? 0) + 1 : c.base;
    let body: JsonObject;
    if ("same" in c.body) body = { data: copy?.data ?? {} };
    else if ("edit" in c.body) {
      const data: JsonObject = { ...(copy?.data ?? {}) };
      if (c.body.value === null) delete data[c.body.edit];
      else data[c.body.edit] = c.body.value;
      body = { data };
    } else body = c.body as JsonObject;
    const change: JsonObject = { changeId, id: c.id, baseVersion, ...body };
    if (c.modifiedAt !== undefined) change.modifiedAt = c.modifiedAt;
    sent.push({ changeId, change });
    return change;
  });
}

/** Updates S's knowledge from one answer (the first world's; the second's is checked equal to it). */
function learn(known: Knowledge, body: unknown, sentData: Map<string, JsonObject | null>): void {
  if (typeof body !== "object" || body === null) return;
  const b = body as {
    results?: PushResultLike[] | Record<string, PushResultLike[]>;
    changes?: unknown;
    entries?: { id: string; version: number }[];
  };
  const results = Array.isArray(b.results) ? b.results : Object.values(b.results ?? {}).flat();
  for (const r of results) {
    if (r.version === undefined) continue;
    if (r.data !== undefined || r.deleted) known.set(r.id, { version: r.version, data: r.deleted ? null : (r.data ?? null) });
    else if (r.status === "applied" || r.status === "unchanged") known.set(r.id, { version: r.version, data: sentData.get(r.changeId) ?? known.get(r.id)?.data ?? null });
  }
  const entries = Array.isArray(b.changes) ? b.changes : Object.values((b.changes as Record<string, unknown[]> | undefined) ?? {}).flat();
  for (const e of entries as { id: string; version?: number; data?: JsonObject; deleted?: boolean; removed?: boolean }[]) {
    if (e.removed) known.delete(e.id);
    else if (e.version !== undefined) known.set(e.id, { version: e.version, data: e.deleted ? null : (e.data ?? null) });
  }
  for (const e of b.entries ?? []) known.set(e.id, { version: e.version, data: known.get(e.id)?.data ?? null });
}

interface PushResultLike {
  changeId: string;
  id: string;
  status: string;
  version?: number;
  data?: JsonObject;
  deleted?: boolean;
}

async function runScenario(scenario: Scenario): Promise<void> {
  const run = `${++worldSeq}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const system = `s_${run}`;
  const collection = `c_${run}`;
  const yamls = [policyYaml(run, scenario.first), policyYaml(run, scenario.second)];
  const compiled = await Promise.all(yamls.map((y) => compilePolicy(y)));
  const views: Views = { scopes: compiled.map((policy) => ({ policy, system, collection })), atoms: atomsOf(yamls, system) };
  const rand = random(scenario.seed);

  // Both worlds: the first policy, a key for S, then the world's writes (the second world's hidden parts differ).
  const [a, b] = worlds;
  for (const world of worlds) {
    await activatePolicy(world.handle.db, { yaml: yamls[0] as string, actor: "test", source: "api" });
    world.key = (await issueApiKey(world.handle.db, { system, actor: "test" })).key;
    world.checkpoints = [];
    world.bundleIds = [];
    world.stream?.abort();
    world.stream = null;
  }
  const clock = (i: number) => new Date(Date.UTC(2026, 0, 1, 0, i));
  let tick = 0;
  const writeBoth = async (op: WorldOp) => {
    tick += 1;
    await worldWrite(a, run, op, clock(tick));
    let other: WorldOp = op;
    if (op.data !== null) {
      const isHiddenId = HIDDEN_IDS.includes(op.id);
      other = { ...op, data: isHiddenId ? (hiddenData(views, rand) ?? op.data) : otherHidden(views, op.data, rand) };
      // A record S can never read: the second world may have more versions of it.
      if (isHiddenId && rand() < 0.5) await worldWrite(b, run, { ...op, data: hiddenData(views, rand) ?? op.data }, clock(tick));
    }
    await worldWrite(b, run, other, clock(tick));
    // Extra records the second world has and S can never read.
    const extra = hiddenData(views, rand);
    if (extra !== null && rand() < 0.5) await worldWrite(b, run, { id: `hb${Math.floor(rand() * 3)}`, by: "w", data: extra }, clock(tick));
  };
  for (const op of scenario.ops) {
    // Records S can never read are written with data it cannot read in the first world too.
    if (HIDDEN_IDS.includes(op.id)) {
      const data = op.data === null ? null : hiddenData(views, rand);
      if (op.data !== null && data === null) continue;
      await writeBoth({ ...op, data });
    } else {
      await writeBoth(op);
    }
  }
  for (const world of worlds) await openStream(world, run);
  let barrier = 0;
  const sent: { changeId: string; change: JsonObject }[] = [];
  const pushes: JsonObject[][] = [];
  const known: Knowledge = new Map();
  const sentData = new Map<string, JsonObject | null>();
  let policyIndex = 0;

  const both = async (label: string, ask: (world: World) => Promise<Answer>) => {
    const answerA = await ask(a);
    const answerB = await ask(b);
    const eventsA = await drainEvents(a, run, ++barrier);
    const eventsB = await drainEvents(b, run, barrier);
    const context = `run ${run}, ${label}\npolicy:\n${yamls[policyIndex]}`;
    expect(answerB, context).toEqual(answerA);
    expect(eventsB, `${context}\n(events)`).toEqual(eventsA);
    expect(answerA.status, `${context}\nno request of S may fail with a 5xx: ${JSON.stringify(answerA.body)}`).toBeLessThan(500);
    tally(label, answerA);
    for (const { changeId, change } of sent) sentData.set(changeId, change.deleted ? null : ((change.data as JsonObject | undefined) ?? null));
    learn(known, answerA.body, sentData);
  };
  const since = (world: World, index: number | null) => (index === null || world.checkpoints.length === 0 ? null : world.checkpoints[index % world.checkpoints.length]);

  // S starts as a client does: it pulls everything it may read.
  await both("first pull", (w) => send(w, changesRoute.GET as unknown as Handler, `/api/v1/collections/${collection}/changes`, { params: { collection } }));

  for (const [i, step] of scenario.steps.entries()) {
    const label = `step ${i}: ${JSON.stringify(step)}`;
    switch (step.kind) {
      case "push": {
        const changes = changeBodies(run, step.changes, sent, known);
        pushes.push(changes);
        const body = JSON.stringify({ changes });
        await both(label, (w) => send(w, pushRoute.POST as unknown as Handler, `/api/v1/collections/${collection}/push`, { method: "POST", body, params: { collection } }));
        break;
      }
      case "resend": {
        if (pushes.length === 0) break;
        const body = JSON.stringify({ changes: pushes[step.which % pushes.length] });
        await both(label, (w) => send(w, pushRoute.POST as unknown as Handler, `/api/v1/collections/${collection}/push`, { method: "POST", body, params: { collection } }));
        break;
      }
      case "changes":
        await both(label, (w) => {
          const cp = since(w, step.since);
          const qs = new URLSearchParams({ limit: String(step.limit), ...(cp ? { since: cp } : {}) });
          return send(w, changesRoute.GET as unknown as Handler, `/api/v1/collections/${collection}/changes?${qs}`, { params: { collection } });
        });
        break;
      case "manifest": {
        const qs = new URLSearchParams({ limit: String(step.limit), ...(step.after ? { after: step.after } : {}) });
        await both(label, (w) => send(w, manifestRoute.GET as unknown as Handler, `/api/v1/collections/${collection}/manifest?${qs}`, { params: { collection } }));
        break;
      }
      case "bundle": {
        const changes = changeBodies(run, step.changes, sent, known);
        const bundleId = `00000000-0000-4000-8000-${(worldSeq * 1000 + i).toString(16).padStart(12, "0")}`;
        await both(label, async (w) => {
          const cp = since(w, step.since);
          w.bundleIds.push(bundleId);
          const bundle = await sealBundle(
            {
              format: FORMAT,
              bundleId,
              system,
              createdAt: "2026-06-01T00:00:00.000Z",
              policyVersion: null,
              checkpoints: { [collection]: cp ?? null },
              changes: changes.length > 0 ? { [collection]: changes } : {},
            },
            sha256Hex,
          );
          return send(w, bundlesRoute.POST as unknown as Handler, "/api/v1/bundles", { method: "POST", body: JSON.stringify(bundle) });
        });
        break;
      }
      case "bundleAgain":
        await both(label, (w) => {
          const id = w.bundleIds.length === 0 ? "00000000-0000-4000-8000-000000000000" : (w.bundleIds[step.which % w.bundleIds.length] as string);
          return send(w, bundlesRoute.GET as unknown as Handler, `/api/v1/bundles?bundleId=${id}`, { replay: true });
        });
        break;
      case "config":
        await both(label, (w) => send(w, configRoute.GET as unknown as Handler, "/api/v1/config"));
        break;
      case "world": {
        // Another system's write: S does not pull here, so its next push may be based on an older version (a conflict).
        await writeBoth(step.op);
        await both(label, (w) => send(w, configRoute.GET as unknown as Handler, "/api/v1/config"));
        break;
      }
      case "policy":
        policyIndex = 1 - policyIndex;
        for (const world of worlds) await activatePolicy(world.handle.db, { yaml: yamls[policyIndex] as string, actor: "test", source: "api" });
        await both(label, (w) => send(w, configRoute.GET as unknown as Handler, "/api/v1/config"));
        break;
    }
  }
  for (const world of worlds) {
    world.stream?.abort();
    world.stream = null;
  }
}

/** What the generated requests exercised (printed after the property, so a generator that stops reaching a case is noticed). */
const exercised = new Map<string, number>();
function tally(label: string, answer: Answer): void {
  const kind = /"kind":"(\w+)"/.exec(label)?.[1] ?? "?";
  const bump = (k: string) => exercised.set(k, (exercised.get(k) ?? 0) + 1);
  bump(`${kind} ${answer.status}`);
  const body = answer.body as { results?: { status: string }[] | Record<string, { status: string }[]>; changes?: unknown } | null;
  const results = Array.isArray(body?.results) ? body.results : Object.values(body?.results ?? {}).flat();
  for (const r of results) bump(`${kind} result ${r.status}`);
  if (process.env.NONINTERFERENCE_REASONS) for (const r of results as { reason?: string }[]) if (r.reason) bump(`  reason: ${r.reason.replace(/"[^"]*"/g, "…").replace(/\d+/g, "N").slice(0, 90)}`);
  if (kind === "changes") bump(`changes with ${Array.isArray(body?.changes) && body.changes.length > 0 ? "entries" : "no entries"}`);
}

describe("noninterference: a system's answers do not depend on what it may not read", () => {
  it(
    "two worlds that differ only outside the system's read scope answer every generated request identically",
    async () => {
      await fc.assert(fc.asyncProperty(scenarioArb, runScenario), { numRuns: NUM_RUNS, endOnFailure: true, ...(process.env.NI_SEED ? { seed: Number(process.env.NI_SEED), path: process.env.NI_PATH } : {}) });
      console.log(`noninterference: ${NUM_RUNS} runs exercised\n${[...exercised].sort().map(([k, n]) => `  ${k}: ${n}`).join("\n")}`);
    },
    600_000,
  );
});

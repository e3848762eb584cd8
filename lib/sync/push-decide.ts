import mergePatch from "json-merge-patch";
import type { ConflictOutcome, conflicts } from "../db/schema";
import { covers, fieldsFor, type Scope } from "../policy/compile";
import type { FallbackStrategy, Strategy } from "../policy/document";
import { canonicalSize, digestOf } from "./digest";
import { changedFields, jsonEqual, overlay } from "./json";
import { projectFields, projectForReader } from "./projection";
import {
  DELETED_DIGEST,
  hasKeyDeep,
  isJsonObject,
  MAX_RECORD_BYTES,
  type JsonObject,
  type PushChange,
  type PushResult,
  type PushStatus,
} from "./protocol";
import { effectiveModifiedAt, STRATEGIES } from "./strategies";
import type { NewVersion } from "./versions";
import { checkWrite } from "./write-check";

/**
 * Deciding one pushed change (claims 3 and 4), from what the pushing system
 * may see.
 *
 * The rule this module keeps (protocol.md, "Information flow"): no answer to
 * system S depends on data S may not read. So every branch below — which
 * status, which reason, which version, which digest — is taken on S's view of
 * the record: whether it is in S's read scope, its version, its projection to
 * the fields S may read (`V`), its writer and modification time. The stored
 * record is used whole only to build what is written: fields S cannot read
 * are carried over from the server's copy, untouched.
 *
 * - A record outside S's read scope answers as a missing record would: a
 *   change based on a version, or a delete, is `invalid` ("not one you can
 *   read"). Creating it is refused (`forbidden`, "id taken") — the one thing
 *   S can learn, by trying to create a record with a given id, is that the id
 *   is in use (policy.md's records share one id space).
 * - A field S sends that it cannot read is written blindly: it always counts
 *   as changed, so neither `unchanged` nor a write check can tell S whether
 *   its guess was the stored value.
 * - Conflicts are settled on S's views of base, server and client copies;
 *   hidden fields keep the server's values.
 * - Digests and data in the answer are always of S's projection; a record
 *   that leaves S's read scope by S's own change answers with the digest of
 *   S's own copy.
 *
 * Write checks keep their meaning (policy validation makes a write condition
 * use only fields the system can read, so checking it reveals nothing).
 */

export interface PushSettings {
  system: string;
  collection: string;
  readScope: Scope;
  writeScope: Scope;
  conflict: { strategy: Strategy; fallback: FallbackStrategy };
  priorityOf: (system: string) => number | null;
}

/** A stored version of a record: the current row, or a history row. */
export interface StoredVersion {
  version: number;
  /** The whole record; for a tombstone, its last live data (for scope checks, never served). */
  data: JsonObject;
  deleted: boolean;
  digest: string;
  updatedBy: string;
  modifiedAt: Date;
}

/**
 * What was decided for one change: everything its answer is rendered from
 * (render). Stored as the push receipt, so a re-sent change is answered from
 * the same decision, rendered under the policy active when it is re-sent.
 */
export interface Decision {
  status: PushStatus;
  /** The version the answer speaks of: the one written, or the server's current one. */
  version?: number;
  reason?: string;
  /** `id` is the pushing system's own conflict number, filled in when the conflict is logged. */
  conflict?: { id: number; strategy: string };
  /** Digest of the client's own copy: answered for `applied`/`unchanged` when the record is outside its read scope. */
  own?: string;
}

/** The version of the record a decision speaks of, whole (null: nothing to show). */
/** The stored version an answer speaks of; `digest`, when known, is the whole data's (it spares hashing a full view again). */
export type Subject = { data: JsonObject; deleted: boolean; digest?: string } | null;

export interface Outcome {
  decision: Decision;
  subject: Subject;
  write?: NewVersion;
  conflict?: typeof conflicts.$inferInsert;
}

/** The answer to one change, as the pushing system may see it. */
export function render(readScope: Scope, change: { changeId: string; id: string }, decision: Decision, subject: Subject): PushResult {
  const { changeId, id } = change;
  const { status, version, reason, conflict, own } = decision;
  const result: PushResult = { changeId, id, status };
  if (version !== undefined) result.version = version;
  if (status !== "forbidden" && status !== "invalid" && subject !== null) {
    const withData = status === "merged" || status === "rejected" || status === "pending";
    if (covers(readScope, subject.data)) {
      if (subject.deleted) {
        result.digest = DELETED_DIGEST;
        if (withData) result.deleted = true;
      } else {
        const view = projectForReader(readScope, subject.data, subject.digest) as { data: JsonObject; digest: string };
        result.digest = view.digest;
        if (withData) result.data = view.data;
      }
    } else if (!withData && own !== undefined) {
      result.digest = own;
    }
  }
  if (conflict) result.conflict = { id: conflict.id, strategy: conflict.strategy };
  if (reason !== undefined) result.reason = reason;
  return result;
}

/** Field sets: "*" is every field. */
type Fields = "*" | ReadonlySet<string>;

function intersect(a: Fields, b: Fields): Fields {
  if (a === "*") return b;
  if (b === "*") return a;
  return new Set([...a].filter((f) => b.has(f)));
}

function readable(fields: Fields, field: string): boolean {
  return fields === "*" || fields.has(field);
}

function project(data: JsonObject, fields: Fields): JsonObject {
  return fields === "*" ? data : projectFields(data, fields);
}

/**
 * `target`'s fields S cannot read (outside `visible`), then `view` (fields S
 * can read), then S's blind writes: a record S changed, as it is stored.
 */
function compose(target: JsonObject, visible: Fields, view: JsonObject, blindFrom: JsonObject, blind: ReadonlySet<string>): JsonObject {
  const out: JsonObject = {};
  if (visible !== "*") for (const [k, v] of Object.entries(target)) if (!visible.has(k)) out[k] = v;
  for (const [k, v] of Object.entries(view)) out[k] = v;
  for (const k of blind) {
    const value = blindFrom[k];
    if (value === undefined) delete out[k];
    else out[k] = value;
  }
  return Object.fromEntries(Object.entries(out)) as JsonObject;
}

const refuse = (status: "invalid" | "forbidden", reason: string): Outcome => ({ decision: { status, reason }, subject: null });

/** Decides one change against the server's current version and the history it is based on (pure). */
export function decide(
  s: PushSettings,
  change: PushChange,
  current: StoredVersion | undefined,
  baseVersion: (version: number) => StoredVersion | undefined,
  receivedAt: Date,
  /** Why the change's data or patch cannot be stored (json-safety.ts unstorableReason), or null. */
  unstorable: string | null,
  /** The digest of `change.data` when the caller already has it (push.ts hashes each body once); a record written as sent reuses it. */
  dataDigest?: string,
): Outcome {
  const { changeId, id } = change;
  const b = change.baseVersion;
  // What cannot be stored faithfully (U+0000, lone surrogates, nesting past the limit) is this change's
  // fault alone: refused with its path, so the client's other changes still land.
  if (unstorable) return refuse("invalid", unstorable);
  if (change.patch && (hasKeyDeep(change.patch, "constructor") || hasKeyDeep(change.patch, "prototype"))) {
    // json-merge-patch stops silently at these keys; refuse rather than apply half a patch.
    return refuse("invalid", 'A patch cannot set fields named "constructor" or "prototype"; send the whole record as data instead.');
  }
  const modifiedAt = effectiveModifiedAt(change.modifiedAt, receivedAt);
  // The same object as the change's data has the digest the caller computed; anything else is hashed.
  const digestOfSent = (data: JsonObject | null): string => (dataDigest !== undefined && data !== null && data === change.data ? dataDigest : digestOf(data));
  const newVersion = (version: number, data: JsonObject | null, lastLive: JsonObject, origin: "push" | "merge"): NewVersion => ({
    id,
    version,
    // A tombstone keeps the last live data so read scopes can still be evaluated for it.
    data: data ?? lastLive,
    deleted: data === null,
    digest: digestOfSent(data),
    origin,
    changeId,
    writtenBy: s.system,
    modifiedAt,
  });

  // ---- A record S cannot read answers as a record that does not exist.
  if (!current || !covers(s.readScope, current.data)) {
    if (b !== null) {
      return refuse(
        "invalid",
        `Record "${id}" is not one you can read: it does not exist, or it is outside your read scope. A change based on version ${b} needs a record you can read; pull to refresh your copy (a record that left your scope is removed from it), or send baseVersion null to create a new record.`,
      );
    }
    if (change.deleted) {
      return refuse("invalid", `Record "${id}" is not one you can read: it does not exist, or it is outside your read scope; there is nothing you can delete.`);
    }
    const created = change.data ?? patched({}, change.patch as JsonObject);
    if (typeof created === "string") return refuse("invalid", created);
    if (s.writeScope.grants.length === 0) return refuse("forbidden", readOnly(s));
    const check = checkWrite(s.writeScope, null, created, Object.keys(created));
    if (!check.ok) return refuse("forbidden", check.reason);
    if (current) {
      return refuse("forbidden", `Record id "${id}" is taken by a record outside your read scope, so it cannot be created; choose another id.`);
    }
    const write = newVersion(1, created, created, "push");
    return { decision: { status: "applied", version: 1, own: write.digest }, subject: { data: created, deleted: false, digest: write.digest }, write };
  }

  // ---- The record is in S's read scope: S sees its version, its projection to V, its writer and time.
  const server = current;
  const visible = fieldsFor(s.readScope, server.data) as Fields;
  if (b !== null && b > server.version) {
    return refuse("invalid", `baseVersion ${b} is above the server's version ${server.version} of record "${id}"; pull the record and retry.`);
  }
  let base: StoredVersion | null = null;
  if (b !== null) {
    base = b === server.version ? server : (baseVersion(b) ?? null);
    if (!base) return refuse("invalid", `Version ${b} of record "${id}" is not in the server's history.`);
    if (!covers(s.readScope, base.data)) {
      return refuse("invalid", `Version ${b} of record "${id}" was outside your read scope, so your copy cannot be based on it; pull the record and retry.`);
    }
  }
  // The fields S speaks for: those it could read in its base and still can (all of V for a first submission).
  const speakable = base ? intersect(fieldsFor(s.readScope, base.data) as Fields, visible) : visible;
  const baseLive = base && !base.deleted ? base.data : null;
  const serverLive = server.deleted ? null : server.data;
  const baseView = baseLive ? project(baseLive, speakable) : null;
  const sourceView = baseView ?? (serverLive ? project(serverLive, speakable) : null);

  // What the client means, in its own view: its record, and the fields it speaks for.
  let mine: JsonObject | null = null;
  let spoken: string[] = [];
  if (change.patch) {
    const result = patched(sourceView ?? {}, change.patch);
    if (typeof result === "string") return refuse("invalid", result);
    mine = result;
    spoken = Object.keys(change.patch);
  } else if (change.data) {
    mine = change.data;
    spoken = [...new Set([...Object.keys(sourceView ?? {}), ...Object.keys(change.data)])];
  }
  const blind = new Set(spoken.filter((f) => !readable(visible, f)));
  const delta = mine === null ? [] : spoken.filter((f) => blind.has(f) || !jsonEqual(mine[f], baseView?.[f]));
  // The client's change applied to the server's copy; fields it did not speak for keep the server's values.
  const applied = mine === null ? null : serverLive ? overlay(serverLive, mine, delta) : mine;
  const changed = (after: JsonObject | null) =>
    after === null ? [] : [...new Set([...changedFields(serverLive && project(serverLive, visible), project(after, visible)), ...blind])];

  if (s.writeScope.grants.length === 0) return refuse("forbidden", readOnly(s));

  // Nothing to write: the record as sent equals the server's, as far as S can tell (no version bump).
  if (blind.size === 0 && (applied === null ? server.deleted : serverLive !== null && jsonEqual(applied, serverLive))) {
    return { decision: { status: "unchanged", version: server.version }, subject: server };
  }

  const check = checkWrite(s.writeScope, serverLive, applied, changed(applied));
  if (!check.ok) return refuse("forbidden", check.reason);

  const next = server.version + 1;
  const own = digestOfSent(mine);
  const isConflict = b !== server.version && !(b === null && server.deleted);
  if (!isConflict) {
    const write = newVersion(next, applied, serverLive ?? server.data, "push");
    return { decision: { status: "applied", version: next, own }, subject: { data: write.data, deleted: write.deleted, digest: write.digest }, write };
  }

  // ---- A conflict (claim 4, last case): settled by the policy's strategy, on S's views.
  const clientView = mine === null ? null : project(mine, visible);
  const settlement = STRATEGIES[s.conflict.strategy]({
    base: baseView,
    server: serverLive && project(serverLive, visible),
    client: clientView,
    clientSystem: s.system,
    serverSystem: server.updatedBy,
    clientPriority: s.priorityOf(s.system) ?? 0,
    serverPriority: s.priorityOf(server.updatedBy),
    clientModifiedAt: modifiedAt,
    serverModifiedAt: server.modifiedAt,
    fallback: s.conflict.fallback,
  });

  let written: JsonObject | null | undefined; // undefined: nothing written
  let outcome: ConflictOutcome;
  let reason: string;
  const details: JsonObject = { ...settlement.details };
  if (settlement.winner === "client") {
    written = applied;
    outcome = "client-won";
    reason = `Your change won a conflict with version ${server.version} (${s.conflict.strategy}).`;
  } else if (settlement.winner === "merged") {
    written = compose(serverLive ?? {}, visible, settlement.data, mine ?? {}, blind);
    outcome = "merged";
    reason = `Your change and version ${server.version} were merged (${s.conflict.strategy}).`;
  } else if (settlement.winner === "pending") {
    outcome = "pending";
    reason = `Your change collides with version ${server.version} and is held for an operator (${s.conflict.strategy}); the server's copy is unchanged until it is resolved.`;
  } else {
    outcome = "server-won";
    reason = `Your change lost a conflict with version ${server.version} (${s.conflict.strategy}); it is kept in the conflict log.`;
  }

  if (written !== undefined) {
    const settled = checkWrite(s.writeScope, serverLive, written, changed(written));
    if (!settled.ok) {
      // The settlement would write outside the client's rights: keep the server's copy and the client's change in the log.
      details.refused = settled.reason;
      written = undefined;
      outcome = "server-won";
      reason = `Your change lost a conflict with version ${server.version}: ${settled.reason} It is kept in the conflict log.`;
    } else if (written !== null && serverLive !== null && blind.size === 0 && jsonEqual(written, serverLive)) {
      written = undefined;
      outcome = "server-won";
      reason = `Your change lost a conflict with version ${server.version} (${s.conflict.strategy}); it is kept in the conflict log.`;
    }
  }

  const write = written === undefined ? undefined : newVersion(next, written, serverLive ?? server.data, outcome === "merged" ? "merge" : "push");
  const subject: Subject = write ? { data: write.data, deleted: write.deleted, digest: write.digest } : server;
  // "applied" when the result is the client's own copy as it sees it; otherwise it needs the data.
  // A result the client can no longer see (its own change moved the record out of its scope) is its own when its change won.
  const sameAsMine =
    written === null
      ? mine === null
      : written !== undefined &&
        mine !== null &&
        (covers(s.readScope, written) ? jsonEqual(projectForReader(s.readScope, written)?.data, mine) : outcome === "client-won");
  const status: PushStatus = written === undefined ? (outcome === "pending" ? "pending" : "rejected") : sameAsMine ? "applied" : "merged";

  return {
    decision: { status, version: write ? next : server.version, reason, conflict: { id: 0, strategy: s.conflict.strategy }, own },
    subject,
    write,
    conflict: {
      collection: s.collection,
      recordId: id,
      clientSystem: s.system,
      serverSystem: server.updatedBy,
      changeId,
      baseVersion: b,
      baseData: baseLive,
      serverVersion: server.version,
      serverData: serverLive,
      serverDeleted: server.deleted,
      clientChange: change as unknown as JsonObject,
      // The client's whole record as it meant it: its base with its changes (hidden fields from the base).
      clientData: mine === null ? null : overlay(baseLive ?? serverLive ?? {}, mine, delta),
      strategy: s.conflict.strategy,
      outcome,
      details,
      resultVersion: write ? next : null,
    },
  };
}

function readOnly(s: PushSettings): string {
  return `Collection "${s.collection}" is read-only for system "${s.system}".`;
}

/** A merge patch applied to a record as the client sees it, or the reason it cannot be. */
function patched(source: JsonObject, patch: JsonObject): JsonObject | string {
  const result: unknown = mergePatch.apply(structuredClone(source), patch);
  if (!isJsonObject(result)) return "The patch does not produce a JSON object.";
  if (canonicalSize(result) > MAX_RECORD_BYTES) return `The patched record would be larger than ${MAX_RECORD_BYTES / 1024} KiB.`;
  return result;
}

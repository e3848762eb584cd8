import type { JsonObject, JsonValue, PushChange } from "../sync/protocol";

/** The server version a local copy is based on: what the client last synced (protocol.md, "its base"). */
export interface RecordBase {
  version: number;
  digest: string;
  /** The data of that version as this client sees it (null for a tombstone): the "before" of a merge patch. */
  data: JsonObject | null;
}

/**
 * One record as the client holds it. A row exists while there is a local copy
 * or a local edit to send; `digest` is that of `data` (DELETED_DIGEST when
 * deleted locally). Modified locally ⇔ `digest !== base?.digest` (claim 5).
 */
export interface LocalRecord {
  collection: string;
  id: string;
  data: JsonObject | null;
  digest: string;
  base: RecordBase | null;
  /** When the host program last wrote it (ISO 8601), sent as `modifiedAt` for last-writer-wins. */
  modifiedAt: string | null;
}

export interface QuarantineInfo {
  status: "forbidden" | "invalid";
  reason: string;
  at: string;
}

/**
 * A change that was sent, or may have been: it is frozen (its body never
 * changes) and re-sent with the same changeId until it gets a result, so a
 * crash between push and saving the result cannot apply it twice. An entry
 * with `quarantine` got `forbidden` or `invalid` and waits for the host
 * program (retry or discard); it blocks only its own record.
 */
export interface OutboxEntry {
  changeId: string;
  collection: string;
  id: string;
  /** The exact body pushed (changeId, id, baseVersion, and data, patch or deleted). */
  change: PushChange;
  /** The whole local copy this change stands for (null: a delete): the new base data once applied. */
  record: JsonObject | null;
  quarantine: QuarantineInfo | null;
}

export interface RecordKey {
  collection: string;
  id: string;
}

/** Everything one atomic step changes: all of it is stored, or none of it. */
export interface StoreWrite {
  putRecords?: readonly LocalRecord[];
  deleteRecords?: readonly RecordKey[];
  /** Added or replaced by changeId; a new entry goes to the end of the outbox. */
  putOutbox?: readonly OutboxEntry[];
  deleteOutbox?: readonly string[];
  /** A collection's checkpoint; null forgets it (the next pull starts from the beginning). */
  checkpoints?: Readonly<Record<string, string | null>>;
  meta?: Readonly<Record<string, JsonValue>>;
}

/**
 * Where a client keeps its copy, bases, checkpoints and outbox. Small on
 * purpose: reads by key or collection, and one atomic `write` — so applying a
 * push result or a pulled page (records, outbox and checkpoint together) can
 * never be half done. A SQLite or IndexedDB store implements the same nine
 * methods. Stores hold what they are given: the client never mutates an
 * object after handing it over, and never mutates what a store returns.
 */
export interface LocalStore {
  getRecord(collection: string, id: string): Promise<LocalRecord | undefined>;
  /** The rows of these ids that exist, in any order. */
  getRecords(collection: string, ids: readonly string[]): Promise<LocalRecord[]>;
  /** Every row of a collection, ordered by id. */
  listRecords(collection: string): Promise<LocalRecord[]>;
  /** Rows modified locally (digest differs from the base digest), in any collection. */
  modifiedRecords(): Promise<LocalRecord[]>;
  /** Every collection that holds rows or a checkpoint. */
  collections(): Promise<string[]>;
  /** The outbox, oldest first. */
  outbox(): Promise<OutboxEntry[]>;
  checkpoint(collection: string): Promise<string | null>;
  getMeta(key: string): Promise<JsonValue | undefined>;
  write(write: StoreWrite): Promise<void>;
  close(): Promise<void>;
}

export function isModified(record: LocalRecord): boolean {
  return record.digest !== record.base?.digest;
}

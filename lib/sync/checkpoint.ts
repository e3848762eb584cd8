import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { eq } from "drizzle-orm";
import type { Database } from "../db/client";
import { settings } from "../db/schema";
import { MAX_CHECKPOINT_LENGTH } from "./protocol";

/**
 * Checkpoints of the delta feed, sealed so that they reveal nothing.
 *
 * Inside, a checkpoint is a position in the change feed (see FeedPosition).
 * Every accepted change of every collection takes the next sequence number
 * and has a transaction id, so plain numbers would tell a reader how many
 * changes happened between two of its pulls — including changes to records
 * it may not read. A checkpoint is therefore encrypted and
 * authenticated (AES-256-GCM, a fresh random IV each time): the string a
 * system receives is independent of the position inside, two checkpoints of
 * the same position differ, and a forged or altered one is refused. It is
 * bound to the system and collection it was issued for (additional
 * authenticated data), so it cannot be replayed elsewhere.
 *
 * The key is 32 random bytes created on first use and kept in the database
 * (`settings`), so every instance of the hub shares it. Deleting that row
 * rotates it: older checkpoints then answer 410 `resync_required`, and
 * clients reconcile through the manifest.
 */

/**
 * A place in one collection's change feed. Every version of a record has a
 * position (xid, seq): its transaction id (or a larger one, so that a
 * record's positions grow with its versions) and its change sequence number,
 * compared in that order. `xid` is Postgres's xid8, a 64-bit number.
 */
export interface Position {
  xid: bigint;
  seq: number;
}

/**
 * Where a reader stands in one collection's change feed: it has been sent
 * the changes at positions up to `at`.
 *
 * At the end of a pull (`hasMore: false`) the position is a plain `at` (no
 * run): the reader then holds exactly the records visible to it as of `at`,
 * so "did it have record X?" is answered by X's version at `at` (its latest
 * version at or below that position).
 *
 * Inside a run of `hasMore` pages that is not true. The feed reports a record
 * at its latest change only, so a record changed twice while the run goes on
 * (once below the page's end, once above it) is skipped by this page and
 * reported by a later one; meanwhile the reader still holds an older version
 * than the one current at `at`. If that record has left the reader's scope,
 * judging by its version at `at` would never tell the reader to drop it. So a
 * checkpoint inside a run also carries where the run began: `origin`, the
 * end-of-pull position it started from (null for a pull from the
 * beginning), and `start`, the feed's horizon when its first page was read.
 * A record the reader holds is then either its version at `origin` or one
 * that was current at some page of the run, that is, a version from the one
 * at `start` up to the one at `at`.
 */
export interface FeedPosition {
  at: Position;
  run: { start: Position; origin: Position | null } | null;
}

/** -1, 0 or 1 as `a` is before, at or after `b`. */
export function comparePositions(a: Position, b: Position): number {
  if (a.xid !== b.xid) return a.xid < b.xid ? -1 : 1;
  return a.seq === b.seq ? 0 : a.seq < b.seq ? -1 : 1;
}

export interface CheckpointScope {
  system: string;
  collection: string;
}

/** What a `since` string turned out to be. */
export type OpenedCheckpoint =
  | { ok: true; position: FeedPosition }
  /** Not a checkpoint at all (wrong shape): the request is malformed. */
  | { ok: false; reason: "malformed" }
  /**
   * Shaped like a checkpoint but not readable with this hub's key for this
   * system and collection: issued before the key changed, by an older hub
   * version (plain `s<seq>`), or for another collection. The client resyncs.
   */
  | { ok: false; reason: "stale" };

/** `c1` (one sequence number, before writers stopped taking a collection lock) opens as stale. */
const VERSION = "c2";
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** A flags byte (1: run, 2: origin), then at, start, origin: each xid and seq as unsigned 64-bit integers. */
const PLAIN_BYTES = 1 + 3 * 16;
const EARLIER_SEALED = /^c1[A-Za-z0-9_-]{70}$/;
const SEALED_LENGTH = VERSION.length + Math.ceil(((IV_BYTES + PLAIN_BYTES + TAG_BYTES) * 4) / 3);
const SEALED_PATTERN = new RegExp(`^${VERSION}[A-Za-z0-9_-]{${SEALED_LENGTH - VERSION.length}}$`);
/** Checkpoints of hub versions before sealing: `s<seq>`, `s<seq>.<start>`, `s<seq>.<start>.<origin>`. */
if (SEALED_LENGTH > MAX_CHECKPOINT_LENGTH) throw new Error("A sealed checkpoint must fit MAX_CHECKPOINT_LENGTH.");
const LEGACY_PATTERN = /^s(0|[1-9][0-9]{0,15})(\.(0|[1-9][0-9]{0,15})){0,2}$/;

/**
 * Random IVs drawn from the CSPRNG in bulk, each 12-byte slice used once:
 * the event bus seals a checkpoint per system for every change, and one
 * randomBytes() call per checkpoint cost more than the encryption (Next.js
 * wraps node:crypto's randomBytes). The IVs are as random as before.
 */
const IV_POOL_BYTES = IV_BYTES * 512;
let ivPool = Buffer.alloc(0);
let ivOffset = 0;

function nextIv(): Buffer {
  if (ivOffset + IV_BYTES > ivPool.length) {
    ivPool = randomBytes(IV_POOL_BYTES);
    ivOffset = 0;
  }
  const iv = ivPool.subarray(ivOffset, ivOffset + IV_BYTES);
  ivOffset += IV_BYTES;
  return iv;
}

export class CheckpointSealer {
  constructor(private readonly key: Buffer) {
    if (key.length !== 32) throw new RangeError("A checkpoint key is 32 bytes.");
  }

  seal(scope: CheckpointScope, position: FeedPosition): string {
    const plain = Buffer.alloc(PLAIN_BYTES);
    const { at, run } = position;
    plain.writeUInt8((run === null ? 0 : 1) | (run?.origin == null ? 0 : 2), 0);
    const put = (p: Position | null | undefined, offset: number) => {
      if (!p) return;
      plain.writeBigUInt64BE(p.xid, offset);
      plain.writeBigUInt64BE(BigInt(p.seq), offset + 8);
    };
    put(at, 1);
    put(run?.start, 17);
    put(run?.origin, 33);
    const iv = nextIv();
    const cipher = createCipheriv("aes-256-gcm", this.key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(additionalData(scope));
    const sealed = Buffer.concat([iv, cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
    return VERSION + sealed.toString("base64url");
  }

  open(scope: CheckpointScope, text: string): OpenedCheckpoint {
    if (LEGACY_PATTERN.test(text) || EARLIER_SEALED.test(text)) return { ok: false, reason: "stale" };
    if (!SEALED_PATTERN.test(text)) return { ok: false, reason: "malformed" };
    const bytes = Buffer.from(text.slice(VERSION.length), "base64url");
    // The last character carries unused bits: only the canonical spelling of these bytes is a checkpoint.
    if (bytes.length !== IV_BYTES + PLAIN_BYTES + TAG_BYTES || VERSION + bytes.toString("base64url") !== text) {
      return { ok: false, reason: "malformed" };
    }
    const iv = bytes.subarray(0, IV_BYTES);
    const tag = bytes.subarray(IV_BYTES + PLAIN_BYTES);
    let plain: Buffer;
    try {
      const decipher = createDecipheriv("aes-256-gcm", this.key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(additionalData(scope));
      decipher.setAuthTag(tag);
      plain = Buffer.concat([decipher.update(bytes.subarray(IV_BYTES, IV_BYTES + PLAIN_BYTES)), decipher.final()]);
    } catch {
      return { ok: false, reason: "stale" };
    }
    const flags = plain.readUInt8(0);
    // Only this hub writes what authenticates; anything else would be a bug, not a client's mistake.
    const limit = BigInt(Number.MAX_SAFE_INTEGER);
    const get = (offset: number): Position | null => {
      const seq = plain.readBigUInt64BE(offset + 8);
      return seq > limit ? null : { xid: plain.readBigUInt64BE(offset), seq: Number(seq) };
    };
    const at = get(1);
    const start = flags & 1 ? get(17) : null;
    const origin = flags & 2 ? get(33) : null;
    if (flags > 3 || flags === 2 || at === null || (flags & 1 && start === null) || (flags & 2 && origin === null)) {
      return { ok: false, reason: "stale" };
    }
    const position: FeedPosition = { at, run: start === null ? null : { start, origin } };
    return { ok: true, position };
  }
}

function additionalData(scope: CheckpointScope): Buffer {
  // Both names are restricted to [a-z0-9_], so a NUL separator is unambiguous.
  return Buffer.from(`concord-checkpoint\u0000${scope.system}\u0000${scope.collection}`, "utf8");
}

const SETTING_KEY = "checkpoint_key";
const sealers = new WeakMap<Database, Promise<CheckpointSealer>>();

/**
 * The hub's checkpoint sealer for this database, created on first use. The
 * key is read once per database handle (a transaction reads it again: it is
 * one small row). Concurrent first uses on several instances agree on one key.
 */
export function checkpointSealer(db: Database): Promise<CheckpointSealer> {
  let sealer = sealers.get(db);
  if (!sealer) {
    sealer = loadSealer(db);
    sealers.set(db, sealer);
    // A failure (database unreachable) must not be cached for the handle's lifetime.
    sealer.catch(() => sealers.delete(db));
  }
  return sealer;
}

async function loadSealer(db: Database): Promise<CheckpointSealer> {
  await db
    .insert(settings)
    .values({ key: SETTING_KEY, value: randomBytes(32).toString("base64") })
    .onConflictDoNothing();
  const [row] = await db.select({ value: settings.value }).from(settings).where(eq(settings.key, SETTING_KEY));
  const key = typeof row?.value === "string" ? Buffer.from(row.value, "base64") : Buffer.alloc(0);
  if (key.length !== 32) {
    throw new Error(`The setting "${SETTING_KEY}" does not hold a 32-byte base64 key; delete that row to let the hub create a new one.`);
  }
  return new CheckpointSealer(key);
}

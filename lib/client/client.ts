import mergePatch from "json-merge-patch";
import { canonicalJson } from "../sync/canonical";
import { unstorableReason } from "../sync/json-safety";
import {
  COLLECTION_PATTERN,
  hasKeyDeep,
  isJsonObject,
  MAX_PAGE_LIMIT,
  DELETED_DIGEST,
  MAX_PUSH_CHANGES,
  MAX_RECORD_BYTES,
  RECORD_ID_PATTERN,
  type ChangesResponse,
  type CollectionConfig,
  type ConfigResponse,
  type JsonObject,
  type PushResult,
} from "../sync/protocol";
import { Backoff, DEFAULT_BACKOFF, type BackoffOptions } from "./backoff";
import { changeBody, rebase } from "./change";
import { digestOf, digestsOf, sha256HexMany } from "./digest";
import { Emitter, type ClientEventName, type Handler } from "./emitter";
import { AuthError, ConcordError, HttpError, NetworkError } from "./errors";
import { Mutex } from "./mutex";
import { readEventStream } from "./sse";
import { canTransition, type ClientState } from "./states";
import { isModified, type LocalRecord, type LocalStore, type OutboxEntry, type RecordKey, type StoreWrite } from "./store";
import { Transport, type FetchLike } from "./transport";
import { configResponseSchema } from "./wire";

export interface Logger {
  debug(message: string): void;
  warn(message: string): void;
}

export interface SyncClientOptions {
  /** The hub's origin, e.g. `https://concord.example.com` (routes live under /api/v1). */
  baseUrl: string;
  /** This system's API key. */
  apiKey: string;
  store: LocalStore;
  /** Defaults to the global fetch. */
  fetch?: FetchLike;
  /** The clock for `modifiedAt` and quarantine times. */
  now?: () => Date;
  logger?: Logger;
  /** How long a `change` event waits for more before syncing (default 200 ms). */
  debounceMs?: number;
  backoff?: BackoffOptions;
  /** Page size of /changes and /manifest (default and maximum 10,000). */
  pageLimit?: number;
  /** Sync only these collections (default: every collection the system may read). */
  collections?: readonly string[];
}

export interface SyncReport {
  /** Changes sent that got an answer (every status). */
  pushed: number;
  /** Records written to the local copy from /changes. */
  pulled: number;
  /** Local copies dropped: deleted or out of scope on the hub, or missing from the manifest. */
  removed: number;
  /** Pushes that met a conflict, by what the hub's strategy answered. */
  conflicts: { merged: number; rejected: number; pending: number };
  /** Changes answered `forbidden` or `invalid` (now in quarantined()). */
  quarantined: number;
  /** Changes answered `unchanged`: the hub already had that. */
  unchanged: number;
}

export interface SyncProgress {
  collection: string;
  /** Pages of /changes read so far in this collection. */
  pages: number;
  /** Records written to the local copy so far in this collection. */
  pulled: number;
  hasMore: boolean;
}

export interface SyncOptions {
  /** Called after each page of /changes is applied. */
  onProgress?: (progress: SyncProgress) => void;
}

export interface ClientStatus {
  state: ClientState;
  /** Whether the real-time event stream is open. */
  connected: boolean;
  policyVersion: number | null;
  lastSyncAt: string | null;
  lastError: string | null;
  /** Records modified locally and not yet answered by the hub. */
  pendingChanges: number;
  quarantined: number;
}

export interface RecordView {
  id: string;
  data: JsonObject;
}

/** What `withSyncInternals` lends to offline bundles (bundle.ts). */
export interface SyncInternals {
  store: LocalStore;
  now: () => Date;
  emptyReport: () => SyncReport;
  /** The configuration in memory, else the one stored at the last sync (null if it never synced). */
  config: () => Promise<ConfigResponse | null>;
  /** Gives every modified record an outbox entry (changeId and frozen body), stored before it is sent. */
  freezeOutbox: () => Promise<void>;
  /** Applies push results exactly as sync() does. */
  applyResults: (collection: string, batch: OutboxEntry[], results: PushResult[], report: SyncReport) => Promise<void>;
  /** Applies a page of changes and stores its checkpoint exactly as sync() does. */
  applyPage: (collection: string, page: ChangesResponse, report: SyncReport) => Promise<number>;
  notePolicyVersion: (version: number) => void;
  /** Records a completed sync (status().lastSyncAt). */
  synced: () => void;
}

const CONFIG_META = "config";
/** A Retry-After longer than this is not waited for in one go (a misconfigured proxy must not park the client for days). */
const MAX_RETRY_AFTER_MS = 10 * 60_000;
const SILENT: Logger = { debug: () => undefined, warn: () => undefined };

function emptyReport(): SyncReport {
  return { pushed: 0, pulled: 0, removed: 0, conflicts: { merged: 0, rejected: 0, pending: 0 }, quarantined: 0, unchanged: 0 };
}

const recordKey = (collection: string, id: string) => `${collection}\u0000${id}`;

/**
 * The client side of the method (claims 3–7) for one business system: a local
 * copy with a base per record, an outbox, and sync with the hub over protocol v1.
 *
 * Outbox rules. A local write only changes the copy; whether a record is
 * modified is decided by digest (claim 5). When a sync starts, every modified
 * record without an outbox entry gets one: a changeId and its exact body,
 * stored before the request is made. From then on the entry is immutable and
 * is re-sent with the same changeId until the hub answers it (the hub returns
 * the first result for a re-sent changeId), so a crash or a network failure
 * can neither lose a change nor apply it twice. Edits made meanwhile stay in
 * the copy and become a new entry, based on the answer, at the next sync.
 */
export class SyncClient {
  private readonly store: LocalStore;
  private readonly transport: Transport;
  private readonly emitter: Emitter;
  private readonly now: () => Date;
  private readonly logger: Logger;
  private readonly debounceMs: number;
  private readonly backoffOptions: BackoffOptions;
  private readonly pageLimit: number;
  private readonly only: ReadonlySet<string> | null;
  /** Local writes and applying answers: never interleaved between a read and its write. */
  private readonly lock = new Mutex();
  /** Syncs run one after another. */
  private queue: Promise<unknown> = Promise.resolve();

  private config: ConfigResponse | null = null;
  private latestPolicyVersion: number | null = null;
  private state: ClientState = "idle";
  private running = false;
  private connected = false;
  private lastSyncAt: string | null = null;
  private lastError: string | null = null;
  private syncTimer: ReturnType<typeof setTimeout> | undefined;
  private debounceTimer: ReturnType<typeof setTimeout> | undefined;
  private streamAbort: AbortController | null = null;
  private streamLoop: Promise<void> | null = null;
  private readonly syncBackoff: Backoff;
  private wakeStream: (() => void) | null = null;
  private wasStopped = false;

  constructor(options: SyncClientOptions) {
    this.store = options.store;
    const fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.transport = new Transport({
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      fetch: fetchImpl,
      onPolicyVersion: (version) => this.notePolicyVersion(version),
    });
    this.now = options.now ?? (() => new Date());
    this.logger = options.logger ?? SILENT;
    this.debounceMs = options.debounceMs ?? 200;
    this.backoffOptions = options.backoff ?? DEFAULT_BACKOFF;
    this.pageLimit = Math.min(options.pageLimit ?? MAX_PAGE_LIMIT, MAX_PAGE_LIMIT);
    this.only = options.collections ? new Set(options.collections) : null;
    this.syncBackoff = new Backoff(this.backoffOptions);
    this.emitter = new Emitter((error) => this.logger.warn(`an event handler threw: ${String(error)}`));
  }

  // -------------------------------------------------------------------------
  // Events and status

  on<E extends ClientEventName>(event: E, handler: Handler<E>): () => void {
    return this.emitter.on(event, handler);
  }

  async status(): Promise<ClientStatus> {
    const [modified, outbox] = await Promise.all([this.store.modifiedRecords(), this.store.outbox()]);
    const inOutbox = new Set(outbox.map((e) => recordKey(e.collection, e.id)));
    const waiting = modified.filter((r) => !inOutbox.has(recordKey(r.collection, r.id))).length;
    return {
      state: this.state,
      connected: this.connected,
      policyVersion: this.config?.policyVersion ?? null,
      lastSyncAt: this.lastSyncAt,
      lastError: this.lastError,
      pendingChanges: waiting + outbox.filter((e) => e.quarantine === null).length,
      quarantined: outbox.filter((e) => e.quarantine !== null).length,
    };
  }

  /** The configuration last read from the hub (null before the first init or sync). */
  currentConfig(): ConfigResponse | null {
    return this.config;
  }

  private setState(next: ClientState): void {
    const previous = this.state;
    if (previous === next) return;
    if (!canTransition(previous, next)) {
      this.logger.warn(`unexpected state change ${previous} → ${next}`);
    }
    this.state = next;
    this.emitter.emit("status", { state: next, previous });
  }

  /** Where the client rests between syncs. */
  private restingState(): ClientState {
    return this.running ? "waiting" : this.wasStopped ? "stopped" : "idle";
  }

  // -------------------------------------------------------------------------
  // The local copy

  /** GET /config: what this system may read and write, its strategies and schedule (claim 2). */
  async init(): Promise<ConfigResponse> {
    return this.enqueue(() => this.refreshConfig());
  }

  async get(collection: string, id: string): Promise<JsonObject | undefined> {
    const row = await this.store.getRecord(collection, id);
    return row?.data ? structuredClone(row.data) : undefined;
  }

  /** The live local copies of a collection, by id. */
  async list(collection: string): Promise<RecordView[]> {
    const rows = await this.store.listRecords(collection);
    return rows.flatMap((r) => (r.data ? [{ id: r.id, data: structuredClone(r.data) }] : []));
  }

  /** Creates or replaces the local copy; it goes to the hub at the next sync. */
  async put(collection: string, id: string, data: JsonObject): Promise<void> {
    await this.putMany(collection, [{ id, data }]);
  }

  /**
   * Creates or replaces many local copies of one collection in one atomic
   * store write: all of them, or (when one is invalid) none. Each goes to the
   * hub at the next sync, as with put(). For bulk loads: 100,000 records are
   * one validation pass, one batch of digests and one write instead of
   * 100,000 of each. An id given twice is refused.
   */
  async putMany(collection: string, records: readonly RecordView[]): Promise<void> {
    checkCollection(collection);
    const ids = new Set<string>();
    const texts: string[] = [];
    const copies: JsonObject[] = [];
    for (const [i, record] of records.entries()) {
      const where = records.length > 1 ? ` (record ${i}, id "${String(record?.id).slice(0, 80)}")` : "";
      if (!isJsonObject(record) || typeof record.id !== "string") throw new ConcordError(`putMany takes {id, data} objects${where}.`);
      checkId(record.id, where);
      if (ids.has(record.id)) throw new ConcordError(`The id "${record.id}" appears twice in one putMany; give each record once.`);
      ids.add(record.id);
      texts.push(checkData(record.data, where));
      copies.push(structuredClone(record.data));
    }
    if (copies.length === 0) return;
    const digests = await sha256HexMany(texts);
    await this.lock.run(async () => {
      const bases = new Map((await this.store.getRecords(collection, [...ids])).map((r) => [r.id, r.base]));
      const modifiedAt = this.now().toISOString();
      await this.store.write({
        putRecords: copies.map((data, i) => {
          const id = (records[i] as RecordView).id;
          return { collection, id, data, digest: digests[i] as string, base: bases.get(id) ?? null, modifiedAt };
        }),
      });
    });
  }

  /** Applies an RFC 7396 merge patch to the local copy, which must exist. */
  async patch(collection: string, id: string, patch: JsonObject): Promise<JsonObject> {
    checkKey(collection, id);
    const current = await this.store.getRecord(collection, id);
    if (!current?.data) {
      throw new ConcordError(`There is no local copy of ${collection}/${id} to patch; sync first, or create it with put().`);
    }
    const next: unknown = mergePatch.apply(structuredClone(current.data), patch);
    if (!isJsonObject(next)) throw new ConcordError("The patch does not produce a JSON object.");
    await this.put(collection, id, next);
    return next;
  }

  /** Deletes the local copy; the deletion goes to the hub at the next sync. */
  async delete(collection: string, id: string): Promise<void> {
    await this.deleteMany(collection, [id]);
  }

  /**
   * Deletes many local copies of one collection in one atomic store write;
   * the deletions go to the hub at the next sync. Ids without a local copy
   * are skipped, as with delete(); an invalid id refuses the whole call.
   */
  async deleteMany(collection: string, ids: readonly string[]): Promise<void> {
    checkCollection(collection);
    for (const [i, id] of ids.entries()) checkId(id, ids.length > 1 ? ` (id ${i})` : "");
    if (ids.length === 0) return;
    await this.lock.run(async () => {
      const rows = await this.store.getRecords(collection, [...new Set(ids)]);
      if (rows.length === 0) return;
      const inOutbox = await this.busyIds(collection);
      const modifiedAt = this.now().toISOString();
      const deleted = DELETED_DIGEST;
      const write: { putRecords: LocalRecord[]; deleteRecords: RecordKey[] } = { putRecords: [], deleteRecords: [] };
      for (const row of rows) {
        // Never reached the hub: there is nothing to delete there.
        if (row.base === null && !inOutbox.has(row.id)) write.deleteRecords.push({ collection, id: row.id });
        else write.putRecords.push({ ...row, data: null, digest: deleted, modifiedAt });
      }
      await this.store.write(write);
    });
  }

  // -------------------------------------------------------------------------
  // Quarantine

  /** Changes the hub answered `forbidden` or `invalid`, with the reason. They block only their own record. */
  async quarantined(): Promise<OutboxEntry[]> {
    return (await this.store.outbox()).filter((e) => e.quarantine !== null);
  }

  /** Sends the quarantined change again, same changeId and body, at the next sync (e.g. after a policy change). */
  async retryQuarantined(changeId: string): Promise<void> {
    await this.lock.run(async () => {
      const entry = await this.quarantinedEntry(changeId);
      await this.store.write({ putOutbox: [{ ...entry, quarantine: null }] });
    });
  }

  /** Drops the quarantined change and reverts the local copy to its base (the hub's version it was based on). */
  async discardQuarantined(changeId: string): Promise<void> {
    await this.lock.run(async () => {
      const entry = await this.quarantinedEntry(changeId);
      const row = await this.store.getRecord(entry.collection, entry.id);
      const write: StoreWrite = { deleteOutbox: [changeId] };
      if (row) {
        if (row.base === null || row.base.data === null) write.deleteRecords = [{ collection: row.collection, id: row.id }];
        else write.putRecords = [{ ...row, data: row.base.data, digest: row.base.digest, modifiedAt: null }];
      }
      await this.store.write(write);
    });
  }

  private async quarantinedEntry(changeId: string): Promise<OutboxEntry> {
    const entry = (await this.store.outbox()).find((e) => e.changeId === changeId && e.quarantine !== null);
    if (!entry) throw new ConcordError(`There is no quarantined change ${changeId}; list them with quarantined().`);
    return entry;
  }

  // -------------------------------------------------------------------------
  // Sync (claim 4)

  /**
   * Push, then pull: modified records are pushed (modified and current:
   * applied; modified and behind: the hub's strategy answers and the copy
   * adopts it); then /changes brings what others changed (unmodified and
   * behind: pulled). A record with a local edit keeps its copy when pulled:
   * its push settles it. Rejects with NetworkError when the hub cannot be
   * reached; the outbox stays intact.
   */
  sync(options: SyncOptions = {}): Promise<SyncReport> {
    return this.enqueue(async () => {
      const report = emptyReport();
      await this.pushAll(report);
      if (this.config === null || this.policyStale()) {
        // A restarted client compares with the configuration it last synced under (kept in the store).
        const before = this.config?.policyVersion ?? (await this.storedPolicyVersion());
        const config = await this.refreshConfig();
        if (before !== null && before !== config.policyVersion) await this.reconcileWith(report, options);
      }
      await this.pullAll(report, options);
      if (this.policyStale()) {
        await this.refreshConfig();
        await this.reconcileWith(report, options);
      }
      this.lastSyncAt = this.now().toISOString();
      return report;
    });
  }

  /**
   * Re-reads /config and compares the copy with each collection's manifest:
   * drops what this system may no longer read (keeping local edits it may
   * still write), and pulls what is newer or newly readable.
   */
  reconcile(options: SyncOptions = {}): Promise<SyncReport> {
    return this.enqueue(async () => {
      const report = emptyReport();
      await this.refreshConfig();
      await this.reconcileWith(report, options);
      return report;
    });
  }

  /**
   * For offline bundles (bundle.ts) only, not for host programs: runs `work`
   * in the sync queue with the internals a sync uses, so a bundle freezes,
   * applies and checkpoints exactly as `sync()` does.
   * @internal
   */
  withSyncInternals<T>(work: (internals: SyncInternals) => Promise<T>): Promise<T> {
    return this.enqueue(() =>
      work({
        store: this.store,
        now: this.now,
        emptyReport,
        config: async () => this.config ?? (await this.storedConfig()),
        freezeOutbox: () => this.lock.run(() => this.freezeOutbox()),
        applyResults: (collection, batch, results, report) => this.lock.run(() => this.applyResults(collection, batch, results, report)),
        applyPage: (collection, page, report) => this.lock.run(() => this.applyPage(collection, page, report)),
        notePolicyVersion: (version) => this.notePolicyVersion(version),
        synced: () => {
          this.lastSyncAt = this.now().toISOString();
        },
      }),
    );
  }

  private async storedConfig(): Promise<ConfigResponse | null> {
    const parsed = configResponseSchema.safeParse(await this.store.getMeta(CONFIG_META));
    return parsed.success ? parsed.data : null;
  }

  private enqueue<T>(work: () => Promise<T>): Promise<T> {
    const run = this.queue.then(async () => {
      this.setState("syncing");
      try {
        const result = await work();
        this.lastError = null;
        this.setState(this.restingState());
        return result;
      } catch (error) {
        this.lastError = error instanceof Error ? error.message : String(error);
        this.setState(this.running ? "backoff" : this.restingState());
        throw error;
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private notePolicyVersion(version: number): void {
    const changed = this.latestPolicyVersion !== null && this.latestPolicyVersion !== version;
    this.latestPolicyVersion = version;
    if (changed && this.config && this.config.policyVersion !== version && this.running) this.requestSync();
  }

  private async storedPolicyVersion(): Promise<number | null> {
    const stored = await this.store.getMeta(CONFIG_META);
    return isJsonObject(stored) && typeof stored.policyVersion === "number" ? stored.policyVersion : null;
  }

  private policyStale(): boolean {
    return this.config !== null && this.latestPolicyVersion !== null && this.latestPolicyVersion !== this.config.policyVersion;
  }

  private async refreshConfig(): Promise<ConfigResponse> {
    const previous = this.config;
    const config = await this.transport.config();
    this.config = config;
    this.latestPolicyVersion = config.policyVersion;
    await this.store.write({ meta: { [CONFIG_META]: JSON.parse(JSON.stringify(config)) as JsonObject } });
    this.emitter.emit("config", { config });
    if (this.running && (previous?.sync.intervalSeconds !== config.sync.intervalSeconds || previous?.sync.realtime !== config.sync.realtime)) {
      this.scheduleSync(config.sync.intervalSeconds * 1000);
      this.updateStream();
    }
    return config;
  }

  // --- push

  private async pushAll(report: SyncReport): Promise<void> {
    await this.lock.run(() => this.freezeOutbox());
    const inFlight = (await this.store.outbox()).filter((e) => e.quarantine === null);
    const byCollection = new Map<string, OutboxEntry[]>();
    for (const entry of inFlight) {
      const list = byCollection.get(entry.collection) ?? [];
      list.push(entry);
      byCollection.set(entry.collection, list);
    }
    for (const [collection, entries] of byCollection) {
      for (let i = 0; i < entries.length; i += MAX_PUSH_CHANGES) {
        await this.pushBatch(collection, entries.slice(i, i + MAX_PUSH_CHANGES), report);
      }
    }
  }

  /**
   * One push request. A whole request refused for what it is (no such
   * collection, no right to it) quarantines the batch. A batch refused for its
   * content as a whole (400, or 413 for a record over the size limit) is split
   * in halves until the change(s) the hub refuses stand alone: those are
   * quarantined with the hub's message, the others sync. One bad record never
   * stalls the queue; an outage (NetworkError, 5xx) quarantines nothing and
   * leaves every entry queued.
   */
  private async pushBatch(collection: string, batch: OutboxEntry[], report: SyncReport): Promise<void> {
    let results: PushResult[];
    try {
      results = (await this.transport.push(collection, batch.map((e) => e.change))).results;
    } catch (error) {
      if (error instanceof HttpError && (error.status === 403 || error.status === 404)) {
        await this.lock.run(() => this.quarantineAll(batch, error, report));
        return;
      }
      if (error instanceof HttpError && (error.status === 400 || error.status === 413)) {
        if (batch.length === 1) {
          await this.lock.run(() => this.quarantineAll(batch, error, report));
          return;
        }
        const half = Math.ceil(batch.length / 2);
        this.logger.debug(`push of ${batch.length} changes to ${collection} refused (${error.status}); sending it as two halves to find the change the hub refuses`);
        await this.pushBatch(collection, batch.slice(0, half), report);
        await this.pushBatch(collection, batch.slice(half), report);
        return;
      }
      throw error;
    }
    if (results.length !== batch.length) {
      throw new ConcordError(`The hub answered ${results.length} results for ${batch.length} changes; the changes stay queued and are re-sent.`);
    }
    await this.lock.run(() => this.applyResults(collection, batch, results, report));
  }

  /** Gives every modified record without an outbox entry one, stored before anything is sent. */
  private async freezeOutbox(): Promise<void> {
    const outbox = await this.store.outbox();
    const busy = new Set(outbox.map((e) => recordKey(e.collection, e.id)));
    const fresh: OutboxEntry[] = [];
    const stale: RecordKey[] = [];
    for (const row of await this.store.modifiedRecords()) {
      if (busy.has(recordKey(row.collection, row.id))) continue;
      if (row.data === null && (row.base === null || row.base.data === null)) {
        stale.push({ collection: row.collection, id: row.id });
        continue;
      }
      const changeId = crypto.randomUUID();
      fresh.push({ changeId, collection: row.collection, id: row.id, change: changeBody(row, changeId), record: row.data, quarantine: null });
    }
    if (fresh.length > 0 || stale.length > 0) await this.store.write({ putOutbox: fresh, deleteRecords: stale });
  }

  private async quarantineAll(batch: OutboxEntry[], error: HttpError, report: SyncReport): Promise<void> {
    const at = this.now().toISOString();
    // 404 (no such collection), 400 and 413 (the change itself): nothing a policy change would fix.
    const status = error.status === 403 ? "forbidden" : "invalid";
    const entries = batch.map((e) => ({ ...e, quarantine: { status, reason: error.message, at } }) satisfies OutboxEntry);
    await this.store.write({ putOutbox: entries });
    report.pushed += batch.length;
    report.quarantined += batch.length;
    for (const entry of entries) this.emitter.emit("quarantine", { entry });
  }

  /** One push answer, applied atomically: new bases and copies, and the answered entries leave the outbox. */
  private async applyResults(collection: string, batch: OutboxEntry[], results: PushResult[], report: SyncReport): Promise<void> {
    const rows = new Map((await this.store.getRecords(collection, batch.map((e) => e.id))).map((r) => [r.id, r]));
    const write: { putRecords: LocalRecord[]; deleteRecords: RecordKey[]; putOutbox: OutboxEntry[]; deleteOutbox: string[] } = {
      putRecords: [],
      deleteRecords: [],
      putOutbox: [],
      deleteOutbox: [],
    };
    const quarantined: OutboxEntry[] = [];
    const conflicts: PushResult[] = [];
    const changed: string[] = [];
    const at = this.now().toISOString();
    let refetch = false;
    // The digest of what each entry sent, all at once (one pass with node:crypto).
    const sentDigests = await digestsOf(batch.map((e) => e.record));

    for (const [i, entry] of batch.entries()) {
      const result = results[i] as PushResult;
      const sent = sentDigests[i] as string;
      report.pushed += 1;
      if (result.status === "forbidden" || result.status === "invalid") {
        const held = { ...entry, quarantine: { status: result.status, reason: result.reason ?? `The hub answered ${result.status}.`, at } };
        write.putOutbox.push(held);
        quarantined.push(held);
        report.quarantined += 1;
        continue;
      }
      write.deleteOutbox.push(entry.changeId);
      const row = rows.get(entry.id) ?? null;
      if (result.version === undefined) continue; // not possible for these statuses (protocol.md); nothing to base on
      if (row?.base && row.base.version > result.version) continue; // a newer version was pulled meanwhile

      let next: LocalRecord | null;
      if (result.status === "applied" || result.status === "unchanged") {
        if (result.status === "unchanged") report.unchanged += 1;
        if (result.conflict) conflicts.push(result);
        // `unchanged` after a conflict: the hub's copy holds changes of others that this client has not seen,
        // and no data came back. Pull it: the base says "this version, as I have it", and the collection
        // is pulled again in full, where an equal version with another digest replaces the copy.
        if (result.digest !== undefined && result.digest !== sent) refetch = true;
        const base = { version: result.version, digest: sent, data: entry.record };
        next = row ? { ...row, base } : { collection, id: entry.id, data: entry.record, digest: sent, base, modifiedAt: null };
      } else {
        // merged, rejected, pending: the copy becomes the hub's answer (pending: the hub's copy, until an operator decides).
        report.conflicts[result.status] += 1;
        conflicts.push(result);
        changed.push(entry.id);
        const theirs = result.deleted ? null : (result.data ?? null);
        if (result.digest === undefined) {
          // The answer is outside what this system may read: it keeps no copy.
          next = null;
        } else {
          const base = { version: result.version, digest: result.digest, data: theirs };
          const editedSince = row !== null && row.digest !== sent;
          const data = editedSince ? rebase(entry.record, row.data, theirs) : theirs;
          const digest = data === theirs ? result.digest : await digestOf(data);
          next = { collection, id: entry.id, data, digest, base, modifiedAt: editedSince ? row.modifiedAt : null };
        }
      }
      if (next === null || (next.data === null && !isModified(next))) write.deleteRecords.push({ collection, id: entry.id });
      else write.putRecords.push(next);
    }
    await this.store.write(refetch ? { ...write, checkpoints: { [collection]: null } } : write);
    for (const result of conflicts) this.emitter.emit("conflict", { collection, result });
    for (const entry of quarantined) this.emitter.emit("quarantine", { entry });
    if (changed.length > 0) this.emitter.emit("change", { collection, ids: changed });
  }

  // --- pull

  private readableCollections(): string[] {
    return Object.entries(this.config?.collections ?? {})
      .filter(([name, c]) => c.read !== null && (this.only === null || this.only.has(name)))
      .map(([name]) => name);
  }

  private async pullAll(report: SyncReport, options: SyncOptions): Promise<void> {
    for (const collection of this.readableCollections()) await this.pullCollection(collection, report, options);
  }

  private async pullCollection(collection: string, report: SyncReport, options: SyncOptions, resyncing = false): Promise<void> {
    let since = await this.store.checkpoint(collection);
    const progress: SyncProgress = { collection, pages: 0, pulled: 0, hasMore: true };
    for (;;) {
      let page: ChangesResponse;
      try {
        page = await this.transport.changes(collection, since, this.pageLimit);
      } catch (error) {
        // 410 resync_required: the hub can no longer read this checkpoint. Start over from the manifest (claim 5),
        // keeping local edits; a second 410 while doing so is the hub's fault, not this checkpoint's.
        if (error instanceof HttpError && error.status === 410 && !resyncing && this.config) {
          this.logger.warn(`the hub cannot continue ${collection} from its checkpoint (${error.code}); reconciling it through the manifest`);
          await this.reconcileCollection(collection, this.config, report, options, true);
          return;
        }
        throw error;
      }
      const pulled = await this.lock.run(() => this.applyPage(collection, page, report));
      since = page.checkpoint;
      progress.pages += 1;
      progress.pulled += pulled;
      progress.hasMore = page.hasMore;
      options.onProgress?.({ ...progress });
      if (!page.hasMore) return;
    }
  }

  /** One page of /changes and its checkpoint, applied atomically. Returns how many copies it wrote. */
  private async applyPage(collection: string, page: ChangesResponse, report: SyncReport): Promise<number> {
    const ids = page.changes.map((c) => c.id);
    const rows = new Map((await this.store.getRecords(collection, ids)).map((r) => [r.id, r]));
    const busy = await this.busyIds(collection);
    const putRecords: LocalRecord[] = [];
    const deleteRecords: RecordKey[] = [];
    const changed: string[] = [];
    for (const entry of page.changes) {
      const row = rows.get(entry.id);
      // A local edit keeps its copy and its base: its push settles the difference (claim 4, modified and behind).
      if (row && (isModified(row) || busy.has(entry.id))) continue;
      if ("data" in entry) {
        // Skip what the copy already is; an equal version with another digest is a copy to replace (see applyResults).
        if (row?.base && (row.base.version > entry.version || (row.base.version === entry.version && row.base.digest === entry.digest))) continue;
        const base = { version: entry.version, digest: entry.digest, data: entry.data };
        putRecords.push({ collection, id: entry.id, data: entry.data, digest: entry.digest, base, modifiedAt: null });
        changed.push(entry.id);
      } else if (row) {
        deleteRecords.push({ collection, id: entry.id });
        changed.push(entry.id);
      }
    }
    await this.store.write({ putRecords, deleteRecords, checkpoints: { [collection]: page.checkpoint } });
    report.pulled += putRecords.length;
    report.removed += deleteRecords.length;
    if (changed.length > 0) this.emitter.emit("change", { collection, ids: changed });
    return putRecords.length;
  }

  private async busyIds(collection: string): Promise<Set<string>> {
    return new Set((await this.store.outbox()).filter((e) => e.collection === collection).map((e) => e.id));
  }

  // --- reconcile (claim 5, manifest)

  private async reconcileWith(report: SyncReport, options: SyncOptions): Promise<void> {
    const config = this.config;
    if (!config) return;
    const readable = new Set(this.readableCollections());
    for (const collection of await this.store.collections()) {
      if (readable.has(collection)) continue;
      await this.lock.run(async () => {
        const rows = await this.store.listRecords(collection);
        const drop = await this.droppable(collection, rows, new Set(), config.collections[collection]);
        await this.store.write({ deleteRecords: drop, checkpoints: { [collection]: null } });
        report.removed += drop.length;
        if (drop.length > 0) this.emitter.emit("change", { collection, ids: drop.map((k) => k.id) });
      });
    }
    for (const collection of readable) await this.reconcileCollection(collection, config, report, options, false);
  }

  /**
   * One readable collection against its manifest: drops what the hub no
   * longer has for this system (keeping local edits it may still write), and
   * pulls from the start when anything is newer or new. `resync`: the
   * checkpoint is unusable, so the collection is pulled from the start in any
   * case (a full pull skips the versions the copy already has).
   */
  private async reconcileCollection(
    collection: string,
    config: ConfigResponse,
    report: SyncReport,
    options: SyncOptions,
    resync: boolean,
  ): Promise<void> {
    const server = new Map<string, number>();
    let after: string | null = null;
    do {
      const page = await this.transport.manifest(collection, after, this.pageLimit);
      for (const e of page.entries) server.set(e.id, e.version);
      after = page.next;
    } while (after !== null);
    const behind = await this.lock.run(async () => {
      const rows = await this.store.listRecords(collection);
      const drop = await this.droppable(collection, rows, new Set(server.keys()), config.collections[collection]);
      const local = new Map(rows.map((r) => [r.id, r]));
      let stale = resync;
      for (const [id, version] of server) {
        if (stale) break;
        const row = local.get(id);
        if (!row || (row.base?.version ?? 0) < version) stale = true;
      }
      // There is no fetch by id: a full pull that skips equal versions brings what is newer or newly readable.
      await this.store.write({ deleteRecords: drop, ...(stale ? { checkpoints: { [collection]: null } } : {}) });
      report.removed += drop.length;
      if (drop.length > 0) this.emitter.emit("change", { collection, ids: drop.map((k) => k.id) });
      return stale;
    });
    if (behind) await this.pullCollection(collection, report, options, resync);
  }

  /** Rows to drop: not on the hub for this system, unless they carry a local edit it may still write. */
  private async droppable(collection: string, rows: LocalRecord[], onServer: Set<string>, config: CollectionConfig | undefined): Promise<RecordKey[]> {
    const busy = await this.busyIds(collection);
    return rows
      .filter((row) => !onServer.has(row.id))
      .filter((row) => !((isModified(row) || busy.has(row.id)) && mayStillWrite(row, config)))
      .map((row) => ({ collection, id: row.id }));
  }

  // -------------------------------------------------------------------------
  // Triggers (claim 6): interval, real time, backoff

  /** Syncs now, then at the broadcast interval, and in real time through /events when the configuration says so. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.wasStopped = false;
    this.setState("waiting");
    this.backgroundSync();
  }

  /** Stops timers and the event stream; resolves once a running sync has finished. */
  async stop(): Promise<void> {
    this.haltBackground();
    this.setState("stopped");
    await this.streamLoop;
    await this.queue;
  }

  /** Ends background work at once: no more timers, the event stream closes (without waiting for it). */
  private haltBackground(): void {
    this.running = false;
    this.wasStopped = true;
    clearTimeout(this.syncTimer);
    clearTimeout(this.debounceTimer);
    this.debounceTimer = undefined;
    this.streamAbort?.abort();
    this.wakeStream?.();
  }

  /**
   * Asks for a sync soon (after `debounceMs`, merged with other requests)
   * while the client is started: e.g. a connector's database trigger saw a
   * local change. Does nothing when stopped.
   */
  syncSoon(): void {
    this.requestSync();
  }

  /** A sync soon (debounced), e.g. after a `change` event. */
  private requestSync(): void {
    if (!this.running || this.debounceTimer !== undefined) return;
    this.debounceTimer = unrefTimer(
      setTimeout(() => {
        this.debounceTimer = undefined;
        this.backgroundSync();
      }, this.debounceMs),
    );
  }

  private scheduleSync(ms: number): void {
    clearTimeout(this.syncTimer);
    if (this.running) this.syncTimer = unrefTimer(setTimeout(() => this.backgroundSync(), ms));
  }

  private backgroundSync(): void {
    if (!this.running) return;
    clearTimeout(this.syncTimer);
    this.sync().then(
      () => {
        this.syncBackoff.reset();
        this.scheduleSync((this.config?.sync.intervalSeconds ?? 60) * 1000);
        this.updateStream();
      },
      (error: unknown) => {
        if (error instanceof AuthError) {
          this.haltOnAuthError(error);
          return;
        }
        this.emitter.emit("error", { error: error instanceof Error ? error : new Error(String(error)) });
        // The hub's Retry-After (429, 503) is a floor: coming back sooner only earns another refusal.
        const asked = error instanceof HttpError || error instanceof NetworkError ? (error.retryAfterMs ?? 0) : 0;
        this.scheduleSync(Math.max(this.syncBackoff.next(), Math.min(asked, MAX_RETRY_AFTER_MS)));
      },
    );
  }

  /**
   * 401 in the background: the key is wrong or was revoked, and retrying cannot help.
   * Stops the loop (timers, event stream) without waiting for it, and says what to do.
   */
  private haltOnAuthError(error: AuthError): void {
    if (!this.running) return;
    this.haltBackground();
    const message =
      `The hub refused this system's API key (401: wrong or revoked), so background sync has stopped. ` +
      `Ask an operator to issue a new key for this system, give it to the client, and start it again. (${error.message})`;
    this.lastError = message;
    this.setState("stopped");
    this.emitter.emit("error", { error: new AuthError(error.status, error.code, message, error.details) });
  }

  /** Opens the event stream when running with realtime on; the loop ends by itself otherwise. */
  private updateStream(): void {
    const wanted = this.running && this.config?.sync.realtime === true;
    if (wanted && this.streamLoop === null) {
      this.streamLoop = this.runStream().finally(() => {
        this.streamLoop = null;
      });
    } else if (!wanted) {
      this.streamAbort?.abort();
    }
  }

  private async runStream(): Promise<void> {
    const backoff = new Backoff(this.backoffOptions);
    while (this.running && this.config?.sync.realtime === true) {
      const abort = new AbortController();
      this.streamAbort = abort;
      try {
        const body = await this.transport.events(abort.signal);
        this.connected = true;
        // Changes made while the stream was down raise no event: catch up.
        if (backoff.failures > 0) this.requestSync();
        await readEventStream(
          body,
          (message) => this.onStreamEvent(message.event, message.data),
          () => backoff.reset(),
          abort.signal,
        );
      } catch (error) {
        if (error instanceof AuthError) {
          this.haltOnAuthError(error);
          return;
        }
        if (!abort.signal.aborted) {
          this.emitter.emit("error", { error: error instanceof Error ? error : new Error(String(error)) });
        }
      } finally {
        this.connected = false;
      }
      if (!this.running) return;
      const delay = backoff.next();
      this.logger.debug(`event stream closed; reconnecting in ${delay} ms`);
      await new Promise<void>((resolve) => {
        const timer = unrefTimer(setTimeout(resolve, delay));
        this.wakeStream = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wakeStream = null;
    }
  }

  private onStreamEvent(event: string | undefined, data: string): void {
    let payload: unknown;
    try {
      payload = JSON.parse(data);
    } catch {
      this.logger.warn(`ignored an event whose data is not JSON: ${data.slice(0, 100)}`);
      return;
    }
    if (event === "change" && isJsonObject(payload) && typeof payload.collection === "string") {
      if (this.readableCollections().includes(payload.collection)) this.requestSync();
    } else if (event === "config" && isJsonObject(payload) && typeof payload.policyVersion === "number") {
      this.notePolicyVersion(payload.policyVersion);
      if (this.policyStale()) this.requestSync();
    }
  }
}

/**
 * Lets a timer not keep a Node process alive on its own (the host program decides when it exits).
 * Browsers return a number, which has nothing to unref.
 */
function unrefTimer<T>(timer: T): T {
  if (typeof timer === "object" && timer !== null && "unref" in timer && typeof timer.unref === "function") {
    (timer as { unref: () => void }).unref();
  }
  return timer;
}

function mayStillWrite(row: LocalRecord, config: CollectionConfig | undefined): boolean {
  const write = config?.write;
  if (!write) return false;
  if (write.fields.includes("*")) return true;
  if (row.data === null) return false; // deleting needs every field
  const before = row.base?.data ?? {};
  const fields = new Set([...Object.keys(before), ...Object.keys(row.data)]);
  for (const field of fields) {
    const a = before[field];
    const b = row.data[field];
    const same = a === undefined || b === undefined ? a === b : canonicalJson(a) === canonicalJson(b);
    if (!same && !write.fields.includes(field)) return false;
  }
  return true;
}

function checkCollection(collection: string): void {
  if (typeof collection !== "string" || !COLLECTION_PATTERN.test(collection)) {
    throw new ConcordError(`"${String(collection)}" is not a collection name: use a lowercase letter, then a-z, 0-9 or _ (at most 63 characters).`);
  }
}

function checkId(id: string, where = ""): void {
  if (typeof id !== "string" || !RECORD_ID_PATTERN.test(id) || [...id].length > 256) {
    throw new ConcordError(`A record id is 1 to 256 printable characters, without control characters${where}.`);
  }
}

function checkKey(collection: string, id: string): void {
  checkCollection(collection);
  checkId(id);
}

const encoder = new TextEncoder();

/**
 * Validates a record's data and returns its canonical JSON (what its digest is
 * computed from). Refuses what the hub would refuse, so the host program
 * learns at put() rather than from a quarantine: values the hub cannot store
 * (U+0000, lone surrogates, non-finite numbers, nesting deeper than 64 levels:
 * ../sync/json-safety), integers JSON cannot write exactly, and records over
 * the size limit.
 */
function checkData(data: JsonObject, where = ""): string {
  if (!isJsonObject(data)) throw new ConcordError(`A record's data must be a JSON object (not an array or a scalar)${where}.`);
  // First: it bounds the depth, and the checks after it recurse.
  const unstorable = unstorableReason(data, "data");
  if (unstorable) throw new ConcordError(`The hub cannot store this record: ${unstorable}${where}.`);
  if (hasKeyDeep(data, "__proto__")) throw new ConcordError(`A record may not contain a key named "__proto__"${where}.`);
  let text: string;
  try {
    text = canonicalJson(data);
  } catch (error) {
    throw new ConcordError(`A record's data must be plain JSON (no undefined, functions, or non-finite numbers)${where}.`, { cause: error });
  }
  // UTF-8 takes at most 3 bytes per UTF-16 unit: a short text cannot exceed the limit, so only long ones are measured.
  const size = text.length * 3 <= MAX_RECORD_BYTES ? text.length : encoder.encode(text).length;
  if (size > MAX_RECORD_BYTES) {
    throw new ConcordError(`The record is ${size} bytes as canonical JSON; the hub accepts at most ${MAX_RECORD_BYTES}. Split it or store large content elsewhere${where}.`);
  }
  return text;
}

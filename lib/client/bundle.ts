import { z } from "zod";
import { decodeBundle, FORMAT, sealBundle, type ResponseBundle, type UnsealedRequestBundle } from "../sync/bundle-format";
import type { ConfigResponse, JsonObject, PushChange, PushResult } from "../sync/protocol";
import { SyncClient, type SyncInternals, type SyncReport } from "./client";
import { ConcordError } from "./errors";
import { sha256HexOf } from "./digest";
import type { LocalStore, OutboxEntry } from "./store";

/**
 * Offline bundles, the client side (protocol.md, "Offline bundles"): a site
 * without a connection exports its pending changes and checkpoints to a file,
 * someone carries it to the hub (POST /api/v1/bundles), and the site imports
 * the response bundle the hub answers.
 *
 * Export freezes the outbox exactly as a sync does before it pushes: every
 * modified record gets its outbox entry (changeId and body), and the bundle
 * carries those entries' bodies unchanged. The entries stay in the outbox
 * until an answer arrives — by import, or by an online sync that re-sends the
 * same changeIds (the hub answers a changeId it already applied with its first
 * result) — so a change is never sent as two different changes. Import
 * applies the results and the pulled changes through the same code as
 * `sync()`, and stores the new checkpoints.
 */

/** Why a bundle was refused or could not be made. Nothing was changed. */
export class BundleError extends ConcordError {
  constructor(
    /** not_json, wrong_format, checksum_mismatch, invalid (from decodeBundle), or never_synced, unknown_collection, unknown_bundle, already_imported, other_system, mismatch. */
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface ExportOptions {
  /** Only these collections (their pending changes and checkpoints). Default: every collection the system may read or has changes in. */
  collections?: readonly string[];
}

export interface ExportedBundle {
  /** The bundle file's content (JSON): write it to a file and carry it to the hub. */
  text: string;
  bundleId: string;
  system: string;
  /** Pending changes in the bundle, per collection. */
  changes: Record<string, number>;
  checkpoints: Record<string, string | null>;
}

export interface ImportResult {
  bundleId: string;
  /** What the import did, counted as `sync()` counts. */
  report: SyncReport;
  /** The hub's policy version when it applied the bundle; a newer one than the site's makes the next sync re-read /config and reconcile. */
  policyVersion: number;
  /** Collections whose pulled changes were skipped because the store synced online after the export (its own checkpoint is newer). */
  skipped: string[];
}

/** Lowercase hex SHA-256 of a text (the bundle checksum's hash): the SDK's one implementation, in lib/client/digest.ts. */
export const sha256Hex = sha256HexOf;

/** Where the store remembers the bundles it exported, by bundleId. */
const BUNDLES_META = "bundles";

const exportRecordSchema = z.object({
  system: z.string(),
  createdAt: z.string(),
  /** The changeIds sent, per collection, in bundle order. */
  changeIds: z.record(z.string(), z.array(z.string())),
  /** The checkpoints sent. */
  checkpoints: z.record(z.string(), z.string().nullable()),
  importedAt: z.string().nullable(),
});
type ExportRecord = z.infer<typeof exportRecordSchema>;
const exportsSchema = z.record(z.string(), exportRecordSchema);

async function readExports(store: LocalStore): Promise<Record<string, ExportRecord>> {
  const parsed = exportsSchema.safeParse((await store.getMeta(BUNDLES_META)) ?? {});
  return parsed.success ? parsed.data : {};
}

function exportsMeta(exports: Record<string, ExportRecord>): JsonObject {
  return JSON.parse(JSON.stringify(exports)) as JsonObject;
}

/** A client for a bare store: bundles never use the network. Use the running client instead when there is one. */
function clientFor(source: SyncClient | LocalStore): SyncClient {
  if (source instanceof SyncClient) return source;
  return new SyncClient({
    baseUrl: "http://offline.invalid",
    apiKey: "offline",
    store: source,
    fetch: () => Promise.reject(new TypeError("offline bundles do not use the network")),
  });
}

async function configOf(internals: SyncInternals): Promise<ConfigResponse> {
  const config = await internals.config();
  if (config === null) {
    throw new BundleError(
      "never_synced",
      "This store has never synced, so it does not know its system or collections: sync once while online (CLI: `concord sync`), then export.",
    );
  }
  return config;
}

/**
 * Writes a request bundle of the pending changes (in push form, exactly as a
 * sync would send them) and the checkpoints of the readable collections.
 * Remembers its bundleId and changeIds in the store, so that only its
 * response can be imported.
 */
export async function exportBundle(source: SyncClient | LocalStore, options: ExportOptions = {}): Promise<ExportedBundle> {
  return clientFor(source).withSyncInternals(async (internals) => {
    const config = await configOf(internals);
    const wanted = options.collections ? new Set(options.collections) : null;
    for (const collection of wanted ?? []) {
      if (!(collection in config.collections)) {
        throw new BundleError(
          "unknown_collection",
          `System "${config.system}" can neither read nor write a collection "${collection}" (policy version ${config.policyVersion}); choose from: ${Object.keys(config.collections).join(", ") || "none"}.`,
        );
      }
    }
    // A collection the system can no longer use would make the hub refuse the whole bundle: its changes wait (a sync quarantines them).
    const included = (collection: string) => (wanted === null || wanted.has(collection)) && collection in config.collections;

    await internals.freezeOutbox();
    const entries = (await internals.store.outbox()).filter((e) => e.quarantine === null && included(e.collection));
    const changes: Record<string, PushChange[]> = {};
    const changeIds: Record<string, string[]> = {};
    for (const entry of entries) {
      (changes[entry.collection] ??= []).push(entry.change);
      (changeIds[entry.collection] ??= []).push(entry.changeId);
    }
    const checkpoints: Record<string, string | null> = {};
    for (const [collection, c] of Object.entries(config.collections)) {
      if (c.read !== null && included(collection)) checkpoints[collection] = await internals.store.checkpoint(collection);
    }

    const bundleId = crypto.randomUUID();
    const createdAt = internals.now().toISOString();
    const unsealed: UnsealedRequestBundle = {
      format: FORMAT,
      bundleId,
      system: config.system,
      createdAt,
      policyVersion: config.policyVersion,
      checkpoints,
      changes,
    };
    const sealed = await sealBundle(unsealed, sha256Hex);
    // Remembered before the file exists: a response can always be matched to its request.
    const exports = await readExports(internals.store);
    exports[bundleId] = { system: config.system, createdAt, changeIds, checkpoints, importedAt: null };
    await internals.store.write({ meta: { [BUNDLES_META]: exportsMeta(exports) } });
    return {
      text: JSON.stringify(sealed),
      bundleId,
      system: config.system,
      changes: Object.fromEntries(Object.entries(changes).map(([c, list]) => [c, list.length])),
      checkpoints,
    };
  });
}

/**
 * Imports the hub's response bundle: refuses (changing nothing) a file that is
 * not JSON, tampered with or cut short, for another system, or answering a
 * bundle this store did not export or already imported. Otherwise applies the
 * push results and the changes exactly as `sync()` applies push answers and
 * pulled pages, and stores the new checkpoints.
 */
export async function importBundle(source: SyncClient | LocalStore, responseText: string): Promise<ImportResult> {
  const decoded = await decodeBundle(responseText, "response", sha256Hex);
  if (!decoded.ok) throw new BundleError(decoded.problem.code, decoded.problem.message);
  const response = decoded.bundle;

  return clientFor(source).withSyncInternals(async (internals) => {
    const { store } = internals;
    const exports = await readExports(store);
    const exported = exports[response.bundleId];
    if (!exported) {
      throw new BundleError(
        "unknown_bundle",
        `This response answers bundle ${response.bundleId}, which this store did not export (or no longer remembers); import it into the store that exported it, or export a new bundle.`,
      );
    }
    if (exported.importedAt !== null) {
      throw new BundleError(
        "already_imported",
        `The response to bundle ${response.bundleId} was already imported at ${exported.importedAt}; nothing changed. Export a new bundle (or sync online) to go on.`,
      );
    }
    const config = await configOf(internals);
    if (response.system !== exported.system || response.system !== config.system) {
      throw new BundleError(
        "other_system",
        `This response is for system "${response.system}", but this store belongs to "${config.system}"; import it into ${response.system}'s store.`,
      );
    }
    checkMatches(response, exported);

    const report = internals.emptyReport();
    const before = new Map<string, string | null>();
    for (const collection of Object.keys(response.changes)) before.set(collection, await store.checkpoint(collection));

    // Push results first, as sync() does, for the changes still waiting for an answer.
    const outbox = new Map((await store.outbox()).map((e) => [e.changeId, e]));
    for (const [collection, results] of Object.entries(response.results)) {
      const batch: OutboxEntry[] = [];
      const answered: PushResult[] = [];
      for (const result of results) {
        const entry = outbox.get(result.changeId);
        if (!entry) continue; // answered meanwhile by an online sync (same changeId, same result)
        batch.push(entry);
        answered.push(result);
      }
      if (batch.length > 0) await internals.applyResults(collection, batch, answered, report);
    }

    // Then the changes since each checkpoint, as one page each.
    const skipped: string[] = [];
    for (const [collection, changes] of Object.entries(response.changes)) {
      const checkpoint = response.checkpoints[collection];
      if (checkpoint === undefined) continue;
      const was = before.get(collection) ?? null;
      if (was !== (exported.checkpoints[collection] ?? null)) {
        // The store pulled online after the export: its feed position is newer than this answer.
        skipped.push(collection);
        continue;
      }
      // applyResults forgets the checkpoint when an answer needs a full pull (see SyncClient): keep it forgotten.
      const refetch = was !== null && (await store.checkpoint(collection)) === null;
      await internals.applyPage(collection, { changes, checkpoint, hasMore: false }, report);
      if (refetch) await store.write({ checkpoints: { [collection]: null } });
    }

    exports[response.bundleId] = { ...exported, importedAt: internals.now().toISOString() };
    await store.write({ meta: { [BUNDLES_META]: exportsMeta(exports) } });
    internals.notePolicyVersion(response.policyVersion);
    internals.synced();
    return { bundleId: response.bundleId, report, policyVersion: response.policyVersion, skipped };
  });
}

/** The bundles this store exported, newest first, and whether their response was imported. */
export async function exportedBundles(source: SyncClient | LocalStore): Promise<Array<{ bundleId: string } & ExportRecord>> {
  const exports = await clientFor(source).withSyncInternals((internals) => readExports(internals.store));
  return Object.entries(exports)
    .map(([bundleId, e]) => ({ bundleId, ...e }))
    .sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

/** The results must answer exactly the changes the request carried, in order. */
function checkMatches(response: ResponseBundle, exported: ExportRecord): void {
  const collections = new Set([...Object.keys(response.results), ...Object.keys(exported.changeIds)]);
  for (const collection of collections) {
    const sent = exported.changeIds[collection] ?? [];
    const got = (response.results[collection] ?? []).map((r) => r.changeId);
    if (sent.length !== got.length || sent.some((id, i) => id !== got[i])) {
      throw new BundleError(
        "mismatch",
        `The response's results for "${collection}" do not answer the ${sent.length} change(s) bundle ${response.bundleId} carried; nothing changed. Fetch the response again (GET /api/v1/bundles?bundleId=${response.bundleId}) and import that.`,
      );
    }
  }
  for (const collection of Object.keys(response.changes)) {
    if (!(collection in exported.checkpoints)) {
      throw new BundleError(
        "mismatch",
        `The response carries changes of "${collection}", which bundle ${response.bundleId} did not ask for; nothing changed. Fetch the response again and import that.`,
      );
    }
  }
}

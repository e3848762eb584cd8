/**
 * Concord's client SDK: the client side of the sync method (claims 3–7) over
 * protocol v1. Runs in Node 20+ and browsers; only PgliteStore needs Node
 * (import it from "lib/client/pglite-store" so browser bundles leave it out).
 */
export { SyncClient } from "./client";
export type { ClientStatus, Logger, RecordView, SyncClientOptions, SyncOptions, SyncProgress, SyncReport } from "./client";
export type { ClientEventName, ClientEvents, Handler } from "./emitter";
export { AuthError, ConcordError, HttpError, NetworkError, ProtocolError } from "./errors";
export { MemoryStore } from "./memory-store";
export type { LocalRecord, LocalStore, OutboxEntry, QuarantineInfo, RecordBase, RecordKey, StoreWrite } from "./store";
export { CLIENT_STATES, TRANSITIONS, canTransition } from "./states";
export type { ClientState } from "./states";
export { Backoff, backoffDelay, DEFAULT_BACKOFF } from "./backoff";
export type { BackoffOptions } from "./backoff";
export { digestOf } from "./digest";
export { changeBody, rebase } from "./change";
export type { FetchLike } from "./transport";
export { BundleError, exportBundle, exportedBundles, importBundle, sha256Hex } from "./bundle";
export type { ExportedBundle, ExportOptions, ImportResult } from "./bundle";

import type { JsonValue } from "../sync/protocol";
import { isModified, type LocalRecord, type LocalStore, type OutboxEntry, type StoreWrite } from "./store";

const key = (collection: string, id: string) => `${collection}\u0000${id}`;

/** A store in memory: for tests, short-lived programs and browsers without persistence. Lost on exit. */
export class MemoryStore implements LocalStore {
  private readonly records = new Map<string, Map<string, LocalRecord>>();
  private readonly modified = new Map<string, LocalRecord>();
  private readonly entries = new Map<string, OutboxEntry>();
  private readonly checkpoints = new Map<string, string>();
  private readonly meta = new Map<string, JsonValue>();

  async getRecord(collection: string, id: string): Promise<LocalRecord | undefined> {
    return this.records.get(collection)?.get(id);
  }

  async getRecords(collection: string, ids: readonly string[]): Promise<LocalRecord[]> {
    const rows = this.records.get(collection);
    if (!rows) return [];
    const found: LocalRecord[] = [];
    for (const id of ids) {
      const row = rows.get(id);
      if (row) found.push(row);
    }
    return found;
  }

  async listRecords(collection: string): Promise<LocalRecord[]> {
    const rows = [...(this.records.get(collection)?.values() ?? [])];
    return rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async modifiedRecords(): Promise<LocalRecord[]> {
    return [...this.modified.values()];
  }

  async collections(): Promise<string[]> {
    return [...new Set([...this.records.keys(), ...this.checkpoints.keys()])].sort();
  }

  async outbox(): Promise<OutboxEntry[]> {
    return [...this.entries.values()];
  }

  async checkpoint(collection: string): Promise<string | null> {
    return this.checkpoints.get(collection) ?? null;
  }

  async getMeta(name: string): Promise<JsonValue | undefined> {
    return this.meta.get(name);
  }

  /** Synchronous inside: nothing can observe half of it. */
  async write(write: StoreWrite): Promise<void> {
    for (const k of write.deleteRecords ?? []) {
      this.records.get(k.collection)?.delete(k.id);
      this.modified.delete(key(k.collection, k.id));
    }
    for (const row of write.putRecords ?? []) {
      let rows = this.records.get(row.collection);
      if (!rows) {
        rows = new Map();
        this.records.set(row.collection, rows);
      }
      rows.set(row.id, row);
      if (isModified(row)) this.modified.set(key(row.collection, row.id), row);
      else this.modified.delete(key(row.collection, row.id));
    }
    for (const changeId of write.deleteOutbox ?? []) this.entries.delete(changeId);
    for (const entry of write.putOutbox ?? []) this.entries.set(entry.changeId, entry);
    for (const [collection, checkpoint] of Object.entries(write.checkpoints ?? {})) {
      if (checkpoint === null) this.checkpoints.delete(collection);
      else this.checkpoints.set(collection, checkpoint);
    }
    for (const [name, value] of Object.entries(write.meta ?? {})) this.meta.set(name, value);
  }

  async close(): Promise<void> {}
}

import { sql, type SQL } from "drizzle-orm";
import { rowsOf, type Database, type DatabaseHandle, type Unlisten } from "../db/client";
import { policyVersions, recordHistory, records } from "../db/schema";
import { log } from "../log";
import { scopeSql, type CompiledPolicy, type Scope } from "../policy/compile";
import { KEYS_CHANNEL } from "../auth/api-keys";
import { getActivePolicy, POLICY_CHANNEL } from "../policy/store";
import { CHANGES_CHANNEL, parseChangeNotification, type ChangeNotification, type SyncEvent } from "./events";
import { checkpointSealer, type CheckpointSealer } from "./checkpoint";
import { HORIZON_SQL } from "./horizon";

/** One connected client of one system, as the bus sees it. */
export interface EventSubscriber {
  readonly system: string;
  /** The API key the client connected with: its revocation ends the stream. */
  readonly keyPrefix?: string;
  /** Must not throw and must not block: the bus calls it for every subscriber in turn. */
  deliver(event: SyncEvent): void;
  /** Ends the subscriber's stream from the server side (bus stopped, system removed from the policy). */
  close(): void;
}

/** What an event stream needs from a bus; an interface so streams can be tested without a database. */
export interface EventFeed {
  /** Resolves once the bus is listening: a write committed afterwards is heard. */
  start(): Promise<void>;
  /** Returns the unsubscribe function (idempotent). */
  subscribe(subscriber: EventSubscriber): () => void;
}

/** How long a change above the feed's horizon waits before the bus looks again, first and at most. */
const HOLD_FIRST_DELAY_MS = 1;
const HOLD_MAX_DELAY_MS = 200;

function maxXid(a: string, b: string): string {
  return BigInt(a) >= BigInt(b) ? a : b;
}

/**
 * A change as the bus handles it: `heard` is the bus's subscription count
 * when its notification arrived. Only subscribers that had subscribed by then
 * are told, however long the change waits for the horizon (a stream opened
 * later pulls first, so it needs no event for it).
 */
type HeardChange = ChangeNotification & { heard: number };

type Notice = { kind: "change"; change: HeardChange } | { kind: "policy"; version: number };

/**
 * The process's fan-out of database notifications to event-stream clients:
 * one LISTEN per channel for the whole process (not one per client), one
 * policy lookup and at most one query per notification whatever the number of
 * clients. Because NOTIFY goes through the database, clients of every
 * instance hear writes made through any instance.
 *
 * Notifications are handled one batch at a time, in arrival order, so a
 * slow query delays later events instead of reordering them; a burst of
 * notifications that piles up meanwhile is merged per collection and costs
 * one query per collection.
 */
export class EventBus implements EventFeed {
  private readonly subscribers = new Set<EventSubscriber>();
  private starting: Promise<void> | null = null;
  private unlisteners: Unlisten[] = [];
  private stopped = false;
  private inbox: Notice[] = [];
  private draining: Promise<void> | null = null;
  /** The feed's horizon as last read: every position xid below it is final (lib/sync/changes.ts). */
  private horizon = 0n;
  /** The active policy version as read with the horizon (null: none yet, or not read). */
  private policyVersion: number | null = null;
  /** Changes committed above the horizon: told once the older transactions have ended. */
  private held: HeardChange[] = [];
  /** Subscriptions so far, and each subscriber's number among them (1, 2, …). */
  private subscriptions = 0;
  private readonly joined = new WeakMap<EventSubscriber, number>();
  private holdTimer: NodeJS.Timeout | null = null;
  private holdDelay = HOLD_FIRST_DELAY_MS;

  constructor(private readonly handle: DatabaseHandle) {}

  /** Connected subscribers (for tests and diagnostics). */
  get subscriberCount(): number {
    return this.subscribers.size;
  }

  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error("The event bus is stopped; its database is closing."));
    this.starting ??= this.listen().catch((error: unknown) => {
      // Let the next client try again rather than caching the failure forever.
      this.starting = null;
      throw error;
    });
    return this.starting;
  }

  subscribe(subscriber: EventSubscriber): () => void {
    if (this.stopped) {
      subscriber.close();
      return () => undefined;
    }
    this.subscribers.add(subscriber);
    this.joined.set(subscriber, ++this.subscriptions);
    return () => {
      this.subscribers.delete(subscriber);
    };
  }

  /** Ends every stream, stops listening and waits for the notification in progress, so the database can close. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.inbox = [];
    this.held = [];
    if (this.holdTimer) clearTimeout(this.holdTimer);
    this.holdTimer = null;
    for (const subscriber of [...this.subscribers]) subscriber.close();
    this.subscribers.clear();
    await this.starting?.catch(() => undefined);
    const unlisteners = this.unlisteners;
    this.unlisteners = [];
    await Promise.allSettled(unlisteners.map((unlisten) => unlisten()));
    await this.draining;
  }

  private async listen(): Promise<void> {
    try {
      this.unlisteners.push(
        await this.handle.listen(CHANGES_CHANNEL, (payload) => {
          const change = parseChangeNotification(payload);
          if (change) this.enqueue({ kind: "change", change: { ...change, heard: this.subscriptions } });
          else log.warn(`ignored a malformed ${CHANGES_CHANNEL} notification: ${payload.slice(0, 200)}`);
        }),
      );
      this.unlisteners.push(
        await this.handle.listen(POLICY_CHANNEL, (payload) => {
          const version = /^[1-9][0-9]{0,15}$/.test(payload) ? Number(payload) : null;
          if (version !== null) this.enqueue({ kind: "policy", version });
          else log.warn(`ignored a malformed ${POLICY_CHANNEL} notification: ${payload.slice(0, 200)}`);
        }),
      );
      this.unlisteners.push(
        await this.handle.listen(KEYS_CHANNEL, (prefix) => {
          // A revoked key stops working at once: end its open streams (their reconnect gets 401).
          for (const subscriber of [...this.subscribers]) {
            if (subscriber.keyPrefix === prefix) subscriber.close();
          }
        }),
      );
    } catch (error) {
      // Half a start would hear every change twice after the retry.
      await Promise.allSettled(this.unlisteners.splice(0).map((unlisten) => unlisten()));
      throw error;
    }
  }

  private enqueue(notice: Notice): void {
    if (this.stopped) return;
    this.inbox.push(notice);
    this.kick();
  }

  private kick(): void {
    if (this.draining || this.stopped || this.inbox.length === 0) return;
    this.draining = this.drain()
      .catch((error: unknown) => log.error("the event bus stopped handling a batch of notifications", error))
      .finally(() => {
        this.draining = null;
        // A notice may have arrived after the loop's last look at the inbox.
        this.kick();
      });
  }

  private async drain(): Promise<void> {
    while (this.inbox.length > 0 && !this.stopped) {
      const batch = this.inbox;
      this.inbox = [];
      await this.handleBatch(batch);
    }
  }

  private async handleBatch(batch: Notice[]): Promise<void> {
    let policyVersion = 0;
    const changes = new Map<string, HeardChange>();
    for (const notice of batch) {
      if (notice.kind === "policy") {
        policyVersion = Math.max(policyVersion, notice.version);
        continue;
      }
      const { c, from, to, x, heard } = notice.change;
      const seen = changes.get(c);
      // The merged range may also hold rows of other writes (writers do not
      // wait for each other): they are real changes of the collection, told
      // again by their own notification, which is harmless.
      changes.set(
        c,
        seen
          ? { c, from: Math.min(seen.from, from), to: Math.max(seen.to, to), x: maxXid(seen.x, x), heard: Math.max(seen.heard, heard) }
          : { c, from, to, x, heard },
      );
    }
    if (policyVersion > 0) await this.guard(`policy version ${policyVersion}`, () => this.onPolicy(policyVersion));
    const ready = await this.guard("the feed horizon", () => this.releasable([...changes.values()]));
    const told = [...(ready ?? changes.values())];
    if (told.length === 0 || this.subscribers.size === 0) return;
    // One policy lookup for the batch; the collections' audiences are worked out at once, and told in order.
    // The active version was read with the horizon (releasable): the policy itself is cached.
    const policy = await this.guard("the active policy", () => getActivePolicy(this.db, this.policyVersion ?? undefined));
    if (!policy) return;
    const audiences = await Promise.all(
      told.map((change) => this.guard(`changes ${change.from}..${change.to} of ${change.c}`, () => this.audience(change, policy.compiled))),
    );
    const sealer = await this.guard("the checkpoint key", () => checkpointSealer(this.db));
    if (!sealer) return;
    told.forEach((change, i) => {
      const audience = audiences[i];
      if (audience) this.tell(change, audience, sealer);
    });
  }

  /**
   * The changes a subscriber's next pull will find: those below the feed's
   * horizon. A change committed while an older transaction still runs is
   * served by /changes only once that one ends (lib/sync/changes.ts), so its
   * event waits for that too; otherwise the client would pull, find
   * nothing, and hear of the change only with the next one. The rest wait
   * in `held`, looked at again shortly.
   */
  private async releasable(changes: HeardChange[]): Promise<HeardChange[]> {
    // A batch of policy notices only: nothing to hold or release.
    if (changes.length === 0 && this.held.length === 0) return [];
    // Read for every batch with changes: the same statement tells the active policy version, which the batch needs anyway.
    await this.readHorizon();
    // Held changes that are ready now go first: a change is never told after one committed later.
    const all = [...this.held, ...changes];
    const ready = all.filter((c) => BigInt(c.x) < this.horizon);
    this.held = all.filter((c) => BigInt(c.x) >= this.horizon);
    this.scheduleHeld();
    return ready;
  }

  /** Reads the feed's horizon and the active policy version, in one statement. */
  private async readHorizon(): Promise<void> {
    const [row] = rowsOf<{ horizon: string; policy_version: number | string | null }>(
      await this.db.execute(
        sql`select ${HORIZON_SQL}::text as horizon, (select max(${policyVersions.version}) from ${policyVersions}) as policy_version`,
      ),
    );
    const horizon = BigInt(row?.horizon ?? "0");
    if (horizon > this.horizon) this.horizon = horizon;
    this.policyVersion = row?.policy_version == null ? null : Number(row.policy_version);
  }

  /** Looks at held changes again after a growing pause (1 ms, doubling up to HOLD_MAX_DELAY_MS); they go back to the inbox once releasable. */
  private scheduleHeld(): void {
    if (this.holdTimer || this.stopped || this.held.length === 0) return;
    this.holdTimer = setTimeout(() => {
      this.holdTimer = null;
      void this.readHorizon()
        .catch((error: unknown) => log.warn(`could not read the feed horizon: ${(error as Error).message}`))
        .then(() => {
          const ready = this.held.filter((c) => BigInt(c.x) < this.horizon);
          this.held = this.held.filter((c) => BigInt(c.x) >= this.horizon);
          this.holdDelay = this.held.length === 0 ? HOLD_FIRST_DELAY_MS : Math.min(this.holdDelay * 2, HOLD_MAX_DELAY_MS);
          for (const change of ready) this.enqueue({ kind: "change", change });
          this.scheduleHeld();
        });
    }, this.holdDelay);
    this.holdTimer.unref?.();
  }

  /** One failed notification must not stop the bus: log it and go on (the event is only a hint). */
  private async guard<T>(what: string, task: () => Promise<T>): Promise<T | undefined> {
    try {
      return await task();
    } catch (error) {
      if (!this.stopped) log.error(`the event bus could not handle ${what}`, error);
      return undefined;
    }
  }

  /** Claim 2's broadcast: every client hears of the new policy and re-reads /config. */
  private async onPolicy(version: number): Promise<void> {
    const event: SyncEvent = { type: "config", policyVersion: version };
    for (const subscriber of [...this.subscribers]) subscriber.deliver(event);
    // A system the new policy no longer declares may not sync: end its streams
    // (after the config event) so its reconnect meets withSystem's 403.
    const { compiled } = await getActivePolicy(this.db);
    for (const subscriber of [...this.subscribers]) {
      if (!compiled.hasSystem(subscriber.system)) subscriber.close();
    }
  }

  /**
   * Which subscribed systems to tell of a change. A change event reaches a
   * subscriber only if a written row is in its system's read scope after the change or was in it before (a record that
   * left the scope must be dropped by the client), under the policy active
   * now. Whether to tell a system depends on rows it may read and nothing
   * else, so the event reveals nothing about records outside its scope.
   */
  private async audience(change: ChangeNotification, compiled: CompiledPolicy): Promise<Map<string, boolean>> {
    const told = new Map<string, boolean>();
    const conditional = new Map<string, Scope>();
    for (const { system } of this.subscribers) {
      if (told.has(system) || conditional.has(system)) continue;
      const scope = compiled.scope(system, change.c, "read");
      if (scope.grants.length === 0) told.set(system, false);
      // A system that reads every record of the collection needs no look at the rows.
      else if (scope.grants.some((grant) => grant.where === null)) told.set(system, true);
      else conditional.set(system, scope);
    }
    if (conditional.size > 0) {
      const touched = await touchedScopes(this.db, change, [...conditional.values()]);
      [...conditional.keys()].forEach((system, i) => told.set(system, touched[i] === true));
    }
    return told;
  }

  /** Sends the change event to the subscribers of the systems in `told` (true), with a checkpoint sealed per system. */
  private tell(change: HeardChange, told: Map<string, boolean>, sealer: CheckpointSealer): void {
    // The checkpoint is sealed per system (checkpoint.ts): it tells nothing about changes the system may not see.
    const events = new Map<string, SyncEvent>();
    for (const subscriber of [...this.subscribers]) {
      if (!told.get(subscriber.system) || (this.joined.get(subscriber) ?? Infinity) > change.heard) continue;
      let event = events.get(subscriber.system);
      if (!event) {
        const checkpoint = sealer.seal({ system: subscriber.system, collection: change.c }, { at: { xid: BigInt(change.x), seq: change.to }, run: null });
        event = { type: "change", collection: change.c, checkpoint };
        events.set(subscriber.system, event);
      }
      subscriber.deliver(event);
    }
  }

  private get db(): Database {
    return this.handle.db;
  }
}

/**
 * For each scope, whether some row of `change` was in it after the change or
 * before it: one query over the written rows, whatever the number of scopes.
 * The scopes are evaluated in SQL (scopeSql, proven equal to Casbin's answers
 * by the agreement tests) so that record data, up to 256 KiB per record,
 * never has to travel to this process.
 *
 * "Before" is the record's latest version with a seq below the range: a push
 * may write one record several times in one transaction, and then version - 1
 * is one of its own versions. A record created by the change has no earlier
 * version; the `is not null` guard matters because some conditions
 * (`f == null`, `f != 'x'`) are true of SQL NULL data.
 */
async function touchedScopes(db: Database, change: ChangeNotification, scopes: readonly Scope[]): Promise<boolean[]> {
  const after = sql`${records.data}`;
  const before = sql`prev.data`;
  const flags: SQL[] = scopes.map(
    (scope, i) =>
      sql`coalesce(bool_or(${scopeSql(scope, after)} or (${before} is not null and ${scopeSql(scope, before)})), false) as ${sql.identifier(`s${i}`)}`,
  );
  const result = await db.execute(sql`
    select ${sql.join(flags, sql`, `)}
    from ${records}
    left join lateral (
      select ${recordHistory.data} as data
      from ${recordHistory}
      where ${recordHistory.collection} = ${records.collection}
        and ${recordHistory.id} = ${records.id}
        and ${recordHistory.seq} < ${change.from}
      order by ${recordHistory.version} desc
      limit 1
    ) as prev on true
    where ${records.collection} = ${change.c} and ${records.seq} between ${change.from} and ${change.to}`);
  const [row] = rowsOf<Record<string, boolean | null>>(result);
  return scopes.map((_, i) => row?.[`s${i}`] === true);
}

// ---------------------------------------------------------------------------
// One bus per database handle

const buses = new WeakMap<DatabaseHandle, EventBus>();

/** The handle's bus, created on first use (it starts listening when the first client subscribes). */
export function getEventBus(handle: DatabaseHandle): EventBus {
  let bus = buses.get(handle);
  if (!bus) {
    bus = new EventBus(handle);
    buses.set(handle, bus);
  }
  return bus;
}

/** A bus of its own over `handle`, outside the per-handle registry (tests: a second "instance"). */
export function createEventBus(handle: DatabaseHandle): EventBus {
  return new EventBus(handle);
}

/**
 * Ends every event stream of the handle's bus and stops its LISTENs; call it
 * before closing the database. A later getEventBus() starts a fresh bus.
 */
export async function stopEventBus(handle: DatabaseHandle): Promise<void> {
  const bus = buses.get(handle);
  if (!bus) return;
  buses.delete(handle);
  await bus.stop();
}

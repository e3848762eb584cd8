import type { Database } from "../db/client";
import type { ActivePolicy } from "../policy/store";

/** What every sync verb works with: the database, the calling system, the active policy. */
export interface SyncContext {
  db: Database;
  system: string;
  policy: ActivePolicy;
  /** The prefix of the API key the system called with (absent for work done on its behalf, e.g. a bundle an operator uploads). */
  keyPrefix?: string;
}

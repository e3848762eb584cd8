import type { Database } from "@/lib/db/client";
import { checkpointSealer, type FeedPosition } from "@/lib/sync/checkpoint";

/**
 * Checkpoints are sealed (lib/sync/checkpoint.ts): tests that need a
 * checkpoint at a given sequence number, or the position inside one the hub
 * issued, use the hub's own key through these.
 */
export async function checkpointAt(db: Database, system: string, collection: string, seq: number): Promise<string> {
  return (await checkpointSealer(db)).seal({ system, collection }, { seq, run: null });
}

export async function positionOf(db: Database, system: string, collection: string, checkpoint: string): Promise<FeedPosition> {
  const opened = (await checkpointSealer(db)).open({ system, collection }, checkpoint);
  if (!opened.ok) throw new Error(`${checkpoint} is not a checkpoint of ${system}/${collection} (${opened.reason})`);
  return opened.position;
}

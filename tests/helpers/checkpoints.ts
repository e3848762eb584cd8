import type { Database } from "@/lib/db/client";
import { checkpointSealer, type FeedPosition, type Position } from "@/lib/sync/checkpoint";

/**
 * Checkpoints are sealed (lib/sync/checkpoint.ts): tests that need a
 * checkpoint at a given feed position, or the position inside one the hub
 * issued, use the hub's own key through these.
 */
export async function checkpointAt(db: Database, system: string, collection: string, at: Position): Promise<string> {
  return (await checkpointSealer(db)).seal({ system, collection }, { at, run: null });
}

export async function positionOf(db: Database, system: string, collection: string, checkpoint: string): Promise<FeedPosition> {
  const opened = (await checkpointSealer(db)).open({ system, collection }, checkpoint);
  if (!opened.ok) throw new Error(`${checkpoint} is not a checkpoint of ${system}/${collection} (${opened.reason})`);
  return opened.position;
}

import { withSystem } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { readConfig } from "@/lib/sync/config";

export const dynamic = "force-dynamic";

/** The calling system's effective configuration under the active policy. */
export const GET = withSystem(async (ctx) => json(readConfig({ ctx })));

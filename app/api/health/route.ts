import { withPublic } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { checkHealth } from "@/lib/hub";

export const dynamic = "force-dynamic";

/** Liveness and which database engine the hub runs on; no authentication. */
export const GET = withPublic(async (hub) => json(await checkHealth(hub)));

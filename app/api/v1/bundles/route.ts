import { z } from "zod";
import { readQuery, readText } from "@/lib/http/body";
import { withSystem } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { MAX_BUNDLE_BYTES } from "@/lib/sync/bundle-format";
import { applyBundle, bundleIdSchema, getBundleResponse } from "@/lib/sync/bundles";

export const dynamic = "force-dynamic";

/**
 * Applies an offline bundle (protocol.md, "Offline bundles") and answers with
 * the response bundle. The body is the bundle file as exported; one over
 * 64 MiB is refused with 413 before it is read whole.
 */
export const POST = withSystem(async (ctx, request) => {
  const text = await readText(request, MAX_BUNDLE_BYTES);
  return json(await applyBundle({ ctx, bundle: text }));
});

const getQuerySchema = z.strictObject({ bundleId: bundleIdSchema });

/** The response bundle of a bundle this system applied earlier: as it was returned then, rendered again under a newer policy. */
export const GET = withSystem(async (ctx, request) => {
  const { bundleId } = readQuery(request, getQuerySchema);
  return json(await getBundleResponse({ db: ctx.db, system: ctx.system, bundleId, policy: ctx.policy }));
});

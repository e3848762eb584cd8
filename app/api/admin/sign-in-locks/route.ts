import { signInLocks } from "@/lib/auth/sign-in-throttle";
import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";

export const dynamic = "force-dynamic";

/** Usernames whose sign-in is refused right now, with the address (for a per-address lock) and when it lifts. */
export const GET = withAdmin("operators", async ({ hub }) => {
  const locks = await signInLocks(hub.db);
  return json({ locks: locks.map((lock) => ({ ...lock, until: lock.until.toISOString() })) });
});

import { z } from "zod";
import { clearSignInLock, isUsername } from "@/lib/auth/operators";
import { withAdmin } from "@/lib/http/handlers";
import { json } from "@/lib/http/respond";
import { parseParam } from "@/lib/http/schemas";

export const dynamic = "force-dynamic";

const usernameSchema = z
  .string()
  .trim()
  .toLowerCase()
  .refine(isUsername, "a username is 2 to 63 characters: lowercase letters, digits, dot, dash or underscore");

/** Lifts every sign-in lock on a username at once (the lock otherwise lifts by itself when its window passes). */
export const DELETE = withAdmin<{ username: string }>("operators", async ({ hub, actor }, _request, params) => {
  const username = parseParam(usernameSchema, params.username, "username");
  const { cleared } = await clearSignInLock(hub.db, username, actor);
  return json({ username: username.toLowerCase(), cleared });
});

"use server";

import { cookies } from "next/headers";
import { redirect } from "next/navigation";
import { z } from "zod";
import { setupFirstAdmin, signIn, signOut, SESSION_COOKIE } from "@/lib/auth/operators";
import { safeNextPath } from "@/lib/console/next-path";
import { env } from "@/lib/env";
import { isServiceError } from "@/lib/errors";
import { getHub } from "@/lib/hub";
import { requestAddress, requestIsHttps } from "../_server/operator";

import type { FormState } from "./form-state";

const signInForm = z.object({
  username: z.string().trim().min(1, "Enter your username.").max(64, "That username is too long."),
  password: z.string().min(1, "Enter your password.").max(256, "That password is too long."),
  next: z.string().max(512).optional(),
});

function firstIssue(error: z.ZodError): string {
  return error.issues[0]?.message ?? "The form is not complete.";
}

async function startSession(token: string, expiresAt: Date): Promise<void> {
  (await cookies()).set(SESSION_COOKIE, token, {
    httpOnly: true,
    sameSite: "lax",
    secure: await requestIsHttps(),
    path: "/",
    expires: expiresAt,
  });
}

function kept(form: FormData, names: string[]): Record<string, string> {
  const values: Record<string, string> = {};
  for (const name of names) {
    const v = form.get(name);
    if (typeof v === "string") values[name] = v.slice(0, 256);
  }
  return values;
}

export async function signInAction(_state: FormState, form: FormData): Promise<FormState> {
  const values = kept(form, ["username"]);
  const parsed = signInForm.safeParse(Object.fromEntries(form));
  if (!parsed.success) return { error: firstIssue(parsed.error), values };
  const hub = await getHub();
  const result = await signIn(hub.db, { ...parsed.data, address: await requestAddress() });
  if (!result.ok) {
    // Slow down repeated guessing: the answer waits longer after each failure.
    if (result.delayMs > 0) await new Promise((r) => setTimeout(r, result.delayMs));
    return { error: result.message, values };
  }
  await startSession(result.token, result.expiresAt);
  redirect(safeNextPath(parsed.data.next));
}

export async function signOutAction(): Promise<void> {
  const hub = await getHub();
  const jar = await cookies();
  await signOut(hub.db, jar.get(SESSION_COOKIE)?.value);
  jar.delete(SESSION_COOKIE);
  redirect("/sign-in");
}

const setupForm = z
  .object({
    adminToken: z.string().trim().min(1, "Enter the admin token.").max(512),
    username: z.string().trim().min(1, "Choose a username.").max(64),
    password: z.string().min(1, "Choose a password.").max(256),
    confirm: z.string().max(256),
  })
  .refine((f) => f.password === f.confirm, { message: "The two passwords differ.", path: ["confirm"] });

export async function setupAction(_state: FormState, form: FormData): Promise<FormState> {
  const values = kept(form, ["username"]);
  const parsed = setupForm.safeParse(Object.fromEntries(form));
  if (!parsed.success) return { error: firstIssue(parsed.error), values };
  const hub = await getHub();
  try {
    await setupFirstAdmin(hub.db, parsed.data, env().ADMIN_TOKEN);
  } catch (error) {
    if (isServiceError(error)) return { error: error.message, values };
    throw error;
  }
  const result = await signIn(hub.db, { username: parsed.data.username, password: parsed.data.password, address: await requestAddress() });
  if (!result.ok) return { error: result.message, values };
  await startSession(result.token, result.expiresAt);
  redirect("/");
}

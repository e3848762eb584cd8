"use server";

import { revalidatePath } from "next/cache";
import { z } from "zod";
import { changeOperatorRole, clearSignInLock, createOperator, disableOperator } from "@/lib/auth/operators";
import { ServiceError } from "@/lib/errors";
import { operatorAction, type ActionResult } from "../../_server/operator";

const createForm = z.object({
  username: z.string().trim().min(1, "Enter a username.").max(64),
  password: z.string().min(1, "Enter a password.").max(256),
  role: z.enum(["admin", "viewer"], { message: "Choose admin or viewer." }),
});

export async function createOperatorAction(_state: ActionResult<string> | null, form: FormData): Promise<ActionResult<string>> {
  const parsed = createForm.safeParse(Object.fromEntries(form));
  if (!parsed.success) return { ok: false, message: parsed.error.issues[0]?.message ?? "The form is not complete." };
  const result = await operatorAction("operators", "write", async ({ hub, operator }) => {
    const created = await createOperator(hub.db, parsed.data, operator.username);
    return created.username;
  });
  if (result.ok) revalidatePath("/operators");
  return result.ok ? { ...result, message: `Created ${result.value} (${parsed.data.role}).` } : result;
}

const target = z.object({ username: z.string().trim().min(1).max(64) });

export async function setRoleAction(username: string, role: string): Promise<ActionResult> {
  const parsed = target.extend({ role: z.enum(["admin", "viewer"]) }).safeParse({ username, role });
  if (!parsed.success) return { ok: false, message: "Choose admin or viewer." };
  const result = await operatorAction("operators", "write", async ({ hub, operator }) => {
    await changeOperatorRole(hub.db, parsed.data.username, parsed.data.role, operator.username);
    return undefined;
  });
  revalidatePath("/operators");
  return result;
}

export async function disableOperatorAction(username: string): Promise<ActionResult> {
  const parsed = target.safeParse({ username });
  if (!parsed.success) return { ok: false, message: "No operator given." };
  const result = await operatorAction("operators", "write", async ({ hub, operator }) => {
    if (parsed.data.username === operator.username) {
      throw new ServiceError("conflict", "You cannot disable yourself; ask another admin.");
    }
    await disableOperator(hub.db, parsed.data.username, operator.username);
    return undefined;
  });
  revalidatePath("/operators");
  return result;
}

/** Lifts a username's sign-in lock before its window passes. */
export async function clearSignInLockAction(username: string): Promise<ActionResult<number>> {
  const parsed = target.safeParse({ username });
  if (!parsed.success) return { ok: false, message: "No username given." };
  const result = await operatorAction("operators", "write", async ({ hub, operator }) => {
    const { cleared } = await clearSignInLock(hub.db, parsed.data.username, operator.username);
    return cleared;
  });
  revalidatePath("/operators");
  return result;
}

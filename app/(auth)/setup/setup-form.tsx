"use client";

import { useActionState } from "react";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Field, Input } from "@/components/ui/field";
import { setupAction } from "../actions";

export function SetupForm() {
  const [state, action, pending] = useActionState(setupAction, {});
  return (
    <form action={action} className="flex flex-col gap-4">
      {state.error ? <Alert tone="error">{state.error}</Alert> : null}
      <Field label="Admin token" hint="ADMIN_TOKEN, or the token the hub printed at its first start.">
        <Input name="adminToken" type="password" autoComplete="off" required autoFocus />
      </Field>
      <Field label="Username" hint="Lowercase letters, digits, dot, dash or underscore.">
        <Input name="username" autoComplete="username" required defaultValue={state.values?.username} />
      </Field>
      <Field label="Password" hint="At least 10 characters.">
        <Input name="password" type="password" autoComplete="new-password" required minLength={10} />
      </Field>
      <Field label="Password again">
        <Input name="confirm" type="password" autoComplete="new-password" required />
      </Field>
      <Button type="submit" disabled={pending}>
        {pending ? "Creating…" : "Create admin and sign in"}
      </Button>
    </form>
  );
}

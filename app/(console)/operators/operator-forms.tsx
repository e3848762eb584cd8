"use client";

import { useActionState } from "react";
import { RowActions, useRowAction } from "@/components/console/row-action";
import { Alert } from "@/components/ui/alert";
import { Button } from "@/components/ui/button";
import { Field, Input, Select } from "@/components/ui/field";
import { clearSignInLockAction, createOperatorAction, disableOperatorAction, setRoleAction } from "./actions";

export function CreateOperatorForm() {
  const [state, action, pending] = useActionState(createOperatorAction, null);
  return (
    <form action={action} className="grid grid-cols-1 gap-3 sm:grid-cols-4 sm:items-start">
      <Field label="Username">
        <Input name="username" required autoComplete="off" />
      </Field>
      <Field label="Password" hint="At least 10 characters; tell them to keep it safe.">
        <Input name="password" type="password" required autoComplete="new-password" />
      </Field>
      <Field label="Role">
        <Select name="role" defaultValue="viewer">
          <option value="viewer">viewer (reads)</option>
          <option value="admin">admin (changes things)</option>
        </Select>
      </Field>
      <Button type="submit" disabled={pending} className="sm:mt-6">
        Add operator
      </Button>
      <div className="sm:col-span-4">
        {state && !state.ok ? <Alert tone="error">{state.message}</Alert> : null}
        {state?.ok ? <Alert tone="success">{state.message}</Alert> : null}
      </div>
    </form>
  );
}

export function OperatorRowActions({ username, role, disabled }: { username: string; role: string; disabled: boolean }) {
  const { pending, error, run } = useRowAction();
  if (disabled) return <span className="text-slate-400">disabled</span>;
  return (
    <RowActions error={error}>
      <Button variant="secondary" size="sm" disabled={pending} onClick={() => run(() => setRoleAction(username, role === "admin" ? "viewer" : "admin"))}>
        Make {role === "admin" ? "viewer" : "admin"}
      </Button>
      <Button
        variant="danger"
        size="sm"
        disabled={pending}
        onClick={() => {
          if (window.confirm(`Disable ${username}? Their sessions end now.`)) run(() => disableOperatorAction(username));
        }}
      >
        Disable
      </Button>
    </RowActions>
  );
}

export function ClearSignInLockButton({ username }: { username: string }) {
  const { pending, error, run } = useRowAction();
  return (
    <RowActions error={error}>
      <Button variant="secondary" size="sm" disabled={pending} onClick={() => run(() => clearSignInLockAction(username))}>
        Clear lock
      </Button>
    </RowActions>
  );
}

"use client";

import { useActionState, useState, useTransition } from "react";
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
  const [pending, start] = useTransition();
  const [error, setError] = useState<string | null>(null);
  if (disabled) return <span className="text-slate-400">disabled</span>;
  return (
    <span className="flex items-center justify-end gap-2">
      {error ? (
        <span role="alert" className="text-xs text-red-700">
          {error}
        </span>
      ) : null}
      <Button
        variant="secondary"
        size="sm"
        disabled={pending}
        onClick={() =>
          start(async () => {
            const r = await setRoleAction(username, role === "admin" ? "viewer" : "admin");
            setError(r.ok ? null : r.message);
          })
        }
      >
        Make {role === "admin" ? "viewer" : "admin"}
      </Button>
      <Button
        variant="danger"
        size="sm"
        disabled={pending}
        onClick={() => {
          if (!window.confirm(`Disable ${username}? Their sessions end now.`)) return;
          start(async () => {
            const r = await disableOperatorAction(username);
            setError(r.ok ? null : r.message);
          });
        }}
      >
        Disable
      </Button>
    </span>
  );
}

export function ClearSignInLockButton({ username }: { username: string }) {
  const [pending, start] = useTransition();
  const [error, setError] = useState<string | null>(null);
  return (
    <span className="flex items-center justify-end gap-2">
      {error ? (
        <span role="alert" className="text-xs text-red-700">
          {error}
        </span>
      ) : null}
      <Button
        variant="secondary"
        size="sm"
        disabled={pending}
        onClick={() =>
          start(async () => {
            const r = await clearSignInLockAction(username);
            setError(r.ok ? null : r.message);
          })
        }
      >
        Clear lock
      </Button>
    </span>
  );
}

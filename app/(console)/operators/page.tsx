import { Badge } from "@/components/ui/badge";
import { Card, PageHeader } from "@/components/ui/card";
import { Table, Td, Th } from "@/components/ui/table";
import { Time } from "@/components/ui/time";
import { listOperators } from "@/lib/auth/operators";
import { signInLocks, SIGN_IN_WINDOW_MINUTES } from "@/lib/auth/sign-in-throttle";
import { requireOperator } from "../../_server/operator";
import { ClearSignInLockButton, CreateOperatorForm, OperatorRowActions } from "./operator-forms";

export const metadata = { title: "Operators · Concord" };

export default async function OperatorsPage() {
  const { hub, operator, canWrite } = await requireOperator("operators");
  const [operators, locks] = await Promise.all([listOperators(hub.db), signInLocks(hub.db)]);
  return (
    <>
      <PageHeader
        title="Operators"
        description="People who use this console. Admins change things; viewers read. Every sign-in and change is in the audit log."
      />
      {canWrite ? (
        <div className="mb-6">
          <Card title="Add an operator">
            <CreateOperatorForm />
          </Card>
        </div>
      ) : null}
      <Table caption="Operators">
        <thead>
          <tr>
            <Th>Username</Th>
            <Th>Role</Th>
            <Th>Created</Th>
            <Th className="text-right">{canWrite ? "Actions" : ""}</Th>
          </tr>
        </thead>
        <tbody className="divide-y divide-slate-100">
          {operators.map((o) => (
            <tr key={o.id}>
              <Td className="font-medium">
                {o.username}
                {o.username === operator.username ? <span className="ml-2 text-xs text-slate-500">(you)</span> : null}
              </Td>
              <Td>
                <Badge tone={o.role === "admin" ? "indigo" : "gray"}>{o.role}</Badge>
              </Td>
              <Td>
                <Time value={o.createdAt} />
              </Td>
              <Td className="text-right">
                {canWrite && o.username !== operator.username ? (
                  <OperatorRowActions username={o.username} role={o.role} disabled={o.disabledAt !== null} />
                ) : o.disabledAt ? (
                  <span className="text-slate-400">disabled</span>
                ) : null}
              </Td>
            </tr>
          ))}
        </tbody>
      </Table>
      {locks.length > 0 ? (
        <div className="mt-6">
          <h2 className="mb-2 text-sm font-semibold text-slate-900">Sign-in locks</h2>
          <Table caption="Sign-in locks">
            <thead>
              <tr>
                <Th>Username</Th>
                <Th>Refused</Th>
                <Th>Attempts</Th>
                <Th>Lifts</Th>
                <Th className="text-right">{canWrite ? "Actions" : ""}</Th>
              </tr>
            </thead>
            <tbody className="divide-y divide-slate-100">
              {locks.map((lock) => (
                <tr key={`${lock.username} ${lock.kind} ${lock.address ?? ""}`}>
                  <Td className="font-medium">{lock.username}</Td>
                  <Td>{lock.kind === "pair" ? `from ${lock.address}` : "from every address"}</Td>
                  <Td>{lock.attempts}</Td>
                  <Td>
                    <Time value={lock.until} />
                  </Td>
                  <Td className="text-right">{canWrite ? <ClearSignInLockButton username={lock.username} /> : null}</Td>
                </tr>
              ))}
            </tbody>
          </Table>
          <p className="mt-2 text-xs text-slate-500">
            Too many failed sign-ins lock a username for {SIGN_IN_WINDOW_MINUTES} minutes from the first attempt; clearing lifts
            every lock on that username now.
          </p>
        </div>
      ) : null}
    </>
  );
}

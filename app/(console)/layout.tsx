import type { ReactNode } from "react";
import { ConsoleNav } from "@/components/console/nav";
import { Badge } from "@/components/ui/badge";
import { signOutAction } from "../(auth)/actions";
import { requireOperator } from "../_server/operator";

export const dynamic = "force-dynamic";

export default async function ConsoleLayout({ children }: { children: ReactNode }) {
  const { operator } = await requireOperator("overview");
  return (
    <div className="flex min-h-screen">
      <aside className="flex w-56 shrink-0 flex-col gap-6 bg-slate-900 px-3 py-5">
        <p className="px-3 text-lg font-semibold tracking-tight text-white">Concord</p>
        <ConsoleNav />
        <div className="mt-auto flex flex-col gap-2 px-3 text-sm text-slate-300">
          <span>
            <span data-testid="operator-name" className="font-medium text-white">
              {operator.username}
            </span>{" "}
            <Badge tone={operator.role === "admin" ? "indigo" : "gray"}>{operator.role}</Badge>
          </span>
          <form action={signOutAction}>
            <button type="submit" className="text-slate-400 underline-offset-2 hover:text-white hover:underline">
              Sign out
            </button>
          </form>
        </div>
      </aside>
      <main className="min-w-0 flex-1 px-8 py-6">{children}</main>
    </div>
  );
}

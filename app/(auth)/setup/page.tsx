import { redirect } from "next/navigation";
import { countOperators } from "@/lib/auth/operators";
import { getHub } from "@/lib/hub";
import { SetupForm } from "./setup-form";

export const dynamic = "force-dynamic";
export const metadata = { title: "Set up · Concord" };

/** One-time: creates the first admin while the hub has no operators. */
export default async function SetupPage() {
  const hub = await getHub();
  if ((await countOperators(hub.db)) > 0) redirect("/sign-in");
  return (
    <>
      <h1 className="mb-2 text-lg font-semibold">Create the first admin</h1>
      <p className="mb-4 text-sm text-slate-600">
        This page works once, while the hub has no operators. To prove you run this hub, paste its admin token.
      </p>
      <SetupForm />
    </>
  );
}

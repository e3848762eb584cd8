import Link from "next/link";
import { redirect } from "next/navigation";
import { countOperators } from "@/lib/auth/operators";
import { safeNextPath } from "@/lib/console/next-path";
import { currentOperator } from "../../_server/operator";
import { SignInForm } from "./sign-in-form";

export const dynamic = "force-dynamic";
export const metadata = { title: "Sign in · Concord" };

export default async function SignInPage({ searchParams }: { searchParams: Promise<{ next?: string }> }) {
  const { hub, operator } = await currentOperator();
  if (operator) redirect("/");
  const fresh = (await countOperators(hub.db)) === 0;
  const { next } = await searchParams;
  // Only a console page is carried through the form; the action checks again.
  const safeNext = safeNextPath(typeof next === "string" ? next : undefined);
  return (
    <>
      <h1 className="mb-4 text-lg font-semibold">Sign in to the console</h1>
      {fresh ? (
        <p className="mb-4 rounded-md bg-amber-50 px-3 py-2 text-sm text-amber-900">
          This hub has no operators yet. <Link className="font-semibold underline" href="/setup">Create the first admin</Link>.
        </p>
      ) : null}
      <SignInForm next={safeNext === "/" ? undefined : safeNext} />
    </>
  );
}

import Link from "next/link";
import { PageHeader } from "@/components/ui/card";
import { requireOperator } from "../_server/operator";

export const metadata = { title: "Overview · Concord" };

export default async function OverviewPage({ searchParams }: { searchParams: Promise<{ denied?: string }> }) {
  await requireOperator("overview");
  const { denied } = await searchParams;
  return (
    <>
      <PageHeader title="Overview" description="Systems, sync activity and conflicts waiting for an operator." />
      {denied ? <p role="alert">Your role may not open {denied}.</p> : null}
      <Link href="/systems">Systems</Link>
    </>
  );
}

import { headers } from "next/headers";
import Link from "next/link";
import { buttonClass } from "@/components/ui/button";
import { PageHeader } from "@/components/ui/card";
import { Time } from "@/components/ui/time";
import { NONCE_HEADER } from "@/lib/http/security-headers";
import { getActivePolicy } from "@/lib/policy/store";
import { requireOperator } from "../../_server/operator";
import { PolicyWorkbench } from "./policy-workbench";

export const metadata = { title: "Policies · Concord" };

export default async function PoliciesPage() {
  const { hub, canWrite } = await requireOperator("policy");
  const active = await getActivePolicy(hub.db);
  return (
    <>
      <PageHeader
        title="Policies"
        description={
          <>
            Active: <span className="font-medium text-slate-900" data-testid="active-version">version {active.version}</span>, activated by{" "}
            {active.activatedBy} at <Time value={active.activatedAt} />.{" "}
            {canWrite ? "Edit a draft, check its changes and impact, then activate it with a comment." : "You can read the policy and use the simulator."}
          </>
        }
        actions={
          <Link href="/policies/versions" className={buttonClass("secondary")}>
            Versions
          </Link>
        }
      />
      <PolicyWorkbench
        active={{ version: active.version, yaml: active.yaml }}
        canWrite={canWrite}
        activeSystems={active.compiled.systemNames()}
        activeCollections={active.compiled.collectionNames()}
        styleNonce={(await headers()).get(NONCE_HEADER)}
      />
    </>
  );
}

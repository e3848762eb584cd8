// Static on purpose: the start page reads no data, so it renders at build time
// and never touches the database.
export const dynamic = "force-static";

interface Endpoint {
  method: string;
  path: string;
  auth: string;
  purpose: string;
}

const endpoints: readonly Endpoint[] = [
  {
    method: "GET",
    path: "/api/health",
    auth: "none",
    purpose: "Liveness, and which database the hub runs on (pglite or postgres).",
  },
  {
    method: "GET",
    path: "/api/v1/config",
    auth: "system API key",
    purpose: "The calling system’s effective configuration under the active policy.",
  },
  {
    method: "GET",
    path: "/api/admin/policy",
    auth: "admin token",
    purpose: "The active policy; PUT validates and activates a new one.",
  },
];

export default function StartPage() {
  return (
    <main className="mx-auto flex max-w-3xl flex-col gap-10 px-6 py-16">
      <header className="flex flex-col gap-3">
        <h1 className="text-4xl font-semibold tracking-tight">Concord</h1>
        <p className="text-lg leading-relaxed text-slate-700">
          Concord is a governed data-sharing hub: business systems sync overlapping subsets of one data set, and
          YAML policies decide which system may read and write which records and fields.
        </p>
      </header>

      <section aria-labelledby="api-heading" className="flex flex-col gap-4">
        <h2 id="api-heading" className="text-xl font-semibold">
          API entry points
        </h2>
        <ul className="divide-y divide-slate-200 overflow-hidden rounded-lg border border-slate-200 bg-white">
          {endpoints.map((endpoint) => (
            <li key={endpoint.path} className="flex flex-col gap-1 px-4 py-3 sm:flex-row sm:items-baseline sm:gap-4">
              <span className="flex shrink-0 items-baseline gap-2 sm:w-64">
                <span className="rounded bg-slate-100 px-1.5 py-0.5 font-mono text-xs font-semibold text-slate-600">
                  {endpoint.method}
                </span>
                <a
                  href={endpoint.path}
                  className="font-mono text-sm text-blue-700 underline-offset-2 hover:underline"
                >
                  {endpoint.path}
                </a>
              </span>
              <span className="text-sm text-slate-700">
                {endpoint.purpose}{" "}
                <span className="text-slate-500">Authentication: {endpoint.auth}.</span>
              </span>
            </li>
          ))}
        </ul>
        <p className="text-sm text-slate-600">
          Systems send <code className="font-mono">Authorization: Bearer &lt;api key&gt;</code>; operators use the
          admin token from the <code className="font-mono">ADMIN_TOKEN</code> environment variable.
        </p>
      </section>

      <section aria-labelledby="docs-heading" className="flex flex-col gap-2">
        <h2 id="docs-heading" className="text-xl font-semibold">
          Documentation
        </h2>
        <p className="text-sm leading-relaxed text-slate-700">
          Setup, configuration and the test command are described in{" "}
          <code className="font-mono font-semibold">README.md</code> at the root of the repository.
        </p>
      </section>
    </main>
  );
}

#!/usr/bin/env node
// Launcher for the `concord` CLI. A published package runs the bundle
// dist/concord.mjs (`npm run build:cli`, run by `prepack`). In the repository
// the bundle is used only while it is current — no source it was built from
// (dist/concord.inputs.json) is newer — else cli/concord.ts runs through tsx,
// a devDependency, so an edit takes effect without rebuilding.
import { existsSync, readFileSync, statSync } from "node:fs";
import { fileURLToPath } from "node:url";

const bundle = new URL("../dist/concord.mjs", import.meta.url);
const inputsFile = new URL("../dist/concord.inputs.json", import.meta.url);
const root = new URL("../", import.meta.url);

function bundleIsCurrent() {
  if (!existsSync(bundle)) return false;
  const builtAt = statSync(bundle).mtimeMs;
  let inputs;
  try {
    inputs = JSON.parse(readFileSync(inputsFile, "utf8")).inputs;
  } catch {
    return true; // a bundle without its list (hand-copied): trust it
  }
  for (const input of Array.isArray(inputs) ? inputs : []) {
    const file = fileURLToPath(new URL(input, root));
    // Sources absent (the published package ships only bin/ and dist/) cannot be newer.
    if (existsSync(file) && statSync(file).mtimeMs > builtAt) return false;
  }
  return true;
}

if (bundleIsCurrent()) {
  await import(bundle.href);
} else {
  let register;
  try {
    ({ register } = await import("tsx/esm/api"));
  } catch {
    process.stderr.write(
      `concord: ${existsSync(bundle) ? "dist/concord.mjs is older than the sources" : "dist/concord.mjs is missing"} and tsx is not installed; run \`npm run build:cli\`.\n`,
    );
    process.exit(1);
  }
  register();
  await import("../cli/concord.ts");
}

// `npm run build:cli` (and `prepack`): bundles the `concord` CLI (cli/ with the
// SDK it uses from lib/) into dist/concord.mjs, one ES module for Node 20+, so
// a published package runs without tsx or TypeScript. Packages stay external:
// they are `dependencies`, installed with the package (PGlite also needs its
// own files next to it, which bundling would lose). dist/concord.inputs.json
// lists the bundled sources, so bin/concord.js can tell a stale bundle.
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const outfile = path.join(root, "dist", "concord.mjs");

await mkdir(path.dirname(outfile), { recursive: true });
const result = await build({
  absWorkingDir: root,
  entryPoints: ["cli/concord.ts"],
  outfile,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  packages: "external",
  sourcemap: false,
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
  banner: { js: "// concord CLI, bundled from cli/concord.ts by scripts/build-cli.mjs: edit the sources, not this file." },
});
const inputs = Object.keys(result.metafile.inputs).sort();
await writeFile(path.join(root, "dist", "concord.inputs.json"), `${JSON.stringify({ builtAt: new Date().toISOString(), inputs }, null, 2)}\n`);
console.log(`Bundled ${inputs.length} source files into ${path.relative(root, outfile)}.`);

#!/usr/bin/env node
// Launcher for the `concord` CLI (cli/concord.ts). Loads TypeScript through tsx,
// a devDependency: this works from the repository (`npx concord`), not from a
// published package (that needs a compiled build of cli/).
import { register } from "tsx/esm/api";

register();
await import("../cli/concord.ts");

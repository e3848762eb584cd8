// ESLint 9 flat config: Next's rules, type-aware TypeScript rules, and the
// import direction of the architecture (app → lib verbs → lib/db) as lint errors.
import { defineConfig, globalIgnores } from "eslint/config";
import nextCoreWebVitals from "eslint-config-next/core-web-vitals";
import nextTypescript from "eslint-config-next/typescript";
import drizzle from "eslint-plugin-drizzle";
import tseslint from "typescript-eslint";

const TS_FILES = ["**/*.ts", "**/*.tsx", "**/*.mts", "**/*.cts"];

// Import specifiers are matched as written, so each restriction covers the `@/`
// alias and relative paths (`../../lib/db`) alike.
const LIB = String.raw`(?:@/lib/|(?:\.\./)+(?:lib/)?|\./(?:lib/)?)`;

const DB_MESSAGE = "route handlers and pages call lib/ verbs; only lib/ touches the database";
const CLIENT_MESSAGE =
  "lib/client is the SDK that runs inside other systems: it imports only lib/sync/protocol, lib/sync/canonical, lib/sync/bundle-format, the JSON checks (lib/sync/json-safety, lib/sync/strict-json) and pure helpers, never server code";

export default defineConfig(
  globalIgnores([
    ".next/**",
    "node_modules/**",
    "drizzle/**",
    ".data/**",
    "test-results/**",
    "playwright-report/**",
    "out/**",
    "coverage/**",
    "dist/**",
    "next-env.d.ts",
  ]),

  ...nextCoreWebVitals,
  ...nextTypescript,

  // TypeScript everywhere it appears, with type information for the rules below.
  {
    files: TS_FILES,
    languageOptions: {
      parser: tseslint.parser,
      parserOptions: {
        projectService: {
          // tsconfig.json includes *.ts and *.tsx; the few .mts config files
          // get the default project instead of being left unchecked.
          allowDefaultProject: ["*.mts"],
        },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    plugins: { drizzle },
    rules: {
      "@typescript-eslint/no-floating-promises": "error",
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/ban-ts-comment": [
        "error",
        {
          "ts-expect-error": "allow-with-description",
          "ts-ignore": true,
          "ts-nocheck": true,
          "ts-check": false,
          minimumDescriptionLength: 10,
        },
      ],
      "@typescript-eslint/no-unused-vars": [
        "warn",
        { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrorsIgnorePattern: "^_" },
      ],
      // An update or delete without where rewrites or empties a whole table.
      // Only handles named db/tx count: Map#delete and URLSearchParams#delete are fine.
      "drizzle/enforce-delete-with-where": ["error", { drizzleObjectName: ["db", "tx"] }],
      "drizzle/enforce-update-with-where": ["error", { drizzleObjectName: ["db", "tx"] }],
    },
  },

  // Tool config files (postcss, vitest, playwright) export their config object
  // as the default export, which is what those tools expect.
  {
    files: ["*.config.{js,mjs,cjs,ts,mts}"],
    rules: { "import/no-anonymous-default-export": "off" },
  },

  // Pages, layouts, route handlers and components call lib/ verbs; they never
  // reach the database themselves.
  {
    files: ["app/**", "components/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { regex: String.raw`^drizzle-orm(?:/|$)`, message: DB_MESSAGE },
            { regex: String.raw`^${LIB}db(?:/|$)`, message: DB_MESSAGE },
          ],
        },
      ],
    },
  },

  // The client SDK ships to other teams' systems: no server code, no Next.js.
  {
    files: ["lib/client/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { regex: String.raw`^${LIB}db(?:/|$)`, message: CLIENT_MESSAGE },
            { regex: String.raw`^${LIB}sync(?:/(?!(?:protocol|canonical|bundle-format|json-safety|strict-json)$).*)?$`, message: CLIENT_MESSAGE },
            { regex: String.raw`^next(?:/|$)`, message: CLIENT_MESSAGE },
            { regex: String.raw`^drizzle-orm(?:/|$)`, message: CLIENT_MESSAGE },
          ],
        },
      ],
    },
  },
);

import { isMap, isScalar, LineCounter, parseDocument, type Document, type Node } from "yaml";
import { z } from "zod";
import { COLLECTION_PATTERN } from "../sync/protocol";

/**
 * The connector's configuration file (`concord connect --config FILE`): which
 * hub, which key, which database, and which table holds each collection.
 *
 *   hub: http://localhost:3000
 *   key: ${CONCORD_KEY}                 # ${VAR} is replaced from the environment
 *   database: postgres://crm@db/crm     # or sqlite:./shop.db (relative to this file)
 *   capture: scan                       # or trigger (concord connect --install first)
 *   collections:
 *     customers:
 *       table: customers                # schema-qualified allowed: sales.customers
 *       id: id                          # the primary-key column is the record id
 *       columns: {email: email_address} # field: column; other columns keep their names
 *
 * Every problem is reported with its line and column, all at once.
 */

/** A problem in the file, at a place a person can find. */
export interface ConfigProblem {
  line: number;
  column: number;
  message: string;
}

export class ConnectConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: readonly ConfigProblem[],
  ) {
    super(
      `${file} has ${problems.length === 1 ? "a problem" : `${problems.length} problems`}:\n` +
        problems.map((p) => `  line ${p.line}, column ${p.column}: ${p.message}`).join("\n"),
    );
  }
}

/** An SQL identifier as the connector accepts it: letters, digits, _ and $, not starting with a digit. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]{0,62}$/;
const identifier = (what: string) => z.string().regex(IDENTIFIER, `is not a plain SQL ${what} name (letters, digits, _ and $, at most 63, not starting with a digit)`);

const tableSchema = z
  .string()
  .refine((t) => {
    const parts = t.split(".");
    return parts.length <= 2 && parts.every((p) => IDENTIFIER.test(p));
  }, "is not a table name: `table` or `schema.table`, each a plain SQL name (letters, digits, _ and $)");

const collectionSchema = z.strictObject({
  table: tableSchema,
  id: identifier("column").default("id"),
  columns: z.record(z.string().min(1, "a field name cannot be empty").max(256), identifier("column")).default({}),
});

const databaseSchema = z
  .string()
  .refine(
    (d) => d.startsWith("postgres://") || d.startsWith("postgresql://") || d.startsWith("sqlite:"),
    "must be a postgres:// URL or sqlite:FILE (e.g. sqlite:./shop.db)",
  );

const fileSchema = z.strictObject({
  hub: z
    .string()
    .refine((v) => URL.canParse(v) && /^https?:$/.test(new URL(v).protocol), "must be the hub's http:// or https:// address")
    .transform((v) => v.replace(/\/+$/, "")),
  key: z.string().regex(/^cnc_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/, "does not look like a Concord API key (cnc_<12 hex>_<43 characters>)"),
  database: databaseSchema,
  capture: z.enum(["scan", "trigger"]).default("scan"),
  collections: z
    .record(z.string(), collectionSchema)
    .superRefine((c, ctx) => {
      if (Object.keys(c).length === 0) ctx.addIssue({ code: "custom", message: "must name at least one collection" });
      for (const name of Object.keys(c)) {
        if (!COLLECTION_PATTERN.test(name)) ctx.addIssue({ code: "custom", path: [name], message: "is not a collection name (a lowercase letter, then a-z, 0-9 or _)" });
      }
    }),
});

export interface CollectionMapping {
  collection: string;
  /** Schema (Postgres; null: the search path) and table. */
  schema: string | null;
  table: string;
  /** The primary-key column: its value, as text, is the record id. */
  idColumn: string;
  /** Field name → column name, for the columns renamed in the file (the others keep their names). */
  renamed: Record<string, string>;
}

export interface ConnectConfig {
  /** The file it was read from (sqlite paths are relative to its folder). */
  file: string;
  hub: string;
  key: string;
  database: { engine: "postgres"; url: string } | { engine: "sqlite"; path: string };
  capture: "scan" | "trigger";
  collections: CollectionMapping[];
}

/** `${NAME}` in a string value is replaced by the environment variable; a missing one is a problem. */
const REFERENCE = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;

/**
 * Reads and checks the configuration text. `file` names it in messages and
 * anchors relative sqlite paths. Throws ConnectConfigError listing every
 * problem with its line and column; nothing is partly accepted.
 */
export function parseConnectConfig(text: string, file: string, environment: Record<string, string | undefined> = process.env): ConnectConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined) => {
    const pos = lineCounter.linePos(offset ?? 0);
    return { line: pos.line, column: pos.col };
  };
  const problems: ConfigProblem[] = doc.errors.map((e) => ({ ...at(e.pos[0]), message: e.message.split("\n")[0] ?? e.message }));
  if (problems.length > 0) throw new ConnectConfigError(file, problems);

  // Environment substitution, scalar by scalar, so a problem points at its value.
  substitute(doc, environment, (node, message) => problems.push({ ...at(node.range?.[0]), message }));
  if (problems.length > 0) throw new ConnectConfigError(file, problems);

  const parsed = fileSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      const node = nodeAt(doc, issue.path.map(String));
      const where = issue.path.length > 0 ? `${issue.path.join(".")} ` : "";
      problems.push({ ...at(node?.range?.[0]), message: `${where}${issue.message}` });
    }
    throw new ConnectConfigError(file, problems);
  }
  const value = parsed.data;
  const collections: CollectionMapping[] = Object.entries(value.collections).map(([collection, c]) => {
    const [first, second] = c.table.split(".") as [string, string | undefined];
    return { collection, schema: second === undefined ? null : first, table: second ?? first, idColumn: c.id, renamed: c.columns };
  });
  // Two fields on one column, or a field on the id column, cannot be told apart when reading a row.
  for (const c of collections) {
    const seen = new Map<string, string>();
    for (const [field, column] of Object.entries(c.renamed)) {
      const node = nodeAt(doc, ["collections", c.collection, "columns", field]);
      if (column === c.idColumn) problems.push({ ...at(node?.range?.[0]), message: `collections.${c.collection}.columns.${field}: column "${column}" is the id column; the record id is not a field` });
      const other = seen.get(column);
      if (other !== undefined) problems.push({ ...at(node?.range?.[0]), message: `collections.${c.collection}.columns: fields "${other}" and "${field}" both name column "${column}"` });
      seen.set(column, field);
    }
  }
  if (problems.length > 0) throw new ConnectConfigError(file, problems);
  const database: ConnectConfig["database"] = value.database.startsWith("sqlite:")
    ? { engine: "sqlite", path: value.database.slice("sqlite:".length) }
    : { engine: "postgres", url: value.database };
  return { file, hub: value.hub, key: value.key, database, capture: value.capture, collections };
}

function substitute(doc: Document, environment: Record<string, string | undefined>, problem: (node: Node, message: string) => void): void {
  const visit = (node: unknown): void => {
    if (isMap(node)) {
      for (const pair of node.items) visit(pair.value);
    } else if (isScalar(node) && typeof node.value === "string") {
      node.value = node.value.replace(REFERENCE, (_, name: string) => {
        const replacement = environment[name];
        if (replacement === undefined || replacement === "") {
          problem(node, `\${${name}} is not set in the environment`);
          return "";
        }
        return replacement;
      });
    }
  };
  visit(doc.contents);
}

function nodeAt(doc: Document, path: string[]): Node | undefined {
  let node: unknown = doc.contents;
  let found: Node | undefined = isMap(node) ? (node as Node) : undefined;
  for (const key of path) {
    if (!isMap(node)) break;
    const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === key);
    if (!pair) break;
    found = (isScalar(pair.key) ? pair.key : found) as Node | undefined;
    node = pair.value;
    if (node && typeof node === "object" && "range" in node) found = node as Node;
  }
  return found;
}

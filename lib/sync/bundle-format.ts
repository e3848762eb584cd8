import { z } from "zod";
import { canonicalJson } from "./canonical";
import { findUnstorable } from "./json-safety";
import { describeProblem, MAX_DOCUMENT_DEPTH, parseStrictJson } from "./strict-json";
import {
  collectionNameSchema,
  pushChangeSchema,
  PUSH_STATUSES,
  recordIdSchema,
  type ChangeEntry,
  type JsonObject,
  type PushResult,
} from "./protocol";

/**
 * Offline bundles (protocol.md, "Offline bundles"): the files a site without a
 * connection carries to the hub and back. Shared by the server and the client
 * SDK (Node or browser), so it imports only zod, ./protocol, ./canonical and
 * the JSON checks (./strict-json, ./json-safety); the SHA-256 function is a parameter (node:crypto on the
 * server, WebCrypto in a browser).
 *
 * A request bundle holds a system's pending changes in push form and its
 * checkpoints; the response bundle holds the push results and the changes
 * since each checkpoint. Both carry `checksum`: the lowercase hex SHA-256 of
 * the canonical JSON (RFC 8785) of the bundle without its `checksum` field, so
 * a changed or cut-short file is refused rather than half applied.
 */

/** The `format` of a request bundle (site → hub). */
export const FORMAT = "concord-bundle/1";
/** The `format` of a response bundle (hub → site). A different name, so one is never taken for the other. */
export const RESPONSE_FORMAT = "concord-bundle-response/1";
/** The largest request bundle the hub accepts, in bytes of the file; larger ones get 413 before they are parsed. */
export const MAX_BUNDLE_BYTES = 64 * 1024 * 1024;
/** The route that applies a request bundle (POST) and gives a stored response again (GET ?bundleId=). */
export const BUNDLES_PATH = "/api/v1/bundles";

export type Sha256 = (text: string) => string | Promise<string>;

// ---------------------------------------------------------------------------
// Pieces

const checksumSchema = z.string().regex(/^[0-9a-f]{64}$/, "checksum must be 64 lowercase hex characters (SHA-256)");
const systemNameSchema = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,62}$/, "a system name starts with a lowercase letter and uses only a-z, 0-9 and _");
const dateTimeSchema = z.iso.datetime({ offset: true, error: "must be an ISO 8601 date-time" });
/** Checkpoints are opaque to sites; the hub checks that it issued them. */
const checkpointSchema = z.string().min(1, "a checkpoint is a non-empty string").max(200, "a checkpoint is at most 200 characters");
const policyVersionSchema = z.number().int("policyVersion must be a whole number").min(1, "policyVersion is at least 1");

// ---------------------------------------------------------------------------
// Request bundle (site → hub)

export const requestBundleSchema = z.strictObject({
  format: z.literal(FORMAT, { error: `format must be "${FORMAT}"` }),
  /** Chosen by the site, once per exported file: the hub applies a bundleId once per system. */
  bundleId: z.uuid({ error: "bundleId must be a UUID" }),
  system: systemNameSchema,
  createdAt: dateTimeSchema,
  /** The policy version the site last saw; null when it never read /config. Informational. */
  policyVersion: policyVersionSchema.nullable(),
  /** Per collection to pull: the checkpoint of the site's last pull, or null for everything. */
  checkpoints: z.record(collectionNameSchema, checkpointSchema.nullable()),
  /** Per collection: pending changes exactly as POST …/push takes them, in order (any number; the hub pushes them in batches). */
  changes: z.record(collectionNameSchema, z.array(pushChangeSchema)),
  checksum: checksumSchema,
});

export type RequestBundle = z.infer<typeof requestBundleSchema>;
export type UnsealedRequestBundle = Omit<RequestBundle, "checksum">;

// ---------------------------------------------------------------------------
// Response bundle (hub → site)

const jsonObjectSchema = z.custom<JsonObject>(
  (v) => typeof v === "object" && v !== null && !Array.isArray(v),
  { message: "must be a JSON object" },
);

// Results and entries may gain fields (protocol.md welcomes extensions): readers keep going.
export const pushResultSchema: z.ZodType<PushResult> = z.looseObject({
  changeId: z.string(),
  id: recordIdSchema,
  status: z.enum(PUSH_STATUSES),
  version: z.number().int().optional(),
  digest: z.string().optional(),
  data: jsonObjectSchema.optional(),
  deleted: z.boolean().optional(),
  conflict: z.looseObject({ id: z.number().int(), strategy: z.string() }).optional(),
  reason: z.string().optional(),
});

export const changeEntrySchema: z.ZodType<ChangeEntry> = z.union([
  z.looseObject({ id: recordIdSchema, version: z.number().int(), digest: z.string(), data: jsonObjectSchema }),
  z.looseObject({ id: recordIdSchema, version: z.number().int(), digest: z.string(), deleted: z.literal(true) }),
  z.looseObject({ id: recordIdSchema, removed: z.literal(true) }),
]);

export const responseBundleSchema = z.strictObject({
  format: z.literal(RESPONSE_FORMAT, { error: `format must be "${RESPONSE_FORMAT}"` }),
  /** The request bundle's id. */
  bundleId: z.uuid({ error: "bundleId must be a UUID" }),
  system: systemNameSchema,
  /** The active policy version when the bundle was applied: a newer one than the site's means re-read /config. */
  policyVersion: policyVersionSchema,
  /** When the hub applied the request bundle. */
  createdAt: dateTimeSchema,
  /** Per collection of the request's `changes`: one result per change, in order, as POST …/push answers. */
  results: z.record(collectionNameSchema, z.array(pushResultSchema)),
  /** Per readable collection of the request's `checkpoints`: the changes since that checkpoint, oldest first, as GET …/changes answers. */
  changes: z.record(collectionNameSchema, z.array(changeEntrySchema)),
  /** Per collection of `changes`: the checkpoint to store and send in the next bundle (or pass as `since`). */
  checkpoints: z.record(collectionNameSchema, checkpointSchema),
  checksum: checksumSchema,
});

export type ResponseBundle = z.infer<typeof responseBundleSchema>;
export type UnsealedResponseBundle = Omit<ResponseBundle, "checksum">;

// ---------------------------------------------------------------------------
// Checksums

/**
 * Lowercase hex SHA-256 of the canonical JSON of the bundle without its
 * `checksum` field (a `checksum` present in the argument is left out, so a
 * sealed bundle can be checked directly). Key order and whitespace do not
 * matter; any change of content does.
 */
export async function bundleChecksum(bundleWithoutChecksum: object, sha256: Sha256): Promise<string> {
  const { checksum: _ignored, ...rest } = bundleWithoutChecksum as Record<string, unknown>;
  return (await sha256(canonicalJson(rest))).toLowerCase();
}

/** The bundle with its checksum added (computed over everything else). */
export async function sealBundle<T extends object>(bundle: T, sha256: Sha256): Promise<Omit<T, "checksum"> & { checksum: string }> {
  const { checksum: _ignored, ...rest } = bundle as T & { checksum?: unknown };
  return { ...rest, checksum: await bundleChecksum(rest, sha256) };
}

// ---------------------------------------------------------------------------
// Reading a bundle file

export type BundleKind = "request" | "response";

export interface BundleIssue {
  path: string;
  message: string;
}

export type BundleProblem =
  /** The text is not JSON (typically a file cut short). */
  | { code: "not_json"; message: string }
  /** JSON, but not a bundle of the expected kind and version. */
  | { code: "wrong_format"; message: string }
  /** The content does not match its checksum: the file was changed or cut short. */
  | { code: "checksum_mismatch"; message: string }
  /** The checksum matches, but the content breaks the format (each issue names its path). */
  | { code: "invalid"; message: string; issues: BundleIssue[] };

export type DecodeResult<T> = { ok: true; bundle: T } | { ok: false; problem: BundleProblem };

const EXPORT_AGAIN = "the file was changed or cut short; export it again";

/**
 * Reads a bundle file: strict JSON (./strict-json: no key twice, no number a
 * double cannot hold, bounded nesting) without text the hub cannot store
 * (./json-safety), then the format, then the checksum over the
 * content exactly as parsed, then the schema (strict: unknown fields are
 * refused). The checksum is verified before the schema so that a tampered
 * file is reported as tampered rather than as a puzzling schema error.
 */
export async function decodeBundle(text: string, kind: "request", sha256: Sha256): Promise<DecodeResult<RequestBundle>>;
export async function decodeBundle(text: string, kind: "response", sha256: Sha256): Promise<DecodeResult<ResponseBundle>>;
export async function decodeBundle(
  text: string,
  kind: BundleKind,
  sha256: Sha256,
): Promise<DecodeResult<RequestBundle | ResponseBundle>> {
  const fail = (problem: BundleProblem) => ({ ok: false as const, problem });
  // Strict: a duplicate key or a number a double cannot hold would change the content as it is read.
  const read = parseStrictJson(text);
  if (!read.ok) {
    const { problem } = read;
    if (problem.code === "not_json") return fail({ code: "not_json", message: `The bundle is not valid JSON (${problem.message}): ${EXPORT_AGAIN}.` });
    return fail({ code: "invalid", message: `${describeProblem(problem, "The bundle")} Nothing was applied.`, issues: [{ path: problem.path, message: problem.message }] });
  }
  const value = read.value;
  // Before the checksum: text the hub cannot store cannot be canonicalised either, and the path says more than "checksum".
  const unstorable = findUnstorable(value, "", MAX_DOCUMENT_DEPTH);
  if (unstorable) {
    return fail({
      code: "invalid",
      message: `The bundle is refused: ${unstorable.message}. Nothing was applied; correct it at the site and export the bundle again.`,
      issues: [{ path: unstorable.path, message: unstorable.message }],
    });
  }
  const expected = kind === "request" ? FORMAT : RESPONSE_FORMAT;
  const other = kind === "request" ? RESPONSE_FORMAT : FORMAT;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return fail({ code: "wrong_format", message: `The file is not a Concord bundle: it must be a JSON object with "format": "${expected}".` });
  }
  const format = (value as Record<string, unknown>).format;
  if (format !== expected) {
    const message =
      format === other
        ? kind === "request"
          ? "This is a response bundle (the hub's answer): import it into the site instead of uploading it."
          : "This is a request bundle (a site's export): upload it to the hub; the file to import is the response bundle the hub returns."
        : `The file is not a ${kind} bundle of a format this version understands: "format" must be "${expected}".`;
    return fail({ code: "wrong_format", message });
  }
  const claimed = (value as Record<string, unknown>).checksum;
  if (typeof claimed !== "string" || !checksumSchema.safeParse(claimed).success) {
    return fail({
      code: "invalid",
      message: "The bundle is invalid: checksum: checksum must be 64 lowercase hex characters (SHA-256).",
      issues: [{ path: "checksum", message: "checksum must be 64 lowercase hex characters (SHA-256)" }],
    });
  }
  let actual: string;
  try {
    actual = await bundleChecksum(value, sha256);
  } catch {
    return fail({ code: "checksum_mismatch", message: `The checksum does not match: ${EXPORT_AGAIN}.` });
  }
  if (actual !== claimed) return fail({ code: "checksum_mismatch", message: `The checksum does not match: ${EXPORT_AGAIN}.` });

  const parsed = (kind === "request" ? requestBundleSchema : responseBundleSchema).safeParse(value);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((issue) => ({ path: issue.path.map(String).join("."), message: issue.message }));
    const first = issues[0];
    return fail({
      code: "invalid",
      message: `The bundle is invalid: ${first?.path ? `${first.path}: ` : ""}${first?.message ?? "unknown problem"}${
        issues.length > 1 ? ` (and ${issues.length - 1} more)` : ""
      }.`,
      issues,
    });
  }
  return { ok: true, bundle: parsed.data };
}

"use server";

import { revalidatePath } from "next/cache";
import { z } from "zod";
import { activateDraft, checkDraft, compileDraft, MAX_COMMENT_LENGTH, type DraftCheck } from "@/lib/console/policy-draft";
import { accessImpact, loadRecordData, simulateRecord, type AccessImpact, type Simulation } from "@/lib/console/policy-simulate";
import { ServiceError } from "@/lib/errors";
import { getActivePolicy, rollbackPolicy } from "@/lib/policy/store";
import { MAX_POLICY_BYTES } from "@/lib/policy/validate";
import { isJsonObject, type JsonObject } from "@/lib/sync/protocol";
import { describeProblem, parseStrictJson } from "@/lib/sync/strict-json";
import { operatorAction, type ActionResult } from "../../_server/operator";

const yamlText = z
  .string({ error: "The policy text is missing." })
  .max(MAX_POLICY_BYTES, `The policy is larger than ${MAX_POLICY_BYTES / 1024} KiB; shorten it.`);

function invalidInput(error: z.ZodError): { ok: false; message: string } {
  return { ok: false, message: error.issues[0]?.message ?? "The form is not complete." };
}

/** Validation as the operator types: the engine activation uses, nothing stored. */
export async function checkDraftAction(yaml: string): Promise<ActionResult<DraftCheck>> {
  const parsed = yamlText.safeParse(yaml);
  if (!parsed.success) return invalidInput(parsed.error);
  return operatorAction("policy", "read", async () => checkDraft(parsed.data));
}

const activateInput = z.object({
  yaml: yamlText,
  baseVersion: z.number({ error: "The draft's base version is missing; reload the page." }).int().positive(),
  comment: z
    .string()
    .trim()
    .min(1, "Write a comment saying why the policy changes; it is kept with the version.")
    .max(MAX_COMMENT_LENGTH, `Keep the comment under ${MAX_COMMENT_LENGTH} characters.`),
});

export async function activateDraftAction(input: {
  yaml: string;
  baseVersion: number;
  comment: string;
}): Promise<ActionResult<{ version: number; warnings: number }>> {
  const parsed = activateInput.safeParse(input);
  if (!parsed.success) return invalidInput(parsed.error);
  const result = await operatorAction("policy", "write", async ({ hub, operator }) => {
    const activated = await activateDraft(hub.db, { ...parsed.data, actor: operator.username });
    return { version: activated.version, warnings: activated.warnings.length };
  });
  if (result.ok) {
    revalidatePath("/policies", "layout");
    return { ...result, message: `Activated version ${result.value.version}.` };
  }
  return result;
}

const simulateInput = z
  .object({
    policy: z.enum(["active", "draft"], { error: "Choose the active policy or the draft." }),
    yaml: yamlText.optional(),
    system: z.string().min(1, "Choose a system.").max(63),
    collection: z.string().min(1, "Choose a collection.").max(63),
    source: z.enum(["id", "json"]),
    recordId: z.string().trim().max(512).optional(),
    recordJson: z.string().max(256 * 1024, "The pasted record is larger than 256 KiB.").optional(),
  })
  .refine((v) => v.policy === "active" || v.yaml !== undefined, { message: "The draft text is missing." })
  .refine((v) => v.source === "json" || (v.recordId ?? "") !== "", { message: "Enter the id of a record, or paste one as JSON." })
  .refine((v) => v.source === "id" || (v.recordJson ?? "").trim() !== "", { message: "Paste the record as a JSON object." });

export type SimulateInput = z.input<typeof simulateInput>;

export type SimulationView = Simulation & { policyLabel: string; record: JsonObject };

export async function simulateAction(input: SimulateInput): Promise<ActionResult<SimulationView>> {
  const parsed = simulateInput.safeParse(input);
  if (!parsed.success) return invalidInput(parsed.error);
  const v = parsed.data;
  return operatorAction("policy", "read", async ({ hub }) => {
    let compiled;
    let policyLabel: string;
    if (v.policy === "draft") {
      compiled = await compileDraft(v.yaml ?? "");
      policyLabel = "the draft";
    } else {
      const active = await getActivePolicy(hub.db);
      compiled = active.compiled;
      policyLabel = `active version ${active.version}`;
    }
    const record =
      v.source === "id" ? await loadRecordData(hub.db, v.collection, v.recordId ?? "") : parseRecordJson(v.recordJson ?? "");
    return { ...simulateRecord(compiled, { system: v.system, collection: v.collection, record }), policyLabel, record };
  });
}

function parseRecordJson(text: string): JsonObject {
  const parsed = parseStrictJson(text);
  if (!parsed.ok) throw new ServiceError("invalid_request", describeProblem(parsed.problem, "The pasted record"));
  const value = parsed.value;
  if (!isJsonObject(value)) throw new ServiceError("invalid_request", 'The pasted record must be a JSON object, like {"region": "north"}.');
  return value;
}

export async function accessImpactAction(yaml: string): Promise<ActionResult<{ activeVersion: number; rows: AccessImpact[] }>> {
  const parsed = yamlText.safeParse(yaml);
  if (!parsed.success) return invalidInput(parsed.error);
  return operatorAction("policy", "read", async ({ hub }) => {
    const draft = await compileDraft(parsed.data);
    const active = await getActivePolicy(hub.db);
    return { activeVersion: active.version, rows: await accessImpact(hub.db, active.compiled, draft) };
  });
}

const rollbackInput = z.object({
  toVersion: z.number().int().positive(),
  expectedVersion: z.number().int().positive(),
  comment: z
    .string()
    .trim()
    .min(1, "Write a comment saying why you roll back; it is kept with the new version.")
    .max(MAX_COMMENT_LENGTH, `Keep the comment under ${MAX_COMMENT_LENGTH} characters.`),
});

export async function rollbackAction(input: {
  toVersion: number;
  expectedVersion: number;
  comment: string;
}): Promise<ActionResult<{ version: number }>> {
  const parsed = rollbackInput.safeParse(input);
  if (!parsed.success) return invalidInput(parsed.error);
  const result = await operatorAction("policy", "write", async ({ hub, operator }) => {
    const r = await rollbackPolicy(hub.db, { ...parsed.data, actor: operator.username });
    return { version: r.version };
  });
  if (result.ok) {
    revalidatePath("/policies", "layout");
    return { ...result, message: `Rolled back: version ${result.value.version} is active, with the text of version ${parsed.data.toVersion}.` };
  }
  return result;
}

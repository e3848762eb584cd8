import { z } from "zod";
import { ServiceError } from "../errors";
import { NAME_PATTERN } from "../policy/document";

/** Path and query parameters shared by several routes. */
export const systemNameSchema = z
  .string()
  .regex(NAME_PATTERN, "a system name starts with a lowercase letter and uses only a-z, 0-9 and _");

export const keyPrefixSchema = z.string().regex(/^[0-9a-f]{12}$/, "a key prefix is 12 lowercase hex characters");

export const positiveIntSchema = z
  .string()
  .regex(/^[1-9][0-9]{0,8}$/, "must be a positive whole number")
  .transform(Number);

/** Validates one path segment; a bad one is `invalid_request` naming the segment. */
export function parseParam<T extends z.ZodType>(schema: T, value: unknown, name: string): z.infer<T> {
  const parsed = schema.safeParse(value);
  if (!parsed.success) {
    throw new ServiceError(
      "invalid_request",
      `The ${name} in the path is invalid: ${parsed.error.issues[0]?.message ?? "unexpected value"}.`,
    );
  }
  return parsed.data;
}

import { expect, test } from "@playwright/test";
import { expectedDatabaseKind } from "../support/env";

test("GET /api/health answers ok without authentication and names the database", async ({ request }) => {
  const response = await request.get("/api/health");

  expect(response.status()).toBe(200);
  expect(response.headers()["content-type"]).toContain("application/json");
  expect(await response.json()).toEqual({ status: "ok", database: expectedDatabaseKind() });
});

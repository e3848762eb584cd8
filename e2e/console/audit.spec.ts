import { expect, test } from "@playwright/test";
import { E2E_ADMIN } from "../support/env";

test("a key issued in the console shows in the audit log with the operator's name; filters by action and actor", async ({ page }) => {
  await page.goto("/systems/billing");
  await page.getByRole("button", { name: "Issue a new key" }).click();
  const shown = page.getByTestId("new-key-value");
  await expect(shown).toHaveText(/^cnc_/);
  const prefix = ((await shown.textContent()) ?? "").split("_")[1] ?? "";

  await page.goto("/audit");
  await expect(page.getByRole("heading", { name: "Audit log" })).toBeVisible();
  const row = page.getByTestId("audit-row").filter({ hasText: "system:billing" }).filter({ hasText: prefix });
  await expect(row).toHaveCount(1);
  await expect(row).toContainText(E2E_ADMIN.username);
  await expect(row).toContainText("key.issue");
  // Sign-ins are there too.
  await expect(page.getByTestId("audit-row").filter({ hasText: "sign-in" }).first()).toBeVisible();

  await page.getByLabel("Action").selectOption("key.issue");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page).toHaveURL(/action=key\.issue/);
  const rows = page.getByTestId("audit-row");
  await expect(rows.first()).toBeVisible();
  for (const text of await rows.allTextContents()) expect(text).toContain("key.issue");
  await page.screenshot({ path: "test-results/screenshots/audit.png", fullPage: true });

  await page.getByLabel("Actor").fill(E2E_ADMIN.username);
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page).toHaveURL(/actor=alice/);
  await expect(page.getByTestId("audit-row").filter({ hasText: prefix })).toHaveCount(1);
  for (const text of await page.getByTestId("audit-row").allTextContents()) expect(text).toContain(E2E_ADMIN.username);

  await page.getByLabel("Actor").fill("nobody-at-all");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page.getByText("Nothing matches these filters.")).toBeVisible();
});

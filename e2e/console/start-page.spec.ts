import { expect, test } from "@playwright/test";

test("the start page says what Concord is and lists the API entry points", async ({ page }) => {
  const response = await page.goto("/");
  expect(response?.status()).toBe(200);

  await expect(page).toHaveTitle("Concord");
  await expect(page.getByRole("heading", { level: 1, name: "Concord" })).toBeVisible();
  await expect(page.getByText("governed data-sharing hub")).toBeVisible();

  for (const path of ["/api/health", "/api/v1/config", "/api/admin/policy"]) {
    await expect(page.getByRole("link", { name: path, exact: true })).toHaveAttribute("href", path);
  }
  await expect(page.getByText("README.md")).toBeVisible();

  await page.screenshot({ path: "test-results/screenshots/start-page.png", fullPage: true });
});

import { expect, test } from "@playwright/test";
import { E2E_ADMIN } from "../support/env";

test.describe("sign-in", () => {
  test.use({ storageState: { cookies: [], origins: [] } });

  test("every console page sends a stranger to sign-in", async ({ page }) => {
    const paths = [
      "/",
      "/systems",
      "/systems/crm",
      "/policies",
      "/policies/versions",
      "/policies/versions/1",
      "/conflicts",
      "/conflicts/1",
      "/records",
      "/records/customers/c1",
      "/audit",
      "/operators",
    ];
    for (const path of paths) {
      await page.goto(path);
      await expect(page, path).toHaveURL(/\/sign-in/);
    }
  });

  test("a wrong password is refused and slowed down after repeats; the right one signs in, sign-out ends the session", async ({ page }) => {
    await page.goto("/sign-in");
    const durations: number[] = [];
    for (let i = 0; i < 3; i++) {
      await page.getByLabel("Username").fill(E2E_ADMIN.username);
      await page.getByLabel("Password").fill(`wrong-password-${i}`);
      const started = Date.now();
      await page.getByRole("button", { name: "Sign in" }).click();
      await expect(page.getByRole("alert").filter({ hasText: "username or password is not right" })).toBeVisible();
      await expect(page.getByRole("button", { name: "Sign in" })).toBeEnabled();
      durations.push(Date.now() - started);
    }
    await page.screenshot({ path: "test-results/screenshots/sign-in-refused.png", fullPage: true });
    // The third failure in a row waits a second before answering.
    expect(durations[2]).toBeGreaterThanOrEqual(900);

    await page.getByLabel("Username").fill(E2E_ADMIN.username);
    await page.getByLabel("Password").fill(E2E_ADMIN.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("heading", { name: "Overview" })).toBeVisible();
    const session = (await page.context().cookies()).find((c) => c.name === "concord_session");

    await page.getByRole("button", { name: "Sign out" }).click();
    await expect(page).toHaveURL(/\/sign-in/);
    await page.goto("/");
    await expect(page).toHaveURL(/\/sign-in/);

    // The old cookie is dead on the server, not only forgotten by the browser.
    const res = await page.request.get("/api/admin/policy", { headers: { cookie: `concord_session=${session?.value}` } });
    expect(res.status()).toBe(401);
  });
});

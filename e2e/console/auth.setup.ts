import { expect, test as setup } from "@playwright/test";
import { ADMIN_STATE, E2E_ADMIN, E2E_ADMIN_TOKEN, E2E_VIEWER, VIEWER_STATE } from "../support/env";

// The server under test starts with no operators: the first admin comes from
// the one-time setup page, which asks for the admin token.
setup("create the first admin on the setup page, then a viewer", async ({ page, browser }) => {
  await page.goto("/");
  await expect(page).toHaveURL(/\/sign-in$/);
  await page.getByRole("link", { name: "Create the first admin" }).click();
  await expect(page.getByRole("heading", { name: "Create the first admin" })).toBeVisible();
  await page.screenshot({ path: "test-results/screenshots/setup.png", fullPage: true });

  // A wrong token is refused and creates nothing.
  await page.getByLabel("Admin token").fill("not-the-token-at-all");
  await page.getByLabel("Username").fill(E2E_ADMIN.username);
  await page.getByLabel("Password", { exact: true }).fill(E2E_ADMIN.password);
  await page.getByLabel("Password again").fill(E2E_ADMIN.password);
  await page.getByRole("button", { name: "Create admin and sign in" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "not the admin token" })).toBeVisible();

  await page.getByLabel("Admin token").fill(E2E_ADMIN_TOKEN);
  await page.getByLabel("Password", { exact: true }).fill(E2E_ADMIN.password);
  await page.getByLabel("Password again").fill(E2E_ADMIN.password);
  await page.getByRole("button", { name: "Create admin and sign in" }).click();
  await expect(page.getByRole("heading", { name: "Overview" })).toBeVisible();
  await expect(page.getByTestId("operator-name")).toHaveText(E2E_ADMIN.username);

  // Session cookie: httpOnly and SameSite, never readable by page scripts.
  const cookie = (await page.context().cookies()).find((c) => c.name === "concord_session");
  expect(cookie?.httpOnly).toBe(true);
  expect(cookie?.sameSite).toBe("Lax");
  expect(await page.evaluate(() => document.cookie)).not.toContain("concord_session");
  await page.context().storageState({ path: ADMIN_STATE });

  // The setup page is gone once an operator exists.
  await page.goto("/setup");
  await expect(page).toHaveURL(/\/sign-in$|\/$/);

  await page.goto("/operators");
  await page.getByLabel("Username").fill(E2E_VIEWER.username);
  await page.getByLabel("Password").fill(E2E_VIEWER.password);
  await page.getByLabel("Role").selectOption("viewer");
  await page.getByRole("button", { name: "Add operator" }).click();
  await expect(page.getByRole("status")).toContainText(`Created ${E2E_VIEWER.username} (viewer)`);
  await expect(page.getByRole("row", { name: new RegExp(E2E_VIEWER.username) })).toContainText("viewer");

  const viewer = await browser.newContext();
  const viewerPage = await viewer.newPage();
  await viewerPage.goto("/sign-in");
  await viewerPage.getByLabel("Username").fill(E2E_VIEWER.username);
  await viewerPage.getByLabel("Password").fill(E2E_VIEWER.password);
  await viewerPage.getByRole("button", { name: "Sign in" }).click();
  await expect(viewerPage.getByTestId("operator-name")).toHaveText(E2E_VIEWER.username);
  await viewer.storageState({ path: VIEWER_STATE });
  await viewer.close();
});

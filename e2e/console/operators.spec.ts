import { expect, test } from "@playwright/test";
import { E2E_VIEWER, VIEWER_STATE } from "../support/env";
import { captureServerAction, cookieHeaderFrom, replayServerAction } from "../support/server-action";

test("an admin adds an operator; a viewer replaying the same server action is refused and nothing changes", async ({ page, browser }) => {
  await page.goto("/operators");
  const action = await captureServerAction(page, async () => {
    await page.getByLabel("Username").fill("olga");
    await page.getByLabel("Password").fill("olga-password-123");
    await page.getByLabel("Role").selectOption("admin");
    await page.getByRole("button", { name: "Add operator" }).click();
  });
  await expect(page.getByRole("status")).toContainText("Created olga (admin)");
  await page.screenshot({ path: "test-results/screenshots/operators.png", fullPage: true });

  // The same POST with the body changed to another username, sent with the viewer's session.
  const replay = await replayServerAction(page.request, { ...action, body: action.body.replaceAll("olga", "mallory") }, await cookieHeaderFrom(VIEWER_STATE));
  expect(replay.text).toContain("Your role (viewer) may not change operators");
  await page.reload();
  await expect(page.getByRole("cell", { name: "mallory" })).toHaveCount(0);

  // The viewer sees the list but no controls.
  const viewer = await browser.newContext({ storageState: VIEWER_STATE });
  const viewerPage = await viewer.newPage();
  await viewerPage.goto("/operators");
  await expect(viewerPage.getByRole("cell", { name: "olga", exact: true })).toBeVisible();
  await expect(viewerPage.getByRole("button", { name: "Add operator" })).toHaveCount(0);
  await expect(viewerPage.getByTestId("operator-name")).toHaveText(E2E_VIEWER.username);
  await viewer.close();
});

test("a viewer's session cannot change anything through the admin API either", async ({ playwright, baseURL }) => {
  const viewerApi = await playwright.request.newContext({ baseURL, storageState: VIEWER_STATE });
  const read = await viewerApi.get("/api/admin/policy");
  expect(read.status()).toBe(200);
  const write = await viewerApi.put("/api/admin/policy", { data: "version: 1\n", headers: { origin: baseURL ?? "" } });
  expect(write.status()).toBe(403);
  expect((await write.json()).error.message).toContain("viewer role");
  const key = await viewerApi.post("/api/admin/systems/crm/keys", { headers: { origin: baseURL ?? "" } });
  expect(key.status()).toBe(403);
  await viewerApi.dispose();
});

import { expect, test } from "@playwright/test";
import { E2E_ADMIN_TOKEN, VIEWER_STATE } from "../support/env";
import { captureServerAction, cookieHeaderFrom, replayServerAction } from "../support/server-action";
import { issueKey, pushOne } from "../support/sync-api";

test("browse, search and filter records; diff two versions; restore with confirmation; a viewer cannot restore", async ({
  page,
  request,
  browser,
}) => {
  const crm = await issueKey(request, "crm");
  const run = Date.now().toString(36);
  const id = `e2e-${run}-ann`;
  const odd = `e2e-${run}-odd/1 é`;
  await pushOne(request, crm, "customers", { id, baseVersion: null, data: { name: "Ann", phone: "555-0100", region: "north" } });
  await pushOne(request, crm, "customers", { id, baseVersion: 1, patch: { phone: "555-0101", address: "Main St 1" } });
  await pushOne(request, crm, "customers", { id, baseVersion: 2, patch: { region: "east", segment: "retail" } });
  await pushOne(request, crm, "customers", { id: `e2e-${run}-bob`, baseVersion: null, data: { name: "Bob", region: "north" } });
  await pushOne(request, crm, "customers", { id: odd, baseVersion: null, data: { name: "Odd", region: "east" } });

  // Browse and search: an id prefix, then field = value.
  await page.goto("/records");
  await page.getByLabel("Collection").selectOption("customers");
  await page.getByLabel("Id starts with").fill(`e2e-${run}`);
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page.getByTestId("record-row")).toHaveCount(3);
  await page.getByLabel("Field").fill("region");
  await page.getByLabel("Equals").fill("east");
  await page.getByRole("button", { name: "Search" }).click();
  await expect(page.getByTestId("record-row")).toHaveCount(2);
  await expect(page.getByTestId("record-row").first()).toContainText(id);
  await page.screenshot({ path: "test-results/screenshots/records.png", fullPage: true });

  // An id with a slash, a space and an accent opens its own page.
  await page.getByRole("link", { name: odd }).click();
  await expect(page.getByRole("heading", { name: odd })).toBeVisible();
  await expect(page.getByLabel("Current data")).toContainText('"name": "Odd"');

  // An id with a literal percent sign is not decoded twice.
  const pct = `e2e-${run}-pct%41`;
  await pushOne(request, crm, "customers", { id: pct, baseVersion: null, data: { name: "Pct", region: "north" } });
  await page.goto(`/records?collection=customers&prefix=${encodeURIComponent(pct)}`);
  await page.getByRole("link", { name: pct }).click();
  await expect(page.getByRole("heading", { name: pct })).toBeVisible();

  // A record's history, and the difference between versions 1 and 3.
  await page.goto(`/records?collection=customers&prefix=${encodeURIComponent(id)}`);
  await page.getByRole("link", { name: id }).click();
  await expect(page.getByRole("heading", { name: id })).toBeVisible();
  await expect(page.getByTestId("history-row")).toHaveCount(3);
  await expect(page.getByTestId("history-row").first()).toContainText("crm");
  await page.getByLabel("Version A").fill("1");
  await page.getByLabel("Version B").fill("3");
  await page.getByRole("button", { name: "Compare" }).click();
  await expect(page).toHaveURL(/a=1&b=3/);
  const diff = page.getByTestId("diff-row");
  await expect(diff).toHaveCount(4);
  await expect(diff.filter({ hasText: "phone" })).toContainText("changed");
  await expect(diff.filter({ hasText: "phone" })).toContainText('"555-0100"');
  await expect(diff.filter({ hasText: "address" })).toContainText("added");
  await expect(diff.filter({ hasText: "region" })).toContainText('"east"');
  await page.screenshot({ path: "test-results/screenshots/record-history.png", fullPage: true });

  // A viewer sees the history but no restore button; replaying the admin's restore as the viewer is refused.
  const viewer = await browser.newContext({ storageState: VIEWER_STATE });
  const viewerPage = await viewer.newPage();
  await viewerPage.goto(page.url());
  await expect(viewerPage.getByTestId("history-row")).toHaveCount(3);
  await expect(viewerPage.getByRole("button", { name: "Restore this version" })).toHaveCount(0);
  await viewer.close();

  // Restore version 1: the dialog asks first; Cancel changes nothing.
  const row1 = page.locator('[data-testid="history-row"][data-version="1"]');
  await row1.getByRole("button", { name: "Restore this version" }).click();
  const dialog = page.getByRole("dialog", { name: "Restore version 1" });
  await expect(dialog).toContainText("becomes the record's new version 4");
  await dialog.getByRole("button", { name: "Cancel" }).click();
  await expect(dialog).toBeHidden();
  await expect(page.getByTestId("history-row")).toHaveCount(3);

  await row1.getByRole("button", { name: "Restore this version" }).click();
  await page.screenshot({ path: "test-results/screenshots/record-restore-dialog.png" });
  const action = await captureServerAction(page, async () => {
    await dialog.getByRole("button", { name: "Restore version 1" }).click();
  });
  await expect(page.getByRole("status").filter({ hasText: "Version 1 of record" })).toContainText("restored as version 4");
  await expect(page.getByTestId("history-row")).toHaveCount(4);
  await expect(page.getByTestId("history-row").first()).toContainText("operator:alice");
  await expect(page.getByTestId("history-row").first()).toContainText("restore");
  await expect(page.getByLabel("Current data")).toContainText('"phone": "555-0100"');

  const replay = await replayServerAction(page.request, { ...action, body: action.body.replace('"version":1', '"version":2') }, await cookieHeaderFrom(VIEWER_STATE));
  expect(replay.text).toContain("Your role (viewer) may not change records");
  const current = await request.get(`/api/admin/records/customers/${encodeURIComponent(id)}`, {
    headers: { authorization: `Bearer ${E2E_ADMIN_TOKEN}` },
  });
  expect(await current.json()).toMatchObject({ version: 4, data: { phone: "555-0100", region: "north" } });
});

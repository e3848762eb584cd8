import { expect, test } from "@playwright/test";
import { VIEWER_STATE } from "../support/env";
import { captureServerAction, cookieHeaderFrom, replayServerAction } from "../support/server-action";
import { conflictLogId, issueKey, pushOne } from "../support/sync-api";

const order = { customer_id: "c1", items: ["A"], total: 40, status: "new", shipping_address: "Main St 1" };

test("two systems collide on an order; an admin finds the pending conflict, a stale decision is refused, the merge is saved", async ({
  page,
  request,
  browser,
}) => {
  // The example policy settles the warehouse's conflicts on orders with `manual`: they wait for an operator.
  const webshop = await issueKey(request, "webshop");
  const billing = await issueKey(request, "billing");
  const warehouse = await issueKey(request, "warehouse");
  const id = `e2e-order-${Date.now()}`;
  await pushOne(request, webshop, "orders", { id, baseVersion: null, data: order });
  await pushOne(request, billing, "orders", { id, baseVersion: 1, patch: { status: "paid", paid_at: "2026-11-25" } });
  await pushOne(request, billing, "orders", { id, baseVersion: 2, patch: { paid_at: "2026-11-26" } });
  const collided = await pushOne(request, warehouse, "orders", { id, baseVersion: 2, patch: { status: "packed", tracking: "TR-1" } });
  expect(collided).toMatchObject({ status: "pending", conflict: { strategy: "manual" } });
  const conflictId = await conflictLogId(request, "warehouse", collided);

  // The log: a bad filter is reported, not a crash; the good ones apply.
  await page.goto("/conflicts?status=open&strategy=manual");
  await expect(page.getByRole("alert").filter({ hasText: 'Status "open" was ignored' })).toBeVisible();
  await expect(page.getByTestId("pending-count")).toContainText("pending");

  await page.goto("/conflicts");
  await page.getByLabel("Status").selectOption("pending");
  await page.getByLabel("System").selectOption("warehouse");
  await page.getByLabel("Collection").selectOption("orders");
  await page.getByRole("button", { name: "Filter" }).click();
  await expect(page).toHaveURL(/status=pending/);
  const row = page.getByTestId("conflict-row").filter({ hasText: id });
  await expect(row).toContainText("warehouse → billing");
  await expect(row).toContainText("manual");
  await expect(row).toContainText("pending");
  await page.screenshot({ path: "test-results/screenshots/conflicts.png", fullPage: true });

  await row.getByRole("link", { name: `#${conflictId}` }).click();
  await expect(page.getByRole("heading", { name: `Conflict #${conflictId}` })).toBeVisible();
  // The warehouse quotes the number its push result gave: the page shows it beside the system.
  await expect(page.getByTestId("conflict-client")).toContainText(`warehouse · its conflict #${collided.conflict!.id}`);
  await expect(page.getByLabel("Base")).toContainText('"status": "paid"');
  await expect(page.getByLabel("Server")).toContainText('"paid_at": "2026-11-26"');
  await expect(page.getByLabel("Client")).toContainText('"tracking": "TR-1"');
  // Field-level highlights: the client changed status and tracking, the server paid_at.
  await expect(page.getByLabel("Client").locator('[data-field="status"]')).toHaveAttribute("data-mark", "changed");
  await expect(page.getByLabel("Server").locator('[data-field="paid_at"]')).toHaveAttribute("data-mark", "changed");
  await expect(page.getByTestId("field-diff").filter({ hasText: "tracking" })).toContainText("client");
  await page.screenshot({ path: "test-results/screenshots/conflict-detail.png", fullPage: true });

  // A viewer sees the conflict but no controls, and replaying the admin's resolve action is refused.
  const viewer = await browser.newContext({ storageState: VIEWER_STATE });
  const viewerPage = await viewer.newPage();
  await viewerPage.goto(`/conflicts/${conflictId}`);
  await expect(viewerPage.getByRole("heading", { name: `Conflict #${conflictId}` })).toBeVisible();
  await expect(viewerPage.getByRole("button", { name: "Keep server" })).toHaveCount(0);
  await viewer.close();

  // Meanwhile billing changes the order again: a decision made on the page's version is refused.
  await pushOne(request, billing, "orders", { id, baseVersion: 3, patch: { paid_at: "2026-11-27" } });
  const action = await captureServerAction(page, async () => {
    await page.getByRole("button", { name: "Keep server" }).click();
  });
  const refusal = page.getByRole("alert").filter({ hasText: "has moved on: it is at version 4" });
  await expect(refusal).toContainText("Nothing was changed");

  const replay = await replayServerAction(page.request, action, await cookieHeaderFrom(VIEWER_STATE));
  expect(replay.text).toContain("Your role (viewer) may not change conflicts");

  // Looking again: the page now decides on version 4. An invalid merge cannot be saved.
  await page.reload();
  await expect(page.getByRole("status").filter({ hasText: "moved on since this conflict" })).toBeVisible();
  await page.getByRole("button", { name: "Edit merge" }).click();
  const editor = page.getByLabel("Merged record (JSON)");
  await editor.fill("{ not json");
  await expect(page.getByTestId("json-error")).toContainText("Not valid JSON");
  await expect(page.getByRole("button", { name: "Save merge" })).toBeDisabled();
  const merged = { ...order, status: "packed", tracking: "TR-1", paid_at: "2026-11-27" };
  await editor.fill(JSON.stringify(merged, null, 2));
  await page.getByRole("button", { name: "Save merge" }).click();
  const resolution = page.getByTestId("resolution");
  await expect(resolution).toContainText("Resolved by alice");
  await expect(resolution).toContainText("a merge edited by the operator; the record is at version 5");
  await expect(page.getByTestId("conflict-outcome")).toHaveText("resolved with custom");
  await expect(page.getByTestId("resolved-by")).toHaveText("alice");
  await expect(page.getByRole("button", { name: "Keep server" })).toHaveCount(0);
  await page.screenshot({ path: "test-results/screenshots/conflict-resolved.png", fullPage: true });

  // The log shows the result and the operator; the record's history the new version.
  await page.goto("/conflicts?status=resolved&collection=orders");
  const resolved = page.getByTestId("conflict-row").filter({ hasText: id });
  await expect(resolved).toContainText("resolved: custom");
  await expect(resolved).toContainText("alice");
  const history = await request.get(`/api/admin/records/orders/${id}/history`, {
    headers: { authorization: "Bearer e2e-admin-token-0123456789" },
  });
  expect((await history.json()).versions[0]).toMatchObject({ version: 5, origin: "resolution", writtenBy: "operator:alice" });
});

test("bad addresses and filters get a sentence, not an error page", async ({ page }) => {
  await page.goto("/conflicts/abc");
  await expect(page.getByRole("alert").filter({ hasText: '"abc" is not a conflict id' })).toBeVisible();
  await page.goto("/conflicts/999999");
  await expect(page.getByRole("alert").filter({ hasText: "There is no conflict 999999" })).toBeVisible();
  await page.goto("/conflicts?from=2026-02-30&to=soon&before=-1");
  const alert = page.getByRole("alert").filter({ hasText: "was ignored" });
  await expect(alert).toContainText('From "2026-02-30" was ignored: that date does not exist');
  await expect(alert).toContainText('To "soon" was ignored');
  await page.goto("/records?collection=Not%20A%20Name&field=status");
  await expect(page.getByRole("alert").filter({ hasText: 'Collection "Not A Name" was ignored' })).toContainText("give a value too");
  await page.goto("/records/customers/no-such-record");
  await expect(page.getByRole("alert").filter({ hasText: 'There is no record "no-such-record"' })).toBeVisible();
});

test.describe("signed out", () => {
  test.use({ storageState: { cookies: [], origins: [] } });

  test("the conflict and record pages send a stranger to sign-in", async ({ page }) => {
    for (const path of ["/conflicts", "/conflicts/1", "/records", "/records/customers/c1"]) {
      await page.goto(path);
      await expect(page, path).toHaveURL(/\/sign-in/);
    }
  });
});

import { readFileSync } from "node:fs";
import { expect, test, type APIRequestContext, type Page } from "@playwright/test";
import { E2E_ADMIN, E2E_ADMIN_TOKEN, VIEWER_STATE } from "../support/env";
import { captureServerAction, cookieHeaderFrom, replayServerAction } from "../support/server-action";

const admin = { authorization: `Bearer ${E2E_ADMIN_TOKEN}` };
const example = readFileSync("policies/example.yaml", "utf8");

async function activePolicy(request: APIRequestContext): Promise<{ version: number; yaml: string }> {
  const res = await request.get("/api/admin/policy", { headers: admin });
  expect(res.status()).toBe(200);
  return (await res.json()) as { version: number; yaml: string };
}

/** Tests in other files may have changed the policy: start from the example, whatever its version. */
async function ensureExampleActive(request: APIRequestContext): Promise<number> {
  const active = await activePolicy(request);
  if (active.yaml === example) return active.version;
  const res = await request.put("/api/admin/policy?comment=e2e%20reset", { headers: admin, data: example });
  expect(res.status(), await res.text()).toBe(200);
  return ((await res.json()) as { version: number }).version;
}

/** Replaces the whole text of the CodeMirror editor, as a paste would. */
async function setEditorText(page: Page, text: string): Promise<void> {
  const editor = page.getByRole("textbox", { name: "Policy YAML" });
  await editor.click();
  await page.keyboard.press("ControlOrMeta+a");
  await page.keyboard.insertText(text);
}

test.describe.configure({ mode: "serial" });

test("write a policy with an error, see it at its line, fix it, see the diff, activate, see it in versions, roll back; a viewer cannot", async ({ page, browser }) => {
  const base = await ensureExampleActive(page.request);
  await page.goto("/policies");
  await expect(page.getByRole("heading", { name: "Policies" })).toBeVisible();
  await expect(page.getByTestId("active-version")).toHaveText(`version ${base}`);
  await expect(page.getByTestId("validation-status")).toContainText("Valid");
  await expect(page.getByRole("button", { name: "Activate draft" })).toBeDisabled();

  // An unknown system in who: the error shows inline at its line and in the problems list.
  const broken = example.replace("  - who: crm\n", "  - who: crmm\n");
  const brokenLine = broken.split("\n").findIndex((l) => l === "  - who: crmm") + 1;
  await setEditorText(page, broken);
  await expect(page.getByTestId("validation-status")).toContainText("1 error");
  const problem = page.getByRole("list", { name: "Problems" }).getByRole("button", { name: /unknown system "crmm"/ });
  await expect(problem).toContainText(`line ${brokenLine}, col 10`);
  await expect(problem).toContainText('did you mean "crm"?');
  const inline = page.locator(".cm-line", { hasText: "- who: crmm" }).locator(".cm-lintRange-error");
  await expect(inline).toBeVisible();
  await expect(page.locator(".cm-lint-marker-error")).toHaveCount(1);
  await expect(page.getByRole("button", { name: "Activate draft" })).toBeDisabled();
  // Clicking the problem puts the cursor on its line.
  await problem.click();
  await expect(page.locator(".cm-activeLine")).toContainText("- who: crmm");
  await page.screenshot({ path: "test-results/screenshots/policies.png", fullPage: true });

  // Fixed, with a real change: the warehouse syncs every 5 minutes.
  const fixed = example.replace("warehouse: {interval: 15m, realtime: false}", "warehouse: {interval: 5m, realtime: false}");
  await setEditorText(page, fixed);
  await expect(page.getByTestId("validation-status")).toContainText("Valid");
  await expect(page.getByRole("list", { name: "Problems" })).toHaveCount(0);
  await expect(page.locator(".cm-lintRange-error")).toHaveCount(0);
  await expect(page.getByTestId("diff-summary")).toContainText("+1 −1");
  await expect(page.locator('tr[data-diff="removed"]')).toContainText("interval: 15m");
  await expect(page.locator('tr[data-diff="added"]')).toContainText("interval: 5m");

  // Activate needs a comment.
  const activate = page.getByRole("button", { name: "Activate draft" });
  await expect(activate).toBeDisabled();
  await page.getByLabel("Comment").fill("warehouse syncs every 5 minutes");
  const action = await captureServerAction(page, async () => {
    await activate.click();
  });
  await expect(page.getByRole("status").filter({ hasText: `Activated version ${base + 1}` })).toBeVisible();
  await expect(page.getByTestId("active-version")).toHaveText(`version ${base + 1}`);
  await expect(page.getByText(`No changes: the draft is the same as version ${base + 1}.`)).toBeVisible();
  expect((await activePolicy(page.request)).yaml).toBe(fixed);

  // A viewer replaying the activation (against the current version, with another text) is refused; nothing changes.
  expect(action.body).toContain(`"baseVersion":${base}`);
  const forged = { ...action, body: action.body.replace(`"baseVersion":${base}`, `"baseVersion":${base + 1}`).replace("interval: 5m", "interval: 1m") };
  const replay = await replayServerAction(page.request, forged, await cookieHeaderFrom(VIEWER_STATE));
  expect(replay.text).toContain("Your role (viewer) may not change policy");
  const after = await activePolicy(page.request);
  expect([after.version, after.yaml]).toEqual([base + 1, fixed]);

  // The versions list.
  await page.getByRole("link", { name: "Versions" }).click();
  await expect(page.getByRole("heading", { name: "Policy versions" })).toBeVisible();
  const row = page.getByRole("row", { name: new RegExp(`^${base + 1}\\b`) });
  await expect(row).toContainText(E2E_ADMIN.username);
  await expect(row).toContainText("console");
  await expect(row).toContainText("warehouse syncs every 5 minutes");
  await expect(row).toContainText("active");
  await page.screenshot({ path: "test-results/screenshots/policy-versions.png", fullPage: true });

  // The new version shows its diff; roll back to the one before, with a confirm step and a comment.
  await row.getByRole("link", { name: String(base + 1) }).click();
  await expect(page.getByRole("heading", { name: `Policy version ${base + 1}` })).toBeVisible();
  await expect(page.locator('tr[data-diff="added"]')).toContainText("interval: 5m");
  await expect(page.getByRole("button", { name: "Roll back to this version" })).toHaveCount(0); // it is the active one
  await page.goto(`/policies/versions/${base}`);
  await page.getByRole("button", { name: "Roll back to this version" }).click();
  const confirm = page.getByRole("button", { name: `Confirm rollback to version ${base}` });
  await expect(confirm).toBeDisabled();
  await page.getByLabel("Rollback comment").fill("5 minutes is too often");
  await page.screenshot({ path: "test-results/screenshots/policy-version.png", fullPage: true });
  await confirm.click();
  await expect(page.getByRole("status")).toContainText(`version ${base + 2} is active, with the text of version ${base}`);
  const rolled = await activePolicy(page.request);
  expect([rolled.version, rolled.yaml]).toEqual([base + 2, example]);
  await page.goto("/policies/versions");
  const rollbackRow = page.getByRole("row", { name: new RegExp(`^${base + 2}\\b`) });
  await expect(rollbackRow).toContainText("rollback");
  await expect(rollbackRow).toContainText(`to v${base}`);
  await expect(rollbackRow).toContainText("5 minutes is too often");

  // The viewer sees the policy, read-only, with no activate or rollback controls.
  const viewer = await browser.newContext({ storageState: VIEWER_STATE });
  const viewerPage = await viewer.newPage();
  await viewerPage.goto("/policies");
  await expect(viewerPage.getByText(`Active policy (version ${base + 2})`)).toBeVisible();
  await expect(viewerPage.getByRole("textbox", { name: "Policy YAML" })).toHaveAttribute("contenteditable", "false");
  await expect(viewerPage.getByRole("button", { name: "Activate draft" })).toHaveCount(0);
  await expect(viewerPage.getByLabel("Comment")).toHaveCount(0);
  await viewerPage.goto(`/policies/versions/${base}`);
  await expect(viewerPage.getByRole("heading", { name: `Policy version ${base}` })).toBeVisible();
  await expect(viewerPage.getByRole("button", { name: "Roll back to this version" })).toHaveCount(0);
  await viewer.close();
});

test("the simulator shows decisions, fields and the conflict strategy; the impact of a draft is counted on request; a stale draft is refused", async ({ page }) => {
  await ensureExampleActive(page.request);
  // A record of the hub: a new order placed by the web shop (orders, which no other spec touches).
  const key = await page.request.post("/api/admin/systems/webshop/keys", { headers: admin });
  expect(key.status()).toBe(201);
  const webshop = { authorization: `Bearer ${((await key.json()) as { key: string }).key}` };
  const orderId = `sim-order-${Date.now()}`;
  const pushed = await page.request.post("/api/v1/collections/orders/push", {
    headers: webshop,
    data: { changes: [{ changeId: orderId, id: orderId, baseVersion: null, data: { customer_id: "c1", status: "new", total: 40, items: [] } }] },
  });
  expect(pushed.status(), await pushed.text()).toBe(200);
  expect(((await pushed.json()) as { results: { status: string }[] }).results[0]?.status).toBe("applied");

  await page.goto("/policies");
  const sim = page.getByRole("form", { name: "Simulator" });
  await sim.getByLabel("System").selectOption("billing");
  await sim.getByLabel("Collection").selectOption("orders");
  await sim.getByLabel("Record id").fill(orderId);
  await sim.getByRole("button", { name: "Simulate" }).click();
  const result = page.getByTestId("simulation-result");
  await expect(result).toContainText("billing on orders, under active version");
  await expect(result.locator('tr[data-action="read"]')).toContainText("allowed");
  await expect(result.locator('tr[data-action="write"]')).toContainText("allowed");
  await expect(result.locator('tr[data-action="delete"]')).toContainText("denied");
  await expect(page.getByTestId("visible-fields")).toHaveText("customer_id, paid_at, status, total");
  await expect(page.getByTestId("writable-fields")).toHaveText("paid_at, status");
  await expect(page.getByTestId("conflict-strategy")).toContainText("server-wins");
  await expect(result.getByRole("row", { name: /^items/ })).toContainText("no");
  await sim.getByLabel("Record id").fill("no-such-order");
  await sim.getByRole("button", { name: "Simulate" }).click();
  await expect(page.getByRole("alert").filter({ hasText: 'There is no record "no-such-order" in collection "orders"' })).toBeVisible();

  // Pasted JSON, another system and collection: the CRM on a northern customer.
  await sim.getByLabel("System").selectOption("crm");
  await sim.getByLabel("Collection").selectOption("customers");
  await sim.getByLabel("Pasted JSON").check();
  await sim.getByLabel("Record JSON").fill('{"name": "Ann", "region": "north", "credit_limit": 500}');
  await sim.getByRole("button", { name: "Simulate" }).click();
  await expect(result).toContainText("crm on customers");
  await expect(page.getByTestId("visible-fields")).toHaveText("all fields");
  await expect(page.getByTestId("writable-fields")).toHaveText("address, email, name, phone, region, segment");
  await expect(page.getByTestId("conflict-strategy")).toContainText("field-merge, falling back to manual");
  await sim.getByLabel("Record JSON").fill("[1, 2]");
  await sim.getByRole("button", { name: "Simulate" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "must be a JSON object" })).toBeVisible();

  // A draft in which the warehouse also reads new orders: simulate it, then count its impact.
  const draft = example.replace(`read: {where: "status in ['paid', 'packed', 'shipped'] and total > 0"`, `read: {where: "status in ['new', 'paid', 'packed', 'shipped'] and total > 0"`);
  expect(draft).not.toBe(example);
  await setEditorText(page, draft);
  await expect(page.getByTestId("validation-status")).toContainText("Valid");
  await sim.getByLabel("Policy").selectOption("draft");
  await sim.getByLabel("System").selectOption("warehouse");
  await sim.getByLabel("Collection").selectOption("orders");
  await sim.getByLabel("Record JSON").fill('{"status": "new", "total": 40, "items": []}');
  await sim.getByRole("button", { name: "Simulate" }).click();
  await expect(result).toContainText("warehouse on orders, under the draft");
  await expect(result.locator('tr[data-action="read"]')).toContainText("allowed");
  await expect(page.getByTestId("visible-fields")).toHaveText("items, shipping_address, status, tracking");
  await page.getByRole("button", { name: "Compute access impact" }).click();
  const impact = page.getByTestId("access-impact");
  await expect(impact.getByRole("row", { name: /warehouse orders/ })).toContainText(/\+\d/);
  await page.screenshot({ path: "test-results/screenshots/policy-simulator.png", fullPage: true });

  // Someone else activates meanwhile: this draft's activation is refused and changes nothing.
  const other = await page.request.put("/api/admin/policy?comment=meanwhile", { headers: admin, data: `${example}# meanwhile\n` });
  expect(other.status()).toBe(200);
  const meanwhile = ((await other.json()) as { version: number }).version;
  await page.getByLabel("Comment").fill("warehouse reads new orders");
  await page.getByRole("button", { name: "Activate draft" }).click();
  await expect(page.getByRole("alert").filter({ hasText: `but version ${meanwhile} is active now. Nothing was changed` })).toBeVisible();
  expect((await activePolicy(page.request)).version).toBe(meanwhile);
});

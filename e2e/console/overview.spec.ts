import { expect, test } from "@playwright/test";
import { E2E_ADMIN_TOKEN } from "../support/env";

const admin = { authorization: `Bearer ${E2E_ADMIN_TOKEN}` };

test("after pushes and pulls through /api/v1, the overview shows the system's last sync, lag and charts", async ({ page, request }) => {
  const issued = await request.post("/api/admin/systems/webshop/keys", { headers: admin });
  expect(issued.status()).toBe(201);
  const key = ((await issued.json()) as { key: string }).key;
  const auth = { authorization: `Bearer ${key}` };

  for (let i = 0; i < 3; i++) {
    const pushed = await request.post("/api/v1/collections/orders/push", {
      headers: auth,
      data: { changes: [{ changeId: `ov-${Date.now()}-${i}`, id: `ov-order-${i}`, baseVersion: null, data: { status: "new", total: 10 + i, customer_id: "c1" } }] },
    });
    expect(pushed.status()).toBe(200);
  }
  const pulled = await request.get("/api/v1/collections/orders/changes", { headers: auth });
  expect(pulled.status()).toBe(200);
  // An error (unknown collection), then a successful call: the error state is cleared.
  expect((await request.get("/api/v1/collections/nope/changes", { headers: auth })).status()).toBe(404);
  expect((await request.get("/api/v1/config", { headers: auth })).status()).toBe(200);

  await page.goto("/");
  await expect(page.getByRole("heading", { name: "Overview" })).toBeVisible();
  const row = page.getByTestId("system-row-webshop");
  await expect(row.getByTestId("last-sync")).toHaveText(/s ago|min ago/);
  await expect(row.getByTestId("system-state")).toHaveText("ok");
  await expect(row).toContainText("orders");
  // Every system's state agrees with its last sync (other specs may have synced
  // any of them before this one runs): "never" means "never synced".
  for (const system of ["crm", "billing", "warehouse", "webshop"]) {
    const systemRow = page.getByTestId(`system-row-${system}`);
    const lastSync = (await systemRow.getByTestId("last-sync").textContent())?.trim();
    const state = (await systemRow.getByTestId("system-state").textContent())?.trim();
    if (lastSync === "never") expect(state, system).toBe("never synced");
    else expect(["ok", "error"], system).toContain(state);
  }

  // Four charts; the sync charts count the three pushes and the pulls (routes and page share one set of counters).
  const charts = page.getByTestId("activity-chart");
  await expect(charts).toHaveCount(4);
  const dayTotal = Number(await charts.first().getAttribute("data-total"));
  expect(dayTotal).toBeGreaterThanOrEqual(4);
  await expect(page.locator(".recharts-bar-rectangle").first()).toBeVisible();

  const pending = page.getByTestId("pending-conflicts");
  await expect(pending).toHaveAttribute("href", "/conflicts?status=pending");
  await page.screenshot({ path: "test-results/screenshots/overview.png", fullPage: true });
});

test("the overview says which area the role may not open", async ({ page }) => {
  await page.goto("/?denied=operators");
  await expect(page.getByRole("status").filter({ hasText: "may not open operators" })).toBeVisible();
  // Anything that is not an area is ignored rather than echoed.
  await page.goto("/?denied=%3Cscript%3E");
  await expect(page.getByText("may not open")).toHaveCount(0);
});

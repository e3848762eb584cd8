import { expect, test, type Page } from "@playwright/test";
import { ADMIN_STATE, E2E_ADMIN, E2E_ADMIN_TOKEN } from "../support/env";
import { captureServerAction, cookieHeaderFrom, replayServerAction } from "../support/server-action";
import { issueKey, pushOne } from "../support/sync-api";

const admin = { authorization: `Bearer ${E2E_ADMIN_TOKEN}` };

/** Collects CSP violations (the DOM event and Chromium's console report) from every frame of the page. */
async function watchCsp(page: Page): Promise<string[]> {
  const violations: string[] = [];
  await page.exposeFunction("__reportCspViolation", (text: string) => violations.push(text));
  await page.addInitScript(() => {
    document.addEventListener("securitypolicyviolation", (e) => {
      const report = (window as unknown as { __reportCspViolation: (t: string) => void }).__reportCspViolation;
      void report(`${e.violatedDirective} blocked ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  page.on("console", (message) => {
    if (/Content Security Policy|Content-Security-Policy/i.test(message.text())) violations.push(message.text());
  });
  return violations;
}

function expectSecurityHeaders(headers: Record<string, string>, what: string): void {
  expect(headers["x-content-type-options"], what).toBe("nosniff");
  expect(headers["referrer-policy"], what).toBe("same-origin");
  expect(headers["content-security-policy"], what).toContain("frame-ancestors 'none'");
  expect(headers["content-security-policy"], what).not.toContain("unsafe-eval");
}

async function keyCount(page: Page, system: string): Promise<number> {
  const res = await page.request.get(`/api/admin/systems/${system}/keys`, { headers: admin });
  return ((await res.json()) as { keys: unknown[] }).keys.length;
}

test.describe("security headers and the Content-Security-Policy", () => {
  test("every console page has them and runs without a single CSP violation; the editor and the charts work under it", async ({ page, request }) => {
    // Something on every page: a pending conflict and a record.
    const webshop = await issueKey(request, "webshop");
    const billing = await issueKey(request, "billing");
    const warehouse = await issueKey(request, "warehouse");
    const id = `csp-order-${Date.now()}`;
    const order = { customer_id: "c1", items: ["A"], total: 40, status: "new", shipping_address: "Main St 1" };
    await pushOne(request, webshop, "orders", { id, baseVersion: null, data: order });
    await pushOne(request, billing, "orders", { id, baseVersion: 1, patch: { status: "paid" } });
    const collided = await pushOne(request, warehouse, "orders", { id, baseVersion: 1, patch: { status: "packed" } });
    const conflictId = collided.conflict?.id ?? 1;

    const violations = await watchCsp(page);
    // Every page of app/(console) and app/(auth).
    const pages = [
      "/",
      "/systems",
      "/systems/warehouse",
      "/policies",
      "/policies/versions",
      "/policies/versions/1",
      "/conflicts",
      `/conflicts/${conflictId}`,
      "/records",
      "/records?collection=orders",
      `/records/orders/${id}`,
      "/audit",
      "/operators",
    ];
    for (const path of pages) {
      const response = await page.goto(path);
      expect(response?.status(), path).toBe(200);
      expectSecurityHeaders(await response!.allHeaders(), path);
      await expect(page.locator("main h1").first(), path).toBeVisible();
      expect(violations, path).toEqual([]);
    }

    // The charts drew under the policy.
    await page.goto("/");
    const chart = page.getByTestId("activity-chart").first().getByRole("application");
    await expect(chart).toBeVisible();
    // Sized by its container (style attributes), not collapsed to nothing.
    expect(Number(await chart.getAttribute("width"))).toBeGreaterThan(100);

    // The policy editor: typing is checked as you type, problems show up, nothing is blocked.
    await page.goto("/policies");
    const editor = page.getByRole("textbox", { name: "Policy YAML" });
    await expect(editor).toBeVisible();
    await expect(page.getByTestId("validation-status")).toContainText("Valid");
    await editor.click();
    await page.keyboard.press("ControlOrMeta+End");
    await page.keyboard.type("\nbogus: 1\n");
    await expect(page.getByTestId("validation-status")).toContainText("error");
    const problem = page.getByText('unknown key "bogus"');
    await expect(problem).toBeVisible();
    // Picking the problem scrolls the editor to it, where the lint marker shows.
    await problem.click();
    await expect(page.locator(".cm-lint-marker-error")).toHaveCount(1);
    expect(violations).toEqual([]);

    // The nonce is fresh for every page view.
    const first = (await (await page.request.get("/audit")).headers())["content-security-policy"];
    const second = (await (await page.request.get("/audit")).headers())["content-security-policy"];
    expect(first).toMatch(/'nonce-[A-Za-z0-9+/=]{20,}'/);
    expect(first).not.toBe(second);
  });

  test("the sign-in and setup pages have them too, with no violation", async ({ browser }) => {
    const context = await browser.newContext({ storageState: { cookies: [], origins: [] } });
    const page = await context.newPage();
    const violations = await watchCsp(page);
    for (const path of ["/sign-in", "/setup"]) {
      const response = await page.goto(path);
      expectSecurityHeaders(await response!.allHeaders(), path);
      await expect(page.getByRole("button", { name: "Sign in" })).toBeVisible();
    }
    expect(violations).toEqual([]);
    await context.close();
  });

  test("API answers, errors included, carry them with a deny-all policy", async ({ playwright }) => {
    const request = await playwright.request.newContext({ storageState: { cookies: [], origins: [] } });
    for (const [path, status] of [
      ["/api/health", 200],
      ["/api/admin/policy", 401],
      ["/api/v1/config", 401],
    ] as const) {
      const res = await request.get(path);
      expect(res.status(), path).toBe(status);
      const headers = res.headers();
      expectSecurityHeaders(headers, path);
      expect(headers["content-security-policy"], path).toContain("default-src 'none'");
    }
    await request.dispose();
  });
});

test.describe("server actions replayed from elsewhere", () => {
  test("are refused with a foreign Origin or none, and change nothing; the console's own Origin works", async ({ page }) => {
    await page.goto("/systems/billing");
    const action = await captureServerAction(page, () => page.getByRole("button", { name: "Issue a new key" }).click());
    await expect(page.getByTestId("new-key-value")).toHaveText(/^cnc_/);
    expect(action.headers.origin).toBe(new URL(page.url()).origin);
    const cookie = await cookieHeaderFrom(ADMIN_STATE);
    const before = await keyCount(page, "billing");

    for (const [label, origin] of [
      ["a foreign origin", "https://evil.example"],
      ["the console's host with another port", new URL(page.url()).origin.replace(/:\d+$/, ":1")],
      ["no origin", null],
    ] as const) {
      const headers = { ...action.headers };
      if (origin === null) delete headers.origin;
      else headers.origin = origin;
      const replay = await replayServerAction(page.request, { ...action, headers }, cookie);
      expect(replay.status, label).toBe(403);
      expect(replay.text, label).toContain("This change was refused");
      expect(replay.text, label).not.toMatch(/cnc_[0-9a-f]{12}_/);
    }
    expect(await keyCount(page, "billing")).toBe(before);

    // The same request with the console's Origin goes through: the refusals were about the Origin alone.
    const same = await replayServerAction(page.request, action, cookie);
    expect(same.status).toBe(200);
    expect(same.text).toMatch(/cnc_[0-9a-f]{12}_/);
    expect(await keyCount(page, "billing")).toBe(before + 1);
  });
});

test.describe("after sign-in", () => {
  test.use({ storageState: { cookies: [], origins: [] } });

  test("a hostile next never leaves the console", async ({ page, baseURL }) => {
    // Made-up addresses: without CONCORD_TRUST_PROXY neither may reach the throttle or the audit log.
    await page.setExtraHTTPHeaders({ "x-forwarded-for": "203.0.113.66", "x-concord-peer-address": "203.0.113.77" });
    await page.goto(`/sign-in?next=${encodeURIComponent("/%09/evil.example")}`);
    await expect(page.locator('input[name="next"]')).toHaveCount(0);
    // The server action checks too: a hostile value slipped into the form goes nowhere either.
    await page.locator("form").evaluate((form) => {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = "next";
      input.value = "/\\evil.example";
      form.append(input);
    });
    await page.getByLabel("Username").fill(E2E_ADMIN.username);
    await page.getByLabel("Password").fill(E2E_ADMIN.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("heading", { name: "Overview" })).toBeVisible();
    expect(page.url()).toBe(`${baseURL}/`);

    // The audit log names the connection's address, stamped by the server, not what the client claimed.
    await page.goto(`/audit?action=sign-in&actor=${E2E_ADMIN.username}`);
    await expect(page.locator("tbody tr").first()).toContainText("address: 127.0.0.1");
  });

  test("the page that was asked for is where sign-in leads", async ({ page, baseURL }) => {
    await page.goto("/conflicts?status=pending");
    await expect(page).toHaveURL(/\/sign-in\?next=%2Fconflicts%3Fstatus%3Dpending$/);
    await page.getByLabel("Username").fill(E2E_ADMIN.username);
    await page.getByLabel("Password").fill(E2E_ADMIN.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("heading", { name: "Conflicts" })).toBeVisible();
    expect(page.url()).toBe(`${baseURL}/conflicts?status=pending`);
  });
});

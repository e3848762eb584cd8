import { createHash, randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { expect, test } from "@playwright/test";
import { decodeBundle, FORMAT, sealBundle } from "../../lib/sync/bundle-format";
import { E2E_ADMIN_TOKEN, VIEWER_STATE } from "../support/env";
import { captureServerAction, cookieHeaderFrom, replayServerAction } from "../support/server-action";

const admin = { authorization: `Bearer ${E2E_ADMIN_TOKEN}` };
const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

test("an admin issues a key, sees it once, copies it, uses it and revokes it; a viewer can do neither", async ({ page, context, request, browser }) => {
  await context.grantPermissions(["clipboard-read", "clipboard-write"]);
  await page.goto("/systems");
  await expect(page.getByRole("heading", { name: "Systems" })).toBeVisible();
  await page.screenshot({ path: "test-results/screenshots/systems.png", fullPage: true });
  await page.getByRole("link", { name: "warehouse", exact: true }).click();
  await expect(page.getByRole("heading", { name: "warehouse", exact: true })).toBeVisible();

  const keysBefore = ((await (await request.get("/api/admin/systems/warehouse/keys", { headers: admin })).json()) as { keys: unknown[] }).keys.length;
  const action = await captureServerAction(page, () => page.getByRole("button", { name: "Issue a new key" }).click());
  const shown = page.getByTestId("new-key-value");
  await expect(shown).toHaveText(/^cnc_[0-9a-f]{12}_/);
  const key = (await shown.textContent()) ?? "";
  const prefix = key.split("_")[1] ?? "";
  await page.getByRole("button", { name: "Copy key" }).click();
  await expect(page.getByRole("button", { name: "Copied" })).toBeVisible();
  expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(key);

  // The key works against the sync API.
  const config = await request.get("/api/v1/config", { headers: { authorization: `Bearer ${key}` } });
  expect(config.status()).toBe(200);
  expect(((await config.json()) as { system: string }).system).toBe("warehouse");

  // Shown once: after a reload only the prefix is left.
  await page.reload();
  await expect(page.getByTestId("new-key-value")).toHaveCount(0);
  await expect(page.getByTestId(`key-${prefix}`)).toContainText("active");
  expect(await page.content()).not.toContain(key);

  // A viewer replaying the issue action is refused, and no key is created.
  const replay = await replayServerAction(page.request, action, await cookieHeaderFrom(VIEWER_STATE));
  expect(replay.text).toContain("Your role (viewer) may not change keys");
  expect(replay.text).not.toMatch(/cnc_[0-9a-f]{12}_/);
  const keysAfter = ((await (await request.get("/api/admin/systems/warehouse/keys", { headers: admin })).json()) as { keys: unknown[] }).keys.length;
  expect(keysAfter).toBe(keysBefore + 1);

  // The viewer sees the keys but no issue or revoke buttons.
  const viewer = await browser.newContext({ storageState: VIEWER_STATE });
  const viewerPage = await viewer.newPage();
  await viewerPage.goto("/systems/warehouse");
  await expect(viewerPage.getByTestId(`key-${prefix}`)).toBeVisible();
  await expect(viewerPage.getByRole("button", { name: "Issue a new key" })).toHaveCount(0);
  await expect(viewerPage.getByRole("button", { name: "Revoke" })).toHaveCount(0);
  await expect(viewerPage.getByRole("button", { name: "Apply bundle" })).toHaveCount(0);
  await viewer.close();

  // Revoke, after a confirmation: the key stops working at once.
  page.once("dialog", (dialog) => void dialog.accept());
  await page.getByTestId(`key-${prefix}`).getByRole("button", { name: "Revoke" }).click();
  await expect(page.getByTestId(`key-${prefix}`)).toContainText("revoked");
  const after = await request.get("/api/v1/config", { headers: { authorization: `Bearer ${key}` } });
  expect(after.status()).toBe(401);
});

test("an admin uploads an offline site's bundle, sees a summary and downloads the response bundle", async ({ page }) => {
  const bundleId = randomUUID();
  const bundle = await sealBundle(
    {
      format: FORMAT,
      bundleId,
      system: "webshop",
      createdAt: new Date().toISOString(),
      policyVersion: 1,
      checkpoints: { orders: null },
      changes: {
        orders: [
          { changeId: `bundle-${bundleId}-1`, id: `offline-${bundleId.slice(0, 8)}`, baseVersion: null, data: { status: "new", total: 42, customer_id: "c9" } },
        ],
      },
    },
    sha256,
  );

  await page.goto("/systems/webshop");
  await page.getByLabel("Bundle file").setInputFiles({
    name: "webshop.bundle.json",
    mimeType: "application/json",
    buffer: Buffer.from(JSON.stringify(bundle)),
  });
  await page.getByRole("button", { name: "Apply bundle" }).click();
  const summary = page.getByTestId("bundle-summary");
  await expect(summary).toContainText(`Applied bundle ${bundleId}: 1 change, 0 conflicts`);
  await expect(summary).toContainText("orders: 1 applied");

  const downloading = page.waitForEvent("download");
  await summary.getByRole("link", { name: "Download response bundle" }).click();
  const download = await downloading;
  const file = await download.path();
  const decoded = await decodeBundle(await readFile(file, "utf8"), "response", sha256);
  expect(decoded.ok).toBe(true);
  if (decoded.ok) {
    expect(decoded.bundle.bundleId).toBe(bundleId);
    expect(decoded.bundle.results.orders?.[0]?.status).toBe("applied");
  }
  await expect(page.getByRole("cell", { name: `${bundleId.slice(0, 8)}…` })).toBeVisible();
  await page.screenshot({ path: "test-results/screenshots/system-detail.png", fullPage: true });

  // The same file again is refused as a replay, with the hub's message.
  await page.getByRole("button", { name: "Apply bundle" }).click();
  await expect(page.getByRole("alert").filter({ hasText: "already applied" })).toBeVisible();

  // The bundle's pull brought the site up to date: nothing of orders is left behind.
  await page.reload();
  await expect(page.getByTestId("system-lag")).toContainText("orders0");
});

test("the upload route reads bodies past the server-action limit and refuses more than 64 MiB", async ({ page, baseURL }) => {
  const url = "/api/console/systems/webshop/bundles";
  const headers = { origin: baseURL ?? "", "content-type": "application/json" };
  // 12 MiB of blanks: read whole, then refused as not a bundle (not cut off by a framework body limit).
  const large = await page.request.post(url, { headers, data: Buffer.alloc(12 * 1024 * 1024, 0x20) });
  expect(large.status()).toBe(400);
  expect(((await large.json()) as { error: { code: string } }).error.code).toBe("invalid_request");
  const tooLarge = await page.request.post(url, { headers, data: Buffer.alloc(64 * 1024 * 1024 + 1, 0x20) });
  expect(tooLarge.status()).toBe(413);
  // Without the page's origin a cookie-authenticated upload is refused.
  const foreign = await page.request.post(url, { headers: { origin: "https://evil.example" }, data: "{}" });
  expect(foreign.status()).toBe(403);
});

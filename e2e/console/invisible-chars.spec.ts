import { expect, test, type Locator } from "@playwright/test";
import { issueKey, pushOne } from "../support/sync-api";

/**
 * Where the browser draws the first and the last character of the text that
 * follows the marker: with the override acting, "gnp.exe" would be drawn
 * right to left (the g rightmost) and read "exe.png".
 */
async function drawnLeftToRight(within: Locator, text: string): Promise<boolean> {
  return within.evaluate((root, wanted) => {
    const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      const at = node.textContent?.indexOf(wanted) ?? -1;
      if (at < 0) continue;
      const box = (offset: number) => {
        const range = document.createRange();
        range.setStart(node, offset);
        range.setEnd(node, offset + 1);
        return range.getBoundingClientRect();
      };
      return box(at).left < box(at + wanted.length - 1).left;
    }
    throw new Error(`"${wanted}" is not on the page`);
  }, text);
}

test("a record id with a right-to-left override shows the marker, never exe.png", async ({ page, request }) => {
  const crm = await issueKey(request, "crm");
  const id = "\u202Egnp.exe";
  await pushOne(request, crm, "customers", { id, baseVersion: null, data: { name: "\u202Eevil\u200B", region: "north" } });

  await page.goto(`/records?collection=customers&prefix=${encodeURIComponent("\u202E")}`);
  const row = page.getByTestId("record-row").filter({ hasText: "gnp.exe" });
  await expect(row).toHaveCount(1);
  const link = row.getByRole("link");
  await expect(link).toHaveText("⟨U+202E⟩gnp.exe");
  await expect(link.getByTestId("invisible-char")).toHaveAttribute("title", /U\+202E RIGHT-TO-LEFT OVERRIDE/);
  expect(await link.evaluate((el) => el.textContent)).not.toContain("\u202E");
  expect(await drawnLeftToRight(link, "gnp.exe")).toBe(true);
  // The data preview marks the value's characters too.
  await expect(row).toContainText("⟨U+202E⟩evil⟨U+200B⟩");
  await page.screenshot({ path: "test-results/screenshots/records-invisible-chars.png", fullPage: true });

  await link.click();
  const heading = page.getByRole("heading", { level: 1 });
  await expect(heading).toContainText("customers/⟨U+202E⟩gnp.exe");
  expect(await drawnLeftToRight(heading, "gnp.exe")).toBe(true);
  const data = page.getByLabel("Current data");
  await expect(data).toContainText('"name": "⟨U+202E⟩evil⟨U+200B⟩"');
  await expect(data.getByTestId("invisible-char")).toHaveCount(2);
});

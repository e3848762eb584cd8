import type { APIRequestContext, Page, Request } from "@playwright/test";

/**
 * Server actions are plain POSTs that anyone can send, so hiding a button is
 * not a guard. These helpers capture the request a page sends for an action
 * (as an admin) and replay it with another session (a viewer's), so a test
 * can prove the server refuses it.
 */
export interface CapturedAction {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** Runs `trigger` and returns the first server-action request the page sends. */
export async function captureServerAction(page: Page, trigger: () => Promise<void>): Promise<CapturedAction> {
  const seen = page.waitForRequest((r: Request) => r.method() === "POST" && r.headers()["next-action"] !== undefined);
  await trigger();
  const request = await seen;
  const headers = await request.allHeaders();
  const keep: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (["next-action", "content-type", "accept", "next-router-state-tree", "origin"].includes(k)) keep[k] = v;
  }
  return { url: request.url(), headers: keep, body: request.postData() ?? "" };
}

/** Sends a captured action again with `cookie` (e.g. a viewer's session) and returns the response text. */
export async function replayServerAction(
  request: APIRequestContext,
  action: CapturedAction,
  cookie: string,
): Promise<{ status: number; text: string }> {
  const res = await request.post(action.url, { headers: { ...action.headers, cookie }, data: action.body });
  return { status: res.status(), text: await res.text() };
}

/** The Cookie header for a saved storage state file. */
export async function cookieHeaderFrom(statePath: string): Promise<string> {
  const { readFile } = await import("node:fs/promises");
  const state = JSON.parse(await readFile(statePath, "utf8")) as { cookies: { name: string; value: string }[] };
  return state.cookies.map((c) => `${c.name}=${c.value}`).join("; ");
}

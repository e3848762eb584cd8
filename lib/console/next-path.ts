/**
 * Where to go after signing in: the `next` parameter, only if it names a
 * console page on the console's own origin. It is parsed as a URL against the
 * console's origin, exactly as a browser would resolve a redirect to it
 * (tabs and newlines dropped, backslashes read as slashes, dot segments
 * removed), and accepted only when the result has that origin and a console
 * path; the answer is the parsed path, never the raw text, so what is checked
 * is what the browser follows. Anything else goes to the overview.
 */

/** First path segments of the console's pages (app/(console)); "" is the overview. */
export const CONSOLE_SECTIONS: readonly string[] = ["", "systems", "policies", "conflicts", "records", "audit", "operators"];

/** An origin nobody owns: relative paths resolve against it like against the console's. */
const BASE = "http://console.invalid";
const FALLBACK = "/";

export function safeNextPath(next: string | null | undefined): string {
  if (typeof next !== "string" || next === "" || next.length > 2048) return FALLBACK;
  // Only paths: a scheme ("https:", "javascript:") or an authority has no business here.
  if (!next.startsWith("/")) return FALLBACK;
  let url: URL;
  try {
    url = new URL(next, BASE);
  } catch {
    return FALLBACK;
  }
  if (url.origin !== BASE || url.username !== "" || url.password !== "") return FALLBACK;
  const path = `${url.pathname}${url.search}${url.hash}`;
  // "//host" or "/\host" would be read by the browser as another host.
  if (!path.startsWith("/") || path.startsWith("//") || path.startsWith("/\\")) return FALLBACK;
  const section = url.pathname.split("/")[1] ?? "";
  if (!CONSOLE_SECTIONS.includes(section)) return FALLBACK;
  // What the browser resolves the answer to must be the same place again.
  const again = new URL(path, BASE);
  if (again.origin !== BASE || `${again.pathname}${again.search}${again.hash}` !== path) return FALLBACK;
  return path;
}

import Link from "next/link";
import { buttonClass } from "./button";

/**
 * Keyset pagination: the server gives the links (a cursor in the query
 * string), so a page costs the same at row 10 and at row 1,000,000.
 */
export function Pagination({ prevHref, nextHref, summary }: { prevHref?: string | null; nextHref?: string | null; summary?: string }) {
  return (
    <nav aria-label="Pagination" className="mt-3 flex items-center justify-between gap-3 text-sm text-slate-600">
      <span>{summary}</span>
      <span className="flex gap-2">
        {prevHref ? (
          <Link className={buttonClass("secondary", "sm")} href={prevHref} rel="prev">
            ← Newer
          </Link>
        ) : null}
        {nextHref ? (
          <Link className={buttonClass("secondary", "sm")} href={nextHref} rel="next">
            Older →
          </Link>
        ) : null}
      </span>
    </nav>
  );
}

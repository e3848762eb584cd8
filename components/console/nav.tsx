"use client";

import Link from "next/link";
import { usePathname } from "next/navigation";

export const CONSOLE_NAV = [
  { href: "/", label: "Overview" },
  { href: "/systems", label: "Systems" },
  { href: "/policies", label: "Policies" },
  { href: "/conflicts", label: "Conflicts" },
  { href: "/records", label: "Records" },
  { href: "/audit", label: "Audit log" },
  { href: "/operators", label: "Operators" },
] as const;

export function ConsoleNav() {
  const pathname = usePathname();
  return (
    <nav aria-label="Console" className="flex flex-col gap-0.5">
      {CONSOLE_NAV.map((item) => {
        const active = item.href === "/" ? pathname === "/" : pathname === item.href || pathname.startsWith(`${item.href}/`);
        return (
          <Link
            key={item.href}
            href={item.href}
            aria-current={active ? "page" : undefined}
            className={`rounded-md px-3 py-1.5 text-sm font-medium ${
              active ? "bg-slate-800 text-white" : "text-slate-300 hover:bg-slate-800/60 hover:text-white"
            }`}
          >
            {item.label}
          </Link>
        );
      })}
    </nav>
  );
}
